"""Options `vprobe` shares with the printers of saved logs: the output format, sorted aggregates, stacks.

Each function returns a decorator that adds its options to a click command,
listed in the help under the title given.
"""

from __future__ import annotations

from typing import Callable

import click

from ..views.aggr import SORT_KEYS
from ..views.stacks import DOT_DEFAULT_TOP
from .base import option


def apply(decorators: list[Callable]) -> Callable:
    """One decorator made of several, applied so that the options keep their listed order in the help."""

    def decorate(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


def format_option(group: str, help: str) -> Callable:
    return option("-f", "--format", type=click.Choice(["text", "json"]), default="text", group=group, help=help)


def aggr_options(group: str = "SORTED AGGREGATES") -> Callable:
    return apply([
        option("--sort", type=click.Choice(SORT_KEYS), default="count", group=group,
               help="order rows by this column: count (default), avg, min, max and latest "
                    "largest first, key smallest first"),
        option("--reverse", is_flag=True, group=group, help="reverse the order"),
        option("--top", type=click.IntRange(min=1), metavar="N", group=group,
               help="show only the first N rows (or stacks)"),
        option("--no-refresh", is_flag=True, group=group,
               help="on a terminal too, print each epoch's table in turn instead of redrawing"),
    ])


def stack_options(group: str = "FORMATTED STACKS", *, with_top: bool = True) -> Callable:
    """--folded, --dot (not both: the command checks with `base.exclusive`), --offsets, --cumulative;
    --top unless `with_top` is false."""
    options = [
        option("--folded", is_flag=True, group=group,
               help="print the flame-graph folded format: frame;frame;frame COUNT, outermost first"),
        option("--dot", is_flag=True, group=group,
               help=f"print a Graphviz call graph of the hottest stacks (--top, default {DOT_DEFAULT_TOP})"),
        option("--offsets", is_flag=True, group=group,
               help="keep +0xOFFSET in --folded and --dot frames (default: function names)"),
        option("--cumulative", is_flag=True, group=group,
               help="aggregates are never cleared: count stack keys from each aggregate's last block only"),
    ]
    if with_top:
        options.append(option("--top", type=click.IntRange(min=1), metavar="N", group=group,
                              help="show only the N hottest stacks"))
    return apply(options)


def shape(folded: bool, dot: bool) -> str:
    """The stack view's shape from --folded / --dot (which `base.exclusive` keeps apart)."""
    return "folded" if folded else "dot" if dot else "text"
