"""Reading a saved or streamed log, for the printers of saved logs (vprobe-aggr, vprobe-stacks).

The input is a log file, or `-` for standard input: the log's text, or the
JSON lines `vprobe -f json` writes (recognised by their first line, or
chosen with `--input`).  A regular file is read to its end; a pipe is read as
data arrives, and each pause in it lets a live view redraw.
"""

from __future__ import annotations

import os
import select
import stat

from .json_lines import looks_like_json_log, parse_json_line

CHUNK = 65536
PAUSE_S = 0.05  # a pipe quiet for this long has paused


class LogReader:
    """Bytes of a log in, text or JSON events out to a pipeline (`views.pipeline.Pipeline`)."""

    def __init__(self, pipeline, kind: str = "auto", warn=None):
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
