"""Guest stacks: the `GUEST_0x..._0x...` strings `gueststack` writes, and their symbols.

A stack string lists return addresses innermost first.  A frame is shown as
`symbol+0xOFFSET` (`nt!KiSystemCall64+0x1a` for a Windows guest) from a
guest symbol file in /proc/kallsyms or WinDbg `x` format, using its text
symbols (types t, T, w, W; WinDbg's functions): an address belongs to the last text
symbol at or below it, as long as the next symbol is above it (the last text
symbol covers one page at most).  Other addresses stay in hex.
"""

from __future__ import annotations

import bisect
import re

STACK = re.compile(r"GUEST(?:_0x[0-9a-fA-F]+)+")
_TEXT_TYPES = frozenset("tTwW")
LAST_SYMBOL_SPAN = 4096


def parse_stack(text: str) -> tuple[int, ...]:
    """The addresses of one stack string (`GUEST_0x1_0x2` -> (1, 2))."""
    return tuple(int(part, 16) for part in text.split("_")[1:])


def find_stacks(text: str) -> list[tuple[int, ...]]:
    """Every stack string in `text`."""
    return [parse_stack(m.group(0)) for m in STACK.finditer(text)]


def is_stack(text: str) -> bool:
    return STACK.fullmatch(text) is not None


class Symbolizer:
    """Address -> (symbol, offset), from the text symbols of a guest symbol file."""

    def __init__(self, symbol_text: str = ""):
        from machine.symbols import symbol_entries  # the machine's parser (and the runtime): only when used

        text_symbols: dict[int, str] = {}
        every_address: set[int] = set()
        for address, kind, name in symbol_entries(symbol_text):
            every_address.add(address)
            if kind in _TEXT_TYPES:
                text_symbols.setdefault(address, name)
        self._addresses = sorted(text_symbols)
        self._names = [text_symbols[a] for a in self._addresses]
        self._bounds = sorted(every_address)

    def __bool__(self) -> bool:
        return bool(self._addresses)

    def resolve(self, address: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0:
            return None
        start = self._addresses[i]
        following = bisect.bisect_right(self._bounds, start)
        end = self._bounds[following] if following < len(self._bounds) else start + LAST_SYMBOL_SPAN
        if i == len(self._addresses) - 1:
            end = min(end, start + LAST_SYMBOL_SPAN)
        if address >= end:
            return None
        return self._names[i], address - start

    def frame(self, address: int) -> str:
        """`symbol+0xOFFSET`, or the address in hex."""
        found = self.resolve(address)
        return f"{found[0]}+0x{found[1]:x}" if found else f"0x{address:x}"

    def function(self, address: int) -> str:
        """`symbol` alone (call sites merged), or the address in hex."""
        found = self.resolve(address)
        return found[0] if found else f"0x{address:x}"
