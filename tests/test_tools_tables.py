"""Tables and histograms that explain themselves: what compiled Emmett says about its aggregates
(`;@aggr` records) read by `vprobe -a`, `vprobe-aggr` and their JSON, against logs of known contents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from vprobe_tools.log.aggr_info import AggregateCatalog, AggregateInfo
from vprobe_tools.log.json_lines import from_json, to_json
from vprobe_tools.log.parse import parse_log
from vprobe_tools.views.aggr import render, render_json, render_table
from vprobe_tools.views.pipeline import Pipeline
from vprobe_tools.views.symbolize import Symbolizer
from vprobe_tools.views.tables import KeyFormat, histograms

from conftest import TOY_KALLSYMS

SYSCALLS = {0: "read", 17: "pread64", 202: "futex"}
STRACE = str(Path(__file__).resolve().parent.parent / "cookbook" / "strace.emt")

STRACE_LOG = ('aggr: syscalls (1 integer key) (1 string key)\n'
              'syscalls[0x11, "mysqld"] == avg 1 count 159 min 1 max 1 latest 1\n'
              'syscalls[0xca, "mysqld"] == avg 1 count 111 min 1 max 1 latest 1\n'
              'syscalls[0x7, "bash"] == avg 1 count 2 min 1 max 1 latest 1\n')
STRACE_RECORD = {"name": "syscalls", "keys": [{"header": "RAX", "kind": "syscall"},
                                               {"header": "curprocname()", "kind": "string"}], "counted": True}


def block_of(log: str, record: dict | None):
    [block] = parse_log(log)
    if record is not None:
        block.info = AggregateInfo.of(record, block.int_keys, block.str_keys)
    return block


def keys(**kw) -> KeyFormat:
    return KeyFormat(kw.get("symbolizer"), lambda: SYSCALLS)


# ---- tables ------------------------------------------------------------------------------------------

def test_a_counted_aggregate_shows_its_headers_syscall_names_count_and_share():
    assert render(block_of(STRACE_LOG, STRACE_RECORD), keys(), epoch=2) == (
        "aggr: syscalls  epoch 2  total count 272\n"
        "RAX      curprocname()  count      %  bar\n"
        "pread64  mysqld           159  58.5%  ####################\n"
        "futex    mysqld           111  40.8%  ##############\n"
        "7        bash               2   0.7%  #\n")  # a number the table does not name: decimal


def test_without_annotations_the_layout_is_todays():
    assert render(block_of(STRACE_LOG, None), keys(), epoch=2) == (
        "aggr: syscalls  (1 integer key, 1 string key)  epoch 2  total count 272\n"
        "key1  key2    count  avg  min  max  latest      %  bar\n"
        "0x11  mysqld    159    1    1    1       1  58.5%  ####################\n"
        "0xca  mysqld    111    1    1    1       1  40.8%  ##############\n"
        " 0x7  bash        2    1    1    1       1   0.7%  #\n")


LATENCY_LOG = ('aggr: lat (3 integer keys) (0 string keys)\n'
               'lat[0x3e8, 0xffffffff81001205, 0x1000] == avg 130 count 2 min 120 max 140 latest 120\n'
               'lat[0x7, 0xffffffff81001100, 0x2000] == avg 5 count 1 min 5 max 5 latest 5\n')
LATENCY_RECORD = {"name": "lat", "keys": [{"header": "pid", "kind": "integer"}, {"header": "RIP", "kind": "address"},
                                          {"header": "CR3", "kind": "hex"}], "counted": False, "value": "usec"}


def test_integers_are_decimal_addresses_symbolized_and_hex_kinds_hex():
    text = render(block_of(LATENCY_LOG, LATENCY_RECORD), keys(symbolizer=Symbolizer(TOY_KALLSYMS)))
    assert text == (
        "aggr: lat  of usec  total count 3\n"
        " pid  RIP              CR3  count  avg  min  max  latest      %  bar\n"
        "1000  sys_read+0x5  0x1000      2  130  120  140     120  66.7%  ####################\n"
        "   7  schedule+0x0  0x2000      1    5    5    5       5  33.3%  ##########\n")


def test_a_record_that_does_not_fit_the_aggregate_is_ignored():
    wrong = dict(STRACE_RECORD, keys=STRACE_RECORD["keys"][:1])  # one key for an aggregate of two
    assert AggregateInfo.of(wrong, 1, 1) is None
    assert AggregateInfo.of({"keys": "nonsense"}, 1, 1) is None
    odd_kind = AggregateInfo.of(dict(STRACE_RECORD, keys=[{"header": "n", "kind": "colour"},
                                                          {"header": "s", "kind": "integer"}]), 1, 1)
    assert [k.kind for k in odd_kind.keys] == ["integer", "string"]  # unknown kinds read as the plain ones


def test_tables_in_json_carry_the_same_names_and_formats():
    [obj] = render_json(block_of(STRACE_LOG, STRACE_RECORD), keys(), top=2)
    assert obj["columns"] == [{"header": "RAX", "kind": "syscall"}, {"header": "curprocname()", "kind": "string"}]
    assert obj["counted"] is True and obj["total_count"] == 272 and obj["hidden"] == 1
    assert obj["entries"][0] == {"keys": [17, "mysqld"], "shown": ["pread64", "mysqld"], "count": 159,
                                 "share": 159 / 272}


def test_json_lines_carry_the_info_so_a_printer_needs_no_script():
    block = block_of(STRACE_LOG, STRACE_RECORD)
    back = from_json(json.loads(json.dumps(to_json(block))))
    assert back.info == block.info and back.entries == block.entries
    # ... and the -a view's JSON of a counted aggregate reads back too (its statistics are all 1).
    [table] = render_json(block, keys())
    assert from_json(table).entries == sorted(block.entries, key=lambda e: -e.count)


def test_the_pipeline_finds_each_blocks_info_in_the_scripts_catalog():
    seen = []

    class Keep:
        def event(self, event):
            seen.append(event)

        def idle(self):
            pass

        def finish(self):
            pass

    Pipeline([Keep()], AggregateCatalog({"syscalls": STRACE_RECORD})).text(STRACE_LOG + "done\n")
    assert seen[0].info.keys[0].header == "RAX"


def test_a_fleets_per_vm_table_has_its_aggregates_info():
    catalog = AggregateCatalog({"syscalls": STRACE_RECORD})
    assert catalog.info("syscalls@web01", 1, 1) == catalog.info("syscalls", 1, 1) is not None


# ---- histograms ------------------------------------------------------------------------------------

# A power-of-two histogram of 100 samples for "bash": 10 in [4, 8), 80 in [16, 32), 9 in [32, 64),
# 1 in [128, 256); [8, 16) and [64, 128) are empty.
HIST_LOG = ('aggr: lat (1 integer key) (1 string key)\n'
            'lat[0x10, "bash"] == avg 20 count 80 min 16 max 31 latest 17\n'
            'lat[0x4, "bash"] == avg 5 count 10 min 4 max 7 latest 4\n'
            'lat[0x80, "bash"] == avg 200 count 1 min 200 max 200 latest 200\n'
            'lat[0x20, "bash"] == avg 40 count 9 min 33 max 60 latest 40\n'
            'lat[0x2, "sshd"] == avg 3 count 3 min 2 max 3 latest 3\n')
HIST_RECORD = {"name": "lat", "keys": [{"header": "hist(usec)", "kind": "bucket"},
                                       {"header": "curprocname()", "kind": "string"}],
               "counted": False, "value": "usec", "hist": {"kind": "pow2", "bucket": 0, "unit": "us"}}


def test_a_histogram_has_its_buckets_in_order_with_the_empty_ones_and_its_percentiles():
    assert render(block_of(HIST_LOG, HIST_RECORD), keys(), epoch=1) == (
        "aggr: lat  histogram of usec (us), power-of-two buckets, by curprocname()  epoch 1  total count 103\n"
        "lat[bash]  count 100  mean 22 us  min 4 us  max 200 us  p50 in [16, 32) us  p90 in [16, 32) us  "
        "p99 in [32, 64) us\n"
        "  [4, 8)      10 |@@@@@                                   |\n"
        "  [8, 16)      0 |                                        |\n"
        "  [16, 32)    80 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "  [32, 64)     9 |@@@@                                    |\n"
        "  [64, 128)    0 |                                        |\n"
        "  [128, 256)   1 |@                                       |\n"
        "lat[sshd]  count 3  mean 3 us  min 2 us  max 3 us  p50 in [2, 4) us  p90 in [2, 4) us  p99 in [2, 4) us\n"
        "  [2, 4)  3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n")


def test_percentiles_are_the_buckets_the_ranks_fall_in():
    (bash, _) = histograms(block_of(HIST_LOG, HIST_RECORD), keys()).histograms
    assert bash.count == 100 and bash.mean == (20 * 80 + 5 * 10 + 200 + 40 * 9) / 100
    # The 50th and 90th of 100 sorted samples are in [16, 32) (ranks 11 to 90), the 99th in [32, 64).
    assert {p: (b.low, b.high) for p, b in bash.percentiles.items()} == {50: (16, 32), 90: (16, 32), 99: (32, 64)}


def test_a_linear_histogram_has_an_underflow_and_an_overflow_bucket():
    log = ('aggr: d (1 integer key) (0 string keys)\n'
           'd[0x0] == avg 50 count 1 min 50 max 50 latest 50\n'
           'd[0xc8] == avg 250 count 2 min 210 max 290 latest 210\n'
           'd[0x1f4] == avg 9000 count 1 min 9000 max 9000 latest 9000\n')
    record = {"name": "d", "keys": [{"header": "lhist(n, 100, 500, 100)", "kind": "bucket"}], "counted": False,
              "hist": {"kind": "linear", "bucket": 0, "min": 100, "max": 500, "step": 100}}
    lines = render(block_of(log, record), keys()).splitlines()
    assert lines[0] == "aggr: d  histogram, linear buckets of 100 from 100 to 500  total count 4"
    assert lines[1] == "d  count 4  mean 2387  min 50  max 9000  p50 in [200, 300)  p90 in [500, 2^64)  " \
                       "p99 in [500, 2^64)"
    assert [line.split("|")[0].strip() for line in lines[2:]] == [
        "[0, 100)     1", "[100, 200)   0", "[200, 300)   2", "[300, 400)   0", "[400, 500)   0", "[500, 2^64)  1"]


def test_a_long_run_of_empty_buckets_is_one_line():
    log = ('aggr: h (1 integer key) (0 string keys)\n'
           'h[0x1] == avg 1 count 4 min 1 max 1 latest 1\n'
           'h[0x100000] == avg 1048576 count 1 min 1048576 max 1048576 latest 1048576\n')
    record = {"name": "h", "keys": [{"header": "b", "kind": "bucket"}], "hist": {"kind": "pow2", "bucket": 0}}
    lines = render(block_of(log, record), keys()).splitlines()
    assert lines[2:] == ["  [1, 2)              4 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
                         "  [2, 1048576)        0 (19 empty buckets)",
                         "  [1048576, 2097152)  1 |@@@@@@@@@@                              |"]


def test_histograms_in_json_are_histogram_objects():
    bash, sshd = render_json(block_of(HIST_LOG, HIST_RECORD), keys())
    assert bash["type"] == "histogram" and bash["name"] == "lat" and bash["kind"] == "pow2"
    assert (bash["headers"], bash["keys"], bash["shown"], bash["unit"]) == (["curprocname()"], ["bash"], ["bash"], "us")
    assert (bash["count"], bash["min_value"], bash["max_value"]) == (100, 4, 200)
    assert bash["percentiles"] == {"p50": {"low": 16, "high": 32}, "p90": {"low": 16, "high": 32},
                                   "p99": {"low": 32, "high": 64}}
    assert [(b["low"], b["high"], b["count"]) for b in bash["buckets"]] == [
        (4, 8, 10), (8, 16, 0), (16, 32, 80), (32, 64, 9), (64, 128, 0), (128, 256, 1)]
    assert sshd["count"] == 3


def test_render_table_keeps_its_old_signature():
    assert render_table(block_of(STRACE_LOG, None)).startswith("aggr: syscalls  (1 integer key, 1 string key)")


# ---- end to end ----------------------------------------------------------------------------------

def test_strace_shows_system_call_names_from_the_guest_kernels_table():
    from test_tools_vprobe import vprobe

    lines = vprobe("-a", "-d", "3", STRACE).text.splitlines()
    second = lines.index(next(line for line in lines if line.startswith("aggr: syscalls  epoch 2")))
    assert lines[second + 1].split() == ["RAX", "curprocname()", "count", "%", "bar"]
    assert lines[second + 2].split()[:3] == ["pread64", "mysqld", "159"]  # 17 in the kernel's sys_call_table


def test_the_vms_syscalls_file_names_them(tmp_path):
    from test_tools_vprobe import vprobe, write

    write(tmp_path / "names.txt", "# number name\n17 PREAD\n0x11 pread_again\n#define __NR_futex 202\n")
    vmx = write(tmp_path / "vm.vmx", 'vprobe.enable = "TRUE"\nvprobe.syscalls = "names.txt"\n')
    rows = [line.split() for line in vprobe("-a", "-d", "3", vmx, STRACE).text.splitlines()]
    assert ["pread_again", "mysqld", "159"] == rows[6][:3]  # a later line for a number wins
    assert ["futex", "mysqld", "111"] == rows[7][:3]
    assert ["44", "mysqld", "109"] == rows[8][:3]  # a number the file does not name: decimal
    write(tmp_path / "bad.txt", "17 pread64\nread 0\n")
    bad = write(tmp_path / "bad.vmx", 'vprobe.enable = "TRUE"\nvprobe.syscalls = "bad.txt"\n')
    result = vprobe("-d", "1", bad, STRACE)
    assert result.status == 1
    assert "vprobe.syscalls: " in result.err and "bad.txt:2: expected NUMBER NAME" in result.err


def test_a_saved_log_with_its_script_and_json_lines_explain_themselves(tmp_path):
    from test_tools_vprobe import vprobe, write

    bin_dir = Path(sys.executable).parent
    log = write(tmp_path / "vprobe.out", vprobe("-d", "2", STRACE).text)
    shown = subprocess.run([str(bin_dir / "vprobe-aggr"), "--script", STRACE, str(log)],
                           capture_output=True, timeout=300)
    assert shown.returncode == 0 and b"pread64        mysqld" in shown.stdout
    plain = subprocess.run([str(bin_dir / "vprobe-aggr"), str(log)], capture_output=True, timeout=300)
    assert b"key1  key2" in plain.stdout  # without the script: today's layout
    lines = vprobe("-f", "json", "-d", "2", STRACE).out
    piped = subprocess.run([str(bin_dir / "vprobe-aggr"), "-"], input=lines, capture_output=True, timeout=300)
    assert piped.stdout == shown.stdout


def test_a_compiled_histogram_is_drawn_by_vprobe_a_and_written_as_histogram_objects(tmp_path):
    from test_tools_vprobe import vprobe

    disk = str(Path(__file__).resolve().parent.parent / "cookbook" / "disk-latency.emt")
    lines = vprobe("-a", "-d", "3", disk).text.splitlines()
    titles = [i for i, line in enumerate(lines) if line.startswith("aggr: latency_us  histogram of us, power-of-two")]
    assert len(titles) == 3
    last = titles[-1]
    summary = lines[last + 1].split("  ")
    assert summary[0] == "latency_us" and summary[2].startswith("mean ") and summary[5].startswith("p50 in [")
    buckets = []
    for line in lines[last + 2:]:
        if not line.startswith("  ["):
            break
        low, high = (int(v) for v in line.split(")")[0].strip(" [").split(", "))
        buckets.append((low, high, int(line.split(")")[1].split()[0])))
    assert buckets and all(high == (low * 2 or 1) for low, high, _ in buckets)
    assert all(a[1] == b[0] for a, b in zip(buckets, buckets[1:]))  # in order, none left out
    assert int(summary[1].split()[1]) == sum(n for _, _, n in buckets)

    objects = [json.loads(line) for line in vprobe("-a", "-f", "json", "-d", "3", disk).out.splitlines()]
    hists = [o for o in objects if o["type"] == "histogram"]
    assert [h["name"] for h in hists] == ["latency_us"] * 2 and hists[-1]["unit"] == "us"
    # the first second (the guest's boot) has no sample: the aggregate's object, without entries
    (empty,) = [o for o in objects if o["type"] == "aggr" and o["name"] == "latency_us"]
    assert empty["entries"] == [] and empty["hist"]["kind"] == "pow2"
    assert [(b["low"], b["high"], b["count"]) for b in hists[-1]["buckets"]] == buckets
    assert set(hists[-1]["percentiles"]) == {"p50", "p90", "p99"}
