"""Diagnostics, the file table they point into, and the compiler's public result types."""

from vprobes_shared.diagnostics import Diagnostic
from vprobes_shared.script_text import format_diagnostics

from .syntax import source_range


class CompileOptions:
    """How to compile: include path, predefined macros, guest symbols, memory model, output shape."""

    __slots__ = ("include_dirs", "defines", "symbols_file", "memmodel", "auto_aggr", "indent", "preload",
                 "preload_text", "max_loop", "progress")

    def __init__(self, include_dirs=(), defines=None, symbols_file=None, memmodel="guest64",
                 auto_aggr=False, indent=2, preload=True, preload_text=None, max_loop=64, progress=None):
        self.include_dirs = tuple(include_dirs)
        self.defines = dict(defines or {})
        self.symbols_file = symbols_file
        self.memmodel = memmodel
        self.auto_aggr = auto_aggr
        self.indent = indent
        self.preload = preload
        # The guest preload library's source, for a guest other than the default
        # (e.g. generated from a real kernel's BTF); None means preload/linux64.emt.
        self.preload_text = preload_text
        # The most iterations a loop may run (`loops.py`: each is a copy of its body in the VP).
        self.max_loop = max_loop
        # Called with the name of each stage the compile reaches ("parsing", "analysing"...),
        # for a progress display (`progress.py`); None: not told.
        self.progress = progress

    def __repr__(self):
        fields = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"CompileOptions({fields})"


class CompileResult:
    """The VP text (None when there are errors) and every diagnostic, in source order.

    The VP ends with its annotations (`annotations.py`); `annotations` holds the
    same source map and aggregate records as data.
    """

    __slots__ = ("vp", "diagnostics", "internal_error", "annotations")

    def __init__(self, vp, diagnostics, internal_error=False, annotations=None):
        self.vp = vp
        self.diagnostics = diagnostics
        self.internal_error = internal_error
        self.annotations = annotations

    @property
    def ok(self):
        return self.vp is not None and not any(d.severity == "error" for d in self.diagnostics)

    @property
    def errors(self):
        return [d for d in self.diagnostics if d.severity == "error"]

    def format_diagnostics(self):
        """The diagnostics as text: at most `vprobes_shared.script_text.MAX_SHOWN_DIAGNOSTICS`, then how many more."""
        return format_diagnostics(self.diagnostics)

    def __repr__(self):
        return f"CompileResult(ok={self.ok}, diagnostics={self.diagnostics!r})"


class Files:
    """The files of one compilation: id -> (name, lines), for locating diagnostics."""

    __slots__ = ("names", "texts", "origins", "_lines")

    def __init__(self):
        self.names = []
        self.texts = []
        self.origins = []  # where each file was included from: a tuple of (line, col), outermost first
        self._lines = {}

    def add(self, name, text, origin=()):
        self.names.append(name)
        self.texts.append(text)
        self.origins.append(origin)
        return len(self.names) - 1

    def reading_order(self, fid, line, col):
        """A key that sorts positions in the order the compiler reads them (includes in place)."""
        origin = self.origins[fid] if 0 <= fid < len(self.origins) else ()
        return origin + ((line, col),)

    def token_end(self, pos):
        """(line, column just past the token that starts at `pos`)."""
        from .lexer import token_length
        fid, line, col = pos
        return line, col + token_length(self.line_text(fid, line), col)

    def line_text(self, fid, line):
        lines = self._lines.get(fid)
        if lines is None:
            lines = self._lines[fid] = self.texts[fid].split("\n")
        if 1 <= line <= len(lines):
            return lines[line - 1].rstrip("\r")
        return ""


class CompileError(Exception):
    """Abandons the current construct; its diagnostic is already recorded."""


class Reporter:
    """Collects the diagnostics of one compilation (each distinct one once)."""

    def __init__(self, files):
        self.files = files
        self.diagnostics = []
        self.keys = []
        self.where = None  # the construct being compiled, for locating an internal error
        self.error_count = 0
        self._seen = set()

    def error(self, at, message):
        """Record an error `at` a position (file id, line, column), or about an expression node:
        then the diagnostic covers the node's whole range (from its first token, underlined to its last)."""
        self._record(at, message, "error")

    def warning(self, at, message):
        self._record(at, message, "warning")

    def fail(self, at, message):
        """Report an error and abandon the current construct."""
        self.error(at, message)
        raise CompileError(message)

    def _record(self, at, message, severity):
        end = None
        if type(at) is not tuple:  # a node
            fid, line, col, end_line, end_col = source_range(at, self.files)
            at, end = (fid, line, col), (end_line, end_col)
        fid, line, col = at
        key = (fid, line, col, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.diagnostics.append(self.located(at, message, severity, end))
        self.keys.append(self.files.reading_order(fid, line, col))
        if severity == "error":
            self.error_count += 1

    def ordered(self):
        """The diagnostics in reading order (an included file's where it is included)."""
        order = sorted(range(len(self.diagnostics)), key=lambda i: self.keys[i])
        return [self.diagnostics[i] for i in order]

    def located(self, pos, message, severity="error", end=None):
        """A Diagnostic at `pos` (a position in the file table), up to `end` (line, column) if given,
        without recording it."""
        fid, line, col = pos
        name = self.files.names[fid] if 0 <= fid < len(self.files.names) else "<input>"
        return Diagnostic(name, line, col, message, self.files.line_text(fid, line), severity, end)
