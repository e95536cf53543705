"""Run the differential suite against the toolkit's compiler and rewrite the golden VP files.

    .venv/bin/python tests/toolkit/regenerate.py --emmett /path/to/toolkit/emmett [--check] [NAME ...]

For each program (all of `programs/*.emt`, or the NAMEs given): compile it with
the toolkit's compiler and with `emmettc`, run both VP texts on `vprobe -d N`,
compare the logs, and write what the toolkit's compiler emitted to
`golden/NAME.vp`.  `--check` writes nothing and fails if a golden file is not
what the toolkit's compiler emits today.  A table and the counts (programs,
both accept, identical logs) go to standard output; the exit status is 1 if
any program fails to compile with either compiler or its logs differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import differential as d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emmett", required=True, type=Path, help="the toolkit's compiler (emmett)")
    parser.add_argument("--check", action="store_true", help="compare the golden files instead of writing them")
    parser.add_argument("names", nargs="*", help="programs to run (default: all)")
    args = parser.parse_args(argv)
    if not args.emmett.is_file():
        parser.error(f"no toolkit compiler at {args.emmett}")

    programs = d.all_programs()
    if args.names:
        known = {p.name: p for p in programs}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            parser.error(f"no such program: {', '.join(unknown)}")
        programs = [known[n] for n in args.names]

    both = identical = 0
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        symbols = d.guest_symbols(Path(scratch))
        for program in programs:
            theirs = d.compile_with_toolkit(program, args.emmett, symbols)
            ours = d.compile_with_emmettc(program, symbols)
            verdict = _compare(program, theirs, ours)
            if theirs.ok and ours.ok:
                both += 1
                identical += verdict == "identical logs"
            failed |= verdict != "identical logs"
            if theirs.ok:
                golden = d.GOLDEN_HEADER.format(name=program.name) + theirs.text
                if args.check:
                    if not program.golden.is_file() or program.golden.read_text(encoding="latin-1") != golden:
                        verdict += "; golden file out of date"
                        failed = True
                else:
                    d.GOLDEN.mkdir(exist_ok=True)
                    program.golden.write_text(golden, encoding="latin-1")
            print(f"{program.name:28} {verdict}")
    print(f"\n{len(programs)} programs, {both} accepted by both compilers, {identical} with identical logs")
    return 1 if failed else 0


def _compare(program: d.Program, theirs: d.Outcome, ours: d.Outcome) -> str:
    if not theirs.ok or not ours.ok:
        return "; ".join(f"{who} rejects it: {o.error.splitlines()[0]}"
                         for who, o in (("toolkit", theirs), ("emmettc", ours)) if not o.ok)
    their_log = d.run_vp(theirs.text, program.seconds, f"{program.name}.toolkit")
    our_log = d.run_vp(ours.text, program.seconds, program.name)
    if not their_log.ok or not our_log.ok:
        return "; ".join(f"the {who} VP does not run: {o.error.splitlines()[0]}"
                         for who, o in (("toolkit's", their_log), ("emmettc", our_log)) if not o.ok)
    if not our_log.text:
        return "both logs are empty"
    return "identical logs" if d.comparable(their_log.text) == d.comparable(our_log.text) else "logs differ"


if __name__ == "__main__":
    sys.exit(main())
