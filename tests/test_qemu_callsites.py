"""Call-site probes without QEMU: which bytes are ftrace sites, where trampolines fit, and what
CallSites writes into (and restores in) a guest's memory."""

from __future__ import annotations

import capstone
import pytest

from machine.qemu.callsites import (DETOUR_SIZE, NOP5, TRAMPOLINE, CallSites, call_target, call_to, detour,
                                   is_ftrace_call, padding_slot)

BASE = 0xFFFFFFFF81000000
FENTRY = BASE + 0x10


def _decode(code: bytes, at: int) -> list[tuple[str, str]]:
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return [(insn.mnemonic, insn.op_str) for insn in cs.disasm(code, at)]


def test_the_trampoline_pushes_its_own_bytes_then_drops_them_and_returns():
    at = BASE + 0x1000
    assert _decode(TRAMPOLINE, at) == [("push", "qword ptr [rip - 6]"), ("lea", "rsp, [rsp + 8]"), ("ret", "")]


def test_call_to_reaches_the_target_backwards_and_forwards():
    for site, target in ((BASE + 0x100, BASE + 0x5000), (BASE + 0x5000, BASE + 0x100)):
        code = call_to(site, target)
        assert len(code) == 5 and _decode(code, site) == [("call", hex(target))]
        assert call_target(code, site) == target
    assert call_target(NOP5, BASE) is None and call_target(b"", BASE) is None


def test_an_ftrace_site_is_a_call_to_fentry_in_the_image():
    site = BASE + 0x200
    assert is_ftrace_call(call_to(site, FENTRY), site, FENTRY)
    assert not is_ftrace_call(call_to(site, FENTRY + 16), site, FENTRY)
    assert not is_ftrace_call(NOP5, site, FENTRY)
    assert not is_ftrace_call(b"\xe8\x00", site, FENTRY)


RET = b"\xc3"
JMP_BACK = b"\xeb\xfe"
NOP11 = bytes.fromhex("66662e0f1f840000000000")
NOP2 = bytes.fromhex("6690")
CALL = call_to(BASE, FENTRY)
BODY = bytes.fromhex("4889f8")  # mov rax, rdi


@pytest.mark.parametrize("code, slot", [
    (BODY + RET + NOP11 + NOP2, 4),           # ret, then 13 bytes of alignment nops
    (BODY + JMP_BACK + NOP11 + NOP2, 5),      # jmp
    (BODY + RET + b"\xcc" * 12, 4),           # int3 padding
    (BODY + RET + b"\xcc" * 4 + NOP11, 4),    # ret; int3 (straight-line speculation) and nops
    (BODY + b"\x0f\x0b" + NOP11 + NOP2, 5),   # ud2
])
def test_padding_after_an_instruction_that_never_falls_through_holds_a_trampoline(code, slot):
    assert padding_slot(code, BASE) == BASE + slot


@pytest.mark.parametrize("code", [
    BODY + RET + NOP11,                       # 11 bytes: too short
    BODY + CALL + NOP11 + NOP2,               # a call returns into the "padding"
    BODY + NOP11 + NOP2,                      # falls through into it
    BODY + RET + NOP11 + NOP2 + BODY,         # nops inside the function, not at its end
    BODY + RET + NOP11 + b"\x0f",             # does not decode to the end
    BODY + b"\x75\xfe" + NOP11 + NOP2,        # jne: falls through when not taken
    NOP11 + NOP2,                             # nothing but nops
])
def test_no_slot_where_the_padding_could_run_or_is_too_short(code):
    assert padding_slot(code, BASE) is None


class FakeGuest:
    """A kernel image and the guest's memory of it: functions f0, f1, f2 and a bare end marker."""

    def __init__(self):
        self.f0 = BASE + 0x100
        self.f1 = BASE + 0x200
        self.f2 = BASE + 0x300
        self.end = BASE + 0x400
        image = bytearray(b"\xcc" * 0x400)
        for start in (self.f0, self.f1, self.f2):
            code = call_to(start, FENTRY) + BODY + RET
            image[start - BASE:start - BASE + len(code)] = code
        self.image = bytes(image)
        self.memory = bytearray(image)
        for start in (self.f0, self.f1, self.f2):
            self.memory[start - BASE:start - BASE + 5] = NOP5  # what boot does to ftrace sites
        self.writes: list[tuple[int, bytes]] = []

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.memory[addr - BASE:addr - BASE + size])

    def write(self, addr: int, data: bytes) -> None:
        self.writes.append((addr, data))
        self.memory[addr - BASE:addr - BASE + len(data)] = data

    def image_read(self, addr: int, size: int) -> bytes:
        return self.image[addr - BASE:addr - BASE + size]

    def sites(self) -> CallSites:
        functions = [("f0", self.f0), ("f1", self.f1), ("f2", self.f2), ("end", self.end)]
        return CallSites(self.read, self.write, self.image_read, functions, FENTRY, (BASE, self.end))


def _called(guest: FakeGuest, site: int) -> int | None:
    return call_target(guest.read(site, 5), site)


def test_install_writes_a_trampoline_in_padding_and_a_call_at_the_site():
    guest = FakeGuest()
    sites = guest.sites()
    trampoline = sites.install(guest.f1)
    assert trampoline == guest.f0 + 9  # after f0's ret
    assert guest.read(trampoline, len(TRAMPOLINE)) == TRAMPOLINE
    assert _called(guest, guest.f1) == trampoline
    assert sites.install(guest.f1) == trampoline  # a second probe at the same site shares it


def test_restore_puts_the_nops_back_and_keeps_each_trampoline_for_its_own_site():
    guest = FakeGuest()
    sites = guest.sites()
    first = sites.install(guest.f1)
    second = sites.install(guest.f2)
    assert first != second and sites.trampoline(guest.f1) == first
    sites.restore()
    assert guest.read(guest.f1, 5) == NOP5 and guest.read(guest.f2, 5) == NOP5
    assert sites.trampoline(guest.f1) is None and not sites.patched
    assert guest.read(first, len(TRAMPOLINE)) == TRAMPOLINE  # a VCPU inside it can still finish
    writes = len(guest.writes)
    assert sites.install(guest.f1) == first and len(guest.writes) == writes + 1  # only the call is written
    # A task that stopped inside f1's trampoline may resume there later: it is never lent to f0.
    other = sites.install(guest.f0)
    assert other not in (first, second) and guest.read(other, len(TRAMPOLINE)) == TRAMPOLINE


def test_a_site_the_guest_rewrote_meanwhile_is_left_alone():
    guest = FakeGuest()
    sites = guest.sites()
    sites.install(guest.f1)
    traced = call_to(guest.f1, BASE + 0x3F0)  # say the guest's ftrace took the site over
    guest.memory[guest.f1 - BASE:guest.f1 - BASE + 5] = traced
    sites.restore()
    assert guest.read(guest.f1, 5) == traced and not sites.patched


def test_restore_tries_every_site_and_reports_the_first_failure():
    guest = FakeGuest()
    sites = guest.sites()
    sites.install(guest.f1)
    sites.install(guest.f2)
    write = guest.write

    def failing_at_f1(addr, data):
        if addr == guest.f1:
            raise OSError("lost")
        write(addr, data)
    sites._write = failing_at_f1
    with pytest.raises(OSError):
        sites.restore()
    assert guest.read(guest.f2, 5) == NOP5 and sites.patched == {guest.f1}


def test_sites_that_are_not_untraced_ftrace_sites_are_left_to_breakpoints():
    guest = FakeGuest()
    sites = guest.sites()
    assert sites.install(guest.f1 + 5) is None  # not a function's ftrace site
    guest.memory[guest.f2 - BASE:guest.f2 - BASE + 5] = call_to(guest.f2, BASE + 0x3F0)  # traced by the guest
    assert sites.install(guest.f2) is None
    assert sites.install(guest.end + 0x10) is None  # outside kernel text
    unreadable = CallSites(lambda a, n: b"", guest.write, guest.image_read, [], FENTRY, (BASE, guest.end))
    assert unreadable.install(guest.f1) is None  # guest memory not mapped (a VCPU still in real mode)
    no_image = CallSites(guest.read, guest.write, lambda a, n: None, [], FENTRY, (BASE, guest.end))
    assert no_image.install(guest.f1) is None
    assert not guest.writes


def test_a_site_left_patched_by_a_lost_connection_is_taken_over():
    guest = FakeGuest()
    old = guest.sites()
    stale = old.install(guest.f1)  # the connection is lost here: no restore
    sites = guest.sites()
    trampoline = sites.install(guest.f1)
    assert trampoline is not None and trampoline != stale  # the stale trampoline is not reused
    sites.restore()
    assert guest.read(guest.f1, 5) == NOP5


def test_only_padding_after_compiler_built_functions_is_used():
    guest = FakeGuest()
    assert next(guest.sites()._find_slots(), (None,))[0] == guest.f0 + 9
    for start in (guest.f0, guest.f1, guest.f2):  # as if they were assembly: no call __fentry__ first
        guest.image = guest.image[:start - BASE] + NOP5 + guest.image[start - BASE + 5:]
    assert next(guest.sites()._find_slots(), None) is None


def test_padding_the_guest_has_changed_is_not_used():
    guest = FakeGuest()
    guest.memory[:] = guest.memory.replace(b"\xcc", b"\x90")  # not the image's padding any more
    assert guest.sites().install(guest.f1) is None
    assert not guest.writes


def _with_a_call_in_f2(guest: FakeGuest) -> int:
    """Give f2 a direct `call f0` after its body (in the image and the guest); the call's address."""
    site = guest.f2 + 8
    code = call_to(site, guest.f0) + RET
    for memory in (guest.memory,):
        memory[site - BASE:site - BASE + len(code)] = code
    guest.image = guest.image[:site - BASE] + code + guest.image[site - BASE + len(code):]
    return site


def test_the_detour_jumps_to_the_original_callee_through_the_pointer_after_it():
    at, target = BASE + 0x1000, BASE + 0x40
    code = detour(target)
    assert _decode(code[:6], at) == [("jmp", "qword ptr [rip]")]
    assert int.from_bytes(code[6:], "little") == target and len(code) == DETOUR_SIZE


def test_a_direct_call_to_a_function_is_detoured_through_a_trampoline_and_put_back():
    guest = FakeGuest()
    site = _with_a_call_in_f2(guest)
    sites = guest.sites()
    trampoline = sites.install(site)
    assert trampoline is not None and _called(guest, site) == trampoline
    assert guest.read(trampoline, DETOUR_SIZE) == detour(guest.f0)
    assert sites.watched(site) == trampoline + 6 and sites.stack_bias(site) == 8  # stops after the jump
    ftrace = sites.install(guest.f1)  # an ftrace site's trampoline stops on its own first byte
    assert sites.watched(guest.f1) == ftrace and sites.stack_bias(guest.f1) == 16
    # Where a VCPU stopped by each is: in the callee after a detour's jump, after the ftrace one's push.
    assert sites.stopped_rip(site) == guest.f0 and sites.is_detour(site)
    assert sites.stopped_rip(guest.f1) == ftrace + 6 and not sites.is_detour(guest.f1)
    sites.restore()
    assert _called(guest, site) == guest.f0 and not sites.patched
    assert sites.install(site) == trampoline  # the same trampoline serves it again


def test_calls_that_are_not_to_a_function_start_or_cannot_reach_a_trampoline_stay_breakpoints():
    guest = FakeGuest()
    site = _with_a_call_in_f2(guest)
    middle = guest.f2 + 20
    call = call_to(middle, guest.f0 + 3)  # into the middle of f0
    guest.memory[middle - BASE:middle - BASE + 5] = call
    guest.image = guest.image[:middle - BASE] + call + guest.image[middle - BASE + 5:]
    assert guest.sites().install(middle) is None
    functions = [("f0", guest.f0), ("f1", guest.f1), ("f2", guest.f2), ("end", guest.end)]
    pti = CallSites(guest.read, guest.write, guest.image_read, functions, FENTRY, (BASE, guest.end),
                    unreachable=(guest.f2, guest.end))
    assert pti.install(site) is None and pti.install(guest.f1) is not None
    guest.memory[site - BASE] = 0x90  # the guest changed the call: not the image's any more
    assert guest.sites().install(site) is None


def test_a_detour_left_behind_by_a_lost_connection_is_taken_over():
    guest = FakeGuest()
    site = _with_a_call_in_f2(guest)
    guest.sites().install(site)
    sites = guest.sites()
    assert sites.install(site) is not None
    sites.restore()
    assert _called(guest, site) == guest.f0
