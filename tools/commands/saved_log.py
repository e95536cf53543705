"""What the printers of saved logs (vprobe-aggr, vprobe-stacks) share: their input options and their run.

A printer reads LOG (a file, or - for standard input) through `log.reader`
into one view, with the guest's symbols from --syms, from the VM --vmx
describes, or from the embedded default machine (`vm.targets.default_symbol_text`).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ToolError
from ..log.reader import LogReader, pump
from ..output import LogStream, MessageStream
from ..views.pipeline import Pipeline
from ..views.symbolize import Symbolizer
from ..vm.machine_info import read_symbol_file


def add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", nargs="?", default="-", metavar="LOG",
                        help="the log: a file such as vprobe.out, or - for standard input (default)")
    parser.add_argument("-f", "--format", choices=("text", "json"), default="text",
                        help="output format (default text)")
    parser.add_argument("--input", choices=("auto", "text", "json"), default="auto",
                        help="how to read LOG: the log's text, JSON lines, or auto (default: by its first line)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--syms", metavar="FILE",
                        help="guest symbols (/proc/kallsyms format) for stacks; default: the simulated machine's")
    source.add_argument("--vmx", metavar="VM.vmx", help="use the guest symbols of the VM this .vmx describes")


def run_printer(prog: str, argv: list[str] | None, parser: argparse.ArgumentParser, make_view) -> int:
    """A standalone printer: parse `argv`, read the log, show it through the view `make_view` builds."""
    args = parser.parse_args(argv)
    out = LogStream(sys.stdout.buffer)
    err = MessageStream(sys.stderr.buffer)

    def symbols() -> Symbolizer:
        if args.syms:
            return Symbolizer(read_symbol_file(args.syms))
        from ..vm.targets import default_symbol_text

        return Symbolizer(default_symbol_text(args.vmx))

    def warn(message: str) -> None:
        err.write(f"{prog}: {message}\n")

    try:
        live = sys.stdout.isatty()
        view = make_view(args, out, err, symbols, live)
        pipeline = Pipeline([view])
        reader = LogReader(pipeline, args.input, warn)
        if args.log == "-":
            fd, close = sys.stdin.fileno(), False
        else:
            try:
                fd, close = os.open(args.log, os.O_RDONLY), True
            except OSError as e:
                raise ToolError(f"cannot read {args.log}: {e.strerror or e}") from None
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
        warn(f"cannot read {args.log}: {e.strerror or e}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a defect of the printer: say so plainly
        warn(f"internal error: {type(e).__name__}: {e}")
        return 2
    out.close()
    return 0
