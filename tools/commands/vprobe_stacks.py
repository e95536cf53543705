"""`vprobe-stacks`: the guest stacks of a saved log, symbolized and counted (the view is `views.stacks`)."""

from __future__ import annotations

import click

from ..views.stacks import StackView
from .base import exclusive
from .options import shape, stack_options
from .saved_log import printer_command, show_saved_log

DESCRIPTION = """\
NAME
    vprobe-stacks - symbolized, counted guest stacks of a saved VProbes log

DESCRIPTION
    Finds every stack string (GUEST_0x..._0x...) in the log's lines and in the
    string keys of its aggregates, and prints each distinct stack once with its
    count, one frame per line as symbol+0xOFFSET (innermost first), from the
    guest symbol file (--syms; by default the simulated machine's kallsyms).
    The log is vprobe.out, or the JSON lines of vprobe -f json; standard input
    when LOG is - or not given.  Run-time fault lines go to standard error."""

EPILOG = """\
EXAMPLES
    vprobe-stacks vprobe.out
        Stacks by count.
    vprobe-stacks --folded vprobe.out | flamegraph.pl > fg.svg
        A flame graph.
    vprobe-stacks --dot --top 10 vprobe.out | dot -Tsvg > calls.svg
        A call graph of the ten hottest stacks.
    vprobe-stacks --syms kallsyms -f json vprobe.out
        For another program, with the guest's own symbols.

SHELL COMPLETION
    eval "$(_VPROBE_STACKS_COMPLETE=bash_source vprobe-stacks)"
    in ~/.bashrc completes options, their values and file names
    (zsh_source in ~/.zshrc; fish_source for fish).

EXIT STATUS
    0 the stacks were shown (or the log has none: said on standard error);
    1 the log or the symbols cannot be read; 2 a malformed command line.

SEE ALSO
    vprobe(1) -s: the same while a script runs; vprobe-aggr: the aggregates
    of a saved log."""


@printer_command("vprobe-stacks", DESCRIPTION, EPILOG)
@stack_options()
@click.pass_context
def command(ctx: click.Context, **options) -> int:
    exclusive(ctx, "folded", "dot")

    def view(out, err, symbols, live: bool) -> StackView:
        return StackView(out, err, symbols(), shape=shape(options["folded"], options["dot"]), fmt=options["format"],
                         top=options["top"], offsets=options["offsets"], cumulative=options["cumulative"])

    return show_saved_log(ctx, view)


def main(argv: list[str] | None = None) -> None:
    command.main(argv, "vprobe-stacks")


if __name__ == "__main__":
    main()
