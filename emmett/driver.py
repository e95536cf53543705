"""The compiler pipeline: preprocess, parse, analyse, generate.

    emmett.compile(source, filename, options) -> CompileResult

`compile` never raises: every problem in the input is a located diagnostic,
and an unexpected failure of the compiler itself becomes one located
"internal error" diagnostic (`CompileResult.internal_error` is set).  A
program whose text does not read (a syntax error, a bad #include, a file that
is not text) is not analysed: the first error reported is the real one.

The stages: `preprocess` (chunks of code lines with their macros), `lexer`
and `parser` (the syntax tree of `syntax`), `sema.Program.analyse` (the
analysis passes, listed in `sema`), `output.generate` (lowering and VP text).
The guest preload library goes through the same stages before the program,
and a program's own definitions replace the library's.
"""

import gc
import os
import sys

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileOptions, CompileResult, Diagnostic, Files, Reporter

PRELOAD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload")
# The guest preload library: the default guest's (a 64-bit Linux), the only one so far.
PRELOAD = "linux64.emt"
# Its name in diagnostics, fault lines and the source map: its place in the package,
# the same wherever the package is installed.
PRELOAD_NAME = f"emmett/preload/{PRELOAD}"


def compile(source, filename="<input>", options=None):  # noqa: A001 - the public API name
    """Compile Emmett `source`; return a CompileResult (never raises for any input).

    `source` is the text of the file `filename` (str or bytes), or a sequence of
    (file name, text) pairs: several files compiled as one program, as if
    concatenated, each keeping its own name and lines in diagnostics and in the
    source map (`filename` is then unused).
    """
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
        output = _compile(source, filename, options, files, reporter)
        diagnostics = _ordered(reporter)
        if reporter.error_count or output is None:
            return CompileResult(None, diagnostics)
        vp, annotations = output
        return CompileResult(vp, diagnostics, annotations=annotations)
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
    """Guest symbols from a symbol file in /proc/kallsyms or WinDbg `x` format (the spec's
    `symbol_files`); each line in neither format is an error at that line."""
    from vp_runtime.spec import symbol_files

    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError as e:
        fid = files.add(path, "", ((-1, 0),))
        reporter.error((fid, 1, 1), f"cannot read the guest symbol file: {e.strerror or e}")
        return {}
    fid = files.add(path, text, ((-1, 0),))
    parsed = symbol_files.parse(text)
    for n, message in parsed.problems:
        reporter.error((fid, n, 1), message)
    return parsed.names()


def analyse(source, filename="<input>", options=None):
    """The analysed `sema.Program` of `source`, its diagnostics in `.reporter` (None if it does not parse).

    The front half of `compile`, for tools and tests that look at the analysis.
    """
    files = Files()
    front = _front_end(source, filename, options or CompileOptions(), files, Reporter(files))
    return front[0] if front is not None else None


def _text(source):
    if isinstance(source, str):
        return source
    if isinstance(source, (bytes, bytearray)):
        return source.decode("utf-8", "surrogateescape")
    return str(source)


def _source_files(source, filename):
    """[(file name, text)] of what `compile` was given: one file, or several."""
    if isinstance(source, (list, tuple)):
        return [(str(name), _text(text)) for name, text in source] or [(filename, "")]
    return [(filename, _text(source))]


def _compile(source, filename, options, files, reporter):
    from .output import generate

    front = _front_end(source, filename, options, files, reporter)
    if front is None:
        return None
    program, main_fid = front
    _stage(options, "generating VP")
    return generate(program, options, main_fid)


def _stage(options, name):
    if options.progress is not None:
        options.progress(name)


def _front_end(source, filename, options, files, reporter):
    """(the analysed Program, the main file's id), or None when there is nothing to analyse."""
    from .lexer import TokenStream
    from .grammar import Grammar
    from .parser import parse
    from .preprocess import Preprocessor
    from .reach import library_functions
    from .sema import Program

    sources = _source_files(source, filename)
    filename, source = sources[0]
    symbols = read_symbols(options.symbols_file, files, reporter) if options.symbols_file else None
    if options.memmodel not in T.MEMMODELS:
        fid = files.add(filename, source)
        reporter.error((fid, 1, 1), f"unknown memory model '{options.memmodel}' (one of {', '.join(T.MEMMODELS)})")
        return None
    if not isinstance(options.indent, int) or options.indent < 0:
        fid = files.add(filename, source)
        reporter.error((fid, 1, 1), "the indentation must be a non-negative number of spaces")
        return None

    _stage(options, "preprocessing")
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
        name = path if options.preload_text is not None else PRELOAD_NAME
        pre.run_file(name, text, os.path.dirname(path) or os.getcwd(), origin=((0, 0),))
        preload_chunks = pre.chunks
        pre.chunks = []
    main_fid = None
    for i, (name, text) in enumerate(sources):
        dirname = os.path.dirname(os.path.abspath(name)) if not name.startswith("<") else os.getcwd()
        # Several files are read in order: each one's positions after the previous one's.
        fid = pre.run_file(name, text, dirname, origin=((i + 1, 0),) if len(sources) > 1 else ())
        main_fid = fid if main_fid is None else main_fid
    main_chunks = pre.chunks

    _stage(options, "parsing")
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
    if reporter.error_count:
        # A program that does not read (a syntax error, a bad #include...) is not
        # analysed: what analysis would say about it ("'f' must end with 'return
        # VALUE;'", "unknown name") is mostly a consequence of the text it could not read.
        return None

    externals_main, symbol_file = _read_headers(externals_main, reporter)
    if symbol_file is not None:
        path = _beside(files, symbol_file)
        if symbols is None and not os.path.isfile(path):
            reporter.error(symbol_file.pos, f"cannot read the guest symbol file '{path}' this line names")
        elif symbols is None:
            symbols = read_symbols(path, files, reporter)
        else:
            reporter.warning(symbol_file.pos, "@SYMBOL_FILE is ignored: the guest symbols given to the "
                                              "compiler (-s, or the VM's) are used")

    _stage(options, "analysing")
    program = Program(reporter, options, symbols)
    program.analyse(externals_pre, externals_main)
    if not program.probes and library_functions(program):
        reporter.warning((main_fid, 1, 1), "the program has no probe: it is compiled as a library, whose "
                                           "functions and variables a script loaded with it uses")
    elif not program.probes:
        reporter.error((main_fid, 1, 1), "the program has no probe: VP needs at least one, "
                                         "e.g. VMM1Hz { printf(\"hello\\n\"); }")
    return program, main_fid


def _read_headers(externals, reporter):
    """The toolkit's header lines (`@NAME = VALUE`) taken out of a program's top level: an
    @MEMORY_MODEL line is a `memmodel` declaration where it stands; the last @SYMBOL_FILE line
    (returned) names the guest symbols; ESX's target lines are refused."""
    out, symbol_file = [], None
    for node in externals:
        if type(node) is not S.Header:
            out.append(node)
            continue
        node.value = node.value.rstrip(";").strip().strip('"')
        if node.name == "MEMORY_MODEL":
            out.append(S.MemModel(node.pos, node.value, node.pos))
        elif node.name == "SYMBOL_FILE":
            symbol_file = node
        elif node.name == "VMK" or node.name[:2] == "VM" and node.name[2:].isdigit():
            reporter.error(node.pos, f"'@{node.name}' is ESX only: it starts the part of a script for "
                                     f"{'the VMkernel' if node.name == 'VMK' else 'one of the VMs'} of an ESX host")
        else:
            reporter.error(node.pos, f"unknown header line '@{node.name}' "
                                     "(the header lines are @MEMORY_MODEL = MODEL and @SYMBOL_FILE = PATH)")
    return out, symbol_file


def _beside(files, header):
    """The path an @SYMBOL_FILE line names: a relative one is beside the file that names it."""
    path = os.path.expanduser(header.value)
    name = files.names[header.pos[0]]
    if os.path.isabs(path) or name.startswith("<"):
        return path
    return os.path.join(os.path.dirname(name), path)


__all__ = ["compile", "CompileOptions", "CompileResult", "Diagnostic"]
