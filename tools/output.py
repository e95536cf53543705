"""Where a script's log goes when a command streams it: a byte stream, line by line.

VP strings are bytes (held as Latin-1 text), so the log is written back as
the same bytes.  A reader that goes away (`vprobe ... | head`) stops the
output quietly instead of raising.
"""

from __future__ import annotations

import os
from typing import BinaryIO


class LogStream:
    def __init__(self, out: BinaryIO):
        self.out = out
        self.broken = False

    def write(self, text: str) -> None:
        if self.broken:
            return
        try:
            self.out.write(text.encode("latin-1"))
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
