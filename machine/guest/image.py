"""A guest kernel's image: functions as real machine code, data, the call graph, the symbols.

Shared by every guest profile.  Every function is genuine x86-64 code: one
with a frame (not in `frameless`) starts with `push rbp; mov rbp, rsp` and
ends with `leave; ret`, and a function the guest model calls on one of its
paths contains a real `call` to each callee (`calls`), so the return
addresses found on guest stacks point just after real call instructions, as
in a real kernel.  A function in `indirect` calls through a register instead
(a dispatcher: its callees are reached through a table or an object), so all
its callees return to the same place.  A subclass (a guest's kernel) lays out
its data, places its text (`text_start`: one section, or one per module), and
writes the functions whose exact code matters (`_code_for`: the system-call
entry, the accessors that `offatret` and friends decode, the idle halt).
"""

from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from . import x86asm as asm


@dataclass
class Function:
    name: str
    address: int = 0
    code: bytes = b""
    call_sites: dict[str, int] = field(default_factory=dict)  # callee ("*": any, indirect) -> its return address

    @property
    def end(self) -> int:
        return self.address + len(self.code)


@dataclass
class DataSymbol:
    name: str
    address: int
    kind: str  # kallsyms type letter (D data, R read-only, d local data...)
    value: bytes


class KernelImage(ABC):
    """Lays out a kernel's functions and data; knows every symbol.

    `names` are the functions in text order (grouped by section); `calls` the
    direct calls each makes, in code order.
    """

    idle_halt: int  # the address of the idle loop's hlt (set by the subclass)

    def __init__(self, names: list[str], calls: dict[str, list[str]], frameless: frozenset[str] | set[str],
                 indirect: frozenset[str] = frozenset()):
        self.calls = calls
        self.frameless = frameless  # entry code written in assembly, and leaf accessors: no frame pointer
        self.indirect = indirect
        self.functions: dict[str, Function] = {n: Function(n) for n in names}
        self.data: dict[str, DataSymbol] = {}
        self._lay_out_data()
        self._lay_out_text()
        self.symbols = {f.name: f.address for f in self.functions.values()}
        self.symbols.update({d.name: d.address for d in self.data.values()})
        self._sorted = sorted(self.functions.values(), key=lambda f: f.address)
        self._starts = [f.address for f in self._sorted]

    # ---- what a subclass supplies ---------------------------------------------------

    @abstractmethod
    def _lay_out_data(self) -> None:
        """Add the kernel's data symbols (`_add_data`), starting from `self._data_cursor`."""

    @abstractmethod
    def text_start(self, name: str) -> int:
        """Where the text section holding function `name` starts (its first function goes there)."""

    # ---- text -----------------------------------------------------------------

    def _code_for(self, func: Function, addresses: dict[str, int]) -> bytes:
        """Machine code for `func` at `func.address` (addresses of all functions known): a frame,
        a little work, and the calls to its callees."""
        name = func.name
        at = func.address
        framed = name not in self.frameless
        code = asm.PROLOGUE if framed else b""
        code += asm.NOP * (4 + len(name) % 7)
        if name in self.indirect:
            code += asm.CALL_RAX
            func.call_sites["*"] = at + len(code)
            code += asm.NOP * 3
        else:
            for callee in self.calls.get(name, []):
                code += self._call(at + len(code), name, callee, addresses)
                func.call_sites[callee] = at + len(code)
                code += asm.NOP * 3
        return code + (asm.EPILOGUE if framed else asm.RET)

    def _call(self, at: int, caller: str, callee: str, addresses: dict[str, int]) -> bytes:
        """The call instruction at `at` from `caller` to `callee`: a direct call."""
        return asm.call_rel32(at, addresses[callee] or at)

    def _lay_out_text(self) -> None:
        # Two passes: sizes do not depend on addresses, so the first pass fixes the layout.
        for _ in range(2):
            addresses = {f.name: f.address for f in self.functions.values()}
            section = cursor = None
            for func in self.functions.values():
                start = self.text_start(func.name)
                if start != section:
                    section = cursor = start
                func.address = cursor
                func.call_sites.clear()
                func.code = self._code_for(func, addresses)
                cursor = (cursor + len(func.code) + 15) & ~15

    # ---- data -----------------------------------------------------------------

    def _add_data(self, name: str, value: bytes, kind: str = "D", align: int = 8) -> int:
        self._data_cursor = (self._data_cursor + align - 1) & ~(align - 1)
        self.data[name] = DataSymbol(name, self._data_cursor, kind, value)
        self._data_cursor += max(len(value), 1)
        return self.data[name].address

    # ---- queries -----------------------------------------------------------------

    def function_at(self, address: int) -> Function | None:
        """The function whose code contains `address`, if any."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._sorted[i].end:
            return self._sorted[i]
        return None

    def first_callees(self, name: str) -> list[str]:
        """The chain of first callees below `name`: the path a handler takes."""
        path = []
        while self.calls.get(name):
            name = self.calls[name][0]
            path.append(name)
        return path

    def return_address(self, caller: str, callee: str) -> int:
        """Where `callee` returns to in `caller` (just after the call instruction)."""
        func = self.functions[caller]
        return func.call_sites.get(callee) or func.call_sites.get("*") or func.address + 4
