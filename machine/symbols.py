"""Guest symbol files in /proc/kallsyms format (`vprobe.guestSyms`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from vp_runtime.reader import parse_integer


def kallsyms_entries(text: str) -> Iterator[tuple[int, str, str]]:
    """(address, type letter, name) for each `address type name [module]` line; others are skipped."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            address = int(parts[0], 16)
        except ValueError:
            continue
        yield address, parts[1], parts[2]


def parse_kallsyms(text: str) -> dict[str, int]:
    """Name -> address; the first definition of a name wins."""
    symbols: dict[str, int] = {}
    for address, _, name in kallsyms_entries(text):
        symbols.setdefault(name, address)
    return symbols


def read_kallsyms(path: Path) -> dict[str, int]:
    return parse_kallsyms(Path(path).read_text(encoding="utf-8", errors="replace"))


def resolve_address(text: str, lookup_symbol) -> int | None:
    """An address a probe point names: a number (as VP writes them) or a guest symbol."""
    try:
        value = parse_integer(text)
    except ValueError:
        return None
    return value if value is not None else lookup_symbol(text)
