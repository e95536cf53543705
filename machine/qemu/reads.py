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

from vp_runtime import GlobalInfo, GuestMemoryFault, VPFault, spec
from vp_runtime.spec import MASK64

from ..x86 import APIC_BASE_BSP, APIC_BASE_ENABLE, APIC_DEFAULT_BASE, MSR_APIC_BASE, MSR_TSC
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
# VP globals the gdbstub lacks, read from the monitor's `info registers` (`monitor_registers`):
# the debug registers, TR and LDTR, GDTR and IDTR, every segment's hidden part (and SMM, SELSTATE).
MONITOR_GLOBALS = frozenset(
    [g.name for g in spec.REGISTER_GLOBALS if g.name not in GDB_REGISTERS and g.name != "APIC_BASEPA"]
    + [g.name for g in spec.SEGMENT_GLOBALS])
# `info registers`: "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]" (selector, base,
# limit, the descriptor's flags word), "LDT=0000 ...", "TR =0040 ...", "GDT=     BASE LIMIT", "SMM=0".
_SEGMENT_LINE = re.compile(r"^(ES|CS|SS|DS|FS|GS|LDT|TR) ?=([0-9a-fA-F]{4}) ([0-9a-fA-F]+) ([0-9a-fA-F]+) "
                           r"([0-9a-fA-F]+)", re.M)
_TABLE_LINE = re.compile(r"^(GDT|IDT)= +([0-9a-fA-F]+) +([0-9a-fA-F]+)", re.M)
_DEBUG = re.compile(r"\b(DR[67])=([0-9a-fA-F]+)")
_SMM = re.compile(r"\bSMM=([01])")
_CR0 = re.compile(r"\bCR0=([0-9a-fA-F]+)")
_MONITOR_LABELS = {"LDT": spec.SYSTEM_SEGMENTS[0]}  # the monitor's label -> the register's VP name
CR0_PE = 1
AR_UNUSABLE = 1 << 16
# Why a QEMU VM does not offer some of the spec's globals.
GLOBAL_REFUSALS = {
    spec.VMCS: "no VMCS is visible through QEMU's gdbstub (under TCG there is none)",
    spec.VMCB: "no VMCB is visible through QEMU's gdbstub (under TCG there is none)",
    "BRCNT": "QEMU counts no retired branches the gdbstub could read",
}


def monitor_registers(text: str) -> dict[str, int]:
    """The VP globals the monitor's `info registers` for one CPU gives."""
    regs = {name: int(value, 16) for name, value in _DEBUG.findall(text)}
    cr0 = _CR0.search(text)
    protected = cr0 is not None and int(cr0.group(1), 16) & CR0_PE
    selectors = {}
    code_segment = spec.SEGMENT_REGISTERS[1]
    for label, selector, base, limit, flags in _SEGMENT_LINE.findall(text):
        name = _MONITOR_LABELS.get(label, label)
        selector = int(selector, 16)
        selectors[name] = selector
        flags = int(flags, 16)
        null = protected and selector & ~3 == 0 and name != code_segment
        regs[f"{name}LIMIT"] = int(limit, 16)
        regs[f"{name}AR"] = AR_UNUSABLE if null or flags == 0 else (flags >> 8) & 0xF0FF
        if name not in spec.MSR_BASED_SEGMENTS:  # their bases are the gdbstub's fs_base / gs_base
            regs[f"{name}BASE"] = int(base, 16)
    regs.update({name: selectors[name] for name in spec.SYSTEM_SEGMENTS if name in selectors})
    for table, base, limit in _TABLE_LINE.findall(text):
        regs[f"{table}RBASE"], regs[f"{table}RLIMIT"] = int(base, 16), int(limit, 16)
    smm = _SMM.search(text)
    if smm:
        regs["SMM"] = int(smm.group(1))
    regs["SELSTATE"] = sum(1 << i for i, seg in enumerate(spec.SEGMENT_REGISTERS)
                           if protected and selectors.get(seg, 0) & ~3 == 0)
    return regs
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
        for info in spec.REGISTER_GLOBALS + spec.SEGMENT_GLOBALS + spec.STATE_GLOBALS:
            if (info.name in GDB_REGISTERS and GDB_REGISTERS[info.name] in by_name
                    or info.name in MONITOR_GLOBALS or info.name in _STATE_READERS or info.name == "APIC_BASEPA"):
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
        if name in MONITOR_GLOBALS:
            return lambda: self._monitor_register(name)
        if name in _STATE_READERS:
            return _STATE_READERS[name](self)
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
            regs.update(monitor_registers(text))
            vcpu.monitor_regs = regs
        return vcpu.monitor_regs.get(name, 0)

    # ---- what the VM is doing -----------------------------------------------------------------

    def emulated(self) -> int:
        """1 when QEMU emulates the guest's code (TCG), 0 under KVM."""
        return 0 if self.m.under_kvm else 1

    def hv_state(self) -> int:
        """0 emulated (TCG); under KVM, 1 on an Intel host (VT-x), 2 on an AMD one (AMD-V)."""
        return 0 if not self.m.under_kvm else (2 if host_vendor() == "AuthenticAMD" else 1)

    def guest_tsc(self) -> int:
        return time.monotonic_ns() * self.m.tsc_hz // 1_000_000_000

    def read_msr(self, number: int) -> int:
        """The MSRs the gdbstub shows (EFER, the FS/GS bases), the APIC base and the TSC."""
        name = spec.MSR_GLOBALS.get(number)
        if name is not None and name in GDB_REGISTERS:
            return self.global_reader(name)()
        if number == MSR_TSC:
            return self.guest_tsc()
        if number == MSR_APIC_BASE:
            return APIC_DEFAULT_BASE | APIC_BASE_ENABLE | (APIC_BASE_BSP if self.m.current.index == 0 else 0)
        raise VPFault(f"readmsr: QEMU's gdbstub does not expose MSR {number:#x} (only EFER, the FS, GS and "
                      f"kernel GS bases, the APIC base and the TSC)")

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


# The state globals a QEMU VM gives, and how.
_STATE_READERS = {
    "SMM": lambda reads: lambda: reads._monitor_register("SMM"),
    "SELSTATE": lambda reads: lambda: reads._monitor_register("SELSTATE"),
    "EMULATION_MODE": lambda reads: reads.emulated,
    "HVSTATE": lambda reads: reads.hv_state,
    "RDTSC": lambda reads: reads.guest_tsc,
}


def host_vendor() -> str:
    """The host CPU's vendor string (GenuineIntel, AuthenticAMD), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


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
