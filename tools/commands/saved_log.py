"""What the printers of saved logs (vprobe-aggr, vprobe-stacks) share: their input options and their run.

A printer reads LOG (a file, or - for standard input) through `log.reader`
into one view, with the guest's symbols from --syms, from the VM --vmx
describes, or from the embedded default machine (`vm.targets.default_symbol_text`).
"""

from __future__ import annotations

import os
from typing import Callable

import click

from ..errors import ToolError
from ..log.reader import LogReader, pump
from ..output import LogStream, MessageStream
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


def show_saved_log(ctx: click.Context, make_view: Callable) -> int:
    """Read the log the options name into the view `make_view(out, err, symbols, live)` builds; the exit status.

    `symbols()` gives the Symbolizer (made only if the view asks); `live` is
    whether standard output is a terminal.
    """
    exclusive(ctx, "syms", "vmx")
    options = ctx.params
    prog = ctx.find_root().info_name
    streams = Streams.of(ctx)
    out, err = LogStream(streams.stdout), MessageStream(streams.stderr)

    def symbols() -> Symbolizer:
        if options["syms"]:
            return Symbolizer(read_symbol_file(options["syms"]))
        from ..vm.targets import default_symbol_text

        return Symbolizer(default_symbol_text(options["vmx"]))

    def warn(message: str) -> None:
        err.write(f"{prog}: {message}\n")

    path = options["log"]
    try:
        view = make_view(out, err, symbols, _is_terminal(streams.stdout))
        reader = LogReader(Pipeline([view]), options["input_kind"], warn)
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
    except ToolError as e:
        warn(e.message)
        return e.status
    except OSError as e:
        warn(f"cannot read {path}: {e.strerror or e}")
        return 1
    out.close()
    return 0


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
