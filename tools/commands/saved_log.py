"""What the printers of saved logs (vprobe-aggr, vprobe-stacks) share: their input options and their run.

A printer reads LOG (a file, or - for standard input) through `log.reader`
into one view, with the guest's symbols from --syms, from the VM --vmx
describes, or from the embedded default machine (`vm.targets.default_symbol_text`),
and its system call names likewise (`default_syscall_names`).  A printer
that shows aggregates takes the script that wrote the log (--script), whose
annotations name their columns and make histograms of them (JSON input
carries them already).
"""

from __future__ import annotations

import os
from typing import Callable

import click

from ..errors import LoadFailed, ToolError
from ..log.aggr_info import AggregateCatalog
from ..log.reader import LogReader, pump
from ..output import LogStream, MessageStream, is_terminal
from ..views.pipeline import Pipeline
from ..views.symbolize import Symbolizer
from ..vm.machine_info import read_symbol_file
from .base import Streams, ToolCommand, exclusive, option, version_option
from .options import apply, format_option

INPUT = "INPUT AND OUTPUT"


def input_options(function: Callable) -> Callable:
    """LOG, -f, --input, --syms / --vmx (one of them)."""
    return apply([
        click.argument("log", default="-", required=False, metavar="[LOG]", type=click.Path(allow_dash=True)),
        format_option(INPUT, "output format (default text)"),
        log_options,
    ])(function)


def log_options(function: Callable) -> Callable:
    """How LOG is read and its stacks symbolized: --input, --syms / --vmx (one of them)."""
    return apply([
        option("--input", "input_kind", type=click.Choice(["auto", "text", "json"]), default="auto", group=INPUT,
               help="how to read LOG: the log's text, JSON lines, or auto (default: by its first line)"),
        option("--syms", type=click.Path(), metavar="FILE", group=INPUT,
               help="guest symbols (/proc/kallsyms or WinDbg x format) for stacks; default: the simulated machine's"),
        option("--vmx", type=click.Path(), metavar="VM.vmx", group=INPUT,
               help="use the guest symbols of the VM this .vmx describes"),
    ])(function)


def printer_command(name: str, description: str, epilog: str) -> Callable:
    """The click command of a printer of saved logs: its help, LOG and the input options, --version."""
    return apply([
        click.command(name, cls=ToolCommand, synopsis="[options] [LOG]", help=description, epilog=epilog,
                      help_group=INPUT, context_settings={"help_option_names": ["-h", "--help"]}),
        input_options,
        version_option(group=INPUT),
    ])


def script_option(function: Callable) -> Callable:
    """--script: the script whose log it is, for what its annotations say about its aggregates."""
    return option("--script", type=click.Path(), metavar="FILE.emt|FILE.vp", group=INPUT,
                  help="the script that wrote the log: compiled Emmett names its aggregates' columns and "
                       "makes histograms of them (JSON lines from vprobe -f json carry that already)")(function)


def show_saved_log(ctx: click.Context, make_view: Callable) -> int:
    """Read the log the options name into the view `make_view(out, err, symbols, live)` builds; the exit status.

    `symbols()` gives the Symbolizer (made only if the view asks); `live` is
    whether standard output is a terminal.  With --script, the aggregates get
    what the script's annotations say about them.
    """
    exclusive(ctx, "syms", "vmx")
    options = ctx.params
    prog = ctx.find_root().info_name
    streams = Streams.of(ctx)
    out, err = LogStream(streams.stdout), MessageStream(streams.stderr)

    def symbols_text() -> str:
        if options["syms"]:
            return read_symbol_file(options["syms"])
        from ..vm.targets import default_symbol_text

        return default_symbol_text(options["vmx"])

    def symbols() -> Symbolizer:
        return Symbolizer(symbols_text())

    def warn(message: str) -> None:
        err.write(f"{prog}: {message}\n")

    path = options["log"]
    try:
        view = make_view(out, err, symbols, is_terminal(streams.stdout))
        catalog = script_catalog(options["script"], symbols_text) if options.get("script") else None
        reader = LogReader(Pipeline([view], catalog), options["input_kind"], warn)
        if path == "-":
            fd, close = streams.stdin.fileno(), False
        else:
            try:
                fd, close = os.open(path, os.O_RDONLY), True
            except OSError as e:
                raise ToolError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            pump(fd, reader)
        except KeyboardInterrupt:
            reader.finish()
        finally:
            if close:
                os.close(fd)
    except LoadFailed as e:
        err.write(e.text + "\n")
        return 1
    except ToolError as e:
        warn(e.message)
        return e.status
    except OSError as e:
        warn(f"cannot read {path}: {e.strerror or e}")
        return 1
    out.close()
    return 0


def script_catalog(path: str, symbols_text: Callable[[], str]) -> AggregateCatalog:
    """What the script at `path` says about its aggregates (Emmett compiled with the guest's symbols)."""
    from ..scripts.sources import compile_emmett, is_emmett, read_sources  # the runtime: only when used

    files = read_sources([path])
    vp = compile_emmett(files, symbols_text=symbols_text())[0] if is_emmett(path) else files[0].text
    return AggregateCatalog.of_vp(vp)
