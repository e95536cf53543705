"""Recover structure offsets from guest kernel machine code.

VP's `offatret`, `offatstrcpy` and `offatseg` builtins let guest-OS helper
scripts (the reference's curprocname/curpid sample) find structure layouts
without debug information, by decoding a few well-known kernel functions:

* `offset_at_ret`    -- `sys_getpid` returns `current->tgid`; the displacement
  of the last load into the return register before `ret` is the tgid offset
  (or of the last `lea` into it: Windows' `PsGetProcessImageFileName` returns
  `&process->ImageFileName`).
* `offset_at_strcpy` -- `get_task_comm(buf, tsk)` copies `tsk->comm` with a
  string/memory copy routine; the displacement added to the copy's source
  argument is the `comm` offset.
* `offset_at_seg`    -- the displacement of the first %gs:/%fs: memory operand,
  e.g. the per-CPU `current_task` slot.

Each function takes the bytes of the function (starting at `address`; they may
be shorter than the function when guest memory ended, or longer than it) and
decodes them with capstone, at most `MAX_CODE_BYTES` of them, stopping at the
first `ret`, at the first undecodable byte or at the end of the bytes.  When
nothing suitable is found they raise `OffsetNotFound`, whose `message` says
what was looked for and what the decoder actually saw.

Displacements are returned as non-negative ints: a negative displacement comes
back as its 64-bit two's complement (`disp & (2**64 - 1)`), so adding it to a
pointer with 64-bit wrap-around gives the right address.  The one exception is
a segment displacement decoded in 32-bit mode, which is an address inside a
32-bit segment and is returned as the unsigned 32-bit value (`fs:[0xc1234567]`
gives 0xc1234567).

This module only decodes; it never reads guest memory itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import capstone
from capstone import x86 as _x86

from .limits import MAX_DECODE_BYTES
from .spec import MASK64

__all__ = [
    "MAX_CODE_BYTES",
    "OffsetNotFound",
    "offset_at_ret",
    "offset_at_seg",
    "offset_at_strcpy",
]

#: How many bytes of a function are decoded at most.
MAX_CODE_BYTES = MAX_DECODE_BYTES

_MASK32 = (1 << 32) - 1
_MAX_INSN_LEN = 15  # the longest legal x86 instruction


class OffsetNotFound(Exception):
    """The machine code did not contain the pattern an offat* builtin looks for.

    `message` is one human sentence (or two) saying what was looked for and
    what was found instead.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------
# Decoding

def _make_cs(mode: int) -> capstone.Cs:
    cs = capstone.Cs(capstone.CS_ARCH_X86, mode)
    cs.detail = True
    return cs


_CS = {64: _make_cs(capstone.CS_MODE_64), 32: _make_cs(capstone.CS_MODE_32)}

_RET_IDS = frozenset(
    getattr(_x86, name)
    for name in ("X86_INS_RET", "X86_INS_RETF", "X86_INS_RETFQ")
    if hasattr(_x86, name)
)
_LOAD_IDS = frozenset(
    (_x86.X86_INS_MOV, _x86.X86_INS_MOVZX, _x86.X86_INS_MOVSX, _x86.X86_INS_MOVSXD)
)
_SEGMENT_REGS = frozenset((_x86.X86_REG_FS, _x86.X86_REG_GS))
_IP_REGS = frozenset((_x86.X86_REG_RIP, _x86.X86_REG_EIP))


@dataclass
class _Decoded:
    """The instructions decoded from one function and why decoding stopped."""

    address: int
    bits: int
    insns: list = field(default_factory=list)  # capstone CsInsn, ret excluded
    ret: object = None  # the CsInsn of the first ret, if one was reached
    stop: str = "end"  # "ret" | "invalid" | "end" | "limit" | "empty"
    stop_address: int = 0
    bad_bytes: bytes = b""

    def describe_stop(self) -> str:
        """Where and why decoding stopped, as a phrase."""
        where = f"{self.stop_address:#x}"
        if self.stop == "ret":
            return f"reached ret at {where}"
        if self.stop == "invalid":
            shown = " ".join(f"{b:02x}" for b in self.bad_bytes)
            return f"hit undecodable bytes at {where} ({shown})"
        if self.stop == "limit":
            return f"stopped at the {MAX_CODE_BYTES}-byte decoding limit ({where}) without reaching ret"
        if self.stop == "empty":
            return "had no code bytes to decode"
        return f"ran out of code bytes at {where} without reaching ret"

    def summary(self, max_listed: int = 12) -> str:
        """What was decoded (a short listing) and why decoding stopped."""
        if self.stop == "empty":
            return f"there were no code bytes at {self.address:#x}"
        n = len(self.insns)
        if n == 0:
            return (f"no instruction could be decoded at {self.address:#x}: "
                    f"the decoder {self.describe_stop()}")
        listing = "; ".join(_fmt(i) for i in self.insns[:max_listed])
        if n > max_listed:
            listing += f"; ... {n - max_listed} more"
        noun = "instruction was" if n == 1 else "instructions were"
        return (f"from {self.address:#x}, {n} {noun} decoded [{listing}] "
                f"and the decoder {self.describe_stop()}")


def _fmt(insn) -> str:
    return f"{insn.mnemonic} {insn.op_str}".strip()


def _check_bits(bits: int) -> None:
    if bits not in _CS:
        raise ValueError(f"bits must be 32 or 64, not {bits!r}")


def _decode(code: bytes, address: int, bits: int) -> _Decoded:
    _check_bits(bits)
    code = bytes(code)
    dec = _Decoded(address=address, bits=bits, stop_address=address)
    if not code:
        dec.stop = "empty"
        return dec
    window = code[:MAX_CODE_BYTES]
    cs = _CS[bits]
    offset = 0
    for insn in cs.disasm(window, address):
        offset = insn.address - address + insn.size
        if insn.id in _RET_IDS:
            dec.ret = insn
            dec.stop = "ret"
            dec.stop_address = insn.address
            return dec
        dec.insns.append(insn)
    dec.stop_address = address + offset
    if offset >= len(window):
        dec.stop = "limit" if len(code) > len(window) else "end"
        return dec
    # Decoding stopped inside the window.  Either the bytes are invalid, or an
    # instruction straddles the byte limit (it would decode with more bytes).
    if len(code) > len(window) and offset + _MAX_INSN_LEN > len(window):
        if list(cs.disasm(code[offset : offset + _MAX_INSN_LEN], address + offset, 1)):
            dec.stop = "limit"
            return dec
    remaining = window[offset:]
    if len(remaining) < _MAX_INSN_LEN and len(code) == len(window):
        # An instruction cut short by the end of the bytes we were given
        # decodes once padded; garbage does not.
        padded = list(cs.disasm(remaining + bytes(_MAX_INSN_LEN), address + offset, 1))
        if padded and padded[0].size > len(remaining):
            dec.stop = "end"
            return dec
    dec.stop = "invalid"
    dec.bad_bytes = remaining[:4]
    return dec


# --------------------------------------------------------------------------
# Operands and registers

def _signed_disp(disp: int, bits: int) -> int:
    """Capstone's displacement as a signed value of the mode's address width."""
    if bits == 32:
        disp &= _MASK32
        return disp - (1 << 32) if disp & (1 << 31) else disp
    disp &= MASK64
    return disp - (1 << 64) if disp & (1 << 63) else disp


def _as_offset(disp: int) -> int:
    return disp & MASK64


def _mem_operands(insn):
    return [op for op in insn.operands if op.type == _x86.X86_OP_MEM]


# Register families: every name of a general-purpose register maps to its
# 64-bit name, and whether writing it replaces the whole value (32/64-bit
# writes) or only part of it (16/8-bit writes).
_FAMILY: dict[str, tuple[str, bool]] = {}
for _full, _d, _w, _b in (
    ("rax", "eax", "ax", "al"), ("rbx", "ebx", "bx", "bl"),
    ("rcx", "ecx", "cx", "cl"), ("rdx", "edx", "dx", "dl"),
    ("rsi", "esi", "si", "sil"), ("rdi", "edi", "di", "dil"),
    ("rbp", "ebp", "bp", "bpl"), ("rsp", "esp", "sp", "spl"),
):
    _FAMILY.update({_full: (_full, True), _d: (_full, True), _w: (_full, False), _b: (_full, False)})
for _full, _b in (("rax", "ah"), ("rbx", "bh"), ("rcx", "ch"), ("rdx", "dh")):
    _FAMILY[_b] = (_full, False)
for _n in range(8, 16):
    _FAMILY.update({f"r{_n}": (f"r{_n}", True), f"r{_n}d": (f"r{_n}", True),
                    f"r{_n}w": (f"r{_n}", False), f"r{_n}b": (f"r{_n}", False)})

_RETURN_REG_NAMES = frozenset(("rax", "eax", "ax", "al"))
_CALLER_SAVED = {
    64: ("rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"),
    32: ("rax", "rcx", "rdx"),
}


def _reg_name(insn, reg_id: int) -> str:
    return insn.reg_name(reg_id) or ""


def _family(insn, reg_id: int):
    """(64-bit family name, full-width write?) for a GPR, else None."""
    return _FAMILY.get(_reg_name(insn, reg_id))


def _plain_base_disp(insn, op, bits: int):
    """For a `[base + disp]` operand (no index, no fs/gs, not ip-relative),
    return (base family, signed disp); otherwise None."""
    mem = op.mem
    if mem.segment in _SEGMENT_REGS or mem.index != 0 or mem.base == 0 or mem.base in _IP_REGS:
        return None
    fam = _family(insn, mem.base)
    if fam is None:
        return None
    return fam[0], _signed_disp(mem.disp, bits)


# --------------------------------------------------------------------------
# offatret

def offset_at_ret(code: bytes, address: int, bits: int = 64) -> int:
    """Displacement of the last `[reg + disp]` load into the return register.

    Looks, before the first `ret`, for the last `mov`/`movzx`/`movsx`/`movsxd`
    whose destination is rax/eax/ax/al and whose source is a memory operand
    with a base register and no index (not rip-relative, not fs/gs-relative),
    or the last `lea` of such an operand into rax/eax (the function returns
    the field's address: its displacement is the field's offset all the same).
    Register-to-register moves are not followed.  If decoding stops before a
    `ret` (end of the bytes, undecodable bytes, the byte limit), the last such
    load in what was decoded is used.
    """
    dec = _decode(code, address, bits)
    found = None
    skipped = []
    for insn in dec.insns:
        if insn.id not in _LOAD_IDS and insn.id != _x86.X86_INS_LEA or len(insn.operands) != 2:
            continue
        dst, src = insn.operands
        if dst.type != _x86.X86_OP_REG or src.type != _x86.X86_OP_MEM:
            continue
        if _reg_name(insn, dst.reg) not in _RETURN_REG_NAMES:
            continue
        plain = _plain_base_disp(insn, src, bits)
        if plain is None:
            skipped.append(insn)
            continue
        found = plain[1]
    if found is not None:
        return _as_offset(found)
    reg = "rax/eax/ax/al" if bits == 64 else "eax/ax/al"
    msg = (
        f"offatret: looked for a load of the return register ({reg}) from a "
        f"[register + displacement] memory operand (or a lea of one into it) before the first ret, but "
        f"found none; {dec.summary()}"
    )
    if skipped:
        msg += (
            "; the only loads of the return register were not [register + displacement] "
            "(rip-relative, segment-relative, absolute or indexed): "
            + ", ".join(f"{_fmt(i)} at {i.address:#x}" for i in skipped[:4])
        )
    raise OffsetNotFound(msg + ".")


# --------------------------------------------------------------------------
# offatseg

def offset_at_seg(code: bytes, address: int, bits: int = 64) -> int:
    """Displacement of the first fs:- or gs:-relative memory operand.

    E.g. `mov rax, qword ptr gs:[0x15c40]` gives 0x15c40.  Any instruction
    counts, and a base or index register in the operand is ignored.  Note that
    in a function built with the stack protector the first such operand may be
    the canary slot (gs:[0x28]).
    """
    dec = _decode(code, address, bits)
    for insn in dec.insns:
        for op in _mem_operands(insn):
            if op.mem.segment in _SEGMENT_REGS:
                if bits == 32:
                    return op.mem.disp & _MASK32
                return _as_offset(op.mem.disp)
    raise OffsetNotFound(
        f"offatseg: looked for a memory operand relative to the %fs or %gs segment, "
        f"but found none; {dec.summary()}."
    )


# --------------------------------------------------------------------------
# offatstrcpy

@dataclass(frozen=True)
class _Val:
    """What a register holds, symbolically: `origin + offset`.

    `origin` names where the base value came from (an incoming register or the
    instruction that produced it); `adjusted` records whether any displacement
    (lea / add / sub) has been applied along the way."""

    origin: object
    offset: int = 0
    adjusted: bool = False

    def plus(self, delta: int) -> "_Val":
        return _Val(self.origin, self.offset + delta, True)


class _Tracker:
    """Straight-line tracking of `reg = origin + offset` through mov/lea/add/sub,
    plus, in 32-bit mode, the values pushed or stored as stack arguments."""

    def __init__(self, bits: int):
        self.bits = bits
        self.regs: dict[str, _Val] = {}
        self.pushes: list[_Val] = []
        self.slots: dict[int, _Val] = {}

    def get(self, fam: str) -> _Val:
        return self.regs.get(fam) or _Val(("entry", fam))

    def opaque(self, insn) -> _Val:
        return _Val(("insn", insn.address))

    def clobber(self, fams, insn) -> None:
        for fam in fams:
            self.regs[fam] = self.opaque(insn)

    def arg2_candidates(self):
        """(description, value) pairs for the second argument at a call."""
        if self.bits == 64:
            return [("rsi", self.get("rsi"))]
        out = []
        if len(self.pushes) >= 2:
            out.append(("the second pushed argument", self.pushes[-2]))
        elif 4 in self.slots:
            out.append(("the argument stored at [esp + 4]", self.slots[4]))
        out.append(("edx", self.get("rdx")))
        return out

    def step(self, insn) -> None:
        ops = insn.operands
        iid = insn.id
        dst = ops[0] if ops else None
        dst_fam = _family(insn, dst.reg) if dst is not None and dst.type == _x86.X86_OP_REG else None

        if iid == _x86.X86_INS_MOV and len(ops) == 2 and dst_fam is not None and dst_fam[1]:
            src = ops[1]
            if src.type == _x86.X86_OP_REG:
                src_fam = _family(insn, src.reg)
                if src_fam is not None and src_fam[1]:
                    self.regs[dst_fam[0]] = self.get(src_fam[0])
                    return
        elif iid == _x86.X86_INS_LEA and len(ops) == 2 and dst_fam is not None and dst_fam[1]:
            plain = _plain_base_disp(insn, ops[1], self.bits)
            if plain is not None:
                self.regs[dst_fam[0]] = self.get(plain[0]).plus(plain[1])
                return
        elif iid in (_x86.X86_INS_ADD, _x86.X86_INS_SUB) and len(ops) == 2 and dst_fam is not None and dst_fam[1]:
            if ops[1].type == _x86.X86_OP_IMM:
                imm = _signed_disp(ops[1].imm, self.bits)
                delta = imm if iid == _x86.X86_INS_ADD else -imm
                self.regs[dst_fam[0]] = self.get(dst_fam[0]).plus(delta)
                return
        elif self.bits == 32 and iid == _x86.X86_INS_PUSH and len(ops) == 1:
            if dst_fam is not None and dst_fam[1]:
                self.pushes.append(self.get(dst_fam[0]))
            else:
                self.pushes.append(self.opaque(insn))
            self.clobber_written(insn)
            return
        elif self.bits == 32 and iid == _x86.X86_INS_POP:
            if self.pushes:
                self.pushes.pop()
        elif self.bits == 32 and iid == _x86.X86_INS_MOV and len(ops) == 2 and dst.type == _x86.X86_OP_MEM:
            mem = dst.mem
            if (mem.base == _x86.X86_REG_ESP and mem.index == 0
                    and mem.segment not in _SEGMENT_REGS):
                src = ops[1]
                src_fam = _family(insn, src.reg) if src.type == _x86.X86_OP_REG else None
                val = self.get(src_fam[0]) if src_fam is not None and src_fam[1] else self.opaque(insn)
                self.slots[_signed_disp(mem.disp, 32)] = val
            return
        self.clobber_written(insn)

    def clobber_written(self, insn) -> None:
        try:
            _read, written = insn.regs_access()
        except capstone.CsError:  # pragma: no cover - detail is always on
            written = []
        fams = set()
        for reg in written:
            fam = _family(insn, reg)
            if fam is not None:
                fams.add(fam[0])
        self.clobber(fams, insn)

    def after_call(self, insn) -> None:
        self.clobber(_CALLER_SAVED[self.bits], insn)
        self.pushes.clear()
        self.slots.clear()


def _direct_target(insn) -> int | None:
    """The target address of a call or jmp with an immediate operand (None if indirect)."""
    ops = insn.operands
    if len(ops) == 1 and ops[0].type == _x86.X86_OP_IMM:
        return ops[0].imm & MASK64
    return None


def _is_rep_movs(insn) -> bool:
    return insn.mnemonic.startswith("rep movs") and all(
        op.type == _x86.X86_OP_MEM for op in insn.operands
    )


def offset_at_strcpy(code: bytes, address: int, bits: int = 64, copy_routine: int | None = None) -> int:
    """Displacement added to the copy routine's source argument.

    Registers are tracked symbolically (`origin + offset`) through register
    moves, `lea reg, [reg + disp]` and `add`/`sub reg, imm`.  At each `call`
    (and at a `rep movs`, an inlined copy whose source is rsi/esi), the source
    argument is inspected: rsi in 64-bit mode (System V); in 32-bit mode the
    second stacked argument (the next-to-last `push`, or a `mov [esp+4], reg`)
    and otherwise edx (the second argument under regparm and fastcall).  The
    first call whose source carries a displacement gives the result; calls with
    an unadjusted source (e.g. `task_lock`'s spin-lock call before the copy)
    are passed over, after which the caller-saved registers are forgotten.
    An unconditional `jmp` whose source argument is adjusted counts too: with
    no lock to release, get_task_comm tail-calls the copy (`jmp strncpy`).
    Raises `OffsetNotFound` when no call (or rep movs) is found, or when none
    of them gets an adjusted source.

    With `copy_routine` (the address of the copy routine, as the toolkit's
    two-argument `offatstrcpy(function, strcpy)` names it), only a direct call
    or jmp to that address counts, and its source argument's displacement is
    the result even when it is 0 (an incoming argument passed on unchanged).
    """
    dec = _decode(code, address, bits)
    tracker = _Tracker(bits)
    calls = []
    for insn in dec.insns:
        is_call = insn.id == _x86.X86_INS_CALL or insn.group(capstone.CS_GRP_CALL)
        is_movs = not is_call and _is_rep_movs(insn)
        # An unconditional jmp may be a tail call (`jmp strncpy`: get_task_comm
        # returns what the copy returns); otherwise it just continues the scan.
        is_jmp = not is_call and insn.id == _x86.X86_INS_JMP
        if not (is_call or is_movs or is_jmp):
            tracker.step(insn)
            continue
        if copy_routine is not None:
            if not is_movs and _direct_target(insn) == copy_routine:
                val = tracker.arg2_candidates()[0][1]
                if val.adjusted or val.origin[0] == "entry":
                    return _as_offset(val.offset)
                raise OffsetNotFound(
                    f"offatstrcpy: the copy routine at {copy_routine:#x} is called at {insn.address:#x}, "
                    f"but its source argument is not a register plus a displacement; {dec.summary()}.")
            if is_call:
                tracker.after_call(insn)
            elif is_movs:
                tracker.clobber_written(insn)
            continue
        if is_movs:
            candidates = [("rsi" if bits == 64 else "esi", tracker.get("rsi"))]
        else:
            candidates = tracker.arg2_candidates()
        for _what, val in candidates:
            if val.adjusted:
                return _as_offset(val.offset)
        if is_call:
            calls.append(insn)
            tracker.after_call(insn)
        elif is_movs:
            calls.append(insn)
            tracker.clobber_written(insn)

    if copy_routine is not None:
        raise OffsetNotFound(
            f"offatstrcpy: looked for a call to the copy routine at {copy_routine:#x}, but found none; "
            f"{dec.summary()}."
        )
    if not calls:
        raise OffsetNotFound(
            "offatstrcpy: looked for a call to a string-copy routine (or a rep movs) "
            f"whose source argument is a register plus a displacement, but found no call; "
            f"{dec.summary()}."
        )
    src = "rsi" if bits == 64 else "the second argument, on the stack or in edx"
    listed = ", ".join(f"{_fmt(i)} at {i.address:#x}" for i in calls[:4])
    if len(calls) > 4:
        listed += ", ..."
    which = "the only call" if len(calls) == 1 else f"each of the {len(calls)} calls"
    raise OffsetNotFound(
        f"offatstrcpy: looked for a copy whose source argument ({src}) is a register "
        f"plus a displacement (lea/add before the call), but at {which} found "
        f"[{listed}] the source was not adjusted; {dec.summary()}."
    )
