"""`vprobe-report`: the HTML report of a saved log (the same page `vprobe --html` writes)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ToolError
from ..views.report.model import RunSummary
from ..views.report.writer import ReportWriter
from ..views.tables import KeyFormat
from .base import ToolCommand, option, version_option
from .options import apply
from .saved_log import INPUT, log_options, script_option, show_saved_log

DESCRIPTION = """\
NAME
    vprobe-report - an HTML report of a saved VProbes log

DESCRIPTION
    Reads a log (vprobe.out, or the JSON lines of vprobe -f json; standard
    input when LOG is -) and writes one self-contained HTML page: the faults
    by probe and message, every aggregate as a sortable table (each epoch,
    the last first) with the columns -a prints, every set of guest stacks
    (the stack keys of each aggregate, the stacks in log lines) as an
    interactive flame graph (click to zoom, search, counts on hover) drawn
    from the folded stacks -s --folded prints, and the log itself with its
    faults highlighted.  Stacks are symbolized with --syms (or the symbols of
    the VM --vmx describes; by default the simulated machine's).  --script
    names the script that wrote the log: its annotations name the tables'
    columns and make histograms bar charts (JSON lines carry them already),
    and its source goes into the page.  The page needs no network: open it
    in any browser.

    How often each probe fired is known only to the run: vprobe --html FILE
    writes the same page with the probes' firing counts."""

EPILOG = """\
EXAMPLES
    vprobe-report vprobe.out
        Writes vprobe.html beside the log.
    vprobe-report --script pagefault-stacks.emt -o pf.html vprobe.out
        With the script's source, to pf.html.
    vprobe -f json -d 5 strace.emt > run.jsonl; vprobe-report -o run.html run.jsonl
        From JSON lines.

SHELL COMPLETION
    eval "$(_VPROBE_REPORT_COMPLETE=bash_source vprobe-report)"
    in ~/.bashrc completes options, their values and file names
    (zsh_source in ~/.zshrc; fish_source for fish).

EXIT STATUS
    0 the report was written; 1 the log, the symbols or the script cannot be
    read, or the report cannot be written; 2 a malformed command line.

SEE ALSO
    vprobe(1) --html: the report of a run; vprobe-aggr, vprobe-stacks: the
    same log as text."""


def default_output(log: str) -> str:
    if log == "-":
        raise ToolError("reading standard input, say where the report goes: -o FILE")
    return str(Path(log).with_suffix(".html")) if Path(log).suffix != ".html" else log + ".html"


@click.command("vprobe-report", cls=ToolCommand, synopsis="[options] LOG", help=DESCRIPTION, epilog=EPILOG,
               help_group=INPUT, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("log", metavar="LOG", type=click.Path(allow_dash=True))
@apply([
    option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE", group=INPUT,
           help="the report to write (default: LOG with .html for its suffix)"),
    log_options,
    option("--cumulative", is_flag=True, group=INPUT,
           help="aggregates are never cleared: count stack keys from each aggregate's last block only"),
])
@script_option
@version_option(group=INPUT)
@click.pass_context
def command(ctx: click.Context, **options) -> int:
    def syscalls() -> dict[int, str]:
        from ..vm.targets import default_syscall_names

        return default_syscall_names(options["vmx"])

    def view(out, err, symbols, live: bool):
        path = options["output"] or default_output(options["log"])
        script = options["script"]
        scripts = []
        if script is not None:
            try:
                scripts = [(script, Path(script).read_bytes().decode("utf-8", "replace"))]
            except OSError as e:
                raise ToolError(f"cannot read {script}: {e.strerror or e}") from None
        log = options["log"]
        run = RunSummary(script or ("standard input" if log == "-" else log), vm=options["vmx"] or "",
                         scripts=scripts, log_path=log)
        return ReportWriter(path, run, lambda: KeyFormat(symbols(), syscalls),
                            cumulative=options["cumulative"]).view

    return show_saved_log(ctx, view)


def main(argv: list[str] | None = None) -> None:
    command.main(argv, "vprobe-report")


if __name__ == "__main__":
    main()
