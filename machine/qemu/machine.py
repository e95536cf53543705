"""A real Linux VM under QEMU, behind the runtime's Backend protocol, through the gdbstub.

How each probe point is produced (`probe_points()` lists only these):

* `GUEST:sym` / `GUEST:0xaddr` on a traceable kernel function's entry (its
  ftrace site) -- a call into a trampoline that a read watchpoint stops
  (callsites.py): no breakpoint stop, so no translation-cache flush in QEMU,
  and the VM simply continues.  The probe sees the site's RIP and RSP.
  Loaded before the kernel has made the site its nop (at reset), the probe
  starts as a breakpoint and becomes a call site at a later hit.
  `qemu.callSites = "FALSE"` keeps guest memory untouched (breakpoints only).
* `GUEST:` anywhere else -- a breakpoint (`Z0`).  After the handlers
  run, the VCPU must get past the instruction without trapping again.  When
  that instruction is a no-op (the 5-byte `nopl` every ftrace-able kernel
  function starts with, the patched-out `clac` of entry code, `endbr64`, any
  `nop`), the backend "executes" it by moving RIP past it: no single step, so
  no translation-cache flush in QEMU.  Otherwise the VCPU single-steps
  (`vCont;s:thread`) with the other VCPUs held.
* `GUEST_WRITE:` / `GUEST_READ:` -- watchpoints (`Z2` / `Z3`, one byte); QEMU
  reports them after the access, so the VM simply continues.
* `VMM1Hz`, `VMM10Hz`, `USEC:n` (each VCPU) and `VMX1Hz` (once) -- a host
  timer: the VM is interrupted (0x03), the probe fires on each VCPU with that
  VCPU's registers and page tables, the VM continues.  A stop that happens
  anyway (a breakpoint) serves a due timer too.
* `VMMLoad` / `VMXLoad` / `VMMUnload` / `VMXUnload` -- at attach and detach,
  with the VM stopped.
* `Guest_PF` and the other `Guest_<fault>` probes -- a breakpoint on the
  kernel's own IDT entry point (`asm_exc_page_fault` ...).  At its first
  instruction nothing has run yet: the general registers are the interrupted
  context's and the exception frame the CPU pushed is at RSP, so the probe
  sees RIP, CS, RFLAGS, RSP and SS from the frame -- the state "before the
  fault is delivered" -- and ARG0 is the error code (CR2 is already set).
* `Guest_IRQ` -- breakpoints on the common external-interrupt entry (the
  vector is the byte its stub pushed) and on each system-vector entry (vector
  from the guest's IDT, or the kernel's fixed numbers); ARG0 is the vector.
* `Guest_CR3Write` -- breakpoints on every `mov cr3, reg` in the kernel's
  CR3-writing functions (found by decoding the guest's code); single-stepped.

Refused at load, with a reason: `HV_*` (no VT-x/AMD-V exits are visible
through the gdbstub), `In`/`Out` (QEMU's I/O trace points do not fire under
TCG and the gdbstub has no I/O stops), `SMM_*`, `Disk_*` and
`Guest_TripleFault`.
"""

from __future__ import annotations

import re
import time
from typing import Callable

import capstone

from vp_runtime import GlobalInfo, GuestMemoryFault, ProbeSpec, Script, spec
from vp_runtime.spec import MASK64

from ..attaching import fire_load_probes, fire_unload_probes, periodic
from ..errors import MachineError
from ..stackwalk import walk_frames
from ..symbols import resolve_address
from .callsites import STACK_BIAS, CallSites
from .config import QemuConfig
from .gdbstub import GdbStub, StopReply
from .kernel import COMMON_IRQ_ENTRY, CR3_CANDIDATES, FAULT_ENTRIES, KERNEL_SPACE, SYSVEC_VECTORS, GuestKernel
from .rsp import Address, RSPError, StubError

__all__ = ["QemuError", "QemuMachine"]

Handler = Callable[[], None]
APIC_DEFAULT_BASE = 0xFEE00000

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
# Watchpoint types (gdb's Z2 / Z3) of the guest-address probes that watch data.
_WATCH_TYPES = {spec.WRITE: 2, spec.READ: 3}
_REFUSED = {
    "HV_Exit": "hardware-virtualization exits are not visible through QEMU's gdbstub (under TCG there are none)",
    "HV_Resume": "hardware-virtualization resumes are not visible through QEMU's gdbstub",
    "HV_NPF": "nested page faults are not visible through QEMU's gdbstub",
    "In": "QEMU's gdbstub cannot stop on port I/O, and its cpu_in trace point does not fire under TCG",
    "Out": "QEMU's gdbstub cannot stop on port I/O, and its cpu_out trace point does not fire under TCG",
    "SMM_SMIPre": "system management mode is not visible through QEMU's gdbstub",
    "SMM_SMIPost": "system management mode is not visible through QEMU's gdbstub",
    "SMM_RSMPre": "system management mode is not visible through QEMU's gdbstub",
    "SMM_RSMPost": "system management mode is not visible through QEMU's gdbstub",
    "Disk_IOStart": "QEMU's gdbstub does not report the VM's disk I/O",
    "Disk_IOFinish": "QEMU's gdbstub does not report the VM's disk I/O",
    "Guest_TripleFault": "QEMU resets the VM on a triple fault without telling the gdbstub",
}

_NOPS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DECODER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DECODER.detail = False


def _noop_length(code: bytes) -> int:
    """Length of the first instruction of `code` if executing it changes nothing but RIP."""
    for insn in _NOPS.disasm(code[:16], 0, 1):
        if insn.mnemonic in ("nop", "endbr64", "endbr32", "pause"):
            return insn.size
        if insn.mnemonic == "xchg" and insn.op_str in ("ax, ax", "eax, eax", "rax, rax"):
            return 0  # 32-bit xchg eax, eax zero-extends: not a no-op in general
    return 0


class QemuError(MachineError):
    """The VM cannot be reached, or QEMU went away."""


class _Vcpu:
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


class _Breakpoint:
    __slots__ = ("address", "actions", "skip", "pending", "retry_at")

    def __init__(self, address: int):
        self.address = address
        self.actions: list[Callable[[_Vcpu], None]] = []
        self.skip = 0  # length of a no-op to move past instead of stepping; 0: step
        self.pending = False  # a breakpoint for now, a call site once the guest's ftrace site is ready
        self.retry_at = 0.0


class _Timer:
    __slots__ = ("period", "due", "handler", "each")

    def __init__(self, period: float, handler: Handler, each: bool, now: float):
        self.period = period
        self.due = now + period
        self.handler = handler
        self.each = each


class QemuMachine:
    """A Linux VM under QEMU (booted here, or already running) that fires an attached script's probes."""

    def __init__(self, config: QemuConfig, *, connect_timeout: float = 20.0):
        self.config = config
        self.load_config = config.load_config()
        self.process = None
        self.script: Script | None = None
        self.args: list[int] = [0] * spec.PROBE_ARGS
        self.stub: GdbStub | None = None
        self._breakpoints: dict[int, _Breakpoint] = {}
        self._watch: dict[tuple[int, int], Handler] = {}  # (gdb Z type, address) -> handler
        self._timers: list[_Timer] = []
        self._cache: dict[tuple[int, int, int, bool], bytes] = {}
        self._skip_cache: dict[int, int] = {}
        self.call_sites_enabled = False  # decided once connected
        # Whether the symbols' addresses are the running kernel's (KASLR: a booted kernel without it,
        # or a slide read from the guest's IDT); call sites are only written where that is certain.
        self._slide_known = config.attach is None and "nokaslr" in config.command_line.split()
        self._call_sites: CallSites | None = None
        self._called: dict[int, _Breakpoint] = {}  # trampoline -> the patched site's probe
        self.kernel = GuestKernel(config.kernel_image, config.guest_syms)
        self.warnings = list(self.kernel.warnings)
        try:
            if config.attach is not None:
                address = config.attach
            else:
                from .process import QemuProcess
                self.process = QemuProcess(config)
                address = self.process.gdb_address
            self.stub = self._connect(address, connect_timeout)
            self.stub.take_unsolicited()  # connecting paused the VM
            self.vcpus = [_Vcpu(i, t) for i, t in enumerate(self.stub.threads)]
            self.current = self.vcpus[0]
            self._host_threads()
            if config.attach is not None:
                self._find_slide()
            # Under KVM breakpoints cost no translation flush, and watchpoints are scarce debug registers.
            self.call_sites_enabled = config.call_sites and not self._under_kvm()
        except BaseException:
            self.close()
            raise
        self.tsc_hz = self._guest_tsc_hz()
        self._globals = self._offered_globals()

    def _connect(self, address: Address, timeout: float) -> GdbStub:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return GdbStub(address, timeout=self.config.timeout_s,
                               connect_timeout=max(0.5, min(2.0, deadline - time.monotonic())))
            except RSPError as e:
                if self.process is not None and not self.process.alive():
                    raise QemuError(f"QEMU exited: {self.process.failure() or 'no message'}") from None
                if time.monotonic() >= deadline:
                    raise QemuError(str(e)) from None

    def _host_threads(self) -> None:
        """Each VCPU's host thread (THREADID), from the monitor's `info cpus`."""
        try:
            text = self.stub.monitor("info cpus")
        except RSPError:
            return
        for match in re.finditer(r"CPU #(\d+):.*?thread_id=(\d+)", text):
            index = int(match.group(1))
            if index < len(self.vcpus):
                self.vcpus[index].host_tid = int(match.group(2))

    def _under_kvm(self) -> bool:
        if self.process is not None:
            return self.process.accel == "kvm"
        try:
            return "kvm support: enabled" in self.stub.monitor("info kvm")
        except RSPError:
            return False

    def _find_slide(self) -> None:
        """KASLR: compare the guest's IDT entry for #DE with the symbol table's."""
        expected = self.kernel.symbols.get("asm_exc_divide_error")
        if expected is None:
            return
        gates = self._idt()
        if not gates or 0 not in gates:
            return
        slide = (gates[0] - expected) & MASK64
        if slide and slide < (1 << 31) or slide > MASK64 - (1 << 31):
            self.kernel.apply_slide(slide if slide < (1 << 63) else slide - (1 << 64))
            self._slide_known = True
        elif not slide:
            self._slide_known = True

    def _idt(self) -> dict[int, int]:
        """vector -> handler address, from the guest's IDT (empty if the guest has none yet)."""
        try:
            text = self.stub.monitor("info registers")
        except RSPError:
            return {}
        match = re.search(r"IDT=\s*([0-9a-fA-F]+)\s+([0-9a-fA-F]+)", text)
        if not match:
            return {}
        base, limit = int(match.group(1), 16), int(match.group(2), 16)
        if limit < 16 * 32 - 1:
            return {}
        try:
            data = self.stub.read_memory(self.vcpus[0].thread, base, min(limit + 1, 4096))
        except RSPError:
            return {}
        gates = {}
        for vector in range(len(data) // 16):
            gate = data[vector * 16:vector * 16 + 16]
            if gate[5] & 0x80:  # present: the handler's offset is split over three fields
                lo = int.from_bytes(gate[0:2], "little")
                mid = int.from_bytes(gate[6:8], "little")
                hi = int.from_bytes(gate[8:12], "little")
                gates[vector] = lo | (mid << 16) | (hi << 32)
        return gates

    def _guest_tsc_hz(self) -> int:
        addr = self.kernel.symbols.get("tsc_khz")
        if addr is not None:
            try:
                khz = int.from_bytes(self.stub.read_memory(self.vcpus[0].thread, addr, 4), "little")
                if khz:
                    return khz * 1000
            except RSPError:
                pass
        return 1_000_000_000  # before the guest has calibrated: nanoseconds

    # ---- the Backend protocol ----------------------------------------------------------

    def _offered_globals(self) -> dict[str, GlobalInfo]:
        offered: dict[str, GlobalInfo] = {}
        for info in spec.REGISTER_GLOBALS:
            if (info.name in GDB_REGISTERS and GDB_REGISTERS[info.name] in self.stub.by_name
                    or info.name in MONITOR_REGISTERS or info.name == "APIC_BASEPA"):
                offered[info.name] = info
        for info in spec.HARDWARE_GLOBALS + spec.PROBE_GLOBALS:
            offered[info.name] = info
        for name, description in _QEMU_DESCRIPTIONS.items():
            offered[name] = offered[name].replace(description=description)
        return offered

    def globals(self) -> dict[str, GlobalInfo]:
        return self._globals

    def resolve(self, text: str) -> int | None:
        """An address written as a number or a guest symbol name."""
        return resolve_address(text, self.lookup_symbol)

    def check_probe(self, point: ProbeSpec) -> str | None:
        kind, static = point.kind, point.static
        if kind in _REFUSED:
            return f"probe point '{point.text}' is not offered by this QEMU VM: {_REFUSED[kind]}"
        if periodic(point) is not None or static is not None and static.fires in (spec.LOAD, spec.UNLOAD):
            return None
        if kind == "Guest_IRQ":
            if COMMON_IRQ_ENTRY not in self.kernel.symbols:
                return (f"probe point 'Guest_IRQ' needs the kernel's interrupt entry ({COMMON_IRQ_ENTRY}), "
                        f"which is not among the guest's symbols")
            return None
        if kind == "Guest_CR3Write":
            return None
        if static is not None and static.fault is not None:
            entry = FAULT_ENTRIES.get(static.fault.name)
            if entry is None or entry not in self.kernel.symbols:
                return (f"probe point '{point.text}' needs the kernel's entry point for that exception, "
                        f"which is not among the guest's symbols")
            return None
        if point.parametric is not None and point.parametric.param == spec.ADDRESS:
            address = self.resolve(point.param)
            if address is None:
                return f"unknown guest symbol '{point.param}' in probe point '{point.text}'"
            if address > MASK64:
                return f"probe point '{point.text}': {point.param} is not a 64-bit address"
            return None
        return f"probe point '{point.text}' is not offered by this QEMU VM"

    def global_reader(self, name: str) -> Callable[[], int | str]:
        machine = self
        gdb_name = GDB_REGISTERS.get(name)
        if gdb_name is not None:
            reg = self.stub.by_name[gdb_name]
            start, end = reg.offset, reg.offset + reg.size
            is_rsp = name == "RSP"

            def read_register() -> int:
                vcpu = machine.current
                over = vcpu.over
                if over is not None and name in over:
                    return over[name]
                block = vcpu.block
                if block is None:
                    block = machine._fetch_registers(vcpu)
                value = int.from_bytes(block[start:end], "little")
                return (value + vcpu.rsp_bias) & MASK64 if is_rsp else value
            return read_register
        index = spec.PROBE_ARG_INDEX.get(name)
        if index is not None:
            args = self.args
            return lambda: args[index]
        monitor_name = MONITOR_REGISTERS.get(name)
        if monitor_name is not None:
            return lambda: machine._monitor_register(monitor_name)
        readers = {
            "APIC_BASEPA": lambda: APIC_DEFAULT_BASE,
            "TSC": lambda: time.monotonic_ns() * machine.tsc_hz // 1_000_000_000,
            "PTSC": lambda: time.monotonic_ns() * machine.tsc_hz // 1_000_000_000,
            "TSC_HZ": lambda: machine.tsc_hz,
            "VCPUID": lambda: machine.current.index,
            "PCPUID": lambda: _host_cpu(machine.current.host_tid),
            "THREADID": lambda: machine.current.host_tid,
            "NUMVCPUS": lambda: len(machine.vcpus),
        }
        return readers.get(name, lambda: 0)

    def _fetch_registers(self, vcpu: _Vcpu) -> bytes:
        try:
            vcpu.block = self.stub.read_registers(vcpu.thread)
        except RSPError as e:
            raise QemuError(f"cannot read VCPU {vcpu.index}'s registers: {e}") from None
        return vcpu.block

    def _monitor_register(self, name: str) -> int:
        vcpu = self.current
        if vcpu.monitor_regs is None:
            regs: dict[str, int] = {}
            try:
                text = self.stub.monitor(f"cpu {vcpu.index}") and ""
                text = self.stub.monitor("info registers")
            except RSPError:
                text = ""
            for key, value in re.findall(r"\b(DR[0-7])=([0-9a-fA-F]+)", text):
                regs[key] = int(value, 16)
            vcpu.monitor_regs = regs
        return vcpu.monitor_regs.get(name, 0)

    def read_linear(self, addr: int, size: int) -> bytes:
        return self._read_cached(self.current.thread, addr, size, False, "is not mapped")

    def read_physical(self, addr: int, size: int) -> bytes:
        return self._read_cached(0, addr, size, True, "is not backed by memory")

    def _read_cached(self, thread: int, addr: int, size: int, physical: bool, unmapped: str) -> bytes:
        """Guest memory, read once per stop (`thread` 0 for physical reads: any VCPU sees the same)."""
        key = (thread, addr, size, physical)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            data = self.stub.read_memory(thread or self.current.thread, addr, size, physical=physical)
        except StubError:
            kind = "physical" if physical else "linear"
            raise GuestMemoryFault(f"guest {kind} address {addr:#x} {unmapped}") from None
        except RSPError as e:
            raise QemuError(str(e)) from None
        self._cache[key] = data
        return data

    def lookup_symbol(self, name: str) -> int | None:
        return self.kernel.symbols.get(name)

    def stack_frames(self, max_frames: int) -> list[int]:
        """Frame-pointer walk through guest memory, innermost first (RIP first).

        Kernels built with the ORC unwinder keep no frame pointers, so kernel
        walks end early there; user code built with frame pointers walks fully.
        """
        read = self.global_reader
        rip, rsp, rbp = read("RIP")(), read("RSP")(), read("RBP")()
        func = self.kernel.function_at(rip)
        return walk_frames(self.read_linear, rip, rsp, rbp, func is not None and func[1] == rip, max_frames)

    def host_time_us(self) -> int:
        return time.time_ns() // 1000

    # ---- firing ---------------------------------------------------------------------

    def _fire(self, vcpu: _Vcpu, handler: Handler) -> None:
        self.current = vcpu
        handler()
        if self.script is not None:
            self.script.end_firing()

    def fire_each_vcpu(self, handler: Handler) -> None:
        for vcpu in self.vcpus:
            self._fire(vcpu, handler)

    def fire_vmx(self, handler: Handler) -> None:
        self._fire(self.vcpus[0], handler)

    def _stopped(self) -> None:
        """The VM has stopped: registers and memory are read afresh from now on."""
        self._cache.clear()
        for vcpu in self.vcpus:
            vcpu.block = None
            vcpu.monitor_regs = None
            vcpu.over = None
            vcpu.rsp_bias = 0

    def _ensure_stopped(self) -> None:
        stub = self.stub
        if stub.running:
            try:
                reply = stub.stop()
            except RSPError as e:
                raise QemuError(f"the VM does not stop: {e}") from None
            self._stopped()
            self._check_exit(reply)

    def _check_exit(self, reply: StopReply) -> None:
        if reply.exited:
            raise QemuError("the VM's QEMU exited")

    def _resume(self) -> None:
        if not self.stub.running:
            self.stub.cont()

    def _thread_vcpu(self, thread: int | None) -> _Vcpu:
        for vcpu in self.vcpus:
            if vcpu.thread == thread:
                return vcpu
        return self.vcpus[0]

    def _handle_stop(self, reply: StopReply) -> bool:
        """Fire what the stop is for; True if the VM was resumed already."""
        self._stopped()
        self._check_exit(reply)
        vcpu = self.current = self._thread_vcpu(reply.thread)
        self.stub._selected = reply.thread  # QEMU selects the VCPU that stopped
        if reply.watch is not None:
            kind = {"watch": 2, "rwatch": 3, "awatch": 4}[reply.watch[0]]
            called = self._called.get(reply.watch[1]) if kind == 3 else None
            if called is not None:
                self._fire_call_site(vcpu, called)
                return False
            handler = self._watch.get((kind, reply.watch[1]))
            if handler is not None:
                self._fire(vcpu, handler)
            return False
        if reply.signal != 5 or not self._breakpoints:
            return False
        block = self._fetch_registers(vcpu)
        rip = self.stub.register(block, "rip")
        bp = self._breakpoints.get(rip)
        if bp is None or rip not in self.stub.breakpoints:  # not ours, or a call site by now
            return False
        for action in bp.actions:
            action(vcpu)
        if bp.pending and self._upgrade(bp):
            # The site now calls its trampoline; this pass has fired already, and the nop the call
            # replaced does nothing: continue after it.
            self.stub.write_register(vcpu.thread, "rip", rip + 5)
            return False
        # Get past the instruction under the breakpoint: "execute" a no-op by moving RIP
        # (pipelined with the continue when no timer is due), else single-step it.
        if bp.skip:
            if self._timers and min(t.due for t in self._timers) <= time.monotonic():
                self.stub.write_register(vcpu.thread, "rip", rip + bp.skip)
                return False
            self._stopped()
            self.stub.set_register_and_continue(vcpu.thread, "rip", rip + bp.skip)
            return True
        step = self.stub.step(vcpu.thread)
        self._stopped()
        self._check_exit(step)
        return False

    def _fire_call_site(self, vcpu: _Vcpu, bp: _Breakpoint) -> None:
        """A VCPU stopped in a call site's trampoline: fire as at the site (RIP there, RSP 16 bytes up).
        The VCPU is seen so until the VM runs again (a timer served at this stop sees it there too)."""
        vcpu.over = {"RIP": bp.address}
        vcpu.rsp_bias = STACK_BIAS
        for action in bp.actions:
            action(vcpu)

    def run(self, seconds: float) -> None:
        """Let the VM run for `seconds` of real time, firing probes as they come."""
        stub = self.stub
        if stub is None:
            raise QemuError("the machine is closed")
        deadline = time.monotonic() + seconds
        busy = False  # the last stop came within the poll: a busy call site
        try:
            while True:
                now = time.monotonic()
                if not stub.running:
                    self._fire_timers(now)
                    if now >= deadline:
                        break
                    self._resume()
                due = min((t.due for t in self._timers), default=deadline)
                # A busy call site is hit again sooner than waking up from select takes: poll first.
                resumed = time.monotonic()
                reply = stub.wait_stop(max(0.0, min(deadline, due) - resumed), prompt=busy and bool(self._called))
                if reply is None:
                    if time.monotonic() >= deadline and due > deadline:
                        break
                    reply = stub.stop()
                busy = time.monotonic() - resumed < stub.rsp.spin_s
                self._handle_stop(reply)
        except RSPError as e:
            raise QemuError(f"lost the VM's gdbstub: {e}") from None

    def _fire_timers(self, now: float) -> None:
        for timer in self._timers:
            if timer.due <= now:
                if timer.each:
                    self.fire_each_vcpu(timer.handler)
                else:
                    self.fire_vmx(timer.handler)
                timer.due += timer.period
                if timer.due <= now:  # late (the host was busy): skip the missed ticks
                    timer.due = now + timer.period

    # ---- attaching scripts --------------------------------------------------------------

    def attach(self, script: Script) -> None:
        """Enable `script`'s probe points and fire its load probes (replacing any script)."""
        if self.script is not None:
            self.detach()
        self._ensure_stopped()
        self.script = script
        now = time.monotonic()
        try:
            for point in script.probe_specs():
                handler = script.handler(point.text)
                kind, static = point.kind, point.static
                every = periodic(point)
                if every is not None:
                    period_us, context = every
                    self._timers.append(_Timer(period_us / 1e6, handler, context == spec.VMM, now))
                elif point.parametric is not None and point.parametric.fires == spec.EXECUTE:
                    self._add_breakpoint(self.resolve(point.param), self._plain_action(handler), call_site=True)
                elif point.parametric is not None:
                    ztype = _WATCH_TYPES[point.parametric.fires]
                    address = self.resolve(point.param)
                    self.stub.insert_watchpoint(ztype, address, 1)
                    self._watch[(ztype, address)] = handler
                elif kind == "Guest_IRQ":
                    self._attach_irq(handler)
                elif kind == "Guest_CR3Write":
                    self._attach_cr3(handler)
                elif static.fault is not None:
                    entry = self.kernel.symbols[FAULT_ENTRIES[static.fault.name]]
                    self._add_breakpoint(entry, self._frame_action(handler, static.fault.error_code, None))
            fire_load_probes(self, script)
        except RSPError as e:
            raise QemuError(f"cannot set up the probes: {e}") from None

    def _plain_action(self, handler: Handler) -> Callable[[_Vcpu], None]:
        def action(vcpu: _Vcpu) -> None:
            self._fire(vcpu, handler)
        return action

    def _frame_action(self, handler: Handler, has_error: bool, vector: int | None,
                      vector_on_stack: bool = False) -> Callable[[_Vcpu], None]:
        """Fire `handler` with the interrupted context's RIP/CS/RFLAGS/RSP/SS from the frame at RSP."""
        machine = self
        args = self.args
        skip = 8 if has_error or vector_on_stack else 0

        def action(vcpu: _Vcpu) -> None:
            machine.current = vcpu
            block = vcpu.block or machine._fetch_registers(vcpu)
            rsp = machine.stub.register(block, "rsp")
            try:
                frame = machine.read_linear(rsp, skip + 40)
            except GuestMemoryFault:
                return
            words = [int.from_bytes(frame[i:i + 8], "little") for i in range(0, len(frame), 8)]
            first = words[0] if skip else 0
            rip, cs, rflags, sp, ss = words[skip // 8:skip // 8 + 5]
            vcpu.over = {"RIP": rip, "CS": cs & 0xFFFF, "RFLAGS": rflags, "RSP": sp, "SS": ss & 0xFFFF}
            args[:] = [0] * spec.PROBE_ARGS
            if vector_on_stack:
                args[0] = first & 0xFF
            elif vector is not None:
                args[0] = vector
            elif has_error:
                args[0] = first
            try:
                machine._fire(vcpu, handler)
            finally:
                vcpu.over = None
        return action

    def _add_breakpoint(self, address: int, action: Callable[[_Vcpu], None], *, call_site: bool = False) -> None:
        """Fire `action` when a VCPU reaches `address`: through a patched ftrace site when `call_site`
        allows and the site is one, else a gdbstub breakpoint."""
        bp = self._breakpoints.get(address)
        if bp is None:
            bp = _Breakpoint(address)
            patch = call_site and self.call_sites_enabled and self._slide_known
            trampoline = self._sites().install(address) if patch else None
            if trampoline is not None:
                self.stub.insert_watchpoint(3, trampoline, 1)
                self._called[trampoline] = bp
            else:
                # Loaded before the kernel has run (or patched its ftrace sites), a site can become one later.
                bp.pending = patch
                bp.skip = self._noop_at(address)
                self.stub.insert_breakpoint(address)
            self._breakpoints[address] = bp
        bp.actions.append(action)

    def _upgrade(self, bp: _Breakpoint) -> bool:
        """At a breakpoint hit (so in the guest's kernel): turn `bp` into a call site if its site is
        ready now; a site that is not is looked at again a second later."""
        now = time.monotonic()
        if now < bp.retry_at:
            return False
        bp.retry_at = now + 1.0
        trampoline = self._sites().install(bp.address)
        if trampoline is None:
            return False
        self.stub.remove_breakpoint(bp.address)
        self.stub.insert_watchpoint(3, trampoline, 1)
        self._called[trampoline] = bp
        bp.pending = False
        return True

    def _sites(self) -> CallSites:
        """The VM's call sites, reading and writing guest memory through the VCPU that stopped last."""
        if self._call_sites is None:
            kernel, stub = self.kernel, self.stub

            def read(addr: int, size: int) -> bytes:
                try:
                    return stub.read_memory(self.current.thread, addr, size)
                except StubError:
                    return b""

            def write(addr: int, data: bytes) -> None:
                stub.write_memory(self.current.thread, addr, data)

            symbols = kernel.symbols
            text = (symbols.get("_stext", KERNEL_SPACE), symbols.get("_etext", KERNEL_SPACE))
            self._call_sites = CallSites(read, write, kernel.read_image, kernel.functions(),
                                         symbols.get("__fentry__"), text)
        return self._call_sites

    def call_site_trampoline(self, address: int) -> int | None:
        """The trampoline a probe at `address` calls, or None when it is a breakpoint (or not set)."""
        return self._call_sites.trampoline(address) if self._call_sites is not None else None

    def _code(self, address: int, size: int) -> bytes | None:
        """Kernel code as the guest has it, or as the image has it where guest memory cannot be read."""
        try:
            return self.stub.read_memory(self.vcpus[0].thread, address, size)
        except RSPError:
            return self.kernel.read_image(address, size)

    def _noop_at(self, address: int) -> int:
        """The length of a no-op instruction at `address`, from guest memory or the kernel image."""
        if address in self._skip_cache:
            return self._skip_cache[address]
        code = self._code(address, 16)
        length = _noop_length(code) if code else 0
        # Kernel text in the image may still hold the ftrace call that boot turns into a nop;
        # only trust what the guest's memory shows (or a plain nop in the image).
        self._skip_cache[address] = length
        return length

    def _attach_irq(self, handler: Handler) -> None:
        symbols = self.kernel.symbols
        entries: dict[int, int] = {}
        for name, vector in SYSVEC_VECTORS.items():
            if name in symbols:
                entries[symbols[name]] = vector
        common = symbols[COMMON_IRQ_ENTRY]
        stubs = symbols.get("irq_entries_start")
        idt = self._idt()
        for vector, target in idt.items():
            if vector < 32 or vector == 0x80:
                continue
            if stubs is not None and stubs <= target < stubs + 224 * 16:
                continue  # an external-interrupt stub: it jumps to the common entry
            if target != common:
                entries[target] = vector
        self._add_breakpoint(common, self._frame_action(handler, False, None, vector_on_stack=True))
        for address, vector in sorted(entries.items()):
            self._add_breakpoint(address, self._frame_action(handler, False, vector))

    def _attach_cr3(self, handler: Handler) -> None:
        sites = self._cr3_writes()
        for address in sites:
            self._add_breakpoint(address, self._plain_action(handler))
            self._breakpoints[address].skip = 0  # `mov cr3` is never a no-op: step it

    def _cr3_writes(self) -> list[int]:
        """Addresses of `mov cr3, reg` in the kernel functions that switch address spaces."""
        sites = []
        for name, start in self.kernel.functions():
            if not CR3_CANDIDATES.search(name):
                continue
            end = self.kernel.function_end(name) or start + 256
            code = self._code(start, min(end - start, 16384))
            if not code:
                continue
            for insn in _DECODER.disasm(code, start):
                if insn.mnemonic == "mov" and insn.op_str.startswith("cr3,"):
                    sites.append(insn.address)
        return sites

    def detach(self) -> None:
        """Fire the unload probes, remove every breakpoint and watchpoint, flush the log; the VM runs on."""
        script = self.script
        if script is None:
            return
        try:
            self._ensure_stopped()
            try:
                fire_unload_probes(self, script)
            finally:  # whatever an unload probe met, the guest gets its code back
                try:
                    if self._call_sites is not None:
                        self._call_sites.restore()
                finally:
                    self.stub.remove_all()
            self._resume()
        except RSPError as e:
            raise QemuError(f"cannot remove the probes: {e}") from None
        finally:
            self._breakpoints.clear()
            self._called.clear()
            self._watch.clear()
            self._timers.clear()
            self.script = None
            script.flush()

    def close(self) -> None:
        """Detach cleanly: a VM booted here is powered off, an attached one keeps running."""
        try:
            if self.script is not None:
                try:
                    self.detach()
                except QemuError:
                    pass
            if self.stub is not None:
                if self.process is not None and self.process.alive():
                    self.stub.rsp.close()  # powering off: nothing to leave behind
                else:
                    self.stub.detach()
        finally:
            self.stub = None  # run() now says the machine is closed
            if self.process is not None:
                self.process.kill()

    def __enter__(self) -> "QemuMachine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- what the tools show ------------------------------------------------------------

    @property
    def kallsyms_text(self) -> str:
        return self.kernel.kallsyms_text

    def probe_points(self) -> list[tuple[str, str]]:
        points = []
        for name, info in spec.STATIC_PROBES.items():
            if self.check_probe(ProbeSpec(name, name)) is None:
                points.append((name, info.description))
        points += [(k.syntax, k.description + " (host timer)")
                   for k in spec.PROBE_KINDS.values() if k.param == spec.INTERVAL]
        for name, address in self.kernel.functions():
            points.append((f"GUEST:{name}", f"the guest executes {name} ({address:#x})"))
        data = sorted((addr, name) for addr, kind, name in self.kernel._table
                      if kind in "dDbBrR" and addr >= KERNEL_SPACE)
        for address, name in data:
            points.append((f"GUEST_WRITE:{name}", f"the guest writes {name} ({address:#x})"))
            points.append((f"GUEST_READ:{name}", f"the guest reads {name} ({address:#x})"))
        return points

    realtime = True  # run(seconds) lets the real VM run for that many seconds
    guest_library_name = "guest-library.vp"

    def guest_library_vp(self) -> str:
        """curpid/curtid/curppid/curprocname in VP for this guest's kernel (from its BTF)."""
        return self.kernel.vp_library()

    def guest_preload_emmett(self) -> str:
        """The Emmett preload (struct definitions and helpers) for this guest's kernel."""
        return self.kernel.emmett_preload()

    def console_text(self) -> str:
        return self.process.console_text() if self.process is not None else ""


def _host_cpu(tid: int) -> int:
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
