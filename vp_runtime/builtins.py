"""The built-in functions translated code calls, bound to one script's machine and log.

Everything here that can fault takes the VP position (`where`, "file:line:col")
of the call, so the log line for an aborted firing says where it happened.
The spec (`spec/builtins.py`) says what each builtin takes; most have code of
their own in the translator, the plain ones (PLAIN_BUILTINS) are called as
`implementation(arguments..., where)`.
"""

from __future__ import annotations

from . import spec
from .backend import Backend, require_symbol
from .errors import VPFault
from .limits import MAX_STACK_FRAMES, MAX_STRING_BYTES
from .printf import FormatError, compile_format
from .spec import MASK64
from .state import Cell, LogWriter

PAGE = 4096


def _located(fault: VPFault, where: str) -> VPFault:
    if not fault.where:
        fault.where = where
    return fault


class Builtins:
    def __init__(self, backend: Backend, log: LogWriter):
        self.backend = backend
        self.log = log
        self._offsets: dict[tuple, int] = {}
        self._readers: dict[str, object] = {}
        self.exited_at: str | None = None  # where the script called exit()

    # ---- output ------------------------------------------------------------

    def logstr(self, text: str) -> int:
        self.log.write(text)
        return 1

    def logint(self, value: int) -> int:
        self.log.write(str(value))
        return 1

    @staticmethod
    def format(fmt: str, args: tuple, where: str) -> str:
        """printf/sprintf with a format known only at run time: checked on every call."""
        try:
            compiled = compile_format(fmt)
        except FormatError as e:
            raise VPFault(f"bad format string: {e.message} (at offset {e.offset})", where) from None
        if len(compiled.kinds) != len(args):
            raise VPFault(f"the format wants {len(compiled.kinds)} arguments but {len(args)} are given", where)
        for n, (kind, value) in enumerate(zip(compiled.kinds, args), 1):
            if (kind == "int") != isinstance(value, int):
                raise VPFault(f"format directive {n} wants {'an integer' if kind == 'int' else 'a string'}", where)
        return compiled(args)

    @staticmethod
    def setstr(cell: Cell, text: str) -> int:
        cell.v = text[:MAX_STRING_BYTES]
        return 1

    @staticmethod
    def strcmp(a: str, b: str) -> int:
        return 0 if a == b else (1 if a > b else MASK64)

    # ---- guest memory ------------------------------------------------------

    def read_linear(self, addr: int, size: int, where: str) -> bytes:
        try:
            return self.backend.read_linear(addr & MASK64, size)
        except VPFault as fault:
            raise _located(fault, where) from None

    def getguest(self, addr: int, where: str) -> int:
        return int.from_bytes(self.read_linear(addr, 8, where), "little")

    def symbol(self, name: str, where: str) -> int:
        try:
            return require_symbol(self.backend, name)
        except VPFault as fault:
            raise _located(fault, where) from None

    def getguest_sym(self, name: str, where: str) -> int:
        return self.getguest(self.symbol(name, where), where)

    def read_physical(self, addr: int, size: int, where: str) -> bytes:
        try:
            return self.backend.read_physical(addr & MASK64, size)
        except VPFault as fault:
            raise _located(fault, where) from None

    def getguestphys(self, addr: int, where: str) -> int:
        """Eight bytes at guest physical `addr`."""
        return int.from_bytes(self.read_physical(addr, 8, where), "little")

    def read_string(self, addr: int, limit: int, where: str, read=None) -> str:
        """Up to `limit` bytes from `addr` (linear, or through `read`), stopping at NUL; pages
        past the end are never touched."""
        read = read or self.read_linear
        limit = min(limit, MAX_STRING_BYTES)
        chunks = []
        while limit > 0:
            step = min(limit, PAGE - (addr % PAGE))
            data = read(addr, step, where)
            nul = data.find(0)
            if nul >= 0:
                chunks.append(data[:nul])
                break
            chunks.append(data)
            addr = (addr + step) & MASK64
            limit -= step
        return b"".join(chunks).decode("latin-1")

    def getgueststr(self, cell: Cell, addr: int, limit: int, where: str) -> int:
        cell.v = self.read_string(addr, limit, where)
        return 1

    def getgueststr_sym(self, cell: Cell, name: str, offset: int, where: str) -> int:
        cell.v = self.read_string(self.symbol(name, where) + offset, MAX_STRING_BYTES, where)
        return 1

    def getguestphysstr(self, cell: Cell, addr: int, limit: int, where: str) -> int:
        cell.v = self.read_string(addr, limit, where, self.read_physical)
        return 1

    def gueststack(self, cell: Cell | None, where: str) -> int | str:
        """`GUEST_0x..._0x...`, innermost frame first, whole frames only, at most 255 bytes:
        into `cell`, or returned when there is none (`(gueststack)`)."""
        text = "GUEST"
        for addr in self.backend.stack_frames(MAX_STACK_FRAMES):
            frame = f"_0x{addr:x}"
            if len(text) + len(frame) > MAX_STRING_BYTES:
                break
            text += frame
        if cell is None:
            return text
        cell.v = text
        return 1

    def systemtime(self) -> int:
        return self.backend.host_time_us() & MASK64

    def offatret(self, function: int | str, where: str) -> int:
        return self.offset("offatret", function, None, where)

    def offatstrcpy(self, function: int | str, *rest) -> int:
        """(offatstrcpy FUNCTION [COPY-ROUTINE]): `rest` is (where,) or (routine, where)."""
        routine = rest[0] if len(rest) == 2 else None
        return self.offset("offatstrcpy", function, routine, rest[-1])

    def offatseg(self, function: int | str, where: str) -> int:
        return self.offset("offatseg", function, None, where)

    def address(self, address_or_symbol: int | str, where: str) -> int:
        if isinstance(address_or_symbol, str):
            return self.symbol(address_or_symbol, where)
        return address_or_symbol & MASK64

    def offset(self, kind: str, function: int | str, routine: int | str | None, where: str) -> int:
        """offatret / offatstrcpy / offatseg: decode a guest function's code (a symbol or an
        address; cached per function and copy routine)."""
        cached = self._offsets.get((kind, function, routine))
        if cached is not None:
            return cached
        # The disassembler loads only for scripts that decode guest code.
        from .x86_offsets import MAX_CODE_BYTES, OffsetNotFound, offset_at_ret, offset_at_seg, offset_at_strcpy
        start = self.address(function, where)
        name = function if isinstance(function, str) else f"{start:#x}"
        if kind == "offatstrcpy":
            copy_routine = None if routine is None else self.address(routine, where)
            finder = lambda code, at, bits: offset_at_strcpy(code, at, bits, copy_routine)  # noqa: E731
        else:
            finder = offset_at_ret if kind == "offatret" else offset_at_seg
        code = b""
        addr = start
        while len(code) < MAX_CODE_BYTES:
            step = min(MAX_CODE_BYTES - len(code), PAGE - (addr % PAGE))
            try:
                code += self.backend.read_linear(addr, step)
            except VPFault:
                break
            addr = (addr + step) & MASK64
        if not code:
            raise VPFault(f"{kind}: the code of '{name}' at {start:#x} is not mapped", where)
        try:
            value = finder(code, start, 64)
        except OffsetNotFound as e:
            raise VPFault(str(e), where) from None
        self._offsets[(kind, function, routine)] = value
        return value

    # ---- the firing VCPU's state -------------------------------------------------

    def machine_global(self, name: str, where: str):
        """The value of built-in global `name` for the firing VCPU (its reader made once)."""
        reader = self._readers.get(name)
        if reader is None:
            if name not in self.backend.globals():
                raise VPFault(f"this VM does not offer {name}", where)
            reader = self._readers[name] = self.backend.global_reader(name)
        return reader()

    def getgpr(self, number: int, where: str) -> int:
        if number >= len(spec.GPR_ORDER):
            raise VPFault(f"getgpr: there is no general-purpose register {number} (0 RAX ... 15 R15)", where)
        return self.machine_global(spec.GPR_ORDER[number], where)

    def getvmcs(self, encoding: int, where: str) -> int:
        field = spec.VMCS_FIELDS.get(encoding)
        if field is None:
            raise VPFault(f"getvmcs: {encoding:#x} is not a VMCS field this VM's VMCS has", where)
        if field.global_name is None:
            return 0
        if field.global_name.startswith("VMCS_") and field.global_name not in self.backend.globals():
            raise VPFault("getvmcs: this VM has no VMCS (it runs on AMD-V, which keeps a VMCB)", where)
        return self.machine_global(field.global_name, where)

    def machine_call(self, method: str, builtin: str, where: str, *args) -> int:
        """What backend `method` answers (a builtin only some machines have)."""
        call = getattr(self.backend, method, None)
        if call is None:
            raise VPFault(f"{builtin}: this VM cannot answer it", where)
        try:
            return call(*args) & MASK64
        except VPFault as fault:
            raise _located(fault, where) from None

    def readmsr(self, number: int, where: str) -> int:
        return self.machine_call("read_msr", "readmsr", where, number)

    def readpmc(self, number: int, where: str) -> int:
        return self.machine_call("read_pmc", "readpmc", where, number)

    def getmeminfo(self, where: str) -> int:
        return self.machine_call("memory_mb", "getmeminfo", where)

    # ---- the script itself ------------------------------------------------------

    def exit(self, where: str) -> int:
        """(exit): the machine unloads the script once this firing returns."""
        if self.exited_at is None:
            self.exited_at = where
        return 1

    def assertion(self, condition: int, *rest) -> int:
        """(assert CONDITION [MESSAGE]): `rest` is (where,) or (message, where)."""
        if condition:
            return 1
        message = f"assertion failed: {rest[0]}" if len(rest) == 2 else "assertion failed"
        raise VPFault(message, rest[-1])


# The builtins called as `implementation(arguments..., where)`; the translator has code
# of its own for the others (translate.BUILTIN_CODE).
PLAIN_BUILTINS = {
    "getguestphys": Builtins.getguestphys,
    "offatret": Builtins.offatret, "offatstrcpy": Builtins.offatstrcpy, "offatseg": Builtins.offatseg,
    "assert": Builtins.assertion, "getgpr": Builtins.getgpr, "getvmcs": Builtins.getvmcs, "exit": Builtins.exit,
    "readmsr": Builtins.readmsr, "readpmc": Builtins.readpmc, "getmeminfo": Builtins.getmeminfo,
}
_BUILTIN_NUMBER = {name: i for i, name in enumerate(spec.BUILTINS)}


def plain_name(builtin: str) -> str:
    """The namespace name translated code calls a plain builtin by (an invented name)."""
    return f"_bi{_BUILTIN_NUMBER[builtin]}"


def arithmetic_namespace() -> dict[str, object]:
    """Helpers for operators that need a check translated code cannot inline."""

    def div(a: int, b: int, where: str) -> int:
        if b:
            return a // b
        raise VPFault("division by zero", where)

    def mod(a: int, b: int, where: str) -> int:
        if b:
            return a % b
        raise VPFault("modulo by zero", where)

    def shl(a: int, b: int) -> int:
        return (a << b) & MASK64 if b < 64 else 0

    return {"_div": div, "_mod": mod, "_shl": shl}


def builtin_namespace(b: Builtins) -> dict[str, object]:
    """The names translated code uses for `b`'s functions."""
    ns = {
        "_logstr": b.logstr, "_logint": b.logint, "_format": b.format, "_setstr": b.setstr,
        "_strcmp": b.strcmp, "_getguest": b.getguest, "_getguest_sym": b.getguest_sym,
        "_getgueststr": b.getgueststr, "_getgueststr_sym": b.getgueststr_sym, "_gueststack": b.gueststack,
        "_getguestphysstr": b.getguestphysstr,
        "_systemtime": b.systemtime,
    }
    ns.update((plain_name(name), function.__get__(b)) for name, function in PLAIN_BUILTINS.items())
    ns.update(arithmetic_namespace())
    return ns

