"""A tiny x86-64 encoder for the few instruction forms the guest kernel's code uses.

The simulated kernel's functions are real machine code, so that tools which
decode guest code (offatret, offatstrcpy, offatseg, a disassembler in a
pretty-printer) see what they would see in a real kernel.  Only the forms
below are needed; the tests decode the whole kernel with capstone.
"""

from __future__ import annotations

import struct


def _d32(value: int) -> bytes:
    return struct.pack("<i", value) if value < 0x80000000 else struct.pack("<I", value)


PUSH_RBP = b"\x55"
MOV_RBP_RSP = b"\x48\x89\xe5"
PUSH_RBX = b"\x53"
POP_RBX = b"\x5b"
MOV_RBX_RDI = b"\x48\x89\xfb"
MOV_RAX_RBX = b"\x48\x89\xd8"
LEAVE = b"\xc9"
RET = b"\xc3"
NOP = b"\x90"
SWAPGS = b"\x0f\x01\xf8"
SYSRETQ = b"\x48\x0f\x07"
HLT = b"\xf4"
STI = b"\xfb"
CALL_RAX = b"\xff\xd0"  # call rax: through a pointer the caller loaded
PROLOGUE = PUSH_RBP + MOV_RBP_RSP
EPILOGUE = LEAVE + RET


def mov_rax_gs(disp: int) -> bytes:
    """mov rax, qword ptr gs:[disp32] (absolute, no base)."""
    return b"\x65\x48\x8b\x04\x25" + _d32(disp)


def mov_eax_mem_rax(disp: int) -> bytes:
    """mov eax, dword ptr [rax + disp32]."""
    return b"\x8b\x80" + _d32(disp)


def lea_rsi_rsi(disp: int) -> bytes:
    """lea rsi, [rsi + disp32]."""
    return b"\x48\x8d\xb6" + _d32(disp)


def mov_edx_imm(value: int) -> bytes:
    """mov edx, imm32."""
    return b"\xba" + struct.pack("<I", value)


def call_rel32(at: int, target: int) -> bytes:
    """call target, encoded at address `at` (5 bytes)."""
    return b"\xe8" + struct.pack("<i", target - (at + 5))
