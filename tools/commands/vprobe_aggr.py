"""`vprobe-aggr`: the aggregates of a saved log as sorted tables (the view is `views.aggr`)."""

from __future__ import annotations

import click

from ..views.aggr import AggrView
from ..views.tables import KeyFormat
from .options import aggr_options
from .saved_log import printer_command, script_option, show_saved_log

DESCRIPTION = """\
NAME
    vprobe-aggr - show the aggregates of a saved VProbes log as sorted tables

DESCRIPTION
    Reads a log (vprobe.out, or the JSON lines of vprobe -f json; standard
    input when LOG is - or not given) and prints each logaggr block as an
    aligned table: key columns (integers in hex, strings unquoted, stacks
    symbolized), count, avg, min, max, latest, % of the total count and a
    bar.  Other log lines pass through.  Reading a pipe on a terminal, the
    tables are redrawn in place as new epochs arrive.

    Given the compiled Emmett script that wrote the log (--script, or JSON
    lines, which carry what it says), the tables explain themselves:
    columns named by the keys' Emmett source, integers in decimal unless
    they are addresses (hex, symbolized sym+0xoff) or system call numbers
    (their names: the VM's vprobe.syscalls, or its kernel's own table), and
    an aggregate only ever counted shows just count and share.  A histogram
    is drawn as one: its buckets in order with their ranges, counts and
    bars, and its count, mean and p50 / p90 / p99 (the buckets they fall in)."""

EPILOG = """\
EXAMPLES
    vprobe-aggr vprobe.out
        Every epoch's tables.
    vprobe-aggr --sort max --top 10 vprobe.out
        The ten largest maxima.
    vprobe-aggr --script strace.emt --vmx web01.vmx vprobe.out
        Tables named and formatted as the script and the VM say (system
        call names from the VM).
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
@script_option
@aggr_options()
@click.pass_context
def command(ctx: click.Context, **options) -> int:
    def syscalls() -> dict[int, str]:
        from ..vm.targets import default_syscall_names

        return default_syscall_names(options["vmx"])

    def view(out, err, symbols, live: bool) -> AggrView:
        return AggrView(out, keys=KeyFormat(symbols(), syscalls), by=options["sort"], reverse=options["reverse"],
                        top=options["top"], fmt=options["format"], live=live and not options["no_refresh"])

    return show_saved_log(ctx, view)


def main(argv: list[str] | None = None) -> None:
    command.main(argv, "vprobe-aggr")


if __name__ == "__main__":
    main()
