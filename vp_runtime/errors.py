"""Diagnostics and the runtime's exception types.

Every problem the runtime reports about a script carries the same shape the
compiler uses (file, line, column, message, the source line and a caret), so
the command-line tools can print both alike.  Load-time problems are raised as
one exception type, `VPLoadError`; problems that happen while a probe fires are
`VPFault`s, which abort only that firing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnostic:
    """One located message about a script."""

    file: str
    line: int
    col: int
    message: str
    source_line: str = ""
    severity: str = "error"

    def format(self) -> str:
        """`file:line:col: error: message`, then the source line and a caret."""
        head = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"
        if not self.source_line:
            return head
        # Keep tabs in the caret's indentation so it lines up under the column.
        indent = "".join(ch if ch == "\t" else " " for ch in self.source_line[: self.col - 1])
        return f"{head}\n{self.source_line}\n{indent}^"


class VPLoadError(Exception):
    """A script failed to load; `diagnostics` says where and why (errors first)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


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
