"""The simulated machine: an x86-64 VM with a guest OS model, behind the runtime's Backend.

It owns simulated time (a deterministic event queue), the VCPUs, guest
physical memory and the MMU, the guest OS model (a profile from
`GUEST_PROFILES`, by `VMConfig.guest`), and the probe dispatcher.
A script is attached with `attach` (its load probes fire) and detached with
`detach` (its unload probes fire and its log is flushed).
"""

from __future__ import annotations

from functools import partial
from operator import attrgetter, getitem
from typing import Callable

from vp_runtime import ProbeSpec, Script, VPFault, spec

from . import counters, descriptors, x86
from .attaching import fire_load_probes, fire_unload_probes, periodic
from .errors import MachineError
from .events import NS_PER_SEC, EventQueue
from .guest.linux import LinuxGuest
from .guest.profile import GuestProfile
from .guest.structs import emmett_structs, parse_requests
from .guest.windows import WindowsGuest
from .memory import MMU, PhysicalMemory
from .probes import HV_EXIT, HV_NPF, HV_RESUME, Probes, in_order
from .stackwalk import walk_frames
from .symbols import parse_symbols, read_symbols, resolve_address
from .syscall_names import read_syscalls_file
from .vcpu import REGISTER_NAMES, VCPU
from .vmx import CHARGE_MODEL, VMConfig, default_config
from .x86 import CR0_PG

# Host time at power-on, in microseconds since the epoch (2026-01-01T00:00:00Z):
# fixed so that runs are reproducible.
BOOT_HOST_TIME_US = 1_767_225_600_000_000
# The modelled charge (vprobe.chargeProbeTime = "model"): guest time each VP operation a
# probe executes costs (`vp_runtime.cost` defines the operation).
NS_PER_VP_OPERATION = 10
# The guests the machine can boot, by the name `sim.guest` gives them.
GUEST_PROFILES: dict[str, type[GuestProfile]] = {g.name: g for g in (LinuxGuest, WindowsGuest)}

Handler = Callable[[], None]


def guest_structs(config, requests: str) -> str:
    """Emmett declarations of the structures and fields `requests` asks for (`structs.parse_requests`)
    of the guest `config` boots; a name the guest lacks is a ValueError saying so."""
    profile = GUEST_PROFILES.get(getattr(config, "guest", None))
    if profile is None:
        raise MachineError("--structs: only a simulated guest's structures are known here (a QEMU VM's "
                           "kernel describes its own in its BTF)")
    layouts = profile.structures
    return emmett_structs(layouts, parse_requests(requests, layouts))
# What fires a guest-address probe point -> the dispatcher's table for it.
_ADDRESS_TABLES = {spec.EXECUTE: "breakpoints", spec.READ: "watch_reads", spec.WRITE: "watch_writes",
                   spec.RETURN: "returns"}
# A segment global -> (its segment register, which part of the hidden state: 0 base, 1 limit, 2 AR).
_SEGMENT_PARTS = {g.name: (g.name[:-len(part)], index) for g in spec.SEGMENT_GLOBALS
                  for index, part in enumerate(("BASE", "LIMIT", "AR")) if g.name.endswith(part)}
_HV_STATES = {"intel": 1, "amd": 2}
# Built-in globals that are a field of the firing VCPU.
_VCPU_FIELDS = {"VCPUID": "index", "PCPUID": "pcpu", "THREADID": "thread_id"}
# MSRs every x86-64 VCPU has that RESET clears and a guest may leave alone.
_RESET_ZERO_MSRS = frozenset((x86.MSR_STAR, x86.MSR_LSTAR, x86.MSR_CSTAR, x86.MSR_SFMASK, x86.MSR_SYSENTER_CS,
                              x86.MSR_SYSENTER_ESP, x86.MSR_SYSENTER_EIP))


class SimulatedMachine:
    """A VM on simulated time that fires the attached script's probes."""

    def __init__(self, config: VMConfig | None = None):
        self.config = config or default_config()
        self.load_config = self.config.load_config()
        self.events = EventQueue()
        self.vcpus = [VCPU(i, pcpu=i, thread_id=1000 + i) for i in range(self.config.numvcpus)]
        self.current: VCPU = self.vcpus[0]
        self.probes = Probes(self)
        self.args = self.probes.args
        self._globals = self._offered_globals()
        self.script: Script | None = None
        # The modelled charge: guest time charged for the operations of scripts detached since
        # power-on, and the attached script's count when it was attached.
        self.model_charge = self.config.charge_probe_time == CHARGE_MODEL
        self._modelled_ns = 0
        self._ops_at_attach = 0
        self._cancel_periodic: list[Callable[[], None]] = []
        self._cancel_timers: list[Callable[[], None]] = []
        self.guest: GuestProfile | None = None
        self.power_on()
        self.symbol_text = self.guest.symbol_table()
        self.guest_library_name = self.guest.library_name
        # Symbols resolve as the VM's symbol file says: vprobe.guestSyms, or the guest's own kallsyms.
        self.symbols = (read_symbols(self.config.guest_syms) if self.config.guest_syms
                        else parse_symbols(self.symbol_text))

    # ---- power ------------------------------------------------------------------

    def power_on(self) -> None:
        """Fresh memory and guest; the boot sequence starts now (and the guest's TSC at 0)."""
        self._tsc_at_power_on = self.ptsc()
        self.memory = PhysicalMemory(self.config.memsize_mb << 20)
        self.mmu = MMU(self.memory)
        self.guest = GUEST_PROFILES[self.config.guest](self, self.config.workload, self.config.seed)
        self.guest.power_on()

    def reset(self) -> None:
        """A hardware reset (after a triple fault): the guest reboots; the script stays attached."""
        for cancel in self._cancel_timers:
            cancel()
        self._cancel_timers.clear()
        self.events.cancel_owner(self.guest)
        for vcpu in self.vcpus:
            vcpu.hv.clear()
        self.power_on()

    def start_timer(self, index: int) -> None:
        """The guest kernel has programmed VCPU `index`'s local APIC timer."""
        guest = self.guest
        cpu = guest.cpus[index]
        self._cancel_timers.append(self.events.every(guest.timer_period_ns, lambda: guest.timer_tick(cpu)))

    # ---- the Backend protocol -----------------------------------------------------

    def _offered_globals(self):
        """Every global of the spec but the other vendor's hardware-virtualization fields."""
        hidden = spec.VMCB if self.config.hv_vendor == "intel" else spec.VMCS
        return {n: g for n, g in spec.GLOBALS.items() if g.group != hidden}

    def globals(self):
        return self._globals

    def resolve(self, text: str) -> int | None:
        """An address written as a number or a guest symbol name."""
        return resolve_address(text, self.lookup_symbol)

    def check_probe(self, point: ProbeSpec) -> str | None:
        kind = point.parametric
        if kind is not None and kind.param == spec.ADDRESS:
            address = point.address(self.resolve)
            if address is None:
                return f"unknown guest symbol '{point.param}' in probe point '{point.text}'"
            if kind.fires == spec.RETURN and not self.guest.is_function_entry(address):
                return (f"probe point '{point.text}': a return probe needs the entry of a function, and "
                        f"{address:#x} is not where a function of the guest's kernel starts")
        return None

    def global_path(self, name: str) -> tuple[object, tuple[str, ...], str | int | None] | None:
        """Where the firing VCPU's registers, its index, physical CPU and thread, and ARGn always
        are, for the translated code to read them with no call (`vp_runtime.backend`)."""
        if name in REGISTER_NAMES:
            return self, ("current", "regs"), name
        index = spec.PROBE_ARG_INDEX.get(name)
        if index is not None:
            return self.args, (), index  # `args` is updated in place
        field = _VCPU_FIELDS.get(name)
        return None if field is None else (self, ("current", field), None)

    def global_reader(self, name: str) -> Callable[[], int | str]:
        """A reader of built-in global `name`, called on every read (of those `global_path` does
        not place, and by builtins such as getgpr): the firing VCPU's fields and ARGn are read by
        C-level callables (`attrgetter`, `getitem`), which run no Python frame."""
        machine = self
        if name in REGISTER_NAMES:
            return lambda: machine.current.regs[name]
        index = spec.PROBE_ARG_INDEX.get(name)
        if index is not None:
            return partial(getitem, self.args, index)  # `args` is updated in place
        field = _VCPU_FIELDS.get(name)
        if field is not None:
            return partial(attrgetter(f"current.{field}"), machine)
        info = spec.GLOBALS[name]
        if info.group == spec.SEGMENT:
            segment, part = _SEGMENT_PARTS[name]
            return lambda: machine.segment(segment)[part]
        readers = {
            "TSC": lambda: machine.tsc(machine.current.pcpu),
            "TSC_HZ": lambda: machine.config.tsc_hz,
            "PTSC": lambda: machine.ptsc(),
            "NUMVCPUS": lambda: len(machine.vcpus),
            "SMM": lambda: int(machine.current.smm),
            "EMULATION_MODE": lambda: machine.emulated(),
            "HVSTATE": lambda: 0 if machine.emulated() else _HV_STATES[machine.config.hv_vendor],
            "SELSTATE": lambda: descriptors.null_segments(machine.current.regs),
            "BRCNT": lambda: counters.branches(machine.unhalted_cycles()),
            "RDTSC": lambda: machine.guest_tsc(),
        }
        if name in readers:
            return readers[name]
        hv = {spec.VMCS: machine.hv_field_reader, spec.VMCB: machine.hv_field_reader}
        return hv[info.group](name)

    def hv_field_reader(self, name: str) -> Callable[[], int]:
        """A VMCS or VMCB field of the firing VCPU's last exit (the toolkit's aliases read theirs)."""
        field = spec.GLOBAL_ALIASES.get(name, name)
        return lambda: self.current.hv.get(field, 0)

    # ---- what the VCPU is doing ----------------------------------------------------------

    def segment(self, name: str) -> descriptors.Segment:
        """(base, limit, access rights) of the firing VCPU's segment register `name`."""
        return descriptors.hidden(name, self.current.regs, self._read_u64)

    def _read_u64(self, linear: int) -> int:
        return int.from_bytes(self.read_linear(linear, 8), "little")

    def emulated(self) -> int:
        """1 while the monitor emulates the firing VCPU: real mode, before protection is on."""
        return 0 if self.current.regs["CR0"] & x86.CR0_PE else 1

    def unhalted_cycles(self) -> int:
        cpu = self.guest.cpus[self.current.index]
        return counters.unhalted_cycles(cpu.unhalted_ns(self.events.now_ns), self.config.tsc_hz)

    def guest_tsc(self) -> int:
        """The TSC the guest reads: counting at the TSC rate from the VM's power-on (or reset)."""
        return self.ptsc() - self._tsc_at_power_on

    def read_msr(self, number: int) -> int:
        """RDMSR `number` on the firing VCPU (a VPFault for one it does not have)."""
        vcpu = self.current
        regs = vcpu.regs
        if number in vcpu.msrs:
            return vcpu.msrs[number]
        if number in spec.MSR_GLOBALS:
            return regs[spec.MSR_GLOBALS[number]]
        if number == x86.MSR_TSC:
            return self.guest_tsc()
        if number == x86.MSR_APIC_BASE:
            return regs["APIC_BASEPA"] | x86.APIC_BASE_ENABLE | (x86.APIC_BASE_BSP if vcpu.index == 0 else 0)
        if number == x86.MSR_PAT:
            return x86.PAT_RESET
        if x86.MSR_PMC0 <= number < x86.MSR_PMC0 + x86.GENERAL_PMCS:
            return self.read_pmc(number - x86.MSR_PMC0)
        if x86.MSR_FIXED_CTR0 <= number < x86.MSR_FIXED_CTR0 + x86.FIXED_PMCS:
            return self.read_pmc(x86.PMC_FIXED | number - x86.MSR_FIXED_CTR0)
        if number in _RESET_ZERO_MSRS:
            return 0
        raise VPFault(f"readmsr: this VM's VCPUs have no MSR {number:#x} (the guest's rdmsr would take #GP)")

    def read_pmc(self, number: int) -> int:
        """RDPMC `number` on the firing VCPU (machine/counters.py)."""
        try:
            return counters.read_pmc(number, self.unhalted_cycles())
        except counters.NoSuchCounter as e:
            raise VPFault(f"readpmc: {e}") from None

    def memory_mb(self) -> int:
        return self.config.memsize_mb

    def read_linear(self, addr: int, size: int) -> bytes:
        regs = self.current.regs
        if not regs["CR0"] & CR0_PG:
            return self.read_physical(addr, size)  # real mode: linear is physical
        return self.mmu.read(regs["CR3"], addr, size)

    def read_physical(self, addr: int, size: int) -> bytes:
        return self.memory.read(addr, size)

    def lookup_symbol(self, name: str) -> int | None:
        return self.symbols.get(name)

    def stack_frames(self, max_frames: int) -> list[int]:
        """Frame-pointer walk of the firing VCPU's stack, innermost first."""
        regs = self.current.regs
        return walk_frames(self.read_linear, regs["RIP"], regs["RSP"], regs["RBP"],
                           self.guest.is_function_entry(regs["RIP"]), max_frames)

    def host_time_us(self) -> int:
        return BOOT_HOST_TIME_US + self._clock_ns() // 1000

    # ---- time -----------------------------------------------------------------------

    def _clock_ns(self) -> int:
        """Simulated time plus the time probes have taken, as charged (vprobe.chargeProbeTime):
        the modelled cost of the VP operations they executed (in a firing too, as far as it
        got), or the host time they took, or nothing."""
        if self.model_charge:
            return self.events.now_ns + self.modelled_charge_ns()
        probes = self.probes
        if not probes.charge:
            return self.events.now_ns
        return self.events.now_ns + probes.charged_ns + probes.in_probe_ns()

    def modelled_charge_ns(self) -> int:
        """Guest time charged so far for the VP operations probes executed (the modelled charge)."""
        script = self.script
        ops = script.operations() - self._ops_at_attach if script is not None else 0
        return self._modelled_ns + ops * NS_PER_VP_OPERATION

    def ptsc(self) -> int:
        return self._clock_ns() * self.config.tsc_hz // NS_PER_SEC

    def tsc(self, pcpu: int) -> int:
        # Each physical CPU's TSC started a little apart, as on real hosts.
        return self.ptsc() + pcpu * 1_009

    @property
    def now_ns(self) -> int:
        return self.events.now_ns

    def run(self, seconds: float) -> None:
        """Advance simulated time by `seconds`, firing whatever falls due."""
        self.run_until_ns(self.events.now_ns + int(seconds * NS_PER_SEC))

    def run_until_ns(self, end_ns: int) -> None:
        """Advance simulated time to exactly `end_ns` (a -d deadline lands on its nanosecond), or
        until the attached script calls exit(): it is detached then, and time stops there."""
        if self.probes.script is None:  # no script that may call exit(): nothing to test between events
            self.events.run_until(end_ns)
        else:
            self.run_until_or(end_ns, lambda: False)

    def run_until_or(self, end_ns: int, give_way: Callable[[], bool]) -> bool:
        """As `events.run_until_or`, and stop too when the script calls exit() (it is detached);
        whether time reached `end_ns`.  Only a script that may call exit() is tested for it after
        every event (`Probes.script`): any other runs at the cost of no script."""
        probes = self.probes
        reached = False
        if not probes.ended:
            stop = give_way if probes.script is None else (lambda: probes.ended or give_way())
            reached = self.events.run_until_or(end_ns, stop)
        if probes.ended:
            self.detach()
            return False
        return reached

    def script_exited(self) -> None:
        """The script called exit() in the firing that just returned: none of its probes fires
        again (the guest pays for none) until `run` detaches it, between two events."""
        self.probes.ended = True
        self.probes.drop_points()
        for cancel in self._cancel_periodic:
            cancel()
        self._cancel_periodic.clear()

    def close(self) -> None:
        """Power off (nothing outlives the simulated machine's process)."""
        self.detach()

    # ---- loading scripts -----------------------------------------------------------

    def fire_each_vcpu(self, handler: Handler) -> None:
        """A VMM-context probe: once on every VCPU, in VCPU order."""
        self.probes.on_each_vcpu(handler)()

    def fire_vmx(self, handler: Handler) -> None:
        """A VMX-context probe: once for the VM (VCPU 0's state is what it sees)."""
        self.probes.fire_on(self.vcpus[0], handler)

    def attach(self, script: Script) -> None:
        """Enable `script`'s probe points and fire its load probes (replacing any script).

        Each point's firing is built here, once, for what the script needs (`Probes.firing`)."""
        if self.script is not None:
            self.detach()
        self.script = script
        self._ops_at_attach = script.operations()
        probes = self.probes
        probes.prepare(script)
        # Two probe points may name one address (a symbol and its number): both fire, as one.
        at_address: dict[tuple[str, int], Handler] = {}
        for point in script.probe_specs():
            every = periodic(point)
            if every is not None:
                period_us, context = every
                handler = script.handler(point.text)
                if context == spec.VMM:
                    action = probes.on_each_vcpu(handler)
                else:
                    fire, vmx = probes.firing(handler), self.vcpus[0]

                    def action(fire=fire, vmx=vmx) -> None:
                        self.current = vmx
                        fire()
                self._cancel_periodic.append(self.events.every(period_us * 1000, action))
            elif point.parametric is not None:
                key = (_ADDRESS_TABLES[point.parametric.fires], point.address(self.resolve))
                handler = script.handler(point.text)
                at_address[key] = in_order(at_address[key], handler) if key in at_address else handler
            elif point.static.fires == spec.EVENT:
                probes.static[point.kind] = probes.firing(script.handler(point.text))
        for (table, address), handler in at_address.items():
            getattr(probes, table)[address] = probes.firing(handler)
        probes.track_hv = any(k in probes.static for k in (HV_EXIT, HV_NPF, HV_RESUME)) or any(
            spec.GLOBALS[name].group in (spec.VMCS, spec.VMCB) for name in script.machine_globals)
        fire_load_probes(self, script)

    def detach(self) -> None:
        """Fire the unload probes, disable every probe point and flush the log."""
        script = self.script
        if script is None:
            return
        self.probes.unloading = True
        try:
            fire_unload_probes(self, script)
        finally:
            self.probes.unloading = self.probes.ended = False
        for cancel in self._cancel_periodic:
            cancel()
        self._cancel_periodic.clear()
        self.probes.clear()
        self._modelled_ns = self.modelled_charge_ns()
        self.script = None
        script.flush()

    # ---- guest knowledge for the tools ------------------------------------------------

    realtime = False  # run(seconds) is simulated time, as fast as the host allows

    def guest_library_vp(self) -> str:
        """The VP helpers curpid, curtid, curppid, curprocname for this guest (`guest_library_name`)."""
        return self.guest.library_vp()

    def syscall_names(self) -> dict[int, str]:
        """System call numbers' names: the VM's vprobe.syscalls file, or its guest kernel's own table."""
        if self.config.syscalls is not None:
            return read_syscalls_file(self.config.syscalls)
        return self.guest.system_calls()

    def guest_preload_emmett(self) -> str | None:
        """The Emmett preload for this guest (None: the compiler's default is this guest's)."""
        return self.guest.preload_emmett()

    # ---- what the tools show -----------------------------------------------------------

    def probe_points(self) -> list[tuple[str, str]]:
        """Every probe point this VM offers, with a description (for `vprobe -p`)."""
        points = [(name, info.description) for name, info in spec.STATIC_PROBES.items()]
        points += [(k.syntax, k.description) for k in spec.PROBE_KINDS.values() if k.param == spec.INTERVAL]
        # Named as the VM's symbol file names them (vprobe.guestSyms, or the guest's own table):
        # the names a script can use.
        guest = self.guest
        data = guest.data_addresses()
        named = sorted(self.symbols.items(), key=lambda kv: (kv[1], kv[0]))
        for name, address in named:
            if guest.is_function_entry(address):
                points.append((f"GUEST:{name}", f"the guest executes {name} ({address:#x})"))
        for name, address in sorted(named):
            if address in data:
                points.append((f"GUEST_WRITE:{name}", f"the guest writes {name}"))
                points.append((f"GUEST_READ:{name}", f"the guest reads {name}"))
        return points
