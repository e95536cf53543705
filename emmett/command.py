"""The `emmettc` command (started by `cli.main`): compile an Emmett program to VP.

    emmettc file.emt [-o out.vp]      # VP on stdout without -o (or with -o -)
    emmettc -c 'VMM1Hz { printf("hi\\n"); }'
    emmettc lib.emt main.emt -c '...' # several inputs: one program, read in the order given
    options: -I DIR, -D NAME[=VALUE], -s SYMFILE, -m MEMMODEL, -a, -i N, --no-preload, --version

Diagnostics go to stderr as `file:line:col: error: message`, the source line
and a caret.  Exit status: 0 compiled, 1 errors in the input (or bad usage),
2 an internal error of the compiler.  No traceback ever reaches the user.

The command line is parsed by click (so completion works as for the other
commands: `_EMMETTC_COMPLETE=bash_source emmettc`).  The start-up path is
kept lean (a compile of a small file should cost little more than starting
Python): the compiler itself is imported only once the options are known.
"""

import gc
import sys

import click

SYNOPSIS = "emmettc [options] [FILE.emt | -c CODE]..."

HELP = """Compile an Emmett program to VP (standard input when no FILE or FILE is '-').
Several FILEs and -c CODEs are one program, read in the order given.

Emmett is a small C with probes: where to look in a VM (a guest function, a
fault, a timer, a disk I/O) and what to do there (read registers and guest
memory, print, count in aggregates, draw histograms).  The language is
described in docs/emmett.md; cookbook/ has runnable programs.  vprobe
compiles and runs an .emt file in one step; emmettc writes the VP, for vmrun
vprobeLoadFile or to read what a program becomes.  The VP ends with ;@
comment lines that map it back to the Emmett source, so messages about it
name the .emt lines whoever loads it later.

Messages go to standard error as FILE:LINE:COL: error: MESSAGE, with the
source line and a caret: the first error first (a syntax error without its
consequences), at most 20, then how many more.  On a terminal, a compile that
takes over a second shows its progress there."""

EPILOG = """\b
Examples:
  emmettc cookbook/vptop.emt -o vptop.vp
      compile a file; then vmrun vprobeLoadFile VM.vmx vptop.vp loads it
      into a running VM (or vprobe vptop.vp runs it)
  emmettc -c 'VMM1Hz { printf("%d\\n", curpid()); }'
      a one-liner; its VP goes to standard output
  emmettc lib.emt -c 'VMM1Hz { report(); }'
      a library's functions, then a probe that calls one
  emmettc -c 'Disk_IOFinish { sizes <- hist(ARG6); }'
      a power-of-two histogram of disk I/O sizes: see the plain VP
      aggregate with a bucket key it becomes
  emmettc -a -s kallsyms -I include top.emt
      with the guest's symbols, #include files from include/ and a probe
      that logs every aggregate once a second
  emmettc -m guest32 -D DEBUG=2 old.emt
      for a 32-bit guest, with DEBUG defined as 2

\b
Exit status: 0 compiled; 1 errors in the program, or bad usage;
2 an internal error of the compiler.
Shell completion (bash): eval "$(_EMMETTC_COMPLETE=bash_source emmettc)"."""


class EmmettcCommand(click.Command):
    """emmettc's help starts `usage: ...`; a malformed command line is exit status 1, as any error in the input."""

    def format_usage(self, ctx, formatter):
        formatter.write(f"usage: {SYNOPSIS}\n")

    def parse_args(self, ctx, args):
        ctx.meta["emmettc.argv"] = list(args)  # for the order of the inputs (`_inputs_in_order`)
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name="emmettc", complete_var=None, standalone_mode=True, **extra):
        try:
            status = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            _say(f"usage: {SYNOPSIS}")
            status = _error(e.format_message())
        except click.exceptions.Exit as e:
            status = e.exit_code
        except (click.Abort, KeyboardInterrupt):
            status = 130
        except Exception as e:  # never a traceback
            if not standalone_mode:
                raise
            _say(f"emmettc: internal error: {type(e).__name__}: {e}")
            status = 2
        if standalone_mode:
            sys.exit(status)
        return status


def _say(text):
    """A line to stderr, flushed (so that no message waits in a buffer, whoever reads stderr)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _error(message):
    _say(f"emmettc: error: {message}")
    return 1


def _memory_models(ctx, param, incomplete):
    from .ctype import MEMMODELS

    return [name for name in MEMMODELS if name.startswith(incomplete)]


def _show_version(ctx, param, value):
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("vprobes-toolchain")
    except PackageNotFoundError:
        found = "(not installed)"
    click.echo(f"emmettc (vprobes-toolchain) {found}")
    ctx.exit(0)


def _import_compiler():
    """Import the compiler (with its bytecode cached if Python may not write it: `cache.bytecode_cached`)."""
    from .cache import bytecode_cached

    with bytecode_cached():
        from . import driver
        # Everything a compilation uses, imported here so its bytecode is cached too.
        from . import grammar, lexer, output, parser, preprocess, sema  # noqa: F401
    return driver


@click.command("emmettc", cls=EmmettcCommand, help=HELP, epilog=EPILOG, add_help_option=False,
               context_settings={"max_content_width": 100})
@click.argument("files", nargs=-1, type=click.Path(allow_dash=True))
@click.option("-o", "output", metavar="OUT", type=click.Path(allow_dash=True),
              help="write the VP to OUT ('-' or no -o: standard output)")
@click.option("-c", "code", metavar="CODE", multiple=True,
              help="compile CODE given on the command line (repeatable; with FILEs, in the order given)")
@click.option("-I", "include", metavar="DIR", multiple=True, type=click.Path(file_okay=False),
              help="search DIR for #include files (repeatable)")
@click.option("-D", "define", metavar="NAME[=VALUE]", multiple=True,
              help="define a preprocessor macro (VALUE defaults to 1; repeatable)")
@click.option("-s", "symbols", metavar="SYMFILE", type=click.Path(),
              help="guest symbols in /proc/kallsyms or WinDbg x format (for &symbol, extern, probe names)")
@click.option("-m", "memmodel", metavar="MEMMODEL", default="guest64", shell_complete=_memory_models,
              help="guest64 (default), guest32, guest16, guestphys, vmw64 or vmw32")
@click.option("-a", "auto_aggr", is_flag=True, help="add a 1 Hz probe that logs and clears every aggregate (on VCPU 0)")
@click.option("-i", "indent", metavar="N", type=click.IntRange(min=0), default=2,
              help="indent the VP by N spaces (default 2)")
@click.option("--no-preload", "no_preload", is_flag=True,
              help="do not include the guest preload library (curpid(), curprocname()...)")
@click.option("--max-loop", "max_loop", metavar="N", type=click.IntRange(min=1, max=65536), default=64,
              help="the most iterations a loop may run (default 64): each is a copy of its body in the VP")
@click.help_option("-h", "--help", help="show this help and exit")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="print the version and exit")
def command(files, output, code, include, define, symbols, memmodel, auto_aggr, indent, no_preload, max_loop):
    defines = {}
    for d in define:
        name, eq, value = d.partition("=")
        if not name.isidentifier():
            return _error(f"bad -D option '{d}': expected NAME or NAME=VALUE")
        defines[name] = value if eq else "1"
    inputs = _inputs_in_order(click.get_current_context(), files, code) or [("file", "-")]
    if sum(1 for kind, value in inputs if kind == "file" and value == "-") > 1:
        return _error("standard input ('-') can be read only once")
    sources = []
    several_codes = len(code) > 1
    for kind, value in inputs:
        if kind == "code":
            sources.append((f"<command line {len([k for k, _ in sources if k.startswith('<command')]) + 1}>"
                            if several_codes else "<command line>", value))
        elif value == "-":
            sources.append(("<stdin>", sys.stdin.buffer.read().decode("utf-8", "surrogateescape")))
        else:
            try:
                with open(value, "rb") as f:
                    sources.append((value, f.read().decode("utf-8", "surrogateescape")))
            except OSError as e:
                return _error(f"cannot read {value}: {e.strerror or e}")

    driver = _import_compiler()
    _resume_gc()
    from .progress import CompileProgress  # not before the options are known: --help loads no more

    with CompileProgress(sources[0][0], sys.stderr) as progress:
        options = driver.CompileOptions(include_dirs=list(include), defines=defines, symbols_file=symbols,
                                        memmodel=memmodel, auto_aggr=auto_aggr, indent=indent,
                                        preload=not no_preload, max_loop=max_loop,
                                        progress=progress.stage)
        result = driver.compile(sources if len(sources) > 1 else sources[0][1], sources[0][0], options)
    if result.diagnostics:
        text = result.format_diagnostics()
        _say(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    if result.internal_error:
        return 2
    if not result.ok:
        return 1
    data = result.vp.encode("utf-8", "surrogateescape")
    if output and output != "-":
        try:
            with open(output, "wb") as f:
                f.write(data)
        except OSError as e:
            return _error(f"cannot write {output}: {e.strerror or e}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _inputs_in_order(ctx, files, codes):
    """[("file", path) or ("code", text)]: the FILEs and -c CODEs in the order the command line
    gives them (click keeps each kind's order only: this walks the raw arguments)."""
    valued = {name for p in ctx.command.params if isinstance(p, click.Option) and not p.is_flag
              for name in p.opts}
    found, rest = [], list(ctx.meta.get("emmettc.argv", ()))
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            found += [("file", a) for a in rest]
            break
        if arg == "-c" and rest:
            found.append(("code", rest.pop(0)))
        elif arg.startswith("-c") and not arg.startswith("--"):
            found.append(("code", arg[2:]))
        elif arg in valued:
            rest[:1] = []
        elif arg == "-" or not arg.startswith("-"):
            found.append(("file", arg))
    expected = [("file", f) for f in files] + [("code", c) for c in codes]
    if sorted(found) != sorted(expected):  # an argument shape not foreseen here: files first
        return expected
    return found


def _resume_gc():
    """After the compiler's imports: collect garbage again, skipping the objects the imports made (gc.freeze).

    The console script turns the collector off while it imports (`cli.main`):
    imports make many objects and no garbage worth collecting, and the
    collections they would trigger cost a noticeable part of a small compile.
    In process (tests, `run`) the collector is left as it is.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
