"""Fleets on Dask: a LocalCluster in this process, and real `dask scheduler` / `dask worker`
processes started here (and always stopped).  Few VMs, short runs: the suite stays fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vprobe_tools.fleet import render
from vprobe_tools.fleet.members import from_files, seeded
from vprobe_tools.fleet.runner import local_client, remote_client, run_fleet
from vprobe_tools.fleet.worker import Program
from vprobe_tools.scripts.sources import SourceFile

BIN = Path(sys.executable).parent
DURATION = 2.5

# calls: logged and cleared every second (the fleet's table still counts the whole run);
# pf: a value whose sum the log cannot give exactly; ticks: updated at the same guest
# instant on every VM, so its latest is the last VM's; one printed line per VM and second.
SCRIPT = b"""(defaggr calls 0 1)
(defaggr pf 0 1)
(defaggr ticks 0 0)
(vprobe GUEST:system_call (aggr calls () ((curprocname)) 1))
(vprobe Guest_PF (aggr pf () ((curprocname)) (& CR2 4095)))
(vprobe VMX1Hz (aggr ticks () () (curpid)) (logaggr calls) (clearaggr calls)
  (printf "tick %s\\n" (curprocname)))
(vprobe VMXUnload (logaggr calls) (logaggr pf) (logaggr ticks))
"""


def program() -> Program:
    return Program((SourceFile("fleet.vp", SCRIPT),))


def vmx(path: Path, seed: int, extra: str = "") -> str:
    path.write_text(f'vprobe.enable = "TRUE"\nsim.seed = "{seed}"\n{extra}')
    return str(path)


def output(result) -> bytes:
    return "".join(render.json_lines(result)).encode()


@pytest.fixture(scope="module")
def reference():
    """One fleet of 3 VMs on one worker: what every other way of running it must give."""
    with local_client(1, processes=False) as client:
        return run_fleet(client, seeded(3, None), program(), DURATION, by_vm=True)


def test_one_two_and_four_workers_give_the_same_bytes(reference):
    expected = output(reference)
    for workers in (2, 4):
        with local_client(workers, processes=False) as client:
            result = run_fleet(client, seeded(3, None), program(), DURATION, by_vm=True)
        assert output(result) == expected, f"{workers} workers"
    assert not reference.incomplete
    assert [vm.name for vm in reference.vms] == ["vm-0", "vm-1", "vm-2"]
    names = [json.loads(line)["type"] for line in expected.decode().splitlines()]
    assert names.count("aggr") == 3 * 4 and names[-1] == "fleet"


def _separate_run(tmp_path: Path, seed: int) -> list[dict]:
    """`vprobe -f json -d DURATION` on one VM with sim.seed = seed."""
    path = vmx(tmp_path / f"vm{seed}.vmx", seed)
    script = tmp_path / "fleet.vp"
    script.write_bytes(SCRIPT)
    run = subprocess.run([str(BIN / "vprobe"), "-f", "json", "-d", str(DURATION), path, str(script)],
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    return [json.loads(line) for line in run.stdout.decode().splitlines()]


def test_the_merge_equals_separate_vprobe_runs_merged_by_hand(reference, tmp_path):
    runs = [_separate_run(tmp_path, seed) for seed in range(3)]
    merged = {e.keys: e for e in reference.aggregates[0].entries}  # calls
    by_hand: dict = {}
    for objects in runs:
        for block in (o for o in objects if o["type"] == "aggr" and o["name"] == "calls"):
            for e in block["entries"]:  # each second's block was cleared after it: they add up
                have = by_hand.setdefault(tuple(e["keys"]), [0, 0])
                have[0] += e["count"]
                have[1] += e["avg"] * e["count"]  # every value is 1: the sum is exact
    assert by_hand and {k: [e.count, e.sum] for k, e in merged.items()} == by_hand

    pf = {e.keys: e for e in reference.aggregates[1].entries}
    finals = [[e for o in objects if o["type"] == "aggr" and o["name"] == "pf" for e in o["entries"]]
              for objects in runs]
    keys = {tuple(e["keys"]) for entries in finals for e in entries}
    assert keys and set(pf) == keys
    for key in keys:
        parts = [e for entries in finals for e in entries if tuple(e["keys"]) == key]
        got = pf[key]
        assert got.count == sum(p["count"] for p in parts)
        assert (got.min, got.max) == (min(p["min"] for p in parts), max(p["max"] for p in parts))
        # the printed averages are rounded down: the exact sum lies within what they allow
        assert sum(p["avg"] * p["count"] for p in parts) <= got.sum < sum((p["avg"] + 1) * p["count"] for p in parts)

    ticks = reference.aggregates[2].entries[0]
    last = [e for o in runs[-1] if o["type"] == "aggr" and o["name"] == "ticks" for e in o["entries"]][-1]
    assert (ticks.latest, ticks.latest_vm) == (last["latest"], "vm-2")  # a tie in guest time: the last VM
    assert ticks.count == sum(e["count"] for objects in runs for o in objects
                              if o["type"] == "aggr" and o["name"] == "ticks" for e in o["entries"])

    printed = sorted(o["data"] for objects in runs for o in objects if o["type"] == "log")
    assert sorted(line.text for line in reference.lines) == printed


def test_a_vm_that_fails_is_named_and_the_rest_comes_back(tmp_path):
    vmx(tmp_path / "a.vmx", 0)
    vmx(tmp_path / "b.vmx", 1)
    (tmp_path / "c.vmx").write_text('vprobe.enable = "FALSE"\n')
    (tmp_path / "d.vmx").write_text('vprobe.enable = "TRUE"\nnumvcpus = "many"\n')
    members = from_files(str(tmp_path))
    with local_client(2, processes=False) as client:
        result = run_fleet(client, members, program(), DURATION)
    assert result.incomplete
    failed = {vm.name: vm.error for vm in result.failed}
    assert set(failed) == {"c", "d"}
    assert "vprobe.enable" in failed["c"] and "numvcpus" in failed["d"]
    summary = json.loads(output(result).decode().splitlines()[-1])
    assert summary["complete"] is False and [f["vm"] for f in summary["failed"]] == ["c", "d"]
    # what did run is what those two VMs give alone
    with local_client(1, processes=False) as client:
        alone = run_fleet(client, members[:2], program(), DURATION)
    assert result.aggregates == alone.aggregates and result.aggregates[0].entries
    assert result.lines == alone.lines


def test_lines_beyond_the_bound_are_counted_not_sent(reference):
    with local_client(2, processes=False) as client:
        result = run_fleet(client, seeded(3, None), program(), DURATION, max_lines=2)
    assert [line.text for line in result.lines] == [line.text for line in reference.lines[:2]]
    assert result.dropped_lines == len(reference.lines) - 2
    assert sum(vm.lines for vm in result.vms) == len(reference.lines)


# ---- real scheduler and worker processes ------------------------------------------------------

class DaskProcesses:
    """A `dask scheduler` and `dask worker`s on localhost, started and stopped by the test."""

    def __init__(self, tmp_path: Path, workers: int, env: dict):
        self.tmp = tmp_path
        self.env = {**os.environ, **env}
        self.file = tmp_path / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.start(["scheduler", "--scheduler-file", str(self.file), "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", "127.0.0.1:0"])
        deadline = time.monotonic() + 60
        while not self.file.exists() or not self.file.read_text().strip():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        for _ in range(workers):
            self.start(["worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-nanny",
                        "--no-dashboard", "--host", "127.0.0.1"])

    def start(self, args: list[str]) -> None:
        log = open(self.tmp / f"dask-{len(self.procs)}.log", "wb")
        self.procs.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=subprocess.STDOUT,
                                           env=self.env, start_new_session=True))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def dask_processes(tmp_path):
    started = []

    def start(workers: int, **env) -> DaskProcesses:
        procs = DaskProcesses(tmp_path, workers, env)
        started.append(procs)
        return procs
    yield start
    for procs in started:
        procs.stop()


def test_real_scheduler_and_worker_processes_and_a_worker_that_dies(dask_processes, reference):
    # No second chance for a task whose worker dies, so that the loss shows in the result.
    procs = dask_processes(2, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    killed = []
    members = seeded(6, None)
    with remote_client(procs.address) as client:
        client.wait_for_workers(2, timeout=60)
        # the same bytes as on the LocalCluster
        assert output(run_fleet(client, seeded(3, None), program(), DURATION, by_vm=True)) == output(reference)
        pids = client.run(os.getpid)

        def progress(done: int, total: int) -> None:
            if killed:
                return
            for addr, keys in client.processing().items():
                if any(str(k).startswith("fleet-vms-") for k in keys):
                    os.kill(pids[addr], signal.SIGKILL)
                    killed.append(addr)
                    return
        result = run_fleet(client, members, program(), DURATION, progress=progress)
    assert killed, "no worker was running a VM when the first VM finished"
    assert [w.address for w in result.lost_workers] == killed
    failed = {vm.name for vm in result.failed}
    assert failed and set(result.lost_workers[0].running) <= failed and len(failed) < len(members)
    assert all("died" in vm.error for vm in result.failed)
    # the VMs that ran give what they give alone
    ran = [m for m in members if m.name not in failed]
    with local_client(1, processes=False) as client:
        alone = run_fleet(client, ran, program(), DURATION)
    assert result.aggregates == alone.aggregates
    assert result.lines == alone.lines


def test_a_cluster_that_loses_every_worker_ends_the_run_with_every_vm_named(dask_processes):
    import threading

    procs = dask_processes(1)  # Dask's default: a task whose worker died may run again elsewhere
    members = seeded(4, None)
    killed, outcome = [], {}
    with remote_client(procs.address) as client:
        client.wait_for_workers(1, timeout=60)
        pids = client.run(os.getpid)

        def progress(done: int, total: int) -> None:
            if not killed:  # the first VM is back: the only worker goes, with all it holds (the script too)
                addr, pid = next(iter(pids.items()))
                os.kill(pid, signal.SIGKILL)
                killed.append(addr)

        def run() -> None:
            outcome["result"] = run_fleet(client, members, program(), DURATION, progress=progress)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive(), "the run waited for a worker that will never come"
    assert "result" in outcome, "the run raised instead of reporting the VMs"
    result = outcome["result"]
    assert killed and [w.address for w in result.lost_workers] == killed
    assert {vm.name for vm in result.failed} == {m.name for m in members}
    assert all("died" in vm.error for vm in result.failed), [vm.error for vm in result.failed]
