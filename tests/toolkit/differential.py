"""The differential suite against the public VProbes toolkit's Emmett compiler.

Each program in `programs/` is written in the dialect both compilers accept.
It is compiled by `emmettc` and by the toolkit's compiler (an OCaml program
built from the toolkit's source; see README.md here), both VP texts are run
on the default simulated machine with `vprobe -d SECONDS`, and their logs
must be identical (but for where in its own VP a firing aborted).  What the toolkit's compiler wrote for each program is
kept in `golden/NAME.vp`, so the suite runs without it: the test compiles
with `emmettc` and runs the golden VP beside the result.

A program's first line may say how it is compiled and run:

    // differential: -a lib/procs.emt duration=3

`-a` compiles with auto-aggregation (both compilers); each `*.emt` word is a
file (relative to `programs/`) compiled before the program, as a second
input file; `duration=N` runs N simulated seconds (default 2).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
GOLDEN = HERE / "golden"
BIN = Path(sys.executable).parent
DEFAULT_SECONDS = 2
GOLDEN_HEADER = ("; The VProbes toolkit's Emmett compiler's output for programs/{name}.emt\n"
                 "; (written by tests/toolkit/regenerate.py; do not edit).\n")


@dataclass
class Program:
    name: str
    path: Path
    libraries: list[Path] = field(default_factory=list)
    auto_aggr: bool = False
    seconds: float = DEFAULT_SECONDS

    @property
    def inputs(self) -> list[Path]:
        """The files compiled, in order: the libraries, then the program."""
        return [*self.libraries, self.path]

    @property
    def golden(self) -> Path:
        return GOLDEN / f"{self.name}.vp"


def read_program(path: Path) -> Program:
    program = Program(path.stem, path)
    lines = path.read_text().splitlines()
    first = lines[0] if lines else ""
    marker = "// differential:"
    if first.startswith(marker):
        for word in first[len(marker):].split():
            if word == "-a":
                program.auto_aggr = True
            elif word.startswith("duration="):
                program.seconds = float(word.split("=", 1)[1])
            elif word.endswith(".emt"):
                program.libraries.append(PROGRAMS / word)
            else:
                raise ValueError(f"{path.name}: unknown word '{word}' in its '{marker}' line")
    return program


def all_programs() -> list[Program]:
    return [read_program(p) for p in sorted(PROGRAMS.glob("*.emt"))]


@dataclass
class Outcome:
    """A compile or a run: its output, or the error that stopped it."""

    text: str | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


def _run(argv: list[str], timeout: float = 300) -> Outcome:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(argv, capture_output=True, text=True, encoding="latin-1", timeout=timeout, env=env)
    if done.returncode != 0:
        return Outcome(None, (done.stderr or done.stdout).strip() or f"exit status {done.returncode}")
    return Outcome(done.stdout)


def guest_symbols(directory: Path) -> Path:
    """The default machine's kernel symbols, as `vprobe --kallsyms` prints them, in a file."""
    listing = _run([str(BIN / "vprobe"), "--kallsyms"])
    if not listing.ok:
        raise RuntimeError(f"vprobe --kallsyms failed: {listing.error}")
    path = directory / "guest.syms"
    path.write_text(listing.text, encoding="latin-1")
    return path


def compile_with_emmettc(program: Program, symbols: Path) -> Outcome:
    argv = [str(BIN / "emmettc"), "--no-preload", "-s", str(symbols)]
    if program.auto_aggr:
        argv.append("-a")
    return _run(argv + [str(p) for p in program.inputs])


def compile_with_toolkit(program: Program, compiler: Path, symbols: Path) -> Outcome:
    argv = [str(compiler), "-s", str(symbols)]
    if program.auto_aggr:
        argv.append("-a")
    return _run(argv + [str(p) for p in program.inputs])


_FAULT_AT = re.compile(r"^(vprobe error: probe \S+ aborted) at .+?:\d+:\d+:", re.M)


def comparable(log: str) -> str:
    """A log as the two compilers' outputs are compared: an aborted firing's line without its
    location, which is in each compiler's own VP."""
    return _FAULT_AT.sub(r"\1:", log)


def run_vp(vp: str, seconds: float, name: str) -> Outcome:
    """The log of `vp` run on the default machine for `seconds` (vprobe -d)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{name}.vp"
        path.write_text(vp, encoding="latin-1")
        return _run([str(BIN / "vprobe"), "-d", str(seconds), str(path)])
