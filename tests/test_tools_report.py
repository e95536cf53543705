"""The HTML report: `vprobe --html` and `vprobe-report` write one self-contained page of a run or a log.

What the page holds is checked here from its HTML (the browser tests, in
test_report_browser.py, check what it does); the model's pieces (flame trees,
histogram charts) are checked directly.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from report_html import flame_trees, leaves, tables
from vprobe_tools.commands import vprobe, vprobe_report, vprobe_stacks
from vprobe_tools.views.report.model import flame_tree, histogram

BIN = Path(sys.executable).parent
COOKBOOK = Path(__file__).parent.parent / "cookbook"

# VMM1Hz fires on each of the two VCPUs every second, VMX1Hz once a second, VMXUnload once (and faults).
SCRIPT = """(defaggr n 1 0)
(vprobe VMM1Hz (aggr n (VCPUID) () 1))
(vprobe VMX1Hz (logaggr n))
(vprobe VMXUnload (printf "%d\\n" (/ 1 0)))
"""

STACK_LOG = """\
aggr: stacks (0 integer keys) (1 string key)
stacks["GUEST_0xffffffff81001370_0x4005b3"] == avg 1 count 5 min 1 max 1 latest 1
stacks["GUEST_0x4005b3"] == avg 1 count 2 min 1 max 1 latest 1
seen GUEST_0xffffffff81001370_0x4005b3 once
vprobe error: probe Guest_PF aborted at pf.emt:3:5: division by zero
vprobe error: probe Guest_PF aborted at pf.emt:3:5: division by zero
"""


def invoke(command, *args, input: bytes | None = None):
    result = CliRunner().invoke(command, [str(a) for a in args], input=input)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_a_run_report_shows_each_probe_with_how_often_it_fired_and_its_faults(tmp_path):
    (tmp_path / "s.vp").write_text(SCRIPT)
    report = tmp_path / "r.html"
    result = invoke(vprobe.command, "-d", "3", "--html", report, tmp_path / "s.vp")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("aggr: n ") == 3  # the log still goes to stdout as without --html
    html = report.read_text()
    (probes,) = tables(html, "probes")
    assert probes[0] == ["probe", "at", "fired", "faults", "most VP operations per firing"]
    fired = {row[0]: (int(row[2]), int(row[3])) for row in probes[1:]}
    assert fired == {"VMM1Hz": (6, 0), "VMX1Hz": (3, 0), "VMXUnload": (1, 1)}
    assert [row[1].rsplit(":", 2)[0] for row in probes[1:]] == [str(tmp_path / "s.vp")] * 3
    (faults,) = tables(html, "faults")
    assert faults[1][:3] == ["1", "VMXUnload", f"{tmp_path / 's.vp'}:4:39"]
    assert faults[1][3] == "division by zero"
    assert re.search(r'<li class="fault" id="log-fault-1">vprobe error: probe VMXUnload aborted', html)
    assert "3 s simulated" in html and "the embedded default machine" in html
    assert "<script src" not in html and "<link" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "").replace('"http://www.w3.org/2000/svg"', "")


def test_every_epoch_is_a_table_with_the_columns_and_formats_of_dash_a(tmp_path):
    (tmp_path / "s.vp").write_text(SCRIPT)
    report = tmp_path / "r.html"
    assert invoke(vprobe.command, "-d", "3", "--html", report, tmp_path / "s.vp").exit_code == 0
    epochs = tables(report.read_text(), "aggr")
    assert len(epochs) == 3
    last = epochs[0]  # the last epoch first
    assert last[0] == ["key", "count", "avg", "min", "max", "latest", "%"]
    assert last[1:] == [["0x0", "3", "1", "1", "1", "1", "50.0%"], ["0x1", "3", "1", "1", "1", "1", "50.0%"]]
    assert [row[1] for row in epochs[2][1:]] == ["1", "1"]


def test_a_histogram_is_drawn_from_the_histogram_objects_of_dash_a(tmp_path):
    report = tmp_path / "lat.html"
    result = invoke(vprobe.command, "-d", "3", "-a", "-f", "json", "--html", report, COOKBOOK / "disk-latency.emt")
    assert result.exit_code == 0, result.stderr
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    last = [o for o in objects if o["type"] == "histogram" and o["name"] == "latency_us"][-1]
    html = report.read_text()
    chart = html.split('<svg class="histogram-chart"')[1].split("</svg>")[0]  # the last epoch's, first
    bars = re.findall(r'<g class="bucket[^"]*" data-count="(\d+)">\s*<title>([^:]+):', chart)
    expected = [(str(b["count"]), f"[{b['low']}, {b['high'] if b['high'] is not None else '2^64'})")
                for b in last["buckets"]]
    assert bars == expected
    for p, bounds in last["percentiles"].items():
        assert f'<span class="pct">{p}</span> in [{bounds["low"]}, {bounds["high"]})' in html
    (latencies,) = [rows for rows in tables(html, "aggr") if rows[0][0] == '"uSec"'][:1]
    assert latencies[0] == ['"uSec"', "count", "avg", "min", "max", "latest", "%"]  # headers from the source


def test_a_saved_log_makes_the_same_page_with_its_flame_graph_from_the_folded_stacks(tmp_path):
    log = tmp_path / "vprobe.out"
    log.write_text(STACK_LOG)
    result = invoke(vprobe_report.command, log)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    html = (tmp_path / "vprobe.html").read_text()
    folded = invoke(vprobe_stacks.command, "--folded", log).stdout
    trees = flame_trees(html)
    assert len(trees) == 2  # the aggregate's stack keys, and the stack in a log line
    merged: dict[str, int] = {}
    for tree in trees:
        assert tree["v"] == sum(leaves(tree).values())
        for path, count in leaves(tree).items():
            merged[path] = merged.get(path, 0) + count
    assert merged == {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in folded.splitlines()}
    (key_table,) = tables(html, "aggr")
    assert key_table[0][0] == "key"
    assert key_table[1][:2] == ["submit_bio+0x10\n0x4005b3", "5"]  # symbolized, a frame per line, as -a shows it
    (faults,) = tables(html, "faults")
    assert faults[1] == ["2", "Guest_PF", "pf.emt:3:5", "division by zero"]
    assert html.count('<li class="fault"') == 2
    assert "a saved log does not record it" in html


def test_a_report_reads_json_lines_and_shows_the_scripts_source(tmp_path):
    (tmp_path / "s.vp").write_text(SCRIPT)
    json_log = invoke(vprobe.command, "-d", "2", "-f", "json", tmp_path / "s.vp").stdout
    (tmp_path / "run.jsonl").write_text(json_log)
    out = tmp_path / "run.html"
    result = invoke(vprobe_report.command, "--script", tmp_path / "s.vp", "-o", out, tmp_path / "run.jsonl")
    assert result.exit_code == 0, result.stderr
    html = out.read_text()
    assert len(tables(html, "aggr")) == 2
    assert "(vprobe VMX1Hz (logaggr n))" in html


def test_a_saved_logs_report_takes_the_tables_columns_from_the_emmett_script(tmp_path):
    script = COOKBOOK / "pagefault-stacks.emt"
    (tmp_path / "pf.out").write_text(invoke(vprobe.command, "-d", "2", script).stdout)
    bare = invoke(vprobe_report.command, tmp_path / "pf.out", "-o", tmp_path / "bare.html")
    named = invoke(vprobe_report.command, "--script", script, tmp_path / "pf.out", "-o", tmp_path / "named.html")
    assert bare.exit_code == named.exit_code == 0
    assert tables((tmp_path / "bare.html").read_text(), "aggr")[0][0][:3] == ["key", "count", "avg"]
    assert tables((tmp_path / "named.html").read_text(), "aggr")[0][0] == ["stack", "count", "%"]  # only counted
    assert "gueststack(stack);" in (tmp_path / "named.html").read_text()


def test_log_text_cannot_break_out_of_the_page(tmp_path):
    log = tmp_path / "vprobe.out"
    log.write_text('</script><b>bold</b> & GUEST_0x1_0x2\naggr: s (0 integer keys) (1 string key)\n'
                   's["</script>GUEST_0x3"] == avg 1 count 1 min 1 max 1 latest 1\n')
    assert invoke(vprobe_report.command, log, "-o", tmp_path / "r.html").exit_code == 0
    html = (tmp_path / "r.html").read_text()
    assert "<b>bold</b>" not in html and "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt; &amp; GUEST_0x1_0x2" in html
    body = html.split("<script>")[0]  # before the page's own script
    assert body.count("</script>") == len(flame_trees(html))  # only the data elements' own ends
    for data in re.findall(r'class="flame-data">(.*?)</script>', html, re.S):
        assert "<" not in data and json.loads(data)


def test_a_big_table_shows_its_largest_counts_and_says_how_many_more_there_are(tmp_path):
    log = tmp_path / "vprobe.out"
    entries = "".join(f"n[0x{i:x}] == avg 1 count {i + 1} min 1 max 1 latest 1\n" for i in range(1500))
    log.write_text("aggr: n (1 integer key) (0 string keys)\n" + entries)
    assert invoke(vprobe_report.command, log).exit_code == 0
    html = (tmp_path / "vprobe.html").read_text()
    (table,) = tables(html, "aggr")
    assert len(table) == 1 + 1000 and table[1][1] == "1500" and table[-1][1] == "501"
    assert f"(500 more entries not shown, count {sum(range(1, 501)):,}; vprobe-aggr shows them all)" in html


def test_report_errors_are_plain_messages_with_status_1(tmp_path):
    (tmp_path / "s.vp").write_text(SCRIPT)
    result = invoke(vprobe.command, "-d", "1", "--html", tmp_path / "no" / "r.html", tmp_path / "s.vp")
    assert (result.exit_code, result.stdout) == (1, "")  # refused before the run
    assert result.stderr == f"vprobe: cannot write the report {tmp_path / 'no' / 'r.html'}: no folder {tmp_path / 'no'}\n"
    result = invoke(vprobe.command, "-l", "--html", tmp_path / "r.html", tmp_path / "s.vp")
    assert (result.exit_code, result.stderr) == (1, "vprobe: --html reports a run of a script: it does not go with -l\n")
    result = invoke(vprobe_report.command, "-", input=b"hello\n")
    assert (result.exit_code, result.stderr) == (
        1, "vprobe-report: reading standard input, say where the report goes: -o FILE\n")
    result = invoke(vprobe_report.command, tmp_path / "missing.out")
    assert result.exit_code == 1 and "cannot read" in result.stderr and not (tmp_path / "missing.html").exists()


def test_flame_tree_counts_each_frame_with_its_callees():
    tree = flame_tree([("a;b", 2), ("a;c", 1), ("d", 4)])
    assert tree["v"] == 7
    a, d = tree["c"]
    assert (a["n"], a["v"], [(c["n"], c["v"]) for c in a["c"]]) == ("a", 3, [("b", 2), ("c", 1)])
    assert (d["n"], d["v"], d["c"]) == ("d", 4, [])
    assert leaves(tree) == {"a;b": 2, "a;c": 1, "d": 4}


def test_a_histogram_object_becomes_bars_with_its_percentiles():
    obj = {"type": "histogram", "name": "lat", "headers": ["curprocname()"], "shown": ["mysqld"], "unit": "us",
           "value": "usec", "count": 10, "mean": 97.5, "min_value": 40, "max_value": 300,
           "percentiles": {"p50": {"low": 64, "high": 128}, "p90": {"low": 128, "high": 256},
                           "p99": {"low": 256, "high": 512}},
           "buckets": [{"low": 32, "high": 64, "count": 2}, {"low": 64, "high": 128, "count": 5},
                       {"low": 128, "high": 256, "count": 2}, {"low": 256, "high": 512, "count": 1},
                       {"low": 512, "high": 65536, "count": 0, "empty_buckets": 7},
                       {"low": 65536, "high": None, "count": 0}]}
    chart = histogram(obj)
    assert [b["label"] for b in chart["bars"]] == ["[32, 64)", "[64, 128)", "[128, 256)", "[256, 512)",
                                                   "[512, 65536)", "[65536, 2^64)"]
    assert [b["width"] for b in chart["bars"][:4]] == [160.0, 400.0, 160.0, 80.0]
    assert [b["percentiles"] for b in chart["bars"]] == [[], ["p50"], ["p90"], ["p99"], [], []]
    assert chart["bars"][4]["gap"] == 7
    assert chart["percentiles"] == {"p50": "[64, 128)", "p90": "[128, 256)", "p99": "[256, 512)"}


def test_a_fleet_report_has_the_merged_tables_and_each_vms_own(tmp_path):
    (tmp_path / "s.vp").write_text(SCRIPT)
    done = subprocess.run([str(BIN / "vprobe"), "--fleet", "2", "--workers", "1", "-d", "2", "--by-vm",
                           "--html", "fleet.html", "s.vp"], cwd=tmp_path, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    html = (tmp_path / "fleet.html").read_text()
    assert "2 VMs of the embedded default machine (sim.seed 0 .. 1)" in html
    merged, vm0, vm1 = tables(html, "aggr")
    assert [row[1] for row in merged[1:]] == ["4", "4"]  # each VCPU's count, over two VMs
    assert [row[1] for row in vm0[1:]] == [row[1] for row in vm1[1:]] == ["2", "2"]
    assert html.count('<details class="vm"') == 2
    (probes,) = tables(html, "probes")
    fired = {row[0]: (int(row[2]), int(row[3])) for row in probes[1:]}
    assert fired == {"VMM1Hz": (8, 0), "VMX1Hz": (4, 0), "VMXUnload": (2, 2)}  # summed over the two VMs
    (faults,) = tables(html, "faults")
    assert faults[0][-1] == "VMs" and faults[1][0] == "2" and faults[1][-1] == "vm-0, vm-1"
    assert html.count('<li class="fault"') == 2  # each VM's fault line, highlighted
