"""`vprobe-aggr`: the aggregates of a saved log as sorted tables (the view is `views.aggr`)."""

from __future__ import annotations

import click

from ..views.aggr import AggrView
from .options import aggr_options
from .saved_log import printer_command, show_saved_log

DESCRIPTION = """\
NAME
    vprobe-aggr - show the aggregates of a saved VProbes log as sorted tables

DESCRIPTION
    Reads a log (vprobe.out, or the JSON lines of vprobe -f json; standard
    input when LOG is - or not given) and prints each logaggr block as an
    aligned table: key columns (integers in hex, strings unquoted, stacks
    symbolized), count, avg, min, max, latest, % of the total count and a
    bar.  Other log lines pass through.  Reading a pipe on a terminal, the
    tables are redrawn in place as new epochs arrive."""

EPILOG = """\
EXAMPLES
    vprobe-aggr vprobe.out
        Every epoch's tables.
    vprobe-aggr --sort max --top 10 vprobe.out
        The ten largest maxima.
    vprobe -f json script.emt | vprobe-aggr -
        From a live JSON stream.

SHELL COMPLETION
    eval "$(_VPROBE_AGGR_COMPLETE=bash_source vprobe-aggr)"
    in ~/.bashrc completes options, their values and file names
    (zsh_source in ~/.zshrc; fish_source for fish).

EXIT STATUS
    0 the log was shown; 1 it cannot be read (or the symbols cannot);
    2 a malformed command line.

SEE ALSO
    vprobe(1) -a: the same tables while a script runs; vprobe-stacks: the
    guest stacks of a saved log."""


@printer_command("vprobe-aggr", DESCRIPTION, EPILOG)
@aggr_options()
@click.pass_context
def command(ctx: click.Context, **options) -> int:
    def view(out, err, symbols, live: bool) -> AggrView:
        return AggrView(out, symbolizer=symbols(), by=options["sort"], reverse=options["reverse"],
                        top=options["top"], fmt=options["format"], live=live and not options["no_refresh"])

    return show_saved_log(ctx, view)


def main(argv: list[str] | None = None) -> None:
    command.main(argv, "vprobe-aggr")


if __name__ == "__main__":
    main()
