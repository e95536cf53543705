"""`vprobe-aggr`: the aggregates of a saved log as sorted tables (the view is `views.aggr`)."""

from __future__ import annotations

import argparse
import sys

from ..views.aggr import AggrView
from .options import add_aggr_options
from .saved_log import add_input_options, run_printer


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_printer("vprobe-aggr", argv, _parser(), _make_view))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vprobe-aggr", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Show the aggregates of a saved VProbes log as sorted tables.\n\n"
                    "Reads a log (vprobe.out, or the JSON lines of `vprobe -f json`) and prints each\n"
                    "logaggr block as an aligned table: key columns (integers in hex, strings\n"
                    "unquoted, stacks symbolized), count, avg, min, max, latest, %% of the total\n"
                    "count and a bar.  Other log lines pass through.  Reading a pipe on a terminal,\n"
                    "the tables are redrawn in place as new epochs arrive.",
        epilog="examples:\n"
               "  vprobe-aggr vprobe.out                     every epoch's tables\n"
               "  vprobe-aggr --sort max --top 10 vprobe.out  the ten largest maxima\n"
               "  vprobe -f json script.emt | vprobe-aggr -   from a live JSON stream\n")
    add_input_options(parser)
    add_aggr_options(parser)
    return parser


def _make_view(args, out, err, symbols, live: bool):
    return AggrView(out, symbolizer=symbols(), by=args.sort, reverse=args.reverse, top=args.top,
                    fmt=args.format, live=live and not args.no_refresh)


if __name__ == "__main__":
    main()
