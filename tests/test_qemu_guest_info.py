"""What a running guest tells the QEMU backend (machine/qemu/guest_info.py), against a stub that
answers as QEMU's monitor and memory reads do: the IDT, the KASLR slide, host threads, TSC rate."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from machine.qemu.guest_info import guest_tsc_hz, host_threads, kaslr_slide, read_idt
from machine.qemu.rsp import RSPError

IDT_BASE = 0xFFFFFE0000000000
DIVIDE_ERROR = 0xFFFFFFFF81A00BA0  # asm_exc_divide_error in the symbol table


def gate(handler: int, present: bool = True) -> bytes:
    """A 64-bit interrupt gate: offset 15:0, selector, IST, type/attributes, offset 31:16, 63:32."""
    return struct.pack("<HHBBHII", handler & 0xFFFF, 0x10, 0, 0x8E if present else 0x0E,
                       (handler >> 16) & 0xFFFF, handler >> 32, 0)


class Stub:
    def __init__(self, gates: list[bytes] | None, monitor: dict[str, str] | None = None,
                 memory: dict[int, bytes] | None = None):
        self.idt = b"".join(gates) if gates is not None else None
        self.answers = monitor or {}
        self.memory = memory or {}

    def monitor(self, command: str) -> str:
        if command == "info registers":
            if self.idt is None:
                return "RAX=0000000000000000\nIDT=     0000000000000000 0000ffff\n"
            return f"RAX=0000000000000000\nIDT=     {IDT_BASE:016x} {len(self.idt) - 1:08x}\n"
        if command in self.answers:
            return self.answers[command]
        raise RSPError(f"no answer to {command}")

    def read_memory(self, thread: int, addr: int, size: int) -> bytes:
        if addr == IDT_BASE and self.idt is not None:
            return self.idt[:size]
        if addr in self.memory:
            return self.memory[addr][:size]
        raise RSPError("unmapped")


def test_the_idt_gives_each_present_gates_handler():
    gates = [gate(DIVIDE_ERROR + 0x40 * v) for v in range(32)] + [gate(0, present=False), gate(0xFFFFFFFF81C00100)]
    idt = read_idt(Stub(gates), 1)
    assert idt[0] == DIVIDE_ERROR and idt[31] == DIVIDE_ERROR + 0x40 * 31
    assert 32 not in idt and idt[33] == 0xFFFFFFFF81C00100


def test_no_idt_before_the_kernel_has_set_one_up():
    assert read_idt(Stub(None), 1) == {}  # a limit below 32 gates: the real-mode IVT


def test_the_kaslr_slide_is_the_distance_of_the_divide_error_gate():
    kernel = SimpleNamespace(symbols={"asm_exc_divide_error": DIVIDE_ERROR})
    for slide in (0, 0x2600000, -0x200000):
        gates = [gate(DIVIDE_ERROR + slide)] + [gate(DIVIDE_ERROR)] * 31
        assert kaslr_slide(Stub(gates), 1, kernel) == slide
    far = [gate(DIVIDE_ERROR - (1 << 33))] + [gate(DIVIDE_ERROR)] * 31
    assert kaslr_slide(Stub(far), 1, kernel) is None  # not a slide KASLR makes: not known
    assert kaslr_slide(Stub(None), 1, kernel) is None
    assert kaslr_slide(Stub(far), 1, SimpleNamespace(symbols={})) is None


def test_host_threads_and_tsc_rate():
    vcpus = [SimpleNamespace(host_tid=0), SimpleNamespace(host_tid=0)]
    cpus = "* CPU #0: thread_id=4242\n  CPU #1: thread_id=4243\n  CPU #2: thread_id=9\n"
    host_threads(Stub([], {"info cpus": cpus}), vcpus)
    assert [v.host_tid for v in vcpus] == [4242, 4243]
    kernel = SimpleNamespace(symbols={"tsc_khz": 0xFFFFFFFF82000000})
    stub = Stub([], memory={0xFFFFFFFF82000000: struct.pack("<I", 2_593_119)})
    assert guest_tsc_hz(stub, 1, kernel) == 2_593_119_000
    assert guest_tsc_hz(Stub([], memory={0xFFFFFFFF82000000: bytes(4)}), 1, kernel) == 1_000_000_000
