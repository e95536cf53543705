"""Options `vprobe` shares with the printers of saved logs: sorted aggregates (-a) and formatted stacks (-s)."""

from __future__ import annotations

import argparse

from ..views.aggr import SORT_KEYS
from ..views.stacks import DOT_DEFAULT_TOP


def add_aggr_options(parser: argparse.ArgumentParser, title: str = "sorted aggregates") -> None:
    group = parser.add_argument_group(title)
    group.add_argument("--sort", choices=SORT_KEYS, default="count",
                       help="order rows by this column: count (default), avg, min, max and latest "
                            "largest first, key smallest first")
    group.add_argument("--reverse", action="store_true", help="reverse the order")
    group.add_argument("--top", type=positive_int, metavar="N", help="show only the first N rows (or stacks)")
    group.add_argument("--no-refresh", action="store_true",
                       help="on a terminal too, print each epoch's table in turn instead of redrawing")


def add_stack_options(parser: argparse.ArgumentParser, title: str = "formatted stacks", *,
                      with_top: bool = True) -> None:
    group = parser.add_argument_group(title)
    shape = group.add_mutually_exclusive_group()
    shape.add_argument("--folded", action="store_true",
                       help="print the flame-graph folded format: frame;frame;frame COUNT, outermost first")
    shape.add_argument("--dot", action="store_true",
                       help=f"print a Graphviz call graph of the hottest stacks (--top, default {DOT_DEFAULT_TOP})")
    group.add_argument("--offsets", action="store_true",
                       help="keep +0xOFFSET in --folded and --dot frames (default: function names)")
    group.add_argument("--cumulative", action="store_true",
                       help="aggregates are never cleared: count stack keys from each aggregate's last block only")
    if with_top:
        group.add_argument("--top", type=positive_int, metavar="N", help="show only the N hottest stacks")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
