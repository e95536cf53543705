"""Where a script's log goes when a command streams it: a byte stream, line by line.

VP strings are bytes (held as Latin-1 text), so the log is written back as
the same bytes.  A reader that goes away (`vprobe ... | head`) stops the
output quietly instead of raising.
"""

from __future__ import annotations

import os
from typing import BinaryIO


class LogStream:
    """A binary stream that takes log text (one character per byte) and writes those bytes."""

    encoding = "latin-1"
    errors = "strict"

    def __init__(self, out: BinaryIO):
        self.out = out
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.out.write(text.encode(self.encoding, self.errors))
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """Point the stream at /dev/null so the interpreter's final flush cannot fail again."""
        self.broken = True
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self.out.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def close(self) -> None:
        if self.broken:
            return
        try:
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()


class MessageStream(LogStream):
    """A binary stream for messages to people (real text, written as UTF-8)."""

    encoding = "utf-8"
    errors = "surrogateescape"

    def write(self, text: str) -> None:
        try:
            super().write(text)
        except UnicodeEncodeError:
            super().write(text.encode("utf-8", "replace").decode("utf-8"))


def log_text_as_message(text: str) -> str:
    """Log text (bytes as Latin-1) as the text it spells in UTF-8, for a message."""
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


class LogFile:
    """The VM's log file (vprobe.out), appended to and flushed line by line."""

    def __init__(self, path):
        self.file = open(path, "ab")

    def write(self, text: str) -> None:
        self.file.write(text.encode("latin-1"))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class Tee:
    """A log sink that hands every line to several sinks."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def __call__(self, text: str) -> None:
        for sink in self.sinks:
            sink(text)
