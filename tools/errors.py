"""The one exception the commands turn into a plain message on stderr and an exit status."""

from __future__ import annotations


class ToolError(Exception):
    """A problem to report to the user as `PROGRAM: message` (never a traceback)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.message = message
        self.status = status


class LoadFailed(ToolError):
    """A script did not compile or load; `text` holds its located diagnostics."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def machine_failure(error: BaseException) -> str | None:
    """The message of a VM's failure (QEMU gone, its gdbstub silent, a kernel image without
    symbols or BTF ...), or None when `error` is something else."""
    from machine.errors import MachineError

    if isinstance(error, MachineError):
        return str(error) or type(error).__name__
    return None
