"""The simulated machine: VCPUs on deterministic simulated time, behind the runtime's Backend.

This first machine has the hardware that every VM has and that the runtime's
probes need: VCPUs with architectural registers, per-physical-CPU TSCs, a
local APIC timer that interrupts each VCPU at the guest's tick rate, and the
periodic, load and unload probe points.  It is "free when disabled": a probe
point the loaded script does not use has no handler and costs one `None`
test, and periodic probes are not even scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from vp_runtime import ALL_GLOBALS, GuestMemoryFault, LoadConfig, ProbeSpec, Script, STATIC_PROBES
from vp_runtime.catalog import VMCB_GLOBALS, VMCS_GLOBALS
from vp_runtime.reader import parse_integer

from .events import EventQueue
from .vcpu import REGISTER_NAMES, VCPU

NS_PER_SEC = 1_000_000_000
LOCAL_TIMER_VECTOR = 0xEF  # Linux's LOCAL_TIMER_VECTOR
# Host time at power-on, in microseconds since the epoch (2026-01-01T00:00:00Z):
# fixed so that runs are reproducible.
BOOT_HOST_TIME_US = 1_767_225_600_000_000

Handler = Callable[[], None]


@dataclass(frozen=True)
class MachineConfig:
    """What a VM is made of (the `.vmx` keys); the defaults are the embedded default machine."""

    numvcpus: int = 2
    memsize_mb: int = 1024
    tsc_hz: int = 2_593_119_000
    timer_hz: int = 250  # the guest kernel's HZ: local APIC timer interrupts per second per VCPU
    hv_vendor: str = "intel"  # "intel" (VMCS globals) or "amd" (VMCB globals)
    vprobe: LoadConfig = field(default_factory=LoadConfig)


class SimulatedMachine:
    """A VM on simulated time that fires the loaded script's probes."""

    def __init__(self, config: MachineConfig | None = None):
        self.config = config or MachineConfig()
        self.events = EventQueue()
        self.vcpus = [VCPU(i, pcpu=i, thread_id=1000 + i) for i in range(self.config.numvcpus)]
        self.current: VCPU = self.vcpus[0]
        self.args: list[int] = [0] * 10
        self._globals = self._offered_globals()
        self.script: Script | None = None
        self._cancel: list[Callable[[], None]] = []
        self.irq_handler: Handler | None = None
        for cpu in self.vcpus:
            self.events.every(NS_PER_SEC // self.config.timer_hz, self._timer_tick(cpu))

    # ---- the Backend protocol ------------------------------------------------

    def _offered_globals(self):
        excluded = VMCB_GLOBALS if self.config.hv_vendor == "intel" else VMCS_GLOBALS
        names = {g.name for g in excluded}
        return {n: g for n, g in ALL_GLOBALS.items() if n not in names}

    def globals(self):
        return self._globals

    def check_probe(self, spec: ProbeSpec) -> str | None:
        if spec.kind in STATIC_PROBES or spec.kind == "USEC":
            return None
        try:
            address = parse_integer(spec.param)
        except ValueError:
            address = None
        if address is None and self.lookup_symbol(spec.param) is None:
            return f"unknown guest symbol '{spec.param}' in probe point '{spec.text}'"
        return None

    def global_reader(self, name: str) -> Callable[[], int | str]:
        machine = self
        if name in REGISTER_NAMES:
            return lambda: machine.current.regs[name]
        if name.startswith("ARG"):
            args, index = self.args, int(name[3:])
            return lambda: args[index]
        readers = {
            "TSC": lambda: machine.tsc(machine.current.pcpu),
            "TSC_HZ": lambda: machine.config.tsc_hz,
            "PTSC": lambda: machine.ptsc(),
            "VCPUID": lambda: machine.current.index,
            "PCPUID": lambda: machine.current.pcpu,
            "THREADID": lambda: machine.current.thread_id,
            "NUMVCPUS": lambda: len(machine.vcpus),
        }
        if name in readers:
            return readers[name]
        return lambda: machine.current.hv.get(name, 0)

    def read_linear(self, addr: int, size: int) -> bytes:
        raise GuestMemoryFault(f"guest linear address {addr:#x} is not mapped")

    def read_physical(self, addr: int, size: int) -> bytes:
        raise GuestMemoryFault(f"guest physical address {addr:#x} is not backed by memory")

    def lookup_symbol(self, name: str) -> int | None:
        return None

    def stack_frames(self, max_frames: int) -> list[int]:
        return [self.current.regs["RIP"]][:max_frames]

    def host_time_us(self) -> int:
        return BOOT_HOST_TIME_US + self.events.now_ns // 1000

    # ---- time ----------------------------------------------------------------

    def ptsc(self) -> int:
        return self.events.now_ns * self.config.tsc_hz // NS_PER_SEC

    def tsc(self, pcpu: int) -> int:
        # Each physical CPU's TSC started a little apart, as on real hosts.
        return self.ptsc() + pcpu * 1_000_003

    @property
    def now_ns(self) -> int:
        return self.events.now_ns

    def run(self, seconds: float) -> None:
        """Advance simulated time by `seconds`, firing whatever falls due."""
        self.events.run_until(self.events.now_ns + int(seconds * NS_PER_SEC))

    # ---- guest activity --------------------------------------------------------

    def _timer_tick(self, cpu: VCPU) -> Handler:
        def tick() -> None:
            handler = self.irq_handler
            if handler is not None:
                self.current = cpu
                self.args[0] = LOCAL_TIMER_VECTOR
                handler()
        return tick

    # ---- loading scripts -----------------------------------------------------

    def fire_each_vcpu(self, handler: Handler) -> None:
        """A VMM-context probe: once on every VCPU, in VCPU order."""
        for cpu in self.vcpus:
            self.current = cpu
            handler()

    def fire_vmx(self, handler: Handler) -> None:
        """A VMX-context probe: once for the VM (VCPU 0's state is what it sees)."""
        self.current = self.vcpus[0]
        handler()

    def attach(self, script: Script) -> None:
        """Enable `script`'s probe points and fire its load probes (replacing any script)."""
        if self.script is not None:
            self.detach()
        self.script = script
        handlers = {spec.text: (spec, script.handler(spec.text)) for spec in script.probe_specs()}
        periodic = {"VMM1Hz": (NS_PER_SEC, self.fire_each_vcpu), "VMM10Hz": (NS_PER_SEC // 10, self.fire_each_vcpu),
                    "VMX1Hz": (NS_PER_SEC, self.fire_vmx)}
        for spec, handler in handlers.values():
            if spec.kind in periodic:
                period, fire = periodic[spec.kind]
                self._cancel.append(self.events.every(period, lambda h=handler, f=fire: f(h)))
            elif spec.kind == "USEC":
                self._cancel.append(self.events.every(
                    spec.interval_us * 1000, lambda h=handler: self.fire_each_vcpu(h)))
            elif spec.kind == "Guest_IRQ":
                self.irq_handler = handler
        if "VMXLoad" in handlers:
            self.fire_vmx(handlers["VMXLoad"][1])
        if "VMMLoad" in handlers:
            self.fire_each_vcpu(handlers["VMMLoad"][1])

    def detach(self) -> None:
        """Fire the unload probes, disable every probe point and flush the log."""
        script = self.script
        if script is None:
            return
        specs = {spec.text for spec in script.probe_specs()}
        if "VMMUnload" in specs:
            self.fire_each_vcpu(script.handler("VMMUnload"))
        if "VMXUnload" in specs:
            self.fire_vmx(script.handler("VMXUnload"))
        for cancel in self._cancel:
            cancel()
        self._cancel.clear()
        self.irq_handler = None
        self.script = None
        script.flush()
