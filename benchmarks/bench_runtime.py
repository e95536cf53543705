"""Benchmark of the VP runtime: firing cost and load time, measured side by side.

    python benchmarks/bench_runtime.py [--quick]

1. The firing cost of `(vprobe Guest_IRQ (aggr irqs (ARG0) () 1))`, against a
   hand-written Python function doing the same aggregate update.  Both run
   (a) called directly and (b) through the machine's interrupt dispatch, in
   alternating rounds so that machine noise hits both alike; the figure is the
   ratio of the best rounds (target: at most 2x).
2. The load time (read, check, translate, compile) of a script whose
   translated code just fits the 64 KiB translation cache.

Only ratios and figures printed in one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import SimulatedMachine  # noqa: E402
from vp_runtime import LoadConfig, VPLoadError, load  # noqa: E402
from vp_runtime.limits import MAX_CODE_BYTES_LIMIT  # noqa: E402

IRQ_SCRIPT = "(defaggr irqs 1 0)\n(vprobe Guest_IRQ (aggr irqs (ARG0) () 1))\n"


def best_of(rounds: int, *timed):
    """Run each callable once per round, interleaved; return the best time of each."""
    best = [float("inf")] * len(timed)
    for _ in range(rounds):
        for i, fn in enumerate(timed):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def firing_cost(calls: int, rounds: int) -> None:
    machine = SimulatedMachine()
    script = load(IRQ_SCRIPT, machine.load_config, backend=machine)
    machine.attach(script)
    probes = machine.probes
    generated = script.handler("Guest_IRQ")
    table = script.aggregates["irqs"].entries
    args = machine.args

    def handwritten() -> None:
        key = args[0]
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

    vcpu = machine.vcpus[0]
    fire = probes.fire_static

    def dispatch() -> None:
        fire(vcpu, "Guest_IRQ", 0xEF)

    loop = range(calls)

    def run_direct(fn):
        def run():
            for _ in loop:
                fn()
        return run

    def run_dispatch(fn):
        def run():
            probes.static["Guest_IRQ"] = probes.firing(fn)
            for _ in loop:
                dispatch()
        return run

    t_gen, t_hand, t_gen_d, t_hand_d = best_of(
        rounds, run_direct(generated), run_direct(handwritten), run_dispatch(generated), run_dispatch(handwritten))
    probes.static["Guest_IRQ"] = probes.firing(generated)
    ns = 1e9 / calls
    print("1. firing cost of (vprobe Guest_IRQ (aggr irqs (ARG0) () 1))")
    print(f"   called directly:          translated {t_gen * ns:7.1f} ns   hand-written {t_hand * ns:7.1f} ns"
          f"   ratio {t_gen / t_hand:.2f}x")
    print(f"   through machine dispatch: translated {t_gen_d * ns:7.1f} ns   hand-written {t_hand_d * ns:7.1f} ns"
          f"   ratio {t_gen_d / t_hand_d:.2f}x   (target <= 2x)")


def script_of_size(n_functions: int) -> str:
    """Functions with conds, arithmetic and a string, called from a few probes."""
    parts = ["(definteger acc 0)", "(defstring msg)", "(defaggr hits 1 1)"]
    for i in range(n_functions):
        parts.append(
            f"(defun fn{i} (a b)\n"
            f"  (cond ((> a b) (setint acc (+ acc (* a {i + 1}))))\n"
            f"        ((== a 0) (sprintf msg \"fn{i} %d\" b))\n"
            f"        (1 (- b a))))"
        )
    for p in range(4):
        calls = " ".join(f"(fn{i} VCPUID {p})" for i in range(p, n_functions, 97))
        parts.append(f"(vprobe USEC:{1000 + p} {calls} (aggr hits (VCPUID) (msg) 1))")
    return "\n".join(parts) + "\n"


def fitting_script() -> tuple[str, int]:
    """The largest script_of_size whose translation fits 64 KiB (bisection on the function count)."""
    config = LoadConfig(max_code_bytes=MAX_CODE_BYTES_LIMIT)
    low, high = 1, 2000
    best = None
    while low <= high:
        mid = (low + high) // 2
        text = script_of_size(mid)
        try:
            script = load(text, config)
        except VPLoadError:
            high = mid - 1
            continue
        best = (text, script.code_bytes)
        low = mid + 1
    assert best is not None
    return best


def load_time(rounds: int) -> None:
    text, size = fitting_script()
    config = LoadConfig(max_code_bytes=MAX_CODE_BYTES_LIMIT)
    (t_load,) = best_of(rounds, lambda: load(text, config))
    hello = '(vprobe VMM1Hz (printf "hello!\\n"))'
    (t_hello,) = best_of(rounds, lambda: load(hello))
    print("2. load time (read, check, translate, compile)")
    print(f"   script at the 64 KiB limit: {len(text)} bytes of VP, {size} bytes translated: {t_load * 1e3:.1f} ms")
    print(f"   hello.vp for comparison:    {t_hello * 1e3:.2f} ms   (ratio {t_load / t_hello:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds (a smoke run)")
    opts = parser.parse_args()
    calls, rounds = (20_000, 3) if opts.quick else (200_000, 7)
    print(f"Python {sys.version.split()[0]}; {calls} firings per round, best of {rounds} rounds")
    firing_cost(calls, rounds)
    load_time(3 if opts.quick else 5)


if __name__ == "__main__":
    main()
