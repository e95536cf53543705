"""Diagnostics and the runtime's exception types.

Every problem the runtime reports about a script is a `Diagnostic`, the class
the compiler uses too (file, line, column, message, the source line and a
caret), so the command-line tools print both alike.  Load-time problems are raised as
one exception type, `VPLoadError`; problems that happen while a probe fires are
`VPFault`s, which abort only that firing.
"""

from __future__ import annotations

from vprobes_shared.diagnostics import Diagnostic, DiagnosticsError  # noqa: F401 - the runtime's diagnostics are the compiler's


class VPLoadError(DiagnosticsError):
    """A script failed to load; `diagnostics` says where and why (errors first)."""


class VPFault(Exception):
    """A run-time fault that aborts the current probe firing.

    `where` is the `file:line:col` of the expression that faulted; the runtime
    fills it in while translating, so the machine only ever sees the message.
    """

    def __init__(self, message: str, where: str = ""):
        self.message = message
        self.where = where
        super().__init__(message)


class GuestMemoryFault(VPFault):
    """A guest linear or physical read touched memory that is not mapped."""


class UnknownSymbolFault(VPFault):
    """A guest symbol name did not resolve."""
