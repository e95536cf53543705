"""What a firing reads from a stopped QEMU VM: registers, debug registers, guest memory, the globals.

Everything is read once per stop: a VCPU's registers with one `g` the first
time a probe asks, its debug registers from the monitor's `info
registers`, each range of guest memory once; `invalidate` forgets it all
when the VM runs again.  A probe that fires at an exception's entry sees the
interrupted context's RIP, CS, RFLAGS, RSP and SS from the exception frame
(`Vcpu.over`); one in a call-site trampoline sees RIP and RSP as they were at
the site (`Vcpu.over`, `Vcpu.rsp_bias`).
"""

from __future__ import annotations

import re
import time
from typing import Callable

from vp_runtime import GlobalInfo, GuestMemoryFault, spec
from vp_runtime.spec import MASK64

from ..x86 import APIC_DEFAULT_BASE
from .errors import QemuError
from .rsp import RSPError, StubError

# VP register globals -> the gdbstub's register names (i386-64bit.xml).
GDB_REGISTERS = {
    "RIP": "rip", "RAX": "rax", "RBX": "rbx", "RCX": "rcx", "RDX": "rdx", "RSI": "rsi", "RDI": "rdi",
    "RSP": "rsp", "RBP": "rbp", "R8": "r8", "R9": "r9", "R10": "r10", "R11": "r11", "R12": "r12",
    "R13": "r13", "R14": "r14", "R15": "r15", "RFLAGS": "eflags", "CS": "cs", "SS": "ss", "DS": "ds",
    "ES": "es", "FS": "fs", "GS": "gs", "CR0": "cr0", "CR2": "cr2", "CR3": "cr3", "CR4": "cr4",
    "CR8": "cr8", "EFER": "efer", "KERNELGSBASE": "k_gs_base", "FSBASE": "fs_base", "GSBASE": "gs_base",
}
# VP globals the gdbstub lacks -> their name in the monitor's `info registers`.
MONITOR_REGISTERS = {"DR6": "DR6", "DR7": "DR7"}
# What some globals mean on a QEMU VM, where that differs from the spec's description.
_QEMU_DESCRIPTIONS = {
    "APIC_BASEPA": "physical address of the local APIC (QEMU's fixed 0xfee00000)",
    "TSC": spec.GLOBALS["TSC"].description + " (host time at the guest's TSC rate)",
    "PTSC": spec.GLOBALS["PTSC"].description + " (host time at the guest's TSC rate)",
}


class Vcpu:
    """A VCPU as a firing sees it: its gdbstub thread, registers fetched once per stop."""

    __slots__ = ("index", "thread", "host_tid", "block", "over", "rsp_bias", "monitor_regs")

    def __init__(self, index: int, thread: int):
        self.index = index
        self.thread = thread
        self.host_tid = 0
        self.block: bytes | None = None
        self.over: dict[str, int] | None = None  # registers rewound to an interrupted context
        self.rsp_bias = 0  # added to RSP: a stop in a call-site trampoline is 16 bytes deeper than the site
        self.monitor_regs: dict[str, int] | None = None

    def forget(self) -> None:
        self.block = None
        self.monitor_regs = None
        self.over = None
        self.rsp_bias = 0


class Reads:
    """The Backend's reads for `machine` (its stub, VCPUs, current VCPU and ARGn)."""

    def __init__(self, machine):
        self.m = machine
        self._cache: dict[tuple[int, int, int, bool], bytes] = {}

    def invalidate(self) -> None:
        """The VM has run: registers and memory are read afresh from now on."""
        self._cache.clear()
        for vcpu in self.m.vcpus:
            vcpu.forget()

    # ---- globals -----------------------------------------------------------------------------

    def offered_globals(self) -> dict[str, GlobalInfo]:
        offered: dict[str, GlobalInfo] = {}
        by_name = self.m.stub.by_name
        for info in spec.REGISTER_GLOBALS:
            if (info.name in GDB_REGISTERS and GDB_REGISTERS[info.name] in by_name
                    or info.name in MONITOR_REGISTERS or info.name == "APIC_BASEPA"):
                offered[info.name] = info
        for info in spec.HARDWARE_GLOBALS + spec.PROBE_GLOBALS:
            offered[info.name] = info
        for name, description in _QEMU_DESCRIPTIONS.items():
            offered[name] = offered[name].replace(description=description)
        return offered

    def global_reader(self, name: str) -> Callable[[], int | str]:
        machine = self.m
        gdb_name = GDB_REGISTERS.get(name)
        if gdb_name is not None:
            reg = machine.stub.by_name[gdb_name]
            start, end = reg.offset, reg.offset + reg.size
            is_rsp = name == "RSP"
            fetch = self.fetch_registers

            def read_register() -> int:
                vcpu = machine.current
                over = vcpu.over
                if over is not None and name in over:
                    return over[name]
                block = vcpu.block
                if block is None:
                    block = fetch(vcpu)
                value = int.from_bytes(block[start:end], "little")
                return (value + vcpu.rsp_bias) & MASK64 if is_rsp else value
            return read_register
        index = spec.PROBE_ARG_INDEX.get(name)
        if index is not None:
            args = machine.args
            return lambda: args[index]
        monitor_name = MONITOR_REGISTERS.get(name)
        if monitor_name is not None:
            return lambda: self._monitor_register(monitor_name)
        readers = {
            "APIC_BASEPA": lambda: APIC_DEFAULT_BASE,
            "TSC": lambda: time.monotonic_ns() * machine.tsc_hz // 1_000_000_000,
            "PTSC": lambda: time.monotonic_ns() * machine.tsc_hz // 1_000_000_000,
            "TSC_HZ": lambda: machine.tsc_hz,
            "VCPUID": lambda: machine.current.index,
            "PCPUID": lambda: host_cpu(machine.current.host_tid),
            "THREADID": lambda: machine.current.host_tid,
            "NUMVCPUS": lambda: len(machine.vcpus),
        }
        return readers.get(name, lambda: 0)

    # ---- registers ---------------------------------------------------------------------------

    def fetch_registers(self, vcpu: Vcpu) -> bytes:
        try:
            vcpu.block = self.m.stub.read_registers(vcpu.thread)
        except RSPError as e:
            raise QemuError(f"cannot read VCPU {vcpu.index}'s registers: {e}") from None
        return vcpu.block

    def _monitor_register(self, name: str) -> int:
        vcpu = self.m.current
        if vcpu.monitor_regs is None:
            regs: dict[str, int] = {}
            stub = self.m.stub
            try:
                stub.monitor(f"cpu {vcpu.index}")  # `info registers` shows the monitor's selected CPU
                text = stub.monitor("info registers")
            except RSPError:
                text = ""
            for key, value in re.findall(r"\b(DR[0-7])=([0-9a-fA-F]+)", text):
                regs[key] = int(value, 16)
            vcpu.monitor_regs = regs
        return vcpu.monitor_regs.get(name, 0)

    # ---- memory ------------------------------------------------------------------------------

    def read_linear(self, addr: int, size: int) -> bytes:
        return self._read_cached(self.m.current.thread, addr, size, False, "is not mapped")

    def read_physical(self, addr: int, size: int) -> bytes:
        return self._read_cached(0, addr, size, True, "is not backed by memory")

    def _read_cached(self, thread: int, addr: int, size: int, physical: bool, unmapped: str) -> bytes:
        """Guest memory, read once per stop (`thread` 0 for physical reads: any VCPU sees the same)."""
        key = (thread, addr, size, physical)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            data = self.m.stub.read_memory(thread or self.m.current.thread, addr, size, physical=physical)
        except StubError:
            kind = "physical" if physical else "linear"
            raise GuestMemoryFault(f"guest {kind} address {addr:#x} {unmapped}") from None
        except RSPError as e:
            raise QemuError(str(e)) from None
        self._cache[key] = data
        return data


def host_cpu(tid: int) -> int:
    """The host CPU a VCPU thread last ran on (field 39 of /proc/TID/stat)."""
    if not tid:
        return 0
    try:
        with open(f"/proc/{tid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[36])
    except (IndexError, ValueError):
        return 0
