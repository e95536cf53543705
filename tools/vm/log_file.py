"""The VM's log file (vprobe.out, or vprobe.outFile): what a script logs, kept beside its VM.

It is opened as `machine.owned_files` opens files in a directory others may
write, and a write that fails costs lines, never the VM.
"""

from __future__ import annotations

import os
from typing import Callable

from machine.owned_files import UnusableFile, open_append

from ..errors import ToolError


class LogFile:
    """The VM's log file (vprobe.out), appended to a line at a time.

    Opened as `machine.owned_files.open_append` opens (no symbolic link, no other
    user's file).  A write that fails (a full disk, /dev/full) must not take
    the VM down: the first failure is told to `report`, the text is dropped
    and its lines are counted; later writes are tried again.  `take_losses`
    says what was lost since it was last asked, and starts counting afresh
    (once per script).
    """

    def __init__(self, path, report: Callable[[str], None]):
        self.path = path
        self.report = report
        self.fd = open_append(path, "the VM's log")
        self.lost_lines = 0
        self.error: str | None = None

    def write(self, text: str) -> None:
        data = memoryview(text.encode("latin-1"))
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError as e:
            self._dropped(bytes(data), e)

    def _dropped(self, data: bytes, error: OSError) -> None:
        self.lost_lines += data.count(b"\n") + (not data.endswith(b"\n"))
        if self.error is None:
            self.error = error.strerror or str(error)
            self.report(f"cannot write the VM's log {self.path}: {self.error}; "
                        f"its lines are dropped (and counted) while writing fails")

    def take_losses(self) -> str | None:
        """A sentence on the lines lost since the last call (None if none were), then start afresh."""
        if not self.lost_lines:
            return None
        count, error = self.lost_lines, self.error
        self.lost_lines, self.error = 0, None
        return f"{count} line{'s' if count != 1 else ''} of the log could not be written to {self.path} ({error})"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_log_file(path, report: Callable[[str], None]) -> LogFile:
    """The VM's log file (vprobe.outFile), or a ToolError saying why it cannot be written."""
    try:
        return LogFile(path, report)
    except UnusableFile as e:
        raise ToolError(str(e)) from None
    except OSError as e:
        raise ToolError(f"cannot write {path}: {e.strerror or e}") from None
