"""A real Linux VM under QEMU, behind the runtime's Backend protocol, through the gdbstub.

How each probe point is produced (`probe_points()` lists only these):

* `GUEST:sym` / `GUEST:0xaddr` -- a call site where the address is a
  traceable kernel function's entry (its ftrace site): a call into a
  trampoline that a read watchpoint stops, so QEMU flushes no translation
  cache and the VM simply continues; a breakpoint anywhere else
  (`breakpoints.py`).  `qemu.callSites = "FALSE"` keeps guest memory
  untouched (breakpoints only).
* `GUEST_WRITE:` / `GUEST_READ:` -- one-byte watchpoints (`breakpoints.py`).
* `GUEST:EXIT:sym` -- at the entry (as `GUEST:`), a one-shot breakpoint at
  the return address, for that call's stack depth (`returns.py`).
* `VMM1Hz`, `VMM10Hz`, `USEC:n` (each VCPU) and `VMX1Hz` (once) -- host
  timers that interrupt the VM (`dispatch.py`).
* `VMMLoad` / `VMXLoad` / `VMMUnload` / `VMXUnload` -- at attach and detach,
  with the VM stopped.
* `Guest_<fault>`, `Guest_IRQ`, `Guest_CR3Write` -- breakpoints on the
  kernel's entry code, the interrupted context read from the exception
  frame (`static_probes.py`).

What a real VM cannot fire (HV_*, In/Out, SMM_*, Disk_*, Guest_TripleFault)
is refused at load with the reason (`static_probes.REFUSED`).  What a firing
reads -- registers, debug registers, guest memory, once per stop -- is
`reads.py`; what the running guest tells (its VCPUs' host threads, KVM, the
KASLR slide, its IDT and TSC rate), `guest_info.py`.  This module boots QEMU
or attaches to one, attaches and detaches scripts, and answers the tools.
"""

from __future__ import annotations

import time
from typing import Callable

import capstone

from vp_runtime import GlobalInfo, ProbeSpec, Script, spec
from vp_runtime.spec import MASK64

from ..attaching import fire_load_probes, fire_unload_probes, periodic
from ..stackwalk import walk_frames
from ..symbols import resolve_address
from ..syscall_names import kernel_syscalls, read_syscalls_file
from .breakpoints import Action, Breakpoints, Handler
from .config import QemuConfig
from .dispatch import Dispatch
from .errors import QemuError
from .gdbstub import GdbStub, StopReply
from .guest_info import guest_tsc_hz, host_threads, kaslr_slide, under_kvm
from .kernel import KERNEL_SPACE, GuestKernel
from .reads import GLOBAL_REFUSALS, Reads, Vcpu
from .returns import Returns
from .rsp import Address, RSPError
from .static_probes import REFUSED, StaticProbes, not_offered

__all__ = ["QemuError", "QemuMachine"]

_NOPS = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
KVM_PROGRESS_S = 15.0  # a guest under a working KVM runs its kernel within a second of power-on
KVM_POLL_S = 0.25
INIT_POLL_S = 0.25  # how often a booting guest is looked at for its init
# What the guests `vmrun createGuest` builds print once their /init runs (guest_builder.py).
INIT_MARKER = "vprobes-guest: init running"


def _noop_length(code: bytes) -> int:
    """Length of the first instruction of `code` if executing it changes nothing but RIP."""
    for insn in _NOPS.disasm(code[:16], 0, 1):
        if insn.mnemonic in ("nop", "endbr64", "endbr32", "pause"):
            return insn.size
        if insn.mnemonic == "xchg" and insn.op_str in ("ax, ax", "eax, eax", "rax, rax"):
            return 0  # 32-bit xchg eax, eax zero-extends: not a no-op in general
    return 0


# Builtins a QEMU VM cannot answer, and why.
BUILTIN_REFUSALS = {
    "getvmcs": "no VMCS is visible through QEMU's gdbstub (under TCG there is none)",
    "readpmc": "QEMU's gdbstub exposes no performance counters",
}


class QemuMachine:
    """A Linux VM under QEMU (booted here, or already running) that fires an attached script's probes."""

    def __init__(self, config: QemuConfig, *, connect_timeout: float = 20.0):
        self.config = config
        self.load_config = config.load_config()
        self.process = None
        self.script: Script | None = None
        # The script called exit(): no probe of it fires again but, while `unloading`, its unload probes.
        self.ended = False
        self.unloading = False
        self.args: list[int] = [0] * spec.PROBE_ARGS
        self.stub: GdbStub | None = None
        self.reads = Reads(self)
        self.breakpoints = Breakpoints(self)
        self.returns = Returns(self)
        self.static_probes = StaticProbes(self)
        self.dispatch = Dispatch(self)
        self._skip_cache: dict[int, int] = {}
        self.call_sites_enabled = False  # decided once connected
        self.under_kvm = False
        # Whether the symbols' addresses are the running kernel's (KASLR: a booted kernel without it,
        # or a slide read from the guest's IDT); call sites are only written where that is certain.
        self.slide_known = config.attach is None and "nokaslr" in config.command_line.split()
        self.kernel = GuestKernel(config.kernel_image, config.guest_syms)
        self.warnings = list(self.kernel.warnings)
        self._init_started = config.attach is not None or config.load_at == "reset"
        try:
            if config.attach is not None:
                self.stub = self._connect(config.attach, connect_timeout)
            else:
                self._boot(connect_timeout)
            self.stub.take_unsolicited()  # connecting paused the VM
            self.vcpus = [Vcpu(i, t) for i, t in enumerate(self.stub.threads)]
            self.current = self.vcpus[0]
            host_threads(self.stub, self.vcpus)
            if config.attach is not None:
                slide = kaslr_slide(self.stub, self.vcpus[0].thread, self.kernel)
                if slide is not None:
                    self.kernel.apply_slide(slide)
                    self.slide_known = True
            # Under KVM breakpoints cost no translation flush, and watchpoints are scarce debug registers.
            self.under_kvm = under_kvm(self.process, self.stub)
            self.call_sites_enabled = config.call_sites and not self.under_kvm
        except BaseException:
            self.close()
            raise
        self.tsc_hz = guest_tsc_hz(self.stub, self.vcpus[0].thread, self.kernel)
        self._globals = self.reads.offered_globals()

    def _boot(self, connect_timeout: float) -> None:
        """Start QEMU, paused at reset, and connect to it.  Under KVM the guest must first show that it
        runs: its kernel's code reached within `KVM_PROGRESS_S` (a /dev/kvm that cannot run guests
        shows nothing at all).  If it does not, qemu.accel = "auto" boots under TCG with a warning and
        "kvm" fails."""
        from .process import QemuProcess
        self.process = QemuProcess(self.config)
        self.stub = self._connect(self.process.gdb_address, connect_timeout)
        if self.process.accel != "kvm":
            return
        self.stub.take_unsolicited()
        if self._reaches_the_kernel(KVM_PROGRESS_S):
            if self.config.load_at == "reset":  # back to power-on, for a script that traces the boot
                self._restart("kvm", connect_timeout)
            return
        if self.config.accel == "kvm":
            raise QemuError(f'qemu.accel = "kvm": the guest made no progress under KVM in {KVM_PROGRESS_S:g} s '
                            f'(its kernel never ran); /dev/kvm exists but does not run guests on this host: '
                            f'use qemu.accel = "tcg" (or "auto", which falls back to it)')
        self.warnings.append(f"KVM made no progress in {KVM_PROGRESS_S:g} s (the guest's kernel never ran): "
                             f'booting under TCG instead (qemu.accel = "tcg" skips this check)')
        self._restart("tcg", connect_timeout)

    def _reaches_the_kernel(self, seconds: float) -> bool:
        """Let the VM run until VCPU 0 executes kernel code (True), for at most `seconds`."""
        stub = self.stub
        thread = stub.threads[0]
        deadline = time.monotonic() + seconds
        while True:
            stub.cont()
            time.sleep(min(KVM_POLL_S, max(0.0, deadline - time.monotonic())))
            self.check_exit(stub.stop())
            if stub.register(stub.read_registers(thread), "rip") >= KERNEL_SPACE:
                return True
            if time.monotonic() >= deadline:
                return False

    def _restart(self, accel: str, connect_timeout: float) -> None:
        """Power the VM off and boot it again, paused at reset, under `accel`."""
        from .process import QemuProcess
        self.stub.rsp.close()
        self.process.kill()
        self.process = QemuProcess(self.config, accel=accel)
        self.stub = self._connect(self.process.gdb_address, connect_timeout)

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

    # ---- the Backend protocol ----------------------------------------------------------

    def globals(self) -> dict[str, GlobalInfo]:
        return self._globals

    def resolve(self, text: str) -> int | None:
        """An address written as a number or a guest symbol name."""
        return resolve_address(text, self.lookup_symbol)

    def check_probe(self, point: ProbeSpec) -> str | None:
        kind, static = point.kind, point.static
        if kind in REFUSED:
            return f"{not_offered(point)}: {REFUSED[kind]}"
        if periodic(point) is not None or static is not None and static.fires in (spec.LOAD, spec.UNLOAD):
            return None
        if static is not None:
            return self.static_probes.check(point)
        if point.parametric is not None and point.parametric.param == spec.ADDRESS:
            address = self.resolve(point.param)
            if address is None:
                return f"unknown guest symbol '{point.param}' in probe point '{point.text}'"
            if address > MASK64:
                return f"probe point '{point.text}': {point.param} is not a 64-bit address"
            return None
        return not_offered(point)

    def global_reader(self, name: str) -> Callable[[], int | str]:
        return self.reads.global_reader(name)

    def global_refusal(self, name: str) -> str | None:
        refusals = GLOBAL_REFUSALS
        return refusals.get(name) or refusals.get(spec.GLOBALS[name].group)

    def check_builtin(self, name: str) -> str | None:
        return BUILTIN_REFUSALS.get(name)

    def read_msr(self, number: int) -> int:
        return self.reads.read_msr(number)

    def memory_mb(self) -> int:
        return self.config.memsize_mb

    def read_linear(self, addr: int, size: int) -> bytes:
        return self.reads.read_linear(addr, size)

    def read_physical(self, addr: int, size: int) -> bytes:
        return self.reads.read_physical(addr, size)

    def lookup_symbol(self, name: str) -> int | None:
        """A kernel symbol's address; the reference's Linux 2.6 names (`system_call` ...) find
        today's (`kernel.LEGACY_NAMES`)."""
        return self.kernel.address_of(name)

    def legacy_symbols_text(self) -> str:
        return self.kernel.legacy_symbols_text()

    def symbol_refusal(self, name: str) -> str | None:
        """Why a script may not name guest symbol `name` at all (a Linux 2.6 name this kernel has no
        counterpart of), or None; asked at load for every constant symbol name."""
        return self.kernel.symbol_refusal(name)

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

    # ---- firing and running ------------------------------------------------------------

    def fire(self, vcpu: Vcpu, handler: Handler) -> None:
        if self.ended and not self.unloading:
            return  # the script called exit(): only its unload probes fire now
        self.current = vcpu
        handler()
        script = self.script
        if script is not None:
            script.end_firing()
            if script.exited is not None:
                self.ended = True  # `run` detaches it at the next stop

    def fire_action(self, handler: Handler) -> Action:
        """A breakpoint's action that fires `handler` on the VCPU that stopped there."""
        def action(vcpu: Vcpu) -> None:
            self.fire(vcpu, handler)
        return action

    def fire_each_vcpu(self, handler: Handler) -> None:
        for vcpu in self.vcpus:
            self.fire(vcpu, handler)

    def fire_vmx(self, handler: Handler) -> None:
        self.fire(self.vcpus[0], handler)

    def run(self, seconds: float) -> None:
        """Let the VM run for `seconds` of real time, firing probes as they come; a script that
        calls exit() is detached at the stop after it, and `run` returns then."""
        if not self.ended:
            self.dispatch.run(seconds)
        if self.ended:
            self.detach()

    def _ensure_stopped(self) -> None:
        stub = self.stub
        if stub.running:
            try:
                reply = stub.stop()
            except RSPError as e:
                raise QemuError(f"the VM does not stop: {e}") from None
            self.reads.invalidate()
            self.check_exit(reply)

    def check_exit(self, reply: StopReply) -> None:
        if reply.exited:
            raise QemuError("the VM's QEMU exited")

    def resume(self) -> None:
        if not self.stub.running:
            self.stub.cont()

    # ---- the guest's code ------------------------------------------------------------------

    def code(self, address: int, size: int) -> bytes | None:
        """Kernel code as the guest has it, or as the image has it where guest memory cannot be read."""
        try:
            return self.stub.read_memory(self.vcpus[0].thread, address, size)
        except RSPError:
            return self.kernel.read_image(address, size)

    def noop_at(self, address: int) -> int:
        """The length of a no-op instruction at `address`, from guest memory or the kernel image."""
        if address in self._skip_cache:
            return self._skip_cache[address]
        code = self.code(address, 16)
        length = _noop_length(code) if code else 0
        # Kernel text in the image may still hold the ftrace call that boot turns into a nop;
        # only trust what the guest's memory shows (or a plain nop in the image).
        self._skip_cache[address] = length
        return length

    # ---- attaching scripts --------------------------------------------------------------

    def attach(self, script: Script) -> None:
        """Enable `script`'s probe points and fire its load probes (replacing any script)."""
        if self.script is not None:
            self.detach()
        self.wait_until_running()
        self._ensure_stopped()
        self.script = script
        now = time.monotonic()
        try:
            for point in script.probe_specs():
                handler = script.handler(point.text)
                every = periodic(point)
                if every is not None:
                    period_us, context = every
                    self.dispatch.add_timer(period_us / 1e6, handler, context == spec.VMM, now)
                elif point.parametric is not None and point.parametric.fires == spec.EXECUTE:
                    self.breakpoints.add(point.address(self.resolve), self.fire_action(handler), call_site=True)
                elif point.parametric is not None and point.parametric.fires == spec.RETURN:
                    self.returns.attach(point.address(self.resolve), handler)
                elif point.parametric is not None:
                    self.breakpoints.watch(point, point.address(self.resolve), handler)
                elif point.static.fires == spec.EVENT:
                    self.static_probes.attach(point, handler)
            fire_load_probes(self, script)
        except RSPError as e:
            raise QemuError(f"cannot set up the probes: {e}") from None

    def wait_until_running(self) -> None:
        """With qemu.loadAt = "running" (the default), let a VM booted here run until its init has
        started -- the kernel's `system_state` is SYSTEM_RUNNING (set just before it runs /init), or
        the console shows `INIT_MARKER` -- so a script sees the running system and `-d` counts from
        there.  At most qemu.bootTimeout seconds; an attached VM, or loadAt = "reset", does not wait."""
        if self._init_started:
            return
        deadline = time.monotonic() + self.config.boot_timeout_s
        while not self._guest_init_started():
            if time.monotonic() >= deadline:
                tail = "\n".join(self.console_text().splitlines()[-5:])
                raise QemuError(f"the guest's init did not start within {self.config.boot_timeout_s:g} s "
                                f"(qemu.bootTimeout); the console ends:\n{tail or '(nothing)'}")
            self.dispatch.run(INIT_POLL_S)
        self._init_started = True

    def _guest_init_started(self) -> bool:
        address = self.kernel.symbols.get("system_state")
        running = self.kernel.system_running
        if address is not None and running is not None:
            self._ensure_stopped()
            try:
                state = int.from_bytes(self.stub.read_memory(self.vcpus[0].thread, address, 4), "little")
            except RSPError:  # the kernel has not mapped itself yet
                state = 0
            if state >= running:
                return True
        return INIT_MARKER in self.console_text()

    def call_site_trampoline(self, address: int) -> int | None:
        """The trampoline a probe at `address` calls, or None when it is a breakpoint (or not set)."""
        return self.breakpoints.trampoline(address)

    def detach(self) -> None:
        """Fire the unload probes, remove every breakpoint and watchpoint, flush the log; the VM runs on."""
        script = self.script
        if script is None:
            return
        try:
            self._ensure_stopped()
            self.unloading = True
            try:
                fire_unload_probes(self, script)
            finally:  # whatever an unload probe met, the guest gets its code back
                self.unloading = self.ended = False
                self.breakpoints.remove_all()
            self.resume()
        except RSPError as e:
            raise QemuError(f"cannot remove the probes: {e}") from None
        finally:
            self.breakpoints.forget()
            self.returns.forget()
            self.dispatch.timers.clear()
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
    def symbol_text(self) -> str:
        """The guest kernel's symbols, in /proc/kallsyms format."""
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
        for address, name in self.kernel.data_symbols():
            points.append((f"GUEST_WRITE:{name}", f"the guest writes {name} ({address:#x})"))
            points.append((f"GUEST_READ:{name}", f"the guest reads {name} ({address:#x})"))
        return points

    realtime = True  # run(seconds) lets the real VM run for that many seconds
    guest_library_name = "guest-library.vp"

    def guest_library_vp(self) -> str:
        """curpid/curtid/curppid/curprocname in VP for this guest's kernel (from its BTF)."""
        return self.kernel.vp_library()

    def syscall_names(self) -> dict[int, str]:
        """System call numbers' names: the VM's vprobe.syscalls file, or the kernel's own
        sys_call_table as its image holds it (x86-64 Linux numbering), resolved through its symbols."""
        if self.config.syscalls is not None:
            return read_syscalls_file(self.config.syscalls)
        return kernel_syscalls(self.kernel.read_image, self.kernel.symbols, relocation=self.kernel.slide)

    def guest_preload_emmett(self) -> str:
        """The Emmett preload (struct definitions and helpers) for this guest's kernel."""
        return self.kernel.emmett_preload()

    def console_text(self) -> str:
        return self.process.console_text() if self.process is not None else ""
