"""The toolchain's performance targets, each measured side by side in one run.

    python benchmarks/bench_targets.py [--seconds N] [--rounds N] [--quick] [--against DIR]

1. What a probe firing costs the whole machine: (the machine's time with the
   probe - its time without) / firings, against a hand-written Python
   function doing the same aggregate update called as many times (target:
   at most 2x), for `(aggr a (VCPUID) () 1)` on a `USEC:100` timer, on
   `Guest_IRQ` and on a `GUEST:` breakpoint, with probe time charged to the
   guest's clocks in each way the machine offers and not charged.  The
   timer probe fires 20,000 times a simulated second on the default machine;
   the other two run on a machine whose guest timer ticks at 10 kHz
   (`sim.timerHz`), so that they fire as often (the breakpoint is the timer
   interrupt's entry, `apic_timer_interrupt`) and the difference stands out
   of the noise; each is set against the same machine with no script.  Each
   point's `hand-written handler` row is the same script attached with its
   probe's handler replaced by the hand-written update (into the script's
   own aggregate): the least any translation of the update could cost there,
   the machine's dispatch and the update's own work in the machine's company
   (where it costs more than in a loop of its own: the caches are shared).
2. Free when disabled: the default machine with a script whose probes never
   fire against the same machine with no script (target: at least 0.97).
3. The machine's speed: simulated seconds per second of the default
   workload with no script (target: at least 50).
4. The compiler's start-up: `emmettc cookbook/hello.emt` against `python
   -c pass` (target: at most 2x; bench_emmettc.py).
5. The compiler's scaling to 8,000 functions (linear; bench_emmettc.py).

Each machine (default or fast tick, with each way of charging) runs in a
process of its own, booted and warmed up once with no script; each round
forks it, and the child attaches the round's script (or none) and is timed,
so that every round runs the same stretch of simulated time (how busy the
guest is varies along a run, so rounds of a machine that went on would not
compare), and a probe and the run without it are measured in one process,
with the same memory layout and string hashes (every worker process has
PYTHONHASHSEED=0, too).  The rounds of all the configurations alternate
(reversed every other round), so that noise hits all alike, and the best
round of each counts.  Figures are given per second of wall time and per
second of the process's own CPU time (on a busy host the steadier measure:
waiting for a core does not count).

`--against DIR` also runs every machine and the compiler's start-up on the
code of DIR, another checkout of the project (e.g. made with `git worktree
add`), in the same alternating rounds, and prints DIR's figures beside this
tree's: a change measured before and after in one run.

Beside the times, each configuration is also run once counting the function
calls the process makes (Python and C functions alike, `sys.setprofile`):
calls per firing (with - without) / firings, and the calls the silent
script adds, figures that do not depend on the host's load at all.

Only figures printed in one run mean anything on a shared machine.  Not a
timed test: nothing here fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_emmettc  # noqa: E402

WARM_UP_S = 2.0  # past the boot, into the steady workload
SETTLE_S = 0.2  # run in each forked round before timing: the pages the fork shares are copied then
FAST_TICK_HZ = 10_000  # the guest timer of the machine the IRQ and breakpoint probes run on
UPDATE = "(aggr a (VCPUID) () 1)"
PROBES = {  # kind -> (probe point, whether it runs on the fast-tick machine)
    "USEC:100 timer": ("USEC:100", False),
    "Guest_IRQ": ("Guest_IRQ", True),
    "GUEST: breakpoint": ("GUEST:apic_timer_interrupt", True),
}
# A probe point so prefixed: the update's script is loaded and attached, but its probe's handler
# is the hand-written update, into the script's own aggregate: the least any translation of the
# update could cost on that point, firing through the machine's own dispatch.
HANDLED = "hand:"
# Probe points that exist but never fire on the default workload: a triple fault, and a
# guest address no code reaches.
SILENT_SCRIPT = """
(definteger n)
(vprobe Guest_TripleFault (setint n (+ n 1)))
(vprobe GUEST:0x1234 (setint n (+ n 1)))
"""


# ---- in a worker process ------------------------------------------------------------------

def charge_values() -> dict[str, object]:
    """The ways this tree's machine can charge probe time (`vprobe.chargeProbeTime`), by name.
    A checkout from before the modelled charge has a flag."""
    from machine import vmx

    if hasattr(vmx, "CHARGE_MODEL"):
        return {"model": vmx.CHARGE_MODEL, "host": vmx.CHARGE_HOST, "none": vmx.CHARGE_OFF}
    return {"host": True, "none": False}


def make_machine(fast_tick: bool, charge: str):
    """A machine booted and warmed up with no script (a round's child attaches one)."""
    from machine import SimulatedMachine
    from machine.vmx import default_config

    config = default_config()
    config = dataclasses.replace(config, charge_probe_time=charge_values()[charge],
                                 timer_hz=FAST_TICK_HZ if fast_tick else config.timer_hz)
    machine = SimulatedMachine(config)
    machine.run(WARM_UP_S)
    return machine


def script_text(point: str) -> str | None:
    """The script of a round: POINT `-` none, `silent` the silent script, else the update on POINT
    (`HANDLED` POINT too: its handler is replaced at attach)."""
    return {"-": None, "silent": SILENT_SCRIPT}.get(
        point, f"(defaggr a 1 0)\n(vprobe {point.removeprefix(HANDLED)} {UPDATE})\n")


def hand_written(machine, table: dict | None = None):
    """What `(aggr a (VCPUID) () 1)` does, written by hand: the bare update, no dispatch; into
    `table` (an aggregate's entries, the translated update's layout) if given."""
    table = {} if table is None else table

    def update() -> None:
        key = machine.current.index
        entry = table.get(key)
        if entry is None:
            table[key] = [1, 1, 1, 1, 1]
        else:
            entry[0] += 1
            entry[1] += 1
            if 1 < entry[2]:
                entry[2] = 1
            elif 1 > entry[3]:
                entry[3] = 1
            entry[4] = 1
    return update


def counted_calls(run) -> int:
    """How many functions (Python and C) `run()` calls, itself included."""
    count = 0

    def profile(frame, event, arg) -> None:
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return count


def worker(tree: str, spec: str) -> None:
    """One machine on `tree`'s code: boot and warm up, then a round per line read.

    `spec` is `machine FAST CHARGE` or `hand`.  A machine round reads `POINT SECONDS` (POINT
    as `script_text` takes it): the forked child attaches that script, runs, and prints wall
    time, CPU time and the probe's firings; a `hand` round reads a number of calls and prints
    the two times.  A round that ends with `calls` prints, instead of the times, how many
    function calls the run made (`counted_calls`), and 0."""
    sys.path.insert(0, tree)
    words = spec.split()
    if words[0] == "hand":
        update = hand_written(make_machine(False, "none"))
    else:
        _, fast, charge = words
        machine = make_machine(fast == "fast", charge)
    print("ready", flush=True)
    for line in sys.stdin:
        # Each round runs in a child forked from the warmed-up machine, so that every round
        # measures the same stretch of simulated time (the workload's load varies along a run).
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
            continue
        args = line.split()
        counting = args[-1:] == ["calls"]
        if words[0] == "hand":
            calls = range(int(args[0]))

            def run() -> None:
                for _ in calls:
                    update()
            for _ in range(len(calls) // 10):  # copy what the fork shares before timing
                update()
            count = len(calls)
        else:
            from vp_runtime import load

            point, seconds = args[:2]
            text, loaded = script_text(point), None
            if text is not None:
                loaded = load(text, machine.load_config, backend=machine)
                if point.startswith(HANDLED):
                    update = hand_written(machine, loaded.aggregates["a"].entries)
                    loaded.entries = [dataclasses.replace(entry, handler=update) for entry in loaded.entries]
                machine.attach(loaded)
            machine.run(SETTLE_S)  # copy what the fork shares before timing
            before = firings(loaded)

            def run() -> None:
                machine.run(float(seconds))
        if counting:
            print(counted_calls(run), 0, 0, flush=True)
        else:
            start, cpu = time.perf_counter(), time.process_time()
            run()
            took, used = time.perf_counter() - start, time.process_time() - cpu
            print(took, used, count if words[0] == "hand" else firings(loaded) - before, flush=True)
        os._exit(0)


def firings(script) -> int:
    if script is None or "a" not in script.aggregates:
        return 0
    return sum(entry[0] for entry in script.aggregates["a"].entries.values())


# ---- the driver ---------------------------------------------------------------------------

@dataclasses.dataclass
class Best:
    wall: float = float("inf")
    cpu: float = float("inf")
    firings: int = 0

    def take(self, wall: float, cpu: float, count: int) -> None:
        self.wall, self.cpu = min(self.wall, wall), min(self.cpu, cpu)
        self.firings = count


class Workers:
    """One process per (machine, tree), each round forking it once per configuration it runs,
    the rounds of all the configurations alternating."""

    def __init__(self):
        self.procs: dict[tuple[str, str], subprocess.Popen] = {}
        self.best: dict[tuple[str, str], Best] = {}  # (configuration, tree label) -> its best round

    def start(self, machine: str, label: str, tree: str) -> None:
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.Popen([sys.executable, __file__, "--worker", tree, machine],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        if proc.stdout.readline().strip() != "ready":
            sys.exit(f"bench_targets: the {label} worker for '{machine}' did not start")
        self.procs[(machine, label)] = proc

    def ask(self, machine: str, label: str, line: str) -> list[str]:
        """What the worker of (`machine`, `label`) answers to one round's `line`."""
        proc = self.procs[(machine, label)]
        proc.stdin.write(f"{line}\n")
        proc.stdin.flush()
        return proc.stdout.readline().split()

    def count_calls(self, configs: list[tuple[str, str, str]], request) -> dict[tuple[str, str], int]:
        """The function calls of one round of each configuration (the same in every round)."""
        return {(spec, label): int(self.ask(machine, label, f"{request(spec)} calls")[0])
                for spec, machine, label in configs}

    def rounds(self, rounds: int, configs: list[tuple[str, str, str]], request) -> None:
        """Each configuration (spec, machine, tree label) once a round; `request(spec)` is the
        line its machine's worker gets for it."""
        for spec, _, label in configs:
            self.best[(spec, label)] = Best()
        for round_ in range(rounds):
            for spec, machine, label in configs if round_ % 2 == 0 else reversed(configs):
                wall, cpu, count = self.ask(machine, label, request(spec))
                self.best[(spec, label)].take(float(wall), float(cpu), int(count))

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stdin.close()
            proc.wait()


HAND_HANDLER = "hand-written handler"  # the row of a point fired with the `HANDLED` handler


def machine_specs(charges: list[str]) -> dict[str, str]:
    """Every configuration reported, by a short name: `machine FAST CHARGE POINT`."""
    specs = {"default, no script": "machine default none -", "silent script": "machine default none silent",
             "fast tick, no script": "machine fast none -"}
    for kind, (point, fast) in PROBES.items():
        for charge in charges:
            specs[f"{kind} ({charge})"] = f"machine {'fast' if fast else 'default'} {charge} {point}"
        specs[f"{kind}, {HAND_HANDLER}"] = f"machine {'fast' if fast else 'default'} none {HANDLED}{point}"
    return specs


def base_spec(spec: str) -> str:
    """The configuration that runs without `spec`'s probe, on the same machine (the same worker)."""
    return " ".join(spec.split()[:3] + ["-"])


def tree_charges(tree: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {tree!r}); "
                          f"sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                          "import bench_targets; print(*bench_targets.charge_values())"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def machines(opts, trees: dict[str, str]) -> None:
    charges = {label: tree_charges(tree) for label, tree in trees.items()}
    all_charges = [c for c in ("model", "host", "none") if any(c in cs for cs in charges.values())]
    specs = machine_specs(all_charges)
    workers = Workers()
    configs = []  # (spec, machine, tree label): each probe's and its run without it
    for label, tree in trees.items():
        wanted = [spec for spec in specs.values() if spec.split()[2] in charges[label]]
        for spec in dict.fromkeys(s for spec in wanted for s in (spec, base_spec(spec))):
            machine = " ".join(spec.split()[:3])
            if (machine, label) not in workers.procs:
                workers.start(machine, label, tree)
            configs.append((spec, machine, label))
        workers.start("hand", label, tree)
        configs.append(("hand", "hand", label))
    calls = 10_000 * int(opts.seconds * 2)  # about as many as the timer probe fires in a round
    def request(spec: str) -> str:
        return str(calls) if spec == "hand" else f"{spec.split()[3]} {opts.seconds}"
    try:
        counted = workers.count_calls(configs, request)
        workers.rounds(opts.rounds, configs, request)
    finally:
        workers.close()
    best = workers.best
    labels = list(trees)
    beside = f"; beside {trees['DIR']} (DIR)" if "DIR" in trees else ""
    print(f"Machines: {opts.seconds:g} simulated s a round after {WARM_UP_S:g} s of warm-up, best of "
          f"{opts.rounds} alternating rounds, each forked from its machine's process{beside}")

    def per_s(spec: str, label: str, kind: str) -> float:
        return opts.seconds / getattr(best[(spec, label)], kind)

    print("1. Cost of a firing to the whole machine, (with - without) / firings, against the hand-written update "
          "(target: ratio at most 2); calls: function calls per firing, counted; a hand-written handler: the "
          "update's probe fired with the hand-written update as its handler, the floor of any translation")
    header = f"   {'probe (charge)':39s} {'firings':>8s}"
    for label in labels:
        tag = "" if label == "this tree" else " DIR"
        header += f" {'wall ns' + tag:>11s} {'ratio':>6s} {'CPU ns' + tag:>11s} {'ratio':>6s} {'calls' + tag:>9s}"
    print(header)
    hand = {label: (best[("hand", label)].wall / calls, best[("hand", label)].cpu / calls) for label in labels}
    row = f"   {'hand-written update':39s} {calls:8d}"
    for label in labels:
        row += (f" {hand[label][0] * 1e9:11.0f} {1:6.2f} {hand[label][1] * 1e9:11.0f} {1:6.2f}"
                f" {counted[('hand', label)] / calls:9.2f}")
    print(row)
    for kind in PROBES:
        for name in [f"{kind} ({charge})" for charge in all_charges] + [f"{kind}, {HAND_HANDLER}"]:
            spec = specs[name]
            base = base_spec(spec)
            have = [label for label in labels if (spec, label) in best]
            row = f"   {name:39s} {best[(spec, have[0])].firings:8d}"
            for label in labels:
                if label not in have:
                    row += f" {'-':>11s} {'':6s} {'-':>11s} {'':6s} {'-':>9s}"
                    continue
                count = best[(spec, label)].firings
                for i, kind_ in enumerate(("wall", "cpu")):
                    cost = (getattr(best[(spec, label)], kind_) - getattr(best[(base, label)], kind_)) / count
                    row += f" {cost * 1e9:11.0f} {cost / hand[label][i]:6.2f}"
                row += f" {(counted[(spec, label)] - counted[(base, label)]) / count:9.2f}"
            print(row)
    silent, none = specs["silent script"], specs["default, no script"]
    for label in labels:
        tag = "" if label == "this tree" else " (DIR)"
        ratios = [per_s(silent, label, k) / per_s(none, label, k) for k in ("wall", "cpu")]
        added = counted[(silent, label)] - counted[(none, label)]
        print(f"2. Free when disabled{tag}: a script that never fires against no script: "
              f"wall {ratios[0]:.3f}, CPU {ratios[1]:.3f}   (target: at least 0.97); it adds {added:,} function "
              f"calls to {counted[(none, label)]:,} ({added / counted[(none, label)]:.2%})")
    for label in labels:
        tag = "" if label == "this tree" else " (DIR)"
        print(f"3. Machine speed{tag}, default workload, no script: {per_s(none, label, 'wall'):6.1f} simulated s "
              f"per wall s, {per_s(none, label, 'cpu'):6.1f} per CPU s   (target: at least 50)")


def compiler(opts, trees: dict[str, str]) -> None:
    against = Path(trees["DIR"]) if "DIR" in trees else None
    bench_emmettc.startup(5 if opts.quick else 20, against, number="4")
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as tmp:
        bench_emmettc.scaling(1, Path(tmp), number="5")


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated seconds per round (default 2)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per machine (default 7)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer, shorter rounds")
    parser.add_argument("--against", metavar="DIR", help="another checkout to measure beside this tree")
    parser.add_argument("--no-compiler", action="store_true", help="measure the machines only")
    opts = parser.parse_args()
    if opts.quick:
        opts.seconds, opts.rounds = 0.5, 2
    trees = {"this tree": str(REPO)}
    if opts.against:
        trees["DIR"] = str(Path(opts.against).resolve())
        if not (Path(trees["DIR"]) / "machine" / "simulated.py").is_file():
            sys.exit(f"bench_targets: {opts.against} is not a checkout of this project (no machine/simulated.py)")
    print(f"Python {sys.version.split()[0]}")
    machines(opts, trees)
    if not opts.no_compiler:
        compiler(opts, trees)


if __name__ == "__main__":
    main()
