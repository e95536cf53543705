"""Benchmark of the simulated machine, measured side by side in one run.

    python benchmarks/bench_machine.py [--seconds N] [--rounds N] [--against DIR]

1. Simulated seconds per wall-clock second of the default workload with no
   script attached.
2. The same with a script attached whose probes never fire ("free when
   disabled": target at least 0.97 of the figure above).
3. Probe firings per wall-clock second with a probe on every Guest_IRQ.

Each configuration boots its own machine and is measured in alternating
rounds, so machine noise hits all alike; the best round of each counts.

`--against DIR` measures a change instead: DIR is another checkout of the
project (e.g. `git worktree add /tmp/before main`).  Each configuration then
runs on this tree and on DIR's, each machine in a process of its own, the
rounds of all six alternating (and reversed every other round), and the
benchmark prints each rate beside DIR's with their ratio, per wall-clock
second and per second of the process's own CPU time (on a busy host the
CPU time is the steadier measure: waiting for a core does not count).
Not a timed test: nothing here fails.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Probe points that exist but never fire on the default workload: a triple
# fault, and a guest address no code reaches.
SILENT_SCRIPT = """
(definteger n)
(vprobe Guest_TripleFault (setint n (+ n 1)))
(vprobe GUEST:0x1234 (setint n (+ n 1)))
"""
IRQ_SCRIPT = "(defaggr irqs 1 0)\n(vprobe Guest_IRQ (aggr irqs (ARG0) () 1))\n"
CONFIGURATIONS = {"no script": None, "silent script": SILENT_SCRIPT, "Guest_IRQ probe": IRQ_SCRIPT}
WARM_UP_S = 2.0  # past the boot, into the steady workload


def make_machine(script: str | None):
    from machine import SimulatedMachine
    from vp_runtime import load

    machine = SimulatedMachine()
    loaded = None
    if script is not None:
        loaded = load(script, machine.load_config, backend=machine)
        machine.attach(loaded)
    machine.run(WARM_UP_S)
    return machine, loaded


def in_process(opts) -> None:
    machines = {name: make_machine(script) for name, script in CONFIGURATIONS.items()}
    best = dict.fromkeys(machines, float("inf"))
    for _ in range(opts.rounds):
        for name, (machine, _) in machines.items():
            start = time.perf_counter()
            machine.run(opts.seconds)
            best[name] = min(best[name], time.perf_counter() - start)
    rate = {name: opts.seconds / t for name, t in best.items()}
    irq_machine, irq_script = machines["Guest_IRQ probe"]
    irqs = sum(entry[0] for entry in irq_script.aggregates["irqs"].entries.values())
    simulated = WARM_UP_S + opts.rounds * opts.seconds
    print(f"default workload, {opts.seconds:g} simulated s per round, best of {opts.rounds} rounds")
    print(f"1. no script:                 {rate['no script']:7.1f} simulated s per wall s")
    print(f"2. script that never fires:   {rate['silent script']:7.1f} simulated s per wall s"
          f"   ratio to 1: {rate['silent script'] / rate['no script']:.3f}   (target >= 0.97)")
    print(f"3. probe on every Guest_IRQ:  {rate['Guest_IRQ probe']:7.1f} simulated s per wall s"
          f"   {irqs / simulated:.0f} IRQs per simulated s"
          f" = {irqs / simulated * rate['Guest_IRQ probe']:.0f} probe firings per wall s")


def worker(tree: str, name: str) -> None:
    """One machine of `tree`'s code: boot, warm up, then run a round per line read (prints its time)."""
    sys.path.insert(0, tree)
    machine, _ = make_machine(CONFIGURATIONS[name])
    print("ready", flush=True)
    for line in sys.stdin:
        start, cpu = time.perf_counter(), time.process_time()
        machine.run(float(line))
        print(time.perf_counter() - start, time.process_time() - cpu, flush=True)


def against(opts) -> None:
    trees = {"this tree": str(REPO), "DIR": str(Path(opts.against).resolve())}
    if not (Path(trees["DIR"]) / "machine" / "simulated.py").is_file():
        sys.exit(f"bench_machine: {opts.against} is not a checkout of this project (no machine/simulated.py)")
    workers = {}
    for name in CONFIGURATIONS:
        for label, tree in trees.items():
            proc = subprocess.Popen([sys.executable, __file__, "--worker", tree, name],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            if proc.stdout.readline().strip() != "ready":
                sys.exit(f"bench_machine: the {label} machine for '{name}' did not start")
            workers[(name, label)] = proc
    wall = dict.fromkeys(workers, float("inf"))
    cpu = dict.fromkeys(workers, float("inf"))
    order = list(workers)
    for round_ in range(opts.rounds):
        for key in order if round_ % 2 == 0 else reversed(order):
            proc = workers[key]
            proc.stdin.write(f"{opts.seconds}\n")
            proc.stdin.flush()
            took, used = map(float, proc.stdout.readline().split())
            wall[key], cpu[key] = min(wall[key], took), min(cpu[key], used)
    for proc in workers.values():
        proc.stdin.close()
        proc.wait()
    print(f"default workload, {opts.seconds:g} simulated s per round, best of {opts.rounds} rounds, "
          f"alternating; DIR = {trees['DIR']}")
    print(f"{'simulated s per':18s} {'wall s: this tree':>18s} {'DIR':>6s} {'ratio':>6s}"
          f" {'CPU s: this tree':>18s} {'DIR':>6s} {'ratio':>6s}")
    for name in CONFIGURATIONS:
        row = f"{name + ':':18s}"
        for best in (wall, cpu):
            here, there = opts.seconds / best[(name, "this tree")], opts.seconds / best[(name, "DIR")]
            row += f" {here:18.1f} {there:6.1f} {here / there:6.3f}"
        print(row)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per round (default 5)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="DIR", help="another checkout to measure this tree against")
    opts = parser.parse_args()
    if opts.against:
        against(opts)
    else:
        sys.path.insert(0, str(REPO))
        in_process(opts)


if __name__ == "__main__":
    main()
