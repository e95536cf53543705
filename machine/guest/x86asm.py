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


def call_rip(at: int, slot: int) -> bytes:
    """call qword ptr [rip + disp32]: through the pointer at `slot` (6 bytes, encoded at `at`)."""
    return b"\xff\x15" + struct.pack("<i", slot - (at + 6))


def call_rel32(at: int, target: int) -> bytes:
    """call target, encoded at address `at` (5 bytes)."""
    return b"\xe8" + struct.pack("<i", target - (at + 5))


# ---- the forms of the Windows kernel's system-call entry and accessors ------------------------

PUSH_RCX = b"\x51"
PUSH_R11 = b"\x41\x53"
POP_RBP = b"\x5d"
MOV_RCX_R10 = b"\x4c\x89\xd1"
MOVSXD_R11_R10_RAX4 = b"\x4d\x63\x1c\x82"  # movsxd r11, dword ptr [r10 + rax*4]
SAR_R11_4 = b"\x49\xc1\xfb\x04"
ADD_R10_R11 = b"\x4d\x01\xda"
CALL_R10 = b"\x41\xff\xd2"
LEA_R10_RIP_LENGTH = 7


def mov_rax_mem_rax(disp: int) -> bytes:
    """mov rax, qword ptr [rax + disp32]."""
    return b"\x48\x8b\x80" + _d32(disp)


def mov_rax_mem_rcx(disp: int) -> bytes:
    """mov rax, qword ptr [rcx + disp32]."""
    return b"\x48\x8b\x81" + _d32(disp)


def lea_rax_rcx(disp: int) -> bytes:
    """lea rax, [rcx + disp32]."""
    return b"\x48\x8d\x81" + _d32(disp)


def mov_gs_rsp(disp: int) -> bytes:
    """mov qword ptr gs:[disp32], rsp."""
    return b"\x65\x48\x89\x24\x25" + _d32(disp)


def mov_rsp_gs(disp: int) -> bytes:
    """mov rsp, qword ptr gs:[disp32]."""
    return b"\x65\x48\x8b\x24\x25" + _d32(disp)


def mov_rbx_gs(disp: int) -> bytes:
    """mov rbx, qword ptr gs:[disp32]."""
    return b"\x65\x48\x8b\x1c\x25" + _d32(disp)


def push_gs(disp: int) -> bytes:
    """push qword ptr gs:[disp32]."""
    return b"\x65\xff\x34\x25" + _d32(disp)


def push_imm8(value: int) -> bytes:
    return b"\x6a" + bytes([value])


def sub_rsp(value: int) -> bytes:
    """sub rsp, imm32."""
    return b"\x48\x81\xec" + struct.pack("<I", value)


def and_eax(value: int) -> bytes:
    """and eax, imm32."""
    return b"\x25" + struct.pack("<I", value)


def lea_r10_rip(disp: int) -> bytes:
    """lea r10, [rip + disp32] (7 bytes: the displacement counts from the next instruction)."""
    return b"\x4c\x8d\x15" + struct.pack("<i", disp)
