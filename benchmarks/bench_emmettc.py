"""Benchmark of the Emmett compiler, measured side by side in one run.

    python benchmarks/bench_emmettc.py [--quick] [--against DIR]

1. `emmettc` on generated programs of 1,000, 4,000 and 8,000 small functions
   (each with if/else, arithmetic, a local and a call, reached from a few
   probes), and the 8,000/1,000 ratio.  Targets: linear growth (ratio at most
   10) and under 4 s at 8,000 functions.
2. The whole-process time of `emmettc cookbook/hello.emt` against
   `python -c pass`, best of several, interleaved.  Target: at most 2x.
   When Python may not write bytecode (PYTHONDONTWRITEBYTECODE, as in some
   sandboxes) every run compiles the compiler's own modules from source; the
   benchmark then also measures with bytecode cached in a temporary
   PYTHONPYCACHEPREFIX (outside the source tree), which is how an installed
   emmettc normally runs.  Each figure is the best wall time and the best
   CPU time (user + system of the process: on a busy host the steadier
   measure, as waiting for a core does not count) of the rounds.  The
   same rounds time `python -c "import click"`, printed as the floor: the
   part of any click command's start-up that is click's import alone.
3. One flat expression (`x = RAX + RAX + ...`) of 1,000 and 10,000 terms,
   compiled in this process, and the 10,000/1,000 ratio.  Target: linear
   growth (ratio at most 15; linear is 10), 10,000 terms well under a second.

`--against DIR` also runs, in the same interleaved rounds, the emmettc of
DIR, another checkout of the project (e.g. `git worktree add /tmp/before
main`; its `emmett` package is put first on PYTHONPATH), and prints its
start-up beside this tree's: a change measured before and after in one run.

Only figures printed in one run mean anything on a shared machine.  Not a
timed test: nothing here fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELLO = REPO / "cookbook" / "hello.emt"


def emmettc_command() -> list[str]:
    script = Path(sys.executable).parent / "emmettc"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "emmett.cli"]


def program(functions: int) -> str:
    """`functions` small functions; every tenth starts a chain of calls; four probes reach them."""
    out = ["int total;", "aggr calls[1][0];"]
    for i in range(functions):
        callee = f"f{i - 1}(x - 1)" if i % 10 else "x"
        out.append(f"""int f{i}(int x)
{{
    int y = x * {i % 7 + 1} + {i};
    if (y > {i * 3}) {{
        total = total + y;
    }} else {{
        y = y - 1;
    }}
    return y + {callee};
}}""")
    step = max(1, functions // 8)
    for p in range(4):
        calls = " + ".join(f"f{j}(VCPUID)" for j in range(p, functions, step))
        out.append(f'USEC:{1000 + p} {{ calls[{p}]++; printf("%d\\n", {calls}); }}')
    return "\n".join(out) + "\n"


def timed(cmd: list[str], env=None) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of `cmd`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def best_of(rounds: int, *runs: tuple[list[str], dict | None]) -> tuple[list[float], list[float]]:
    """Run each (command, environment) once per round, interleaved; the best wall and CPU times of each."""
    wall = [float("inf")] * len(runs)
    cpu = [float("inf")] * len(runs)
    for _ in range(rounds):
        for i, (cmd, env) in enumerate(runs):
            took, used = timed(cmd, env)
            wall[i], cpu[i] = min(wall[i], took), min(cpu[i], used)
    return wall, cpu


def scaling(rounds: int, workdir: Path, number: str = "1") -> None:
    print(f"{number}. emmettc on generated programs (whole process, best of {rounds})")
    command = emmettc_command()
    sizes = (1000, 4000, 8000)
    files = []
    for n in sizes:
        path = workdir / f"gen{n}.emt"
        path.write_text(program(n))
        files.append(path)
    # Build (or load) the parser tables once before timing.
    subprocess.run(command + [str(HELLO)], check=True, stdout=subprocess.DEVNULL)
    times, _ = best_of(rounds, *[(command + [str(f), "-o", str(workdir / "out.vp")], None) for f in files])
    for n, t, f in zip(sizes, times, files):
        lines = f.read_text().count("\n")
        print(f"   {n:5d} functions ({lines:6d} lines): {t:6.3f} s   ({t / n * 1e6:5.0f} us per function)")
    ratio = times[2] / times[0]
    print(f"   8000/1000 ratio: {ratio:.2f}   (target: at most 10; linear is 8)")
    print(f"   8000 functions: {times[2]:.3f} s   (target: under 4 s)")


def startup(rounds: int, against: Path | None = None, number: str = "2") -> None:
    beside = f", this tree beside {against}" if against else ""
    print(f"{number}. start-up: `emmettc cookbook/hello.emt` against `python -c pass`{beside} "
          f"(best of {rounds}, interleaved)")
    no_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE")) or sys.flags.dont_write_bytecode
    label = "as configured" + (" (PYTHONDONTWRITEBYTECODE: modules compiled from source on every run)"
                               if no_bytecode else "")
    measure(rounds, label, dict(os.environ), against)
    if no_bytecode:
        prefix = tempfile.mkdtemp(prefix="emmettc-pycache-")
        try:
            env = dict(os.environ, PYTHONPYCACHEPREFIX=prefix)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            measure(rounds, "with bytecode cached (PYTHONPYCACHEPREFIX in a temporary folder)", env, against,
                    warm_up=2)  # the first runs fill the cache (outside the source tree)
        finally:
            shutil.rmtree(prefix, ignore_errors=True)


def measure(rounds: int, label: str, env: dict, against: Path | None, warm_up: int = 1) -> None:
    """One configuration: python -c pass, this tree's emmettc (and DIR's), each its best wall and CPU time;
    and, as the floor of any start-up that imports click, `python -c "import click"`."""
    runs = {"python -c pass": ([sys.executable, "-c", "pass"], env),
            "emmettc hello.emt" if against is None else "this tree": (emmettc_command() + [str(HELLO)], env)}
    if against is not None:
        path = os.pathsep.join(filter(None, [str(against), env.get("PYTHONPATH")]))
        runs["DIR"] = (emmettc_command() + [str(HELLO)], dict(env, PYTHONPATH=path))
    runs["import click"] = ([sys.executable, "-c", "import click"], env)
    for _ in range(warm_up):
        for cmd, run_env in runs.values():
            timed(cmd, run_env)
    wall, cpu = best_of(rounds, *runs.values())
    print(f"   {label}:")
    names = list(runs)
    for kind, best in (("wall", wall), ("CPU", cpu)):
        row = f"     {kind + ':':5s}"
        for i, name in enumerate(names[:-1]):
            row += f" {name} {best[i] * 1000:6.1f} ms" + (f"  ratio {best[i] / best[0]:.2f}  " if i else "  ")
        print(row + "(target: at most 2)")
    print(f"     floor: python -c \"import click\" wall {wall[-1] * 1000:.1f} ms  ratio {wall[-1] / wall[0]:.2f},"
          f" CPU {cpu[-1] * 1000:.1f} ms  ratio {cpu[-1] / cpu[0]:.2f}   (click's import alone, no compiler)")


def flat_expressions(rounds: int) -> None:
    print("3. a flat expression x = RAX + RAX + ... compiled in-process (best of %d, interleaved)" % rounds)
    import emmett

    sizes = (1000, 10000)
    sources = {n: "VMM1Hz { x = " + " + ".join(["RAX"] * n) + "; logint(x); }\n" for n in sizes}
    emmett.compile(sources[sizes[0]], "flat.emt")  # load the compiler and its tables first
    best = dict.fromkeys(sizes, float("inf"))
    for _ in range(rounds):
        for n in sizes:
            start = time.perf_counter()
            result = emmett.compile(sources[n], "flat.emt")
            best[n] = min(best[n], time.perf_counter() - start)
            assert result.ok, result.format_diagnostics()
    for n in sizes:
        print(f"   {n:6d} terms: {best[n]:6.3f} s")
    print(f"   10000/1000 ratio: {best[10000] / best[1000]:.2f}   (target: at most 15; linear is 10)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    ap.add_argument("--against", metavar="DIR", type=Path, help="another checkout whose start-up to show beside")
    args = ap.parse_args()
    against = args.against.resolve() if args.against else None
    if against is not None and not (against / "emmett" / "cli.py").is_file():
        sys.exit(f"bench_emmettc: {args.against} is not a checkout of this project (no emmett/cli.py)")
    with tempfile.TemporaryDirectory(prefix="bench-emmettc-") as tmp:
        scaling(1 if args.quick else 3, Path(tmp))
    startup(5 if args.quick else 20, against)
    flat_expressions(2 if args.quick else 5)


if __name__ == "__main__":
    main()
