"""Guest symbol files in /proc/kallsyms format (`vprobe.guestSyms`)."""

from __future__ import annotations

from pathlib import Path

from vp_runtime.reader import parse_integer


def parse_kallsyms(text: str) -> dict[str, int]:
    """`address type name [module]` per line; the first definition of a name wins."""
    symbols: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        try:
            address = int(parts[0], 16)
        except ValueError:
            continue
        symbols.setdefault(parts[2], address)
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
