"""`vprobe-stacks`: the guest stacks of a saved log, symbolized and counted (the view is `views.stacks`)."""

from __future__ import annotations

import argparse
import sys

from ..views.stacks import StackView
from .options import add_stack_options
from .saved_log import add_input_options, run_printer


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_printer("vprobe-stacks", argv, _parser(), _make_view))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vprobe-stacks", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the guest stacks of a saved VProbes log, symbolized and counted.\n\n"
                    "Finds every stack string (GUEST_0x..._0x...) in the log's lines and in the\n"
                    "string keys of its aggregates, and prints each distinct stack once with its\n"
                    "count, one frame per line as symbol+0xOFFSET (innermost first), from the\n"
                    "guest symbol file (--syms; by default the simulated machine's kallsyms).",
        epilog="examples:\n"
               "  vprobe-stacks vprobe.out                          stacks by count\n"
               "  vprobe-stacks --folded vprobe.out | flamegraph.pl > fg.svg\n"
               "  vprobe-stacks --dot --top 10 vprobe.out | dot -Tsvg > calls.svg\n"
               "  vprobe-stacks --syms kallsyms -f json vprobe.out  for another program\n")
    add_input_options(parser)
    add_stack_options(parser)
    return parser


def _make_view(args, out, err, symbols, live: bool):
    shape = "folded" if args.folded else "dot" if args.dot else "text"
    return StackView(out, err, symbols(), shape=shape, fmt=args.format, top=args.top, offsets=args.offsets,
                     cumulative=args.cumulative)


if __name__ == "__main__":
    main()
