"""The compiler pipeline: preprocess, parse, analyse, lower, emit.

    emmett.compile(source, filename, options) -> CompileResult

`compile` never raises: every problem in the input is a located diagnostic,
and an unexpected failure of the compiler itself becomes one located
"internal error" diagnostic (`CompileResult.internal_error` is set).

Locals and recursion: VP has globals and function parameters only.  Locals of
probes and of functions that are not on a call-graph cycle become uniquely
named globals (`f.x`), initialised where they are declared; locals of
recursive functions become extra parameters that every call passes as 0 or
"", so each activation has its own and a recursive call cannot clobber its
caller's locals.  Implicitly declared variables (`_rval = ...` without a
declaration) are globals, as in the reference's Emmett.
"""

import gc
import os
import sys

from . import ctype as T
from .diagnostics import CompileError, CompileOptions, CompileResult, Diagnostic, Files, Reporter

PRELOAD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload")
# The guest preload library: the default guest's (a 64-bit Linux), the only one so far.
PRELOAD = "linux64.emt"

MAX_PROBES = 32


def compile(source, filename="<input>", options=None):  # noqa: A001 - the public API name
    """Compile Emmett `source`; return a CompileResult (never raises for any input)."""
    options = options or CompileOptions()
    limit = sys.getrecursionlimit()
    # The compiler makes many small objects and no garbage worth collecting
    # while it runs; the cycle collector would make large programs quadratic.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    files = Files()
    reporter = Reporter(files)
    try:
        if limit < 20000:
            sys.setrecursionlimit(20000)
        vp = _compile(source, filename, options, files, reporter)
        diagnostics = _ordered(reporter)
        if reporter.error_count:
            return CompileResult(None, diagnostics)
        return CompileResult(vp, diagnostics)
    except RecursionError:
        located = _at_current_construct(reporter, filename, "the program is nested too deeply to compile")
        return CompileResult(None, _ordered(reporter) + [located])
    except Exception as e:  # noqa: BLE001 - the contract: never a traceback
        if os.environ.get("EMMETT_DEBUG"):
            raise
        located = _at_current_construct(reporter, filename, f"internal error: {type(e).__name__}: {e}")
        return CompileResult(None, _ordered(reporter) + [located], internal_error=True)
    finally:
        sys.setrecursionlimit(limit)
        if gc_was_enabled:
            gc.enable()


def _ordered(reporter):
    try:
        return reporter.ordered()
    except Exception:  # noqa: BLE001 - never let reporting itself fail
        return list(reporter.diagnostics)


def _at_current_construct(reporter, filename, message):
    """A diagnostic at the function or probe being compiled when things went wrong (else 1:1)."""
    try:
        if reporter.where:
            return reporter.located(reporter.where, message)
    except Exception:  # noqa: BLE001
        pass
    return Diagnostic(filename, 1, 1, message)


def read_symbols(path, files, reporter):
    """Guest symbols from a /proc/kallsyms-format file: `ADDRESS TYPE NAME [MODULE]`."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError as e:
        fid = files.add(path, "", ((-1, 0),))
        reporter.error((fid, 1, 1), f"cannot read the guest symbol file: {e.strerror or e}")
        return {}
    fid = files.add(path, text, ((-1, 0),))
    symbols = {}
    for n, line in enumerate(text.split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            reporter.error((fid, n, 1), "expected 'ADDRESS TYPE NAME' (the /proc/kallsyms format)")
            continue
        try:
            addr = int(fields[0], 16)
        except ValueError:
            reporter.error((fid, n, 1), f"bad address '{fields[0]}' (hexadecimal expected)")
            continue
        symbols.setdefault(fields[2], addr)
    return symbols


def _compile(source, filename, options, files, reporter):
    from .lexer import TokenStream
    from .grammar import Grammar
    from .parser import parse
    from .preprocess import Preprocessor
    from .sema import Program

    if not isinstance(source, str):
        source = source.decode("utf-8", "surrogateescape") if isinstance(source, (bytes, bytearray)) else str(source)
    symbols = read_symbols(options.symbols_file, files, reporter) if options.symbols_file else None
    if options.memmodel not in T.MEMMODELS:
        fid = files.add(filename, source)
        reporter.error((fid, 1, 1), f"unknown memory model '{options.memmodel}' (one of {', '.join(T.MEMMODELS)})")
        return None
    if not isinstance(options.indent, int) or options.indent < 0:
        fid = files.add(filename, source)
        reporter.error((fid, 1, 1), "the indentation must be a non-negative number of spaces")
        return None

    pre = Preprocessor(files, reporter, options.include_dirs, options.defines)
    preload_chunks = []
    if options.preload:
        path = os.path.join(PRELOAD_DIR, PRELOAD)
        text = options.preload_text
        if text is not None:
            path = "<guest preload>"
        else:
            try:
                with open(path, "rb") as f:
                    text = f.read().decode("utf-8", "surrogateescape")
            except OSError as e:
                fid = files.add(filename, source)
                reporter.error((fid, 1, 1), f"cannot read the guest preload library {path}: {e.strerror or e}")
                return None
        pre.run_file(path, text, os.path.dirname(path) or os.getcwd(), origin=((0, 0),))
        preload_chunks = pre.chunks
        pre.chunks = []
    dirname = os.path.dirname(os.path.abspath(filename)) if not filename.startswith("<") else os.getcwd()
    main_fid = pre.run_file(filename, source, dirname)
    main_chunks = pre.chunks

    typedefs = set()
    externals_pre = []
    if preload_chunks:
        stream = TokenStream(preload_chunks, reporter, typedefs)
        externals_pre = parse(stream, Grammar(reporter, typedefs, stream)) or []
    stream = TokenStream(main_chunks, reporter, typedefs)
    externals_main = parse(stream, Grammar(reporter, typedefs, stream))
    if externals_main is None:
        if not reporter.error_count:
            reporter.error((main_fid, 1, 1), "syntax error")
        return None

    program = Program(reporter, options, symbols)
    skip = program.top_level_names(externals_main)
    program.declare(externals_pre, True, skip)
    program.model = T.MEMMODELS[options.memmodel]
    program.declare(externals_main, False)
    program.resolve_all()
    program.decide_implicit()
    program.infer()
    program.mark_reachable()
    if not program.probes:
        reporter.error((main_fid, 1, 1), "the program has no probe: VP needs at least one, "
                                         "e.g. VMM1Hz { printf(\"hello\\n\"); }")
    return _lower_and_emit(program, options, main_fid)


def _lower_and_emit(program, options, main_fid):
    from .emit import assign_names, auto_aggr_probe, global_def, probe_spec, referenced_syms, render
    from .lower import Lowerer
    from .vp import MAX_NESTING, nesting

    reporter = program.reporter
    for fs in program.functions:
        if fs.recursive and fs.ctx is not None:
            for local in fs.ctx.locals:
                if not local.static:
                    local.hidden = True
            count = len(fs.ctx.params) + sum(1 for s in fs.ctx.locals if s.hidden)
            if count > 32:
                reporter.error(fs.pos, f"recursive function '{fs.name}' has {count} parameters and locals; "
                                       f"at most 32 fit in a VP function (its locals become parameters)")

    lowerer = Lowerer(program)
    emitted_functions = []
    for fs in program.functions:
        if fs.ctx is None or (fs.preload and not fs.reachable):
            continue
        body = lowerer.lower_function(fs)
        if fs.reachable:
            emitted_functions.append((fs, body))
    specs = []
    probe_forms = []
    for probe in program.probes:
        try:
            spec = probe_spec(probe, program)
        except CompileError:
            spec = None
        body = lowerer.lower_probe(probe)
        specs.append(spec)
        probe_forms.append((probe, spec, body))
    total = len(program.probes) + (1 if options.auto_aggr else 0)
    if total > MAX_PROBES:
        where = program.probes[MAX_PROBES].pos if len(program.probes) > MAX_PROBES else (main_fid, 1, 1)
        reporter.error(where, f"too many probes: {total}; VProbes allows at most {MAX_PROBES} per VM"
                              + (" (counting the one -a adds)" if options.auto_aggr else ""))
    if reporter.error_count:
        return None

    # Globals: declared ones of the program (not of an unused preload), and whatever emitted code uses.
    fn_forms = [["defun", fs, None] + body for fs, body in emitted_functions]
    pr_forms = [["vprobe", spec] + body for probe, spec, body in probe_forms]
    used = referenced_syms(fn_forms + pr_forms)
    aggregates = []
    globals_ = []
    for sym in program.global_order:
        if sym.kind not in ("var", "aggr", "bag"):
            continue
        if sym.preload and id(sym) not in used:
            continue
        globals_.append(sym)
    declared = {id(s) for s in globals_}
    for sym in program.implicit.values():
        if sym.kind == "var" and id(sym) in used and id(sym) not in declared:
            globals_.append(sym)
    for sym in globals_:
        if sym.kind == "aggr":
            aggregates.append(sym)
    ctxs = [(fs.ctx, fs.name) for fs, _ in emitted_functions]
    for probe, spec, _ in probe_forms:
        ctxs.append((probe.ctx, _probe_prefix(spec)))
    local_globals = []
    for ctx, _ in ctxs:
        for local in ctx.locals:
            if not local.hidden and id(local) in used:
                local_globals.append(local)
            elif not local.hidden and local.static:
                local_globals.append(local)
    ctx_locals = [(ctx, prefix) for ctx, prefix in ctxs]
    for ctx, _ in ctx_locals:
        ctx.locals = [s for s in ctx.locals if s.hidden or id(s) in used or s.static]
    functions = [fs for fs, _ in emitted_functions]
    assign_names(program, globals_, functions, ctx_locals)

    defs = [global_def(s) for s in globals_]
    defs += [global_def(s) for s in local_globals]
    if program.temp is not None and id(program.temp) in used:
        defs.append(["defstring", program.temp])
    for form, (fs, _) in zip(fn_forms, emitted_functions):
        form[2] = [s for s in fs.ctx.params + [x for x in fs.ctx.locals if x.hidden]]
    if options.auto_aggr and aggregates:
        pr_forms.append(auto_aggr_probe(aggregates))
    for form, (fs, _) in zip(fn_forms, emitted_functions):
        if nesting(form) > MAX_NESTING:
            reporter.error(fs.pos, f"the VP for '{fs.name}' nests more than {MAX_NESTING} levels deep, "
                                   f"more than VP allows: move some of it into functions")
    for form, (probe, _, _) in zip(pr_forms, probe_forms):
        if nesting(form) > MAX_NESTING:
            reporter.error(probe.pos, f"the VP for this probe nests more than {MAX_NESTING} levels deep, "
                                      f"more than VP allows: move some of it into functions")
    if reporter.error_count:
        return None
    return render(defs, fn_forms, pr_forms, options.indent)


def _probe_prefix(spec):
    text = spec or "probe"
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)


__all__ = ["compile", "CompileOptions", "CompileResult", "Diagnostic"]
