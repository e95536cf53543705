"""A script's sources: reading them, compiling Emmett, concatenating VP, loading.

Several VP files load as one script: their texts are concatenated (each
starting on a new line) under one internal name, and `SourceMap` maps a line
of the concatenation back to its file and line, in load diagnostics and in the
run-time fault lines of the log.  The guest's VP library is one more source
when the script calls a helper it does not define (`guest_library`): the
machine's own library (`machine_library`), under the name the machine gives
it, so that load diagnostics and fault lines inside it point at that name.

Emmett goes through the compiler (`emmett.compile`, imported only when an
Emmett script is given) with the guest's preload (the VM's own, or the
compiler's default) and the guest's symbols; several Emmett files compile as
one program, each keeping its name.  The VP it makes carries a source map
(`vp_runtime/annotations.py`), so load diagnostics and fault lines of the
compiled program name the Emmett files' positions.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vp_runtime import VPLoadError, load
from vp_runtime.reader import as_log_text, for_display
from vprobes_shared.script_text import format_diagnostics

from ..errors import LoadFailed, ToolError
from .guest_library import defined_and_called, library_needed

CONCAT_NAME = "<vprobe sources>"
_LOGGED_NAME = as_log_text(CONCAT_NAME)
_FAULT_AT = re.compile(r"^(vprobe error: probe \S+ aborted at )" + re.escape(_LOGGED_NAME) + r":(\d+):", re.M)
_LINE_REF = re.compile(r"\bline (\d+)\b")


@dataclass(frozen=True)
class SourceFile:
    name: str  # as the user named it (a path, "<stdin>", "<command line>")
    text: bytes


class SourceMap:
    """Files concatenated into one text, and the way back from a line to its file."""

    def __init__(self, files: list[SourceFile]):
        self.files = list(files)
        parts: list[bytes] = []
        self.starts: list[int] = []  # first line of each file in the concatenation
        line = 1
        for f in self.files:
            text = f.text if not f.text or f.text.endswith(b"\n") else f.text + b"\n"
            self.starts.append(line)
            parts.append(text)
            line += text.count(b"\n")
        self.text = b"".join(parts)

    def locate(self, line: int) -> tuple[str, int] | None:
        """(file name, line in that file) of a line of the concatenation."""
        for i in range(len(self.files) - 1, -1, -1):
            if line >= self.starts[i]:
                return self.files[i].name, line - self.starts[i] + 1
        return None

    def map_diagnostic(self, d):
        """A diagnostic about the concatenation, about the file it points into instead."""
        if d.file != CONCAT_NAME:
            return d
        where = self.locate(d.line)
        if where is None:
            return d
        name, line = where

        def mention(m: re.Match) -> str:
            other = self.locate(int(m.group(1)))
            if other is None:
                return m.group(0)
            return f"line {other[1]}" if other[0] == name else f"{other[0]} line {other[1]}"

        message = _LINE_REF.sub(mention, d.message)
        return type(d)(name, line, d.col, message, d.source_line, d.severity)

    def map_where(self, where: str) -> str:
        """A runtime location, CONCAT:LINE:COL, as FILE:LINE:COL in the user's files."""
        prefix = f"{as_log_text(CONCAT_NAME)}:"
        if not where.startswith(prefix):
            return where
        line, _, col = where[len(prefix):].partition(":")
        located = self.locate(int(line)) if line.isdigit() else None
        return where if located is None else f"{located[0]}:{located[1]}:{col}"

    def map_log(self, text: str) -> str:
        """Log text with fault locations in the concatenation mapped to their files."""
        if _LOGGED_NAME not in text:
            return text

        def fault(m: re.Match) -> str:
            where = self.locate(int(m.group(2)))
            if where is None:
                return m.group(0)
            return f"{m.group(1)}{as_log_text(where[0])}:{where[1]}:"
        return _FAULT_AT.sub(fault, text)


def read_sources(paths: list[str]) -> list[SourceFile]:
    files = []
    for path in paths:
        try:
            files.append(SourceFile(path, Path(path).read_bytes()))
        except OSError as e:
            raise ToolError(f"cannot read {path}: {e.strerror or e}") from None
    return files


def is_emmett(name: str) -> bool:
    return name.endswith(".emt")


Library = SourceFile | Callable[[], SourceFile] | None


def machine_library(machine) -> SourceFile:
    """A machine's guest VP library (curpid, curtid, curppid, curprocname), under the machine's name for it."""
    return SourceFile(machine.guest_library_name, machine.guest_library_vp().encode("utf-8", "surrogateescape"))


def vp_program(files: list[SourceFile], *, library: Library = None) -> SourceMap:
    """The VP files as one program, followed by the guest library when they call a helper they do not define.

    `library` is the guest's library (a SourceFile, or a function that makes
    one: it is made only when it is needed); None adds no library.
    """
    program = SourceMap(files)
    if library is not None and library_needed(program.text):
        if callable(library):
            library = library()
        program = SourceMap(files + [library])
    return program


def load_program(program: SourceMap, machine, sink: Callable[[str], None], *,
                 aggregate_clock: Callable[[], int] | None = None):
    """Load `program` for `machine`, its log to `sink`; returns (Script, warnings as text).

    Raises LoadFailed with the diagnostics, located in the user's files.
    `aggregate_clock` stamps aggregate updates and keeps run totals (see
    `vp_runtime.load`), for results merged across VMs.
    """
    def mapped_sink(text: str) -> None:
        sink(program.map_log(text))

    try:
        script = load(program.text, machine.load_config, backend=machine, filename=CONCAT_NAME,
                      log_sink=mapped_sink, aggregate_clock=aggregate_clock)
    except VPLoadError as e:
        raise LoadFailed(format_diagnostics([program.map_diagnostic(d) for d in e.diagnostics])) from None
    return script, [program.map_diagnostic(w).format() for w in script.warnings]


def cost_rows(program: SourceMap, script) -> list[list[str]]:
    """Each probe of `script` (loaded from `program`): [probe point, FILE:LINE:COL in the user's
    files, the most VP operations a firing executes (vp_runtime.cost)]."""
    rows = []
    for cost in script.costs:
        at = program.map_diagnostic(script.source.diagnostic(*cost.pos, ""))
        rows.append([for_display(cost.probe), f"{at.file}:{at.line}:{at.col}", cost.describe()])
    return rows


def probe_summary(program: SourceMap, script) -> list[dict]:
    """Each probe of `script` as a run's summary shows it: its point, where it is in the user's
    files, its bound (as `cost_rows`) and how often it has fired."""
    return [{"probe": probe, "at": at, "bound": bound, "firings": fired}
            for (probe, at, bound), fired in zip(cost_rows(program, script), script.firings)]


# ---- Emmett -----------------------------------------------------------------------------------

def emmett_compiler():
    """`emmett.compile` and `emmett.CompileOptions`, or None while the compiler is not there."""
    try:
        import emmett
    except ImportError:
        return None
    compile_ = getattr(emmett, "compile", None)
    options = getattr(emmett, "CompileOptions", None)
    if compile_ is None or options is None:
        return None
    return compile_, options


def compile_emmett(files: list[SourceFile], *, symbols_text: str | None = None, symbols_file: str | None = None,
                   auto_aggr: bool = False, preload_text: str | None = None,
                   max_loop: int | None = None, progress_to=None) -> tuple[bytes, list[str]]:
    """Compile Emmett sources to VP; returns (VP text, warnings as text).  Raises LoadFailed.

    The guest's symbols come from `symbols_file`, or `symbols_text` (written to
    a temporary file for the compiler).  `preload_text` is the guest's Emmett
    preload (the VM's `guest_preload_emmett()`); None keeps the compiler's default, as
    for `max_loop` (the most iterations of a loop, `emmettc --max-loop`).
    A long compile shows its progress on `progress_to` (vprobe's stderr) if that
    is a terminal (`emmett.progress`).
    """
    compiler = emmett_compiler()
    if compiler is None:
        raise ToolError("Emmett scripts need the Emmett compiler (the emmett package), which is not available")
    compile_, Options = compiler
    include_dirs = list(dict.fromkeys(os.path.dirname(os.path.abspath(f.name)) for f in files
                                      if not f.name.startswith("<")))
    sources = [(f.name, f.text.decode("utf-8", "surrogateescape")) for f in files]
    with tempfile.TemporaryDirectory(prefix="vprobe-") as scratch:
        if symbols_file is None and symbols_text is not None:
            symbols_file = os.path.join(scratch, "kallsyms")
            Path(symbols_file).write_text(symbols_text, encoding="utf-8")
        given = {} if preload_text is None else {"preload_text": preload_text}
        if max_loop is not None:
            given["max_loop"] = max_loop
        from emmett.progress import CompileProgress

        try:
            with CompileProgress(files[0].name, progress_to, tool="vprobe") as progress:
                options = Options(include_dirs=include_dirs, symbols_file=symbols_file, auto_aggr=auto_aggr,
                                  progress=progress.stage, **given)
                result = compile_(sources, options=options)
        except Exception as e:  # the compiler promises never to raise; never show a traceback anyway
            raise ToolError(f"internal error in the Emmett compiler: {type(e).__name__}: {e}") from None
    if not result.ok:
        raise LoadFailed(result.format_diagnostics() or f"{files[0].name}: the Emmett compiler failed")
    warnings = [d.format() for d in result.diagnostics]
    vp = result.vp
    return (vp.encode("utf-8", "surrogateescape") if isinstance(vp, str) else bytes(vp)), warnings


def compiled_name(files: list[SourceFile]) -> str:
    """The name compiled VP goes by in diagnostics and fault lines."""
    return f"<{' '.join(f.name for f in files)} compiled to VP>"


def needs_auto_aggr(vp: bytes) -> bool:
    """Whether a VP program declares aggregates but never logs them (`-a` then adds a probe that does)."""
    _, called = defined_and_called(vp)
    return "defaggr" in called and "logaggr" not in called

