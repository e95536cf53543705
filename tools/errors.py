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


# A real VM's failures (QEMU gone, its gdbstub silent, a kernel image without
# symbols or BTF ...): what the user must hear, plainly.  The classes are looked
# up among the modules already imported, so that nothing here imports the QEMU
# backend: an exception of a module never imported cannot be one of them.
_MACHINE_FAILURES = (
    ("machine.qemu.machine", "QemuError"),
    ("machine.qemu.kimage", "KernelImageError"),
    ("machine.qemu.btf", "BTFError"),
    ("machine.qemu.rsp", "RSPError"),
)


def machine_failure(error: BaseException) -> str | None:
    """The message of a real VM's failure, or None when `error` is something else."""
    import sys

    for module_name, class_name in _MACHINE_FAILURES:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if cls is not None and isinstance(error, cls):
            return str(error) or type(error).__name__
    return None
