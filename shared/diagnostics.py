"""One located message about a file: the shape every diagnostic of the toolchain has.

`format()` gives `file:line:col: severity: message`, then the source line and,
under it, a caret at the column — or, when the diagnostic has an `end` on
the same line, the range underlined from the column up to the end (`^~~~`).
`end` is the (line, column) just after the range; a range that runs past its
first line is underlined to that line's end.  Columns count from 1; a tab in
the source line stays a tab in the underline so the marks line up.
"""

from .script_text import format_diagnostics


class Diagnostic:
    __slots__ = ("file", "line", "col", "message", "source_line", "severity", "end")

    def __init__(self, file, line, col, message, source_line="", severity="error", end=None):
        self.file = file
        self.line = line
        self.col = col
        self.message = message
        self.source_line = source_line
        self.severity = severity
        self.end = end  # (line, col) just after the range, or None for a point

    def format(self) -> str:
        head = f"{self.file}:{self.line}:{self.col}: {self.severity}: {self.message}"
        if not self.source_line:
            return head
        text = self.source_line
        start = max(self.col - 1, 0)
        stop = start + 1
        if self.end is not None:
            end_line, end_col = self.end
            stop = max(stop, len(text) if end_line > self.line else end_col - 1)
        marks = "^" + "".join("\t" if ch == "\t" else "~" for ch in text[start + 1:stop])
        indent = "".join(ch if ch == "\t" else " " for ch in text[:start])
        return f"{head}\n{text}\n{indent}{marks}"

    def _key(self):
        return (self.file, self.line, self.col, self.message, self.source_line, self.severity, self.end)

    def __eq__(self, other):
        return isinstance(other, Diagnostic) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        end = f", end={self.end!r}" if self.end is not None else ""
        return (f"Diagnostic({self.file!r}, {self.line}, {self.col}, {self.message!r}, "
                f"severity={self.severity!r}{end})")


class DiagnosticsError(Exception):
    """A file failed to load or parse; `diagnostics` says where and why (errors first).

    The runtime's `VPLoadError` and the machine's `VmxError` are this, so the
    tools report a script and a configuration file alike: at most
    `script_text.MAX_SHOWN_DIAGNOSTICS` diagnostics, then how many more."""

    def __init__(self, diagnostics):
        self.diagnostics = list(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        return format_diagnostics(self.diagnostics)
