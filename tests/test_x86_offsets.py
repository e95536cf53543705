"""Tests for vp_runtime.x86_offsets: offatret / offatstrcpy / offatseg decoding.

The byte sequences below were assembled once with GNU as (Intel syntax) and
hard-coded; the source of each is in the comment above it.  Relative call and
jmp targets are arbitrary (`call .+0x1234`).
"""

from __future__ import annotations

import traceback

import pytest

from vp_runtime import x86_offsets
from vp_runtime.x86_offsets import (
    MAX_CODE_BYTES,
    OffsetNotFound,
    offset_at_ret,
    offset_at_seg,
    offset_at_strcpy,
)

KADDR = 0xFFFFFFFF81080000  # a 64-bit kernel text address
KADDR32 = 0xC1080000  # a 32-bit kernel text address
NOP = b"\x90"

# getpid26 (64-bit)
#     push rbp
#     mov rbp, rsp
#     mov rax, gs:[0xb580]
#     mov eax, [rax+0x2a4]
#     leave
#     ret
GETPID26 = bytes.fromhex("55 48 89 e5 65 48 8b 04 25 80 b5 00 00 8b 80 a4 02 00 00 c9 c3")

# getpid_movsxd (64-bit)
#     push rbp
#     mov rbp, rsp
#     mov rax, gs:[0xb580]
#     movsxd rax, dword ptr [rax+0x4a4]
#     leave
#     ret
GETPID_MOVSXD = bytes.fromhex("55 48 89 e5 65 48 8b 04 25 80 b5 00 00 48 63 80 a4 04 00 00 c9 c3")

# getpid_pop (64-bit)
#     push rbp
#     mov rbp, rsp
#     mov rax, gs:[0xc000]
#     mov eax, [rax+0x2a4]
#     pop rbp
#     ret
GETPID_POP = bytes.fromhex("55 48 89 e5 65 48 8b 04 25 00 c0 00 00 8b 80 a4 02 00 00 5d c3")

# after_ret (64-bit)
#     mov eax, [rdi+0x2a4]
#     ret
#     int3
#     int3
#     mov eax, [rdi+0x999]
#     ret
AFTER_RET = bytes.fromhex("8b 87 a4 02 00 00 c3 cc cc 8b 87 99 09 00 00 c3")

# two_loads (64-bit)
#     mov rax, [rdi+0x10]
#     mov eax, [rax+0x2a4]
#     ret
TWO_LOADS = bytes.fromhex("48 8b 47 10 8b 80 a4 02 00 00 c3")

# movzx (64-bit)
#     movzx eax, word ptr [rdi+0x12]
#     ret
MOVZX = bytes.fromhex("0f b7 47 12 c3")

# mov_al (64-bit)
#     mov al, byte ptr [rdi+0x5]
#     ret
MOV_AL = bytes.fromhex("8a 47 05 c3")

# negative (64-bit)
#     mov rax, [rdi-8]
#     ret
NEGATIVE = bytes.fromhex("48 8b 47 f8 c3")

# no_load (64-bit)
#     push rbp
#     mov rbp, rsp
#     xor eax, eax
#     leave
#     ret
NO_LOAD = bytes.fromhex("55 48 89 e5 31 c0 c9 c3")

# rip_only (64-bit)
#     mov eax, [rip+0x100]
#     ret
RIP_ONLY = bytes.fromhex("8b 05 00 01 00 00 c3")

# gs_only (64-bit)
#     mov rax, gs:[0xb580]
#     ret
GS_ONLY = bytes.fromhex("65 48 8b 04 25 80 b5 00 00 c3")

# other_reg (64-bit)
#     mov edx, [rdi+8]
#     ret
OTHER_REG = bytes.fromhex("8b 57 08 c3")

# indexed (64-bit)
#     mov eax, [rdi+rcx*4+0x10]
#     ret
INDEXED = bytes.fromhex("8b 44 8f 10 c3")

# truncated_load (64-bit)
#     push rbp
#     mov rbp, rsp
#     mov eax, [rdi+0x2a4]
#     mov edx, 1
TRUNCATED_LOAD = bytes.fromhex("55 48 89 e5 8b 87 a4 02 00 00 ba 01 00 00 00")

# comm (64-bit)
#     push rbp
#     mov rbp, rsp
#     push rbx
#     mov rbx, rdi
#     lea rsi, [rsi+0x3b8]
#     mov edx, 0x10
#     call .+0x1234
#     mov rax, rbx
#     pop rbx
#     leave
#     ret
COMM = bytes.fromhex("55 48 89 e5 53 48 89 fb 48 8d b6 b8 03 00 00 ba 10 00 00 00 e8 2f 12 00 00 48 89 d8 5b c9 c3")

# comm_add (64-bit)
#     push rbp
#     mov rbp, rsp
#     push rbx
#     mov rbx, rdi
#     add rsi, 0x3b8
#     mov edx, 0x10
#     call .+0x1234
#     mov rax, rbx
#     pop rbx
#     leave
#     ret
COMM_ADD = bytes.fromhex("55 48 89 e5 53 48 89 fb 48 81 c6 b8 03 00 00 ba 10 00 00 00 e8 2f 12 00 00 48 89 d8 5b c9 c3")

# comm_via_rax (64-bit)
#     push rbp
#     mov rbp, rsp
#     push rbx
#     mov rbx, rdi
#     lea rax, [rsi+0x3b8]
#     mov edx, 0x10
#     mov rsi, rax
#     call .+0x1234
#     mov rax, rbx
#     pop rbx
#     leave
#     ret
COMM_VIA_RAX = bytes.fromhex("55 48 89 e5 53 48 89 fb 48 8d 86 b8 03 00 00 ba 10 00 00 00 48 89 c6 e8 2f 12 00 00 48 89 d8 5b c9 c3")

# comm_locked (64-bit)
#     push rbp
#     mov rbp, rsp
#     push r12
#     push rbx
#     mov rbx, rdi
#     mov r12, rsi
#     lea rdi, [rsi+0x5e0]
#     call .+0x2000
#     lea rsi, [r12+0x3b8]
#     mov rdi, rbx
#     mov edx, 0x10
#     call .+0x1234
#     lea rdi, [r12+0x5e0]
#     call .+0x3000
#     mov rax, rbx
#     pop rbx
#     pop r12
#     leave
#     ret
COMM_LOCKED = bytes.fromhex("55 48 89 e5 41 54 53 48 89 fb 49 89 f4 48 8d be e0 05 00 00 e8 fb 1f 00 00 49 8d b4 24 b8 03 00 00 48 89 df ba 10 00 00 00 e8 2f 12 00 00 49 8d bc 24 e0 05 00 00 e8 fb 2f 00 00 48 89 d8 5b 41 5c c9 c3")

# comm_tail (64-bit)
#     lea rsi, [rsi+0x3b8]
#     mov edx, 0x10
#     jmp .+0x1234
COMM_TAIL = bytes.fromhex("48 8d b6 b8 03 00 00 ba 10 00 00 00 e9 2f 12 00 00")

# comm_new (64-bit)
#     mov rax, rdx
#     mov rdx, rsi
#     lea rsi, [rax+0x738]
#     call .+0x1234
#     ret
COMM_NEW = bytes.fromhex("48 89 d0 48 89 f2 48 8d b0 38 07 00 00 e8 2f 12 00 00 c3")

# comm_sub (64-bit)
#     lea rsi, [rsi+0x400]
#     sub rsi, 0x48
#     call .+0x1234
#     ret
COMM_SUB = bytes.fromhex("48 8d b6 00 04 00 00 48 83 ee 48 e8 2f 12 00 00 c3")

# comm_esi (64-bit)
#     lea esi, [rsi+0x3b8]
#     call .+0x1234
#     ret
COMM_ESI = bytes.fromhex("8d b6 b8 03 00 00 e8 2f 12 00 00 c3")

# comm_clobbered (64-bit)
#     lea rax, [rsi+0x3b8]
#     call .+0x2000
#     mov rsi, rax
#     call .+0x1234
#     ret
COMM_CLOBBERED = bytes.fromhex("48 8d 86 b8 03 00 00 e8 fb 1f 00 00 48 89 c6 e8 2f 12 00 00 c3")

# comm_saved (64-bit)
#     lea rbx, [rsi+0x3b8]
#     call .+0x2000
#     mov rsi, rbx
#     call .+0x1234
#     ret
COMM_SAVED = bytes.fromhex("48 8d 9e b8 03 00 00 e8 fb 1f 00 00 48 89 de e8 2f 12 00 00 c3")

# comm_movs (64-bit)
#     mov rax, rdi
#     lea rsi, [rsi+0x3b8]
#     mov ecx, 0x10
#     rep movsb
#     ret
COMM_MOVS = bytes.fromhex("48 89 f8 48 8d b6 b8 03 00 00 b9 10 00 00 00 f3 a4 c3")

# no_call (64-bit)
#     push rbp
#     mov rbp, rsp
#     mov rax, rdi
#     pop rbp
#     ret
NO_CALL = bytes.fromhex("55 48 89 e5 48 89 f8 5d c3")

# call_unadjusted (64-bit)
#     mov edx, 0x10
#     call .+0x1234
#     ret
CALL_UNADJUSTED = bytes.fromhex("ba 10 00 00 00 e8 2f 12 00 00 c3")

# call_rdi_adjusted (64-bit)
#     lea rdi, [rdi+0x10]
#     call .+0x1234
#     ret
CALL_RDI_ADJUSTED = bytes.fromhex("48 8d 7f 10 e8 2f 12 00 00 c3")

# seg_first (64-bit)
#     mov rdx, gs:[0x15c40]
#     mov rax, gs:[0x28]
#     ret
SEG_FIRST = bytes.fromhex("65 48 8b 14 25 40 5c 01 00 65 48 8b 04 25 28 00 00 00 c3")

# seg_fs (64-bit)
#     push rbp
#     mov rax, fs:[0x10]
#     pop rbp
#     ret
SEG_FS = bytes.fromhex("55 64 48 8b 04 25 10 00 00 00 5d c3")

# seg_dest (64-bit)
#     inc dword ptr gs:[0x7a0]
#     ret
SEG_DEST = bytes.fromhex("65 ff 04 25 a0 07 00 00 c3")

# seg_after_ret (64-bit)
#     xor eax, eax
#     ret
#     mov rax, gs:[0xb580]
#     ret
SEG_AFTER_RET = bytes.fromhex("31 c0 c3 65 48 8b 04 25 80 b5 00 00 c3")

# seg_with_base (64-bit)
#     mov rax, gs:[rdi+0x40]
#     ret
SEG_WITH_BASE = bytes.fromhex("65 48 8b 47 40 c3")

# getpid32 (32-bit)
#     mov eax, fs:[0xc1234567]
#     mov eax, [eax+0x1f0]
#     ret
GETPID32 = bytes.fromhex("64 a1 67 45 23 c1 8b 80 f0 01 00 00 c3")

# neg32 (32-bit)
#     mov eax, [eax-8]
#     ret
NEG32 = bytes.fromhex("8b 40 f8 c3")

# comm32_regparm (32-bit)
#     push ebx
#     mov ebx, eax
#     add edx, 0x1f0
#     mov ecx, 0x10
#     call .+0x1234
#     mov eax, ebx
#     pop ebx
#     ret
COMM32_REGPARM = bytes.fromhex("53 89 c3 81 c2 f0 01 00 00 b9 10 00 00 00 e8 2f 12 00 00 89 d8 5b c3")

# comm32_cdecl (32-bit)
#     push ebp
#     mov ebp, esp
#     mov eax, [ebp+0xc]
#     add eax, 0x1f0
#     push 0x10
#     push eax
#     push dword ptr [ebp+8]
#     call .+0x1234
#     add esp, 0xc
#     mov eax, [ebp+8]
#     leave
#     ret
COMM32_CDECL = bytes.fromhex("55 89 e5 8b 45 0c 05 f0 01 00 00 6a 10 50 ff 75 08 e8 2f 12 00 00 83 c4 0c 8b 45 08 c9 c3")

# comm32_movstack (32-bit)
#     sub esp, 0xc
#     mov eax, [esp+0x14]
#     lea eax, [eax+0x1f0]
#     mov dword ptr [esp+8], 0x10
#     mov [esp+4], eax
#     mov eax, [esp+0x10]
#     mov [esp], eax
#     call .+0x1234
#     add esp, 0xc
#     ret
COMM32_MOVSTACK = bytes.fromhex("83 ec 0c 8b 44 24 14 8d 80 f0 01 00 00 c7 44 24 08 10 00 00 00 89 44 24 04 8b 44 24 10 89 04 24 e8 2f 12 00 00 83 c4 0c c3")

# comm32_locked (32-bit)
#     push esi
#     push ebx
#     mov ebx, eax
#     mov esi, edx
#     lea eax, [edx+0x2f0]
#     call .+0x2000
#     lea edx, [esi+0x1f0]
#     mov eax, ebx
#     mov ecx, 0x10
#     call .+0x1234
#     pop ebx
#     pop esi
#     ret
COMM32_LOCKED = bytes.fromhex("56 53 89 c3 89 d6 8d 82 f0 02 00 00 e8 fb 1f 00 00 8d 96 f0 01 00 00 89 d8 b9 10 00 00 00 e8 2f 12 00 00 5b 5e c3")


def _not_found(fn, code, address=KADDR, bits=64, **options):
    with pytest.raises(OffsetNotFound) as info:
        fn(code, address, bits, **options)
    err = info.value
    assert err.message == str(err)
    assert err.message.endswith(".")
    return err.message


# --------------------------------------------------------------------------
# offatret


@pytest.mark.parametrize(
    "code, expected",
    [
        (GETPID26, 0x2A4),
        (GETPID_MOVSXD, 0x4A4),
        (GETPID_POP, 0x2A4),
        (TWO_LOADS, 0x2A4),
        (MOVZX, 0x12),
        (MOV_AL, 0x5),
    ],
    ids=["getpid-2.6", "movsxd", "pop-rbp", "last-load-wins", "movzx", "mov-al"],
)
def test_offset_at_ret(code, expected):
    assert offset_at_ret(code, KADDR) == expected


def test_offset_at_ret_of_a_function_returning_a_fields_address():
    # Windows 7 x64's PsGetProcessImageFileName: lea rax, [rcx+2E0h]; ret
    assert offset_at_ret(bytes.fromhex("48 8d 81 e0 02 00 00 c3"), KADDR) == 0x2E0
    # XP's 32-bit one computes it: mov eax, [esp+4]; lea eax, [eax+174h]; ret 4
    assert offset_at_ret(bytes.fromhex("8b 44 24 04 8d 80 74 01 00 00 c2 04 00"), KADDR32, bits=32) == 0x174
    # A lea into another register is not what the function returns.
    _not_found(offset_at_ret, bytes.fromhex("48 8d 91 e0 02 00 00 31 c0 c3"))


def test_offset_at_ret_stops_at_first_ret():
    assert offset_at_ret(AFTER_RET, KADDR) == 0x2A4


def test_offset_at_ret_negative_displacement_is_twos_complement():
    assert offset_at_ret(NEGATIVE, KADDR) == (-8) & (2**64 - 1)
    assert offset_at_ret(NEG32, KADDR32, bits=32) == (-8) & (2**64 - 1)


def test_offset_at_ret_32bit():
    assert offset_at_ret(GETPID32, KADDR32, bits=32) == 0x1F0


def test_offset_at_ret_any_address():
    assert offset_at_ret(GETPID26, 0) == 0x2A4
    assert offset_at_ret(GETPID26, 0x400000) == 0x2A4


def test_offset_at_ret_accepts_bytearray_and_memoryview():
    assert offset_at_ret(bytearray(GETPID26), KADDR) == 0x2A4
    assert offset_at_ret(memoryview(GETPID26), KADDR) == 0x2A4


def test_offset_at_ret_code_longer_than_function():
    assert offset_at_ret(GETPID26 + b"\xcc" * 16 + NO_LOAD, KADDR) == 0x2A4


def test_offset_at_ret_without_ret_uses_what_was_decoded():
    # Memory ended before the function did: the last load seen is the answer.
    assert offset_at_ret(TRUNCATED_LOAD, KADDR) == 0x2A4
    # Decoding stops at undecodable bytes; the load before them counts.
    assert offset_at_ret(TWO_LOADS[:-1] + b"\xff\xff\xff\xff", KADDR) == 0x2A4


def test_offset_at_ret_no_load():
    msg = _not_found(offset_at_ret, NO_LOAD)
    assert "offatret" in msg
    assert "return register" in msg
    assert "rax/eax/ax/al" in msg
    assert "4 instructions were decoded" in msg
    assert f"reached ret at {KADDR + 7:#x}" in msg
    assert "xor eax, eax" in msg


def test_offset_at_ret_ignores_rip_and_segment_relative_loads():
    msg = _not_found(offset_at_ret, RIP_ONLY)
    assert "rip-relative" in msg
    assert "mov eax, dword ptr [rip + 0x100]" in msg
    msg = _not_found(offset_at_ret, GS_ONLY)
    assert "gs:[0xb580]" in msg


def test_offset_at_ret_ignores_other_registers_and_indexed_operands():
    _not_found(offset_at_ret, OTHER_REG)
    msg = _not_found(offset_at_ret, INDEXED)
    assert "indexed" in msg


def test_offset_at_ret_does_not_look_past_first_ret():
    _not_found(offset_at_ret, NO_LOAD + GETPID26)


# --------------------------------------------------------------------------
# offatstrcpy


@pytest.mark.parametrize(
    "code, expected",
    [
        (COMM, 0x3B8),
        (COMM_ADD, 0x3B8),
        (COMM_VIA_RAX, 0x3B8),
        (COMM_LOCKED, 0x3B8),
        (COMM_TAIL, 0x3B8),
        (COMM_NEW, 0x738),
        (COMM_SUB, 0x3B8),
        (COMM_ESI, 0x3B8),
        (COMM_SAVED, 0x3B8),
        (COMM_MOVS, 0x3B8),
    ],
    ids=[
        "lea-rsi", "add-rsi", "lea-rax-mov-rsi", "task_lock-first", "tail-call-jmp",
        "source-from-rdx", "lea-then-sub", "lea-esi", "callee-saved-across-call",
        "rep-movsb",
    ],
)
def test_offset_at_strcpy(code, expected):
    assert offset_at_strcpy(code, KADDR) == expected


@pytest.mark.parametrize(
    "code",
    [COMM32_REGPARM, COMM32_CDECL, COMM32_MOVSTACK, COMM32_LOCKED],
    ids=["regparm-edx", "cdecl-push", "gcc-mov-esp", "regparm-task_lock-first"],
)
def test_offset_at_strcpy_32bit(code):
    assert offset_at_strcpy(code, KADDR32, bits=32) == 0x1F0


def test_offset_at_strcpy_no_call():
    msg = _not_found(offset_at_strcpy, NO_CALL)
    assert "offatstrcpy" in msg
    assert "no call" in msg
    assert "reached ret" in msg


def test_offset_at_strcpy_call_with_unadjusted_source():
    msg = _not_found(offset_at_strcpy, CALL_UNADJUSTED)
    assert "rsi" in msg
    assert "not adjusted" in msg
    assert "the only call found" in msg
    assert "call 0x" in msg


def test_offset_at_strcpy_ignores_adjustment_of_other_arguments():
    _not_found(offset_at_strcpy, CALL_RDI_ADJUSTED)


def test_offset_at_strcpy_call_clobbers_caller_saved_registers():
    msg = _not_found(offset_at_strcpy, COMM_CLOBBERED)
    assert "each of the 2 calls" in msg


def test_offset_at_strcpy_32bit_failure_names_the_source():
    msg = _not_found(offset_at_strcpy, bytes.fromhex("e8 2f 12 00 00 c3"), KADDR32, 32)
    assert "edx" in msg


# The direct targets of the calls above (`call .+N` at the call's own address).
COMM_COPY = KADDR + 0x1248
LOCKED_CALLS = {"spin_lock": KADDR + 0x2014, "copy": KADDR + 0x125D, "spin_unlock": KADDR + 0x3036}


def test_offset_at_strcpy_of_a_named_copy_routine():
    assert offset_at_strcpy(COMM, KADDR, copy_routine=COMM_COPY) == 0x3B8
    assert offset_at_strcpy(COMM_LOCKED, KADDR, copy_routine=LOCKED_CALLS["copy"]) == 0x3B8
    assert offset_at_strcpy(COMM_TAIL, KADDR, copy_routine=KADDR + 0x1240) == 0x3B8


def test_offset_at_strcpy_of_a_named_routine_takes_that_call_not_the_first_adjusted_one():
    # The first call (the lock) gets rdi adjusted but rsi as it came in: naming it gives offset 0,
    # the incoming argument unchanged; the unlock's rsi was clobbered by the copy call before it.
    assert offset_at_strcpy(COMM_LOCKED, KADDR, copy_routine=LOCKED_CALLS["spin_lock"]) == 0
    msg = _not_found(offset_at_strcpy, COMM_LOCKED, KADDR, copy_routine=LOCKED_CALLS["spin_unlock"])
    assert "not a register plus a displacement" in msg


def test_offset_at_strcpy_of_a_routine_the_function_never_calls():
    msg = _not_found(offset_at_strcpy, COMM, KADDR, copy_routine=KADDR + 0x9999)
    assert f"call to the copy routine at {KADDR + 0x9999:#x}" in msg
    assert "found none" in msg
    # a rep movs is not a call to the named routine
    _not_found(offset_at_strcpy, COMM_MOVS, KADDR, copy_routine=COMM_COPY)


# --------------------------------------------------------------------------
# offatseg


@pytest.mark.parametrize(
    "code, expected",
    [
        (GETPID26, 0xB580),
        (GETPID_POP, 0xC000),
        (SEG_FIRST, 0x15C40),
        (SEG_FS, 0x10),
        (SEG_DEST, 0x7A0),
        (SEG_WITH_BASE, 0x40),
    ],
    ids=["getpid-2.6", "getpid-pop", "first-wins", "fs", "destination", "with-base"],
)
def test_offset_at_seg(code, expected):
    assert offset_at_seg(code, KADDR) == expected


def test_offset_at_seg_32bit_is_an_unsigned_32bit_address():
    assert offset_at_seg(GETPID32, KADDR32, bits=32) == 0xC1234567


def test_offset_at_seg_none():
    msg = _not_found(offset_at_seg, COMM)
    assert "offatseg" in msg
    assert "%fs or %gs" in msg
    assert "reached ret" in msg


def test_offset_at_seg_does_not_look_past_first_ret():
    _not_found(offset_at_seg, SEG_AFTER_RET)


# --------------------------------------------------------------------------
# Decoding limits and bad input

ALL = [offset_at_ret, offset_at_strcpy, offset_at_seg]


@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("bits", [64, 32])
def test_empty_code(fn, bits):
    msg = _not_found(fn, b"", KADDR32, bits)
    assert f"no code bytes at {KADDR32:#x}" in msg


@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x06\x07\x0e\x1e"])
def test_garbage_code(fn, garbage):
    msg = _not_found(fn, garbage)
    assert "no instruction could be decoded" in msg
    assert f"undecodable bytes at {KADDR:#x}" in msg
    assert garbage[:4].hex(" ") in msg


def test_garbage_after_some_instructions():
    code = b"\x55\x48\x89\xe5" + b"\xff\xff" + GETPID26
    msg = _not_found(offset_at_seg, code)
    assert "2 instructions were decoded" in msg
    assert f"undecodable bytes at {KADDR + 4:#x} (ff ff" in msg


def test_truncated_instruction_at_end_of_code():
    # GETPID26 cut inside the gs: load: memory ended, it is not garbage.
    msg = _not_found(offset_at_seg, GETPID26[:8])
    assert f"ran out of code bytes at {KADDR + 4:#x}" in msg


def test_code_shorter_than_function():
    msg = _not_found(offset_at_ret, GETPID26[:13])  # ends after the gs: load
    assert "ran out of code bytes" in msg
    assert offset_at_seg(GETPID26[:13], KADDR) == 0xB580


def test_max_code_bytes_value():
    assert MAX_CODE_BYTES == 512
    assert x86_offsets.MAX_CODE_BYTES == MAX_CODE_BYTES


def test_decoding_stops_at_limit():
    padded = NOP * MAX_CODE_BYTES + GETPID26
    msg = _not_found(offset_at_ret, padded)
    assert f"{MAX_CODE_BYTES}-byte decoding limit" in msg
    assert f"{MAX_CODE_BYTES} instructions were decoded" in msg
    _not_found(offset_at_seg, padded)
    _not_found(offset_at_strcpy, NOP * MAX_CODE_BYTES + COMM)
    # Just inside the limit everything is still found.
    fits = NOP * (MAX_CODE_BYTES - len(GETPID26)) + GETPID26
    assert offset_at_ret(fits + b"\x90" * 100, KADDR) == 0x2A4
    assert offset_at_seg(fits, KADDR) == 0xB580


def test_instruction_straddling_the_limit_is_not_decoded():
    gs_load = GETPID26[4:13]  # mov rax, qword ptr gs:[0xb580] (9 bytes)
    code = NOP * (MAX_CODE_BYTES - 4) + gs_load + b"\xc3"
    msg = _not_found(offset_at_seg, code)
    assert "decoding limit" in msg
    assert "undecodable" not in msg
    assert offset_at_seg(NOP * (MAX_CODE_BYTES - 9) + gs_load, KADDR) == 0xB580


def test_load_before_limit_without_ret():
    code = TWO_LOADS[:-1] + NOP * (2 * MAX_CODE_BYTES) + b"\xc3"
    assert offset_at_ret(code, KADDR) == 0x2A4


def test_long_listing_is_abbreviated():
    msg = _not_found(offset_at_ret, NOP * 40 + b"\xc3")
    assert "; ... 28 more]" in msg
    assert len(msg) < 400


@pytest.mark.parametrize("fn", ALL)
def test_bad_bits(fn):
    with pytest.raises(ValueError):
        fn(GETPID26, KADDR, 16)


def test_decoders_created_once_per_mode():
    assert set(x86_offsets._CS) == {32, 64}
    for cs in x86_offsets._CS.values():
        assert cs.detail
    before = dict(x86_offsets._CS)
    offset_at_ret(GETPID26, KADDR)
    offset_at_ret(GETPID32, KADDR32, 32)
    assert x86_offsets._CS == before


def test_offset_not_found_is_an_exception_with_message():
    err = OffsetNotFound("no luck.")
    assert err.message == "no luck."
    assert str(err) == "no luck."
    assert traceback.format_exception_only(err) == ["vp_runtime.x86_offsets.OffsetNotFound: no luck.\n"]
