"""`vprobe --fleet` from the command line: output naming each VM, failures, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vprobe_tools.errors import ToolError
from vprobe_tools.commands.vprobe_fleet import Progress
from vprobe_tools.fleet.runner import remote_client

from conftest import TextSink

BIN = Path(sys.executable).parent

SCRIPT = b"""(defaggr calls 0 1)
(vprobe GUEST:system_call (aggr calls () ((curprocname)) 1))
(vprobe VMX1Hz (printf "tick %s\\n" (curprocname)))
(vprobe VMXUnload (printf "%d\\n" (/ 1 0)))
"""


def vprobe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "vprobe"), *args], capture_output=True, cwd=cwd, timeout=300)


def test_text_output_prefixes_lines_and_shows_merged_and_per_vm_tables(tmp_path):
    (tmp_path / "s.vp").write_bytes(SCRIPT)
    run = vprobe("--fleet", "2", "--workers", "1", "-d", "2.5", "-a", "--by-vm", "s.vp", cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    out = run.stdout.decode()
    assert "vm-0: tick swapper\nvm-1: tick swapper\n" in out
    # the division by zero at unload: a fault line naming its VM
    assert "vm-1: vprobe error: probe VMXUnload aborted at s.vp:4:" in out
    titles = [line.split("  ")[0] for line in out.splitlines() if line.startswith("aggr: ")]
    assert titles == ["aggr: calls", "aggr: calls@vm-0", "aggr: calls@vm-1"]
    merged, vm0, vm1 = (int(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("aggr: "))
    assert merged == vm0 + vm1 > 0
    assert run.stderr == b""


def test_json_names_the_vm_everywhere_and_a_failed_vm_makes_the_result_incomplete(tmp_path):
    (tmp_path / "s.vp").write_bytes(SCRIPT)
    vms = tmp_path / "vms"
    vms.mkdir()
    (vms / "web01.vmx").write_text('vprobe.enable = "TRUE"\n')
    (vms / "web02.vmx").write_text('vprobe.enable = "FALSE"\n')
    run = vprobe("--fleet", "vms", "--workers", "1", "-d", "2", "-f", "json", "s.vp", cwd=tmp_path)
    assert run.returncode == 1
    objects = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert all("vm" in o for o in objects if o["type"] != "fleet")
    assert {o["vm"] for o in objects if o["type"] in ("log", "error")} == {"web01"}
    assert [o["type"] for o in objects if o["type"] == "error"] == ["error"]
    (table,) = [o for o in objects if o["type"] == "aggr"]
    assert table["vm"] is None and all(e["latest_vm"] == "web01" and e["sum"] == e["count"]
                                       for e in table["entries"])
    summary = objects[-1]
    assert summary["type"] == "fleet" and summary["complete"] is False and summary["ran"] == 1
    assert summary["failed"][0]["vm"] == "web02"
    err = run.stderr.decode()
    assert "vprobe: VM web02 failed: VProbes are not enabled" in err
    assert "incomplete: 1 of 2 VMs failed" in err


HISTOGRAM = b"""aggr nr[1][0];
GUEST:system_call { nr <- hist(RAX); }
"""


def test_merged_histograms_are_drawn_as_histograms_in_text_and_json(tmp_path):
    (tmp_path / "h.emt").write_bytes(HISTOGRAM)
    run = vprobe("--fleet", "2", "--workers", "1", "-d", "1", "-a", "--by-vm", "h.emt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    titles = [line for line in lines if line.startswith("aggr: ")]
    assert [t.split("  ")[:2] for t in titles] == [["aggr: nr", "histogram of RAX, power-of-two buckets"],
                                                    ["aggr: nr@vm-0", "histogram of RAX, power-of-two buckets"],
                                                    ["aggr: nr@vm-1", "histogram of RAX, power-of-two buckets"]]
    merged, vm0, vm1 = (int(t.rsplit(" ", 1)[1]) for t in titles)
    assert merged == vm0 + vm1 > 0
    summary = lines[lines.index(titles[0]) + 1]
    assert summary.startswith(f"nr  count {merged}  mean ") and "  p50 in [" in summary
    assert lines[lines.index(titles[0]) + 2].startswith("  [")  # its buckets, lowest first

    run = vprobe("--fleet", "2", "--workers", "1", "-d", "1", "-f", "json", "h.emt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    objects = [json.loads(line) for line in run.stdout.decode().splitlines()]
    (table,) = [o for o in objects if o["type"] == "aggr"]
    (histogram,) = [o for o in objects if o["type"] == "histogram"]
    assert table["hist"]["kind"] == "pow2" and table["columns"] == [{"header": "RAX", "kind": "bucket"}]
    assert histogram["vm"] is None and histogram["name"] == "nr" and histogram["kind"] == "pow2"
    counts = {e["keys"][0]: e["count"] for e in table["entries"]}
    assert histogram["count"] == sum(counts.values()) > 0
    assert histogram["mean"] == sum(e["sum"] for e in table["entries"]) / histogram["count"]  # exact: from the sums
    assert {b["low"]: b["count"] for b in histogram["buckets"] if b["count"]} == counts
    lows = [b["low"] for b in histogram["buckets"]]
    assert lows == sorted(lows)


def test_usage_errors_come_before_any_cluster(tmp_path):
    (tmp_path / "s.vp").write_bytes(SCRIPT)
    (tmp_path / "typo.vp").write_bytes(b"(vprobe VMX1Hz (printf \"x\" (nosuch)))\n")
    cases = {
        ("--fleet", "2", "s.vp"): "--fleet needs -d SECONDS",
        ("--by-vm", "-d", "1", "s.vp"): "--by-vm needs --fleet",
        ("--fleet", "2", "-d", "1", "-p"): "-p does not go with --fleet",
        ("--fleet", "0", "-d", "1", "s.vp"): "give from 1 to",
        ("--fleet", "none/*.vmx", "-d", "1", "s.vp"): "no such folder, and no file matches it",
        ("--fleet", "2", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1", "-d", "1", "s.vp"): "not both",
        ("--fleet", "2", "-d", "1", "typo.vp"): "typo.vp:1:29: error: call to undefined function 'nosuch'",
    }
    for args, message in cases.items():
        run = vprobe(*args, cwd=tmp_path)
        assert run.returncode == 1 and message in run.stderr.decode(), (args, run.stderr)
        assert b"Traceback" not in run.stderr


def test_an_unreachable_scheduler_is_a_plain_error():
    with pytest.raises(ToolError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with remote_client("tcp://127.0.0.1:9", timeout=0.5):
            pass


def test_progress_shows_vms_done_and_simulated_seconds_on_a_terminal_only():
    shown = TextSink()
    progress = Progress(shown, 2.5, enabled=True)
    progress(1, 4)
    progress(4, 4)
    progress.clear()
    frames = shown.text.split("\r")
    assert frames[1].startswith("vprobe: fleet: 1/4 VMs done, 2.5 of 10 simulated s, ")
    assert frames[2].startswith("vprobe: fleet: 4/4 VMs done, 10 of 10 simulated s, ")
    assert frames[-1] == "\x1b[K"  # the line is cleared at the end
    quiet = TextSink()
    silent = Progress(quiet, 2.5, enabled=False)
    silent(1, 4)
    silent.clear()
    assert quiet.text == ""
