"""Where a script's log goes when a command streams it: a byte stream, line by line.

VP strings are bytes (held as Latin-1 text), so the log is written back as
the same bytes.  A reader that goes away (`vprobe ... | head`) stops the
output quietly instead of raising; an output that cannot be written (a full
disk) stops it too, and `error` says why, for the command to report.
"""

from __future__ import annotations

import os
from typing import BinaryIO


def is_terminal(stream) -> bool:
    """Whether `stream` is a terminal (live views and progress are only for one)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LogStream:
    """A binary stream that takes log text (one character per byte) and writes those bytes."""

    encoding = "latin-1"
    errors = "strict"

    def __init__(self, out: BinaryIO):
        self.out = out
        self.broken = False
        self.error: str | None = None  # why writing failed (a full disk ...), if it did

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.out.write(text.encode(self.encoding, self.errors))
            self.out.flush()
        except BrokenPipeError:
            self._reader_gone()
        except OSError as e:  # the output cannot take more: stop writing; the command says so
            self.error = e.strerror or str(e)
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
        except OSError as e:
            self.error = e.strerror or str(e)
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


class Tee:
    """A log sink that hands every line to several sinks."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def __call__(self, text: str) -> None:
        for sink in self.sinks:
            sink(text)
