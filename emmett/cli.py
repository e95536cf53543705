"""`emmettc`: compile an Emmett program to VP.

    emmettc file.emt [-o out.vp]      # VP on stdout without -o
    emmettc -c 'VMM1Hz { printf("hi\\n"); }'
    options: -I DIR, -D NAME[=VALUE], -s SYMFILE, -m MEMMODEL, -a, -i N, --no-preload

Diagnostics go to stderr as `file:line:col: error: message`, the source line
and a caret.  Exit status: 0 compiled, 1 errors in the input (or bad usage),
2 an internal error of the compiler.  No traceback ever reaches the user.

The start-up path is kept lean (a compile of a small file should cost little
more than starting Python): the options are parsed by hand, and the compiler
itself is imported only once they are known.
"""

import os
import sys

USAGE = """\
usage: emmettc [options] [FILE.emt | -c CODE]

Compile an Emmett program to VP (standard input when no FILE or FILE is '-').

options:
  -o OUT           write the VP to OUT (default: standard output)
  -c CODE          compile CODE given on the command line
  -I DIR           search DIR for #include files (repeatable)
  -D NAME[=VALUE]  define a preprocessor macro (VALUE defaults to 1; repeatable)
  -s SYMFILE       guest symbols in /proc/kallsyms format (for &symbol, extern, probe names)
  -m MEMMODEL      guest64 (default), guest32, guest16, guestphys, vmw64 or vmw32
  -a               add a 1 Hz probe that logs and clears every aggregate (on VCPU 0)
  -i N             indent the VP by N spaces (default 2)
  --no-preload     do not include the guest preload library (curpid(), curprocname()...)
  -h, --help       show this help

Exit status: 0 compiled, 1 errors in the program or bad usage, 2 internal error.
"""

_WITH_VALUE = {"-o": "output", "-c": "code", "-I": "include", "-D": "define", "-s": "symbols", "-m": "memmodel",
               "-i": "indent"}


class UsageError(Exception):
    pass


def parse_args(argv):
    opts = {"output": None, "code": None, "include": [], "define": [], "symbols": None, "memmodel": "guest64",
            "indent": "2", "auto_aggr": False, "preload": True, "file": None, "help": False}
    i = 0
    rest_are_files = False
    while i < len(argv):
        arg = argv[i]
        i += 1
        if rest_are_files or arg == "-" or not arg.startswith("-"):
            if opts["file"] is not None:
                raise UsageError(f"more than one input file: {opts['file']} and {arg}")
            opts["file"] = arg
        elif arg == "--":
            rest_are_files = True
        elif arg in ("-h", "--help"):
            opts["help"] = True
        elif arg == "-a":
            opts["auto_aggr"] = True
        elif arg == "--no-preload":
            opts["preload"] = False
        elif arg[:2] in _WITH_VALUE:
            key = _WITH_VALUE[arg[:2]]
            if len(arg) > 2:
                value = arg[2:]
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                raise UsageError(f"option {arg} needs a value")
            if key in ("include", "define"):
                opts[key].append(value)
            else:
                opts[key] = value
        else:
            raise UsageError(f"unknown option {arg}")
    return opts


def _error(message):
    print(f"emmettc: error: {message}", file=sys.stderr)
    return 1


def _import_compiler():
    """Import the compiler, with its bytecode cached outside the source tree if Python may not write it.

    With PYTHONDONTWRITEBYTECODE set, every run would compile the compiler's
    own modules from source, which costs more than all the rest of a small
    compilation.  Then (unless EMMETT_NO_BYTECODE_CACHE is set) the bytecode
    goes under the user cache directory, next to the parser tables, through
    Python's own PYTHONPYCACHEPREFIX mechanism: never into the source tree.
    """
    saved = (sys.dont_write_bytecode, sys.pycache_prefix)
    if sys.dont_write_bytecode and not sys.pycache_prefix and not os.environ.get("EMMETT_NO_BYTECODE_CACHE"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        sys.pycache_prefix = os.path.join(base, "vprobes-toolchain", "pycache")
        sys.dont_write_bytecode = False
    try:
        from . import driver
        # Everything a compilation uses, imported here so its bytecode is cached too.
        from . import emit, grammar, lexer, lower, parser, preprocess, sema, vp  # noqa: F401
    finally:
        sys.dont_write_bytecode, sys.pycache_prefix = saved
    return driver


def run(argv):
    try:
        opts = parse_args(argv)
    except UsageError as e:
        print(USAGE.splitlines()[0], file=sys.stderr)
        return _error(e)
    if opts["help"]:
        sys.stdout.write(USAGE)
        return 0
    if opts["code"] is not None and opts["file"] is not None:
        return _error("give either a file or -c CODE, not both")
    try:
        indent = int(opts["indent"])
    except ValueError:
        indent = -1
    if indent < 0:
        return _error("-i needs a non-negative number of spaces")
    defines = {}
    for d in opts["define"]:
        name, eq, value = d.partition("=")
        if not name.isidentifier():
            return _error(f"bad -D option '{d}': expected NAME or NAME=VALUE")
        defines[name] = value if eq else "1"
    if opts["code"] is not None:
        source, filename = opts["code"], "<command line>"
    elif opts["file"] is None or opts["file"] == "-":
        source, filename = sys.stdin.buffer.read().decode("utf-8", "surrogateescape"), "<stdin>"
    else:
        try:
            with open(opts["file"], "rb") as f:
                source = f.read().decode("utf-8", "surrogateescape")
        except OSError as e:
            return _error(f"cannot read {opts['file']}: {e.strerror or e}")
        filename = opts["file"]

    driver = _import_compiler()
    options = driver.CompileOptions(include_dirs=opts["include"], defines=defines, symbols_file=opts["symbols"],
                                    memmodel=opts["memmodel"], auto_aggr=opts["auto_aggr"], indent=indent,
                                    preload=opts["preload"])
    result = driver.compile(source, filename, options)
    if result.diagnostics:
        text = "\n".join(d.format() for d in result.diagnostics)
        sys.stderr.write(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") + "\n")
    if result.internal_error:
        return 2
    if not result.ok:
        return 1
    data = result.vp.encode("utf-8", "surrogateescape")
    if opts["output"]:
        try:
            with open(opts["output"], "wb") as f:
                f.write(data)
        except OSError as e:
            return _error(f"cannot write {opts['output']}: {e.strerror or e}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def main(argv=None):
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        code = 130
    except BaseException as e:  # noqa: BLE001 - never a traceback
        if isinstance(e, SystemExit):
            raise
        print(f"emmettc: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
