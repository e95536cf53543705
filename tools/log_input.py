"""Reading a saved or streamed log for the standalone printers (vprobe-aggr, vprobe-stacks).

The input is a log file, or `-` for standard input: the log's text, or the
JSON lines `vprobe -f json` writes (recognised by their first line, or
chosen with `--input`).  A regular file is read to its end; a pipe is read as
data arrives, and each pause in it lets a live view redraw.
"""

from __future__ import annotations

import argparse
import os
import select
import stat
import sys

from .errors import ToolError
from .json_out import looks_like_json_log, parse_json_line
from .log_views import Pipeline
from .output import LogStream, MessageStream
from .symbolize import Symbolizer, default_symbol_text, read_symbol_file

CHUNK = 65536
PAUSE_S = 0.05  # a pipe quiet for this long has paused


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


class LogReader:
    """Bytes of a log in, text or JSON events out to a pipeline."""

    def __init__(self, pipeline: Pipeline, kind: str = "auto", warn=None):
        self.pipeline = pipeline
        self.kind = kind
        self.warn = warn or (lambda message: None)
        self.buffer = ""  # text not yet handled: before auto-detection, or a partial JSON line
        self.line_number = 0

    def feed(self, data: bytes) -> None:
        text = data.decode("latin-1")
        if self.kind == "text":
            self.pipeline.text(text)
            return
        self.buffer += text
        if self.kind == "auto":
            stripped = self.buffer.lstrip()
            if "\n" not in stripped:
                return  # not enough to tell yet
            self.kind = "json" if looks_like_json_log(stripped.split("\n", 1)[0]) else "text"
            if self.kind == "text":
                text, self.buffer = self.buffer, ""
                self.pipeline.text(text)
                return
        lines = self.buffer.split("\n")
        self.buffer = lines.pop()
        for line in lines:
            self._json_line(line)

    def _json_line(self, line: str) -> None:
        self.line_number += 1
        try:
            event = parse_json_line(line)
        except ValueError as e:
            self.warn(f"line {self.line_number}: not a log event ({e}); skipped")
            return
        if event is not None:
            self.pipeline.events([event])

    def idle(self) -> None:
        self.pipeline.boundary()

    def finish(self) -> None:
        if self.buffer:
            if self.kind == "json" or (self.kind == "auto" and looks_like_json_log(self.buffer.strip())):
                self._json_line(self.buffer)
            else:
                self.pipeline.text(self.buffer)
            self.buffer = ""
        self.pipeline.finish()


def pump(fd: int, reader: LogReader) -> None:
    """Read `fd` to its end into `reader`; pauses of a pipe or terminal are idle points."""
    regular = stat.S_ISREG(os.fstat(fd).st_mode)
    paused = True
    while True:
        if not regular and not paused:
            ready, _, _ = select.select([fd], [], [], PAUSE_S)
            if not ready:
                reader.idle()
                paused = True
                continue
        data = os.read(fd, CHUNK)
        if not data:
            break
        paused = False
        reader.feed(data)
    reader.finish()


def run_printer(prog: str, argv: list[str] | None, parser: argparse.ArgumentParser, make_view) -> int:
    """A standalone printer: parse `argv`, read the log, show it through the view `make_view` builds."""
    args = parser.parse_args(argv)
    out = LogStream(sys.stdout.buffer)
    err = MessageStream(sys.stderr.buffer)

    def symbols() -> Symbolizer:
        return Symbolizer(read_symbol_file(args.syms) if args.syms else default_symbol_text(args.vmx))

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
