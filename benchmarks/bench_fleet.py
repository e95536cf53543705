"""Benchmark of a fleet on Dask: 1,000 VMs x 1 simulated second, on 1 and on 2 workers, in one run.

    python benchmarks/bench_fleet.py [--vms N] [--seconds S] [--rounds R]

Each configuration starts its own LocalCluster (one single-threaded worker
process per worker) and warms it up with a small fleet (neither is timed), then runs the same fleet: every VM powers on,
boots for S simulated seconds with a script counting system calls by process
and page faults by address, and the merged result comes back.  It prints the
wall time of each, VMs per second and the speed-up from 1 to 2 workers.
Rounds alternate 1, 2, 2, 1 ... so that machine noise hits both alike; the
best round of each counts.  The two results must be the same bytes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vprobe_tools.fleet import render  # noqa: E402
from vprobe_tools.fleet.members import seeded  # noqa: E402
from vprobe_tools.fleet.runner import local_client, run_fleet  # noqa: E402
from vprobe_tools.fleet.worker import Program  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds per VM (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each configuration (default 2)")
    opts = parser.parse_args()
    print(f"{opts.vms} VMs x {opts.seconds:g} simulated s, {os.cpu_count()} cores; best of {opts.rounds} rounds")
    best = {1: float("inf"), 2: float("inf")}
    outputs = {}
    for r in range(opts.rounds):
        for workers in ((1, 2) if r % 2 == 0 else (2, 1)):
            wall, out = one_run(workers, opts.vms, opts.seconds)
            outputs.setdefault(workers, out)
            if out != outputs[1 if 1 in outputs else workers]:
                raise SystemExit("the merged results differ between runs")
            best[workers] = min(best[workers], wall)
            print(f"  round {r + 1}, {workers} worker{'s' if workers > 1 else ''}: {wall:7.2f} s")
    for workers, wall in best.items():
        print(f"{workers} worker{'s' if workers > 1 else ' '}: {wall:7.2f} s wall, {opts.vms / wall:7.1f} VMs/s")
    print(f"speed-up from 1 to 2 workers: {best[1] / best[2]:.2f}x")
    print(f"merged result: {len(outputs[1])} bytes, the same on 1 and 2 workers")


if __name__ == "__main__":
    main()
