"""Guest symbol files (`vprobe.guestSyms`): /proc/kallsyms or WinDbg `x` format, read alike.

The formats are the language specification's (`spec.symbol_files`, which
the compiler reads too); lines in neither format are skipped here.
"""

from __future__ import annotations

from pathlib import Path

from vp_runtime.reader import parse_integer
from vp_runtime.spec import symbol_files


def symbol_entries(text: str) -> list[tuple[int, str, str]]:
    """(address, type letter, name) for each symbol of a file in either format."""
    return symbol_files.parse(text).entries


def parse_symbols(text: str) -> dict[str, int]:
    """Name -> address; the first definition of a name wins."""
    return symbol_files.parse(text).names()


def read_symbols(path: Path) -> dict[str, int]:
    return parse_symbols(Path(path).read_text(encoding="utf-8", errors="replace"))


def resolve_address(text: str, lookup_symbol) -> int | None:
    """An address a probe point names: a number (as VP writes them) or a guest symbol."""
    try:
        value = parse_integer(text)
    except ValueError:
        return None
    return value if value is not None else lookup_symbol(text)
