"""x86 descriptor tables and the hidden segment state a CPU loads from them.

A guest OS builds a GDT, an IDT and a TSS in its memory and points GDTR,
IDTR and TR at them; every segment register then has a visible selector and a
hidden part (base, limit, access rights) that the CPU loaded from the
descriptor the selector named (or, in real mode, computed from the selector).
The VP globals `CSBASE`, `CSLIMIT`, `CSAR`, ... `TRBASE`, `LDTRAR` are that
hidden part, and `GDTRBASE`... the table registers.

Access rights are in the VMCS format (Intel SDM vol. 3, 24.4.1): bits 3:0
type, 4 S (code/data), 6:5 DPL, 7 P, 12 AVL, 13 L (64-bit code), 14 D/B,
15 G, 16 "unusable" (a null selector, or no LDT).  That is descriptor bits
40-55 with the limit's 19:16 nibble taken out.
"""

from __future__ import annotations

from typing import Callable

from vp_runtime import spec

from .x86 import CR0_PE, EFER_LMA

# Descriptor types (the S=1 code/data ones with the accessed bit set, as a CPU leaves them).
TYPE_DATA_RW = 0x3  # read/write, accessed
TYPE_CODE_RX = 0xB  # execute/read, accessed
TYPE_LDT = 0x2
TYPE_TSS_BUSY = 0xB  # 64-bit (or 32-bit) TSS, busy
TYPE_INTERRUPT_GATE = 0xE

AR_S = 1 << 4
AR_P = 1 << 7
AR_L = 1 << 13
AR_DB = 1 << 14
AR_G = 1 << 15
AR_UNUSABLE = 1 << 16

Segment = tuple[int, int, int]  # (base, limit, access rights)
UNUSABLE: Segment = (0, 0, AR_UNUSABLE)


def access_rights(type_: int, *, s: bool = True, dpl: int = 0, long: bool = False, db: bool = False,
                  g: bool = False) -> int:
    """Present access rights in the VMCS format."""
    ar = type_ | AR_P | (dpl << 5)
    if s:
        ar |= AR_S
    if long:
        ar |= AR_L
    if db:
        ar |= AR_DB
    if g:
        ar |= AR_G
    return ar


def segment_descriptor(base: int, limit: int, ar: int) -> int:
    """The 8-byte code/data descriptor for base, limit (in bytes, or 4 KiB units when ar has G) and ar."""
    return ((limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | ((ar & 0xF0FF) << 40)
            | (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56))


def system_descriptor(base: int, limit: int, ar: int) -> bytes:
    """The 16-byte long-mode system descriptor (TSS or LDT): the low 8 bytes and base 63:32."""
    low = segment_descriptor(base, limit, ar)
    return low.to_bytes(8, "little") + ((base >> 32) & 0xFFFFFFFF).to_bytes(8, "little")


def interrupt_gate(handler: int, selector: int, *, dpl: int = 0, ist: int = 0) -> bytes:
    """The 16-byte long-mode interrupt gate to `handler` through code segment `selector`."""
    ar = TYPE_INTERRUPT_GATE | AR_P | (dpl << 5)
    low = ((handler & 0xFFFF) | (selector << 16) | (ist << 32) | (ar << 40)
           | (((handler >> 16) & 0xFFFF) << 48))
    return low.to_bytes(8, "little") + ((handler >> 32) & 0xFFFFFFFF).to_bytes(8, "little")


def decode(descriptor: int, high: int = 0) -> Segment:
    """(base, limit in bytes, access rights) of a descriptor; `high` is a system descriptor's second half."""
    ar = (descriptor >> 40) & 0xF0FF
    limit = (descriptor & 0xFFFF) | (((descriptor >> 48) & 0xF) << 16)
    if ar & AR_G:
        limit = (limit << 12) | 0xFFF
    base = ((descriptor >> 16) & 0xFFFFFF) | (((descriptor >> 56) & 0xFF) << 24)
    if not ar & AR_S:
        base |= (high & 0xFFFFFFFF) << 32
    return base, limit, ar


def real_mode(selector: int, code: bool = False) -> Segment:
    """The hidden part real mode gives a segment register loaded with `selector`."""
    return selector << 4, 0xFFFF, (TYPE_CODE_RX if code else TYPE_DATA_RW) | AR_S | AR_P


def load(selector: int, gdt_base: int, gdt_limit: int, read_u64: Callable[[int], int],
         system: bool = False) -> Segment:
    """The hidden part a protected- or long-mode CPU loads for `selector` from the GDT.

    A null selector (or one beyond the table's limit) leaves the register unusable; `system`
    reads the 16-byte form a TSS or LDT has in long mode.
    """
    index = selector & ~7
    if index == 0 or index + (15 if system else 7) > gdt_limit:
        return UNUSABLE
    low = read_u64(gdt_base + index)
    return decode(low, read_u64(gdt_base + index + 8) if system else 0)


# What RESET leaves in LDTR and TR (SDM vol. 3, table 9-1): base 0, limit 0xffff, present.
LDT_REGISTER, TASK_REGISTER = spec.SYSTEM_SEGMENTS
RESET_SYSTEM: dict[str, Segment] = {LDT_REGISTER: (0, 0xFFFF, TYPE_LDT | AR_P),
                                    TASK_REGISTER: (0, 0xFFFF, TYPE_TSS_BUSY | AR_P)}
CODE_SEGMENT = spec.SEGMENT_REGISTERS[1]


def hidden(name: str, regs: dict, read_u64: Callable[[int], int]) -> Segment:
    """The hidden part of segment register `name` (ES...GS, TR, LDTR) of a CPU whose registers
    are `regs` (selectors, CR0, EFER, GDTR): real mode computes it from the selector; protected
    and long mode load it from the GDT (or, for a selector with TI set, the LDT)."""
    selector = regs[name]
    system = name in spec.SYSTEM_SEGMENTS
    if not regs["CR0"] & CR0_PE:
        if system:
            return RESET_SYSTEM[name]
        return real_mode(selector, code=name == CODE_SEGMENT)
    base, limit = regs["GDTRBASE"], regs["GDTRLIMIT"]
    if selector & 4 and not system:  # TI: the LDT
        base, limit, ar = hidden(LDT_REGISTER, regs, read_u64)
        if ar & AR_UNUSABLE:
            return UNUSABLE
    return load(selector, base, limit, read_u64, system=system and bool(regs["EFER"] & EFER_LMA))


def null_segments(regs: dict) -> int:
    """SELSTATE: in protected or long mode, a bit for each of ES...GS holding a null selector."""
    if not regs["CR0"] & CR0_PE:
        return 0
    return sum(1 << i for i, name in enumerate(spec.SEGMENT_REGISTERS) if regs[name] & ~3 == 0)
