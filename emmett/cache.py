"""The compiler's cache: what it derives from its own source, kept between runs outside the source tree.

Everything goes under the user cache directory (`$XDG_CACHE_HOME/vprobes-toolchain/`,
else `~/.cache/vprobes-toolchain/`): the lexer's table (`lexer.py`), the parser's
tables (`parser.py`) and, when Python may not write bytecode beside the source,
the compiler's bytecode (`cli.py`).  Each table file is named by a signature of
what it was built from, so checkouts with different grammars on one machine keep
a file each instead of rebuilding each other's on every run; only the
`KEEP` most recently written of one kind stay.  The cache only saves time: when
it cannot be read or written, the tables are built in memory and the compile
goes on as before.
"""

import os
import re
import sys
import zlib
from contextlib import contextmanager

KEEP = 8  # tables of one kind kept (the most recently written); older ones are removed


def cache_dir():
    """The folder of the cache (it need not exist; making it is left to `store`).

    OSError when there is no home directory to put it in (never a folder named `~` in the current one).
    """
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        home = os.path.expanduser("~")
        if home.startswith("~"):
            raise OSError("no home directory for the cache")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "vprobes-toolchain")


@contextmanager
def bytecode_cached():
    """While the compiler's own modules are imported: their bytecode kept in the cache if Python
    may not write it beside the source.

    With PYTHONDONTWRITEBYTECODE set, every run would compile the compiler's
    modules from source, which costs more than all the rest of a small
    compilation.  Then (unless EMMETT_NO_BYTECODE_CACHE is set) the bytecode
    goes under the cache folder, through Python's own PYTHONPYCACHEPREFIX
    mechanism: never into the source tree.
    """
    saved = (sys.dont_write_bytecode, sys.pycache_prefix)
    if sys.dont_write_bytecode and not sys.pycache_prefix and not os.environ.get("EMMETT_NO_BYTECODE_CACHE"):
        try:
            sys.pycache_prefix = os.path.join(cache_dir(), "pycache")
            sys.dont_write_bytecode = False
        except OSError:  # no cache: modules compiled from source, as Python was told
            pass
    try:
        yield
    finally:
        sys.dont_write_bytecode, sys.pycache_prefix = saved


def signature(parts):
    """24 hex digits that change when any of the strings `parts` does (no hashlib on the start-up path)."""
    data = "\0".join(parts).encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data) & 0xFFFFFFFF:08x}"


def table_path(kind, sig, suffix):
    """Where the table of `kind` ("emmett-parser"...) with signature `sig` is kept."""
    return os.path.join(cache_dir(), f"{kind}-{sig}{suffix}")


def store(path, write):
    """Write `path` through `write(partial_path)` and move it into place at once (readers never see
    half a file); then drop the oldest tables of the same kind.  False if the cache is not writable."""
    folder, name = os.path.split(path)
    kind, _, rest = name.rpartition("-")
    suffix = rest[24:]
    partial = os.path.join(folder, f"{kind}-partial{os.getpid()}{suffix}")
    try:
        os.makedirs(folder, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError:
        try:
            os.remove(partial)
        except OSError:
            pass
        return False
    _prune(folder, kind, suffix)
    return True


def _prune(folder, kind, suffix):
    shape = re.compile(re.escape(kind) + "-[0-9a-f]{24}" + re.escape(suffix) + r"\Z")
    try:
        tables = [os.path.join(folder, n) for n in os.listdir(folder) if shape.match(n)]
        tables.sort(key=os.path.getmtime, reverse=True)
    except OSError:
        return
    for old in tables[KEEP:]:
        try:
            os.remove(old)
        except OSError:
            pass
