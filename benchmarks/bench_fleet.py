"""Benchmark of a fleet on Dask: 1,000 VMs x 1 simulated second, on 1 and on 2 workers, in one run.

    python benchmarks/bench_fleet.py [--vms N] [--seconds S] [--rounds R]

Each configuration starts its own LocalCluster (one single-threaded worker
process per worker) and warms it up with a small fleet (neither is timed), then runs the same fleet: every VM powers on,
boots for S simulated seconds with a script counting system calls by process
and page faults by address, and the merged result comes back.  It prints the
wall time of each, VMs per second and the speed-up from 1 to 2 workers.
For scale it also runs the same VMs without Dask, in 1 and in 2 plain
processes (each its share of the VMs, nothing merged): the speed-up this
host gives two processes at the time.  Rounds alternate 1, 2, 2, 1 ... so
that machine noise hits all alike; the best round of each counts.  The two
merged results must be the same bytes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vprobe_tools.fleet import render  # noqa: E402
from vprobe_tools.fleet.members import seeded  # noqa: E402
from vprobe_tools.fleet.runner import local_client, run_fleet  # noqa: E402
from vprobe_tools.fleet.worker import Program, run_members  # noqa: E402
from vprobe_tools.scripts.sources import SourceFile  # noqa: E402

SCRIPT = b"""(defaggr calls 0 1)
(defaggr faults 1 0)
(vprobe GUEST:system_call (aggr calls () ((curprocname)) 1))
(vprobe Guest_PF (aggr faults ((& CR2 0xfffffffffffff000)) () 1))
(vprobe VMX1Hz (printf "up %d\\n" (curpid)))
"""


def one_run(workers: int, vms: int, seconds: float) -> tuple[float, bytes]:
    program = Program((SourceFile("bench.vp", SCRIPT),))
    with local_client(workers) as client:
        client.wait_for_workers(workers)
        run_fleet(client, seeded(2 * workers, None), program, 0.1)  # warm up: every worker imports the machine
        start = time.perf_counter()
        result = run_fleet(client, seeded(vms, None), program, seconds)
        wall = time.perf_counter() - start
    if result.incomplete:
        raise SystemExit(f"the fleet did not complete: {result.failed[:3]}")
    return wall, "".join(render.json_lines(result)).encode()


def _run_share(args: tuple[int, int, int, float]) -> None:
    share, processes, vms, seconds = args
    members = seeded(vms, None)[share::processes]
    run_members(members, Program((SourceFile("bench.vp", SCRIPT),)), seconds, 10_000, False)


def bare_run(processes: int, vms: int, seconds: float) -> float:
    """The same VMs in `processes` plain processes, no Dask (the pool's start-up not timed)."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_run_share, [(i, processes, 2 * processes, 0.1) for i in range(processes)])  # warm up
        start = time.perf_counter()
        pool.map(_run_share, [(i, processes, vms, seconds) for i in range(processes)])
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds per VM (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each configuration (default 2)")
    opts = parser.parse_args()
    print(f"{opts.vms} VMs x {opts.seconds:g} simulated s, {os.cpu_count()} cores; best of {opts.rounds} rounds")
    configs = [("dask", 1), ("dask", 2), ("bare", 1), ("bare", 2)]
    best = dict.fromkeys(configs, float("inf"))
    outputs = []
    for r in range(opts.rounds):
        for kind, n in (configs if r % 2 == 0 else configs[::-1]):
            if kind == "dask":
                wall, out = one_run(n, opts.vms, opts.seconds)
                outputs.append(out)
                if out != outputs[0]:
                    raise SystemExit("the merged results differ between runs")
            else:
                wall = bare_run(n, opts.vms, opts.seconds)
            best[kind, n] = min(best[kind, n], wall)
            what = f"{n} Dask worker{'s' if n > 1 else ''}" if kind == "dask" else f"{n} plain process{'es' if n > 1 else ''}"
            print(f"  round {r + 1}, {what}: {wall:7.2f} s")
    for n in (1, 2):
        wall = best["dask", n]
        print(f"{n} worker{'s' if n > 1 else ' '}: {wall:7.2f} s wall, {opts.vms / wall:7.1f} VMs/s")
    print(f"speed-up from 1 to 2 workers: {best['dask', 1] / best['dask', 2]:.2f}x "
          f"(plain processes, no Dask: {best['bare', 1] / best['bare', 2]:.2f}x; "
          f"Dask on 1 worker costs {best['dask', 1] / best['bare', 1]:.2f}x a plain process)")
    print(f"merged result: {len(outputs[0])} bytes, the same on 1 and 2 workers in every round")


if __name__ == "__main__":
    main()
