"""What a running guest tells through QEMU's gdbstub and monitor: its VCPUs' host threads, whether
it runs under KVM, its IDT, the KASLR slide, its TSC rate.

Each is asked once, with the VM stopped; a guest that cannot answer yet (no
IDT before its kernel has set one up, no TSC rate before calibration) gets
the answer that assumes nothing.
"""

from __future__ import annotations

import re

from vp_runtime.spec import MASK64

from .btf import BTFError
from .kernel import GuestKernel
from .kimage import KernelImageError
from .rsp import RSPError

GATE_SIZE = 16  # a 64-bit IDT gate
_EXCEPTION_GATES = 32


def host_threads(stub, vcpus) -> None:
    """Each VCPU's host thread (THREADID), from the monitor's `info cpus`."""
    try:
        text = stub.monitor("info cpus")
    except RSPError:
        return
    for match in re.finditer(r"CPU #(\d+):.*?thread_id=(\d+)", text):
        index = int(match.group(1))
        if index < len(vcpus):
            vcpus[index].host_tid = int(match.group(2))


def under_kvm(process, stub) -> bool:
    """Whether the VM runs under KVM (as QEMU was started here, or as its monitor says)."""
    if process is not None:
        return process.accel == "kvm"
    try:
        return "kvm support: enabled" in stub.monitor("info kvm")
    except RSPError:
        return False


def read_idt(stub, thread: int) -> dict[int, int]:
    """vector -> handler address, from the guest's IDT (empty if the guest has none yet)."""
    try:
        text = stub.monitor("info registers")
    except RSPError:
        return {}
    match = re.search(r"IDT=\s*([0-9a-fA-F]+)\s+([0-9a-fA-F]+)", text)
    if not match:
        return {}
    base, limit = int(match.group(1), 16), int(match.group(2), 16)
    if limit < GATE_SIZE * _EXCEPTION_GATES - 1:
        return {}
    try:
        data = stub.read_memory(thread, base, min(limit + 1, 4096))
    except RSPError:
        return {}
    gates = {}
    for vector in range(len(data) // GATE_SIZE):
        gate = data[vector * GATE_SIZE:vector * GATE_SIZE + GATE_SIZE]
        if gate[5] & 0x80:  # present: the handler's offset is split over three fields
            lo = int.from_bytes(gate[0:2], "little")
            mid = int.from_bytes(gate[6:8], "little")
            hi = int.from_bytes(gate[8:12], "little")
            gates[vector] = lo | (mid << 16) | (hi << 32)
    return gates


def kaslr_slide(stub, thread: int, kernel: GuestKernel) -> int | None:
    """How far KASLR moved the kernel: the guest's IDT entry for #DE against the symbol table's
    (None: not known)."""
    expected = kernel.symbols.get("asm_exc_divide_error")
    if expected is None:
        return None
    gates = read_idt(stub, thread)
    if not gates or 0 not in gates:
        return None
    slide = (gates[0] - expected) & MASK64
    if slide and slide < (1 << 31) or slide > MASK64 - (1 << 31):
        return slide if slide < (1 << 63) else slide - (1 << 64)
    if not slide:
        return 0
    return None


X86_FEATURE_PTI = 7 * 32 + 11  # arch/x86/include/asm/cpufeatures.h


def user_page_tables(machine) -> bool:
    """Whether the guest's kernel runs its entry code on the user's page tables (page-table isolation,
    X86_FEATURE_PTI in boot_cpu_data), where only the entry text is mapped.  True where unknown."""
    kernel = machine.kernel
    base = kernel.symbols.get("boot_cpu_data")
    try:
        offset = kernel.btf.member_offset("cpuinfo_x86", "x86_capability")
    except (KernelImageError, BTFError):  # no image or no BTF: assume the cautious answer
        return True
    if base is None or offset is None:
        return True
    word = base + offset + X86_FEATURE_PTI // 32 * 4
    try:
        data = machine.stub.read_memory(machine.current.thread, word, 4)
    except RSPError:
        return True
    return len(data) < 4 or bool(int.from_bytes(data, "little") >> (X86_FEATURE_PTI % 32) & 1)


def guest_tsc_hz(stub, thread: int, kernel: GuestKernel) -> int:
    """The guest's TSC rate, as its kernel calibrated it (tsc_khz)."""
    addr = kernel.symbols.get("tsc_khz")
    if addr is not None:
        try:
            khz = int.from_bytes(stub.read_memory(thread, addr, 4), "little")
            if khz:
                return khz * 1000
        except RSPError:
            pass
    return 1_000_000_000  # before the guest has calibrated: nanoseconds
