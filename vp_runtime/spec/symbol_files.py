"""Guest symbol files (`vprobe.guestSyms`, `emmettc -s`): the two formats guests give them in.

* Linux's /proc/kallsyms: `ADDRESS TYPE NAME [MODULE]`, one symbol a line,
  the address in hex and the type one letter (T/t text, D/d data, R/r
  read-only data, B/b bss, W/w weak...).
* The reference's way for a Windows guest, WinDbg's `x <module>!*`:
  `ADDRESS MODULE!NAME` and what the debugger says of the symbol: a
  function's parameters (`(<no parameter info>)` with public symbols), a
  data symbol's type after `=` (`= <no type information>`).  A 64-bit
  address is written as two halves with a backtick, `fffff800`02a5c000`
  (or as 16 digits), a 32-bit one as 8 digits, `8053c4a0`.

A file's format is that of its first line in either format; blank lines, and in a
debugger's output its prompt lines (`kd> x nt!*`, `0: kd> ...`), are
skipped.  Every symbol is an (address, type letter, name) entry; a WinDbg
function is type T and a data symbol type D, so readers see one shape.
Lines in neither format are problems `(line number, message)`: the compiler
reports them, a machine skips them.  The writers of both formats are here
too, so that a guest's own table reads back as written.  (Not imported with
the rest of the spec: only a reader of symbol files needs it.)
"""

import re

from .records import Record

KALLSYMS = "kallsyms"
WINDBG = "windbg"

# `fffff800`02a5c000 nt!KiSystemCall64 (<no parameter info>)`, `8053c4a0 nt!KiSystemService = <...>`
WINDBG_LINE = re.compile(
    r"\s*(?:(?P<high>[0-9A-Fa-f]{8})`(?P<low>[0-9A-Fa-f]{8})|(?P<plain>[0-9A-Fa-f]{16}|[0-9A-Fa-f]{8}))"
    r"\s+(?P<name>[^\s!]+![^\s(=]+)(?P<rest>\s.*)?\Z")
PROMPT = re.compile(r"\s*(?:\d+:\s*)?l?kd>")
WINDBG_EXAMPLE = "fffff800`02a5c000 nt!KiSystemCall64"
FUNCTION, DATA = "T", "D"  # the type letters WinDbg's symbols are given


class SymbolFile(Record):
    """`format` (KALLSYMS or WINDBG), `entries` ((address, type letter, name) in file order) and
    `problems` ((line number, message) for each line in neither format)."""

    __slots__ = ("format", "entries", "problems")

    def names(self) -> dict[str, int]:
        """Name -> address; the first definition of a name wins."""
        symbols: dict[str, int] = {}
        for address, _, name in self.entries:
            symbols.setdefault(name, address)
        return symbols


def parse(text: str) -> SymbolFile:
    """The symbols of a file in either format (detected from its first line in either)."""
    lines = [(n, line) for n, line in enumerate(text.split("\n"), 1)
             if line.strip() and not PROMPT.match(line)]
    windbg = next((WINDBG_LINE.match(line) is not None for _, line in lines
                   if WINDBG_LINE.match(line) or not isinstance(_kallsyms_entry(line), str)), False)
    read = _windbg_entry if windbg else _kallsyms_entry
    entries, problems = [], []
    for n, line in lines:
        entry = read(line.rstrip("\r"))
        if isinstance(entry, str):
            problems.append((n, entry))
        else:
            entries.append(entry)
    return SymbolFile(WINDBG if windbg else KALLSYMS, entries, problems)


def _kallsyms_entry(line: str) -> tuple[int, str, str] | str:
    fields = line.split()
    if len(fields) < 3:
        return "expected 'ADDRESS TYPE NAME' (the /proc/kallsyms format)"
    try:
        address = int(fields[0], 16)
    except ValueError:
        return f"bad address '{fields[0]}' (hexadecimal expected)"
    return address, fields[1], fields[2]


def _windbg_entry(line: str) -> tuple[int, str, str] | str:
    m = WINDBG_LINE.match(line)
    if m is None:
        return f"expected 'ADDRESS MODULE!NAME' (WinDbg's x format, e.g. {WINDBG_EXAMPLE})"
    digits = m.group("plain") or m.group("high") + m.group("low")
    rest = (m.group("rest") or "").strip()
    return int(digits, 16), DATA if rest.startswith("=") else FUNCTION, m.group("name")


def kallsyms_line(address: int, kind: str, name: str) -> str:
    return f"{address:016x} {kind} {name}\n"


def windbg_line(address: int, name: str, function: bool, bits: int = 64) -> str:
    """A line of WinDbg's `x` output for a symbol with public information only."""
    where = f"{address >> 32:08x}`{address & 0xFFFF_FFFF:08x}" if bits == 64 else f"{address:08x}"
    return f"{where} {name} {'(<no parameter info>)' if function else '= <no type information>'}\n"
