"""Probe dispatch: how the machine's events reach the attached script's handlers.

"Free when disabled": only probe points the loaded script enables have an
entry here.  The guest model asks `static.get(name)`, tests the breakpoint and
watchpoint tables for emptiness, and checks `track_hv` before it even builds
a VMCS/VMCB description; nothing else is paid for a disabled point.

What a firing does is decided once per point, when the script is attached
(`prepare`, then `firing` for each point).  The guest's event makes the VCPU
the firing one (`machine.current`) and calls the firing, which runs the
handler: for most scripts it is the handler itself, so that a firing costs
one call; and only where the script or the VM needs it, it
writes the frames the guest model deferred into guest memory first (a
script that can read guest memory), sets the ARGn values (a script that
reads them; `fire_static`), charges the host time the handler took to the
guest's clocks (`vprobe.chargeProbeTime = "host"`; the modelled charge costs
the dispatcher nothing: the script counts its own operations, see
`SimulatedMachine`), ends the line the firing left unfinished
(`Script.end_firing`, for a script that writes text), and, for a script that
may call exit(), tells the machine when a firing did (`script_exited`).  A periodic
VMM-context point fires on every VCPU through one callable (`on_each_vcpu`; charged
host time is read once between two VCPUs' firings).  A breakpoint's firing sets the
registers of the probed function only for a script that reads where the VCPU executes
(`needs_place`; the guest's `Contexts.walk` asks).
"""

from __future__ import annotations

import time
from typing import Callable

from vp_runtime import spec

from .guest.hv import Exit, amd_fields, entry_fields, intel_fields, is_npf
from .vmx import CHARGE_HOST

Handler = Callable[[], None]
# A point's firing: runs its handler on the VCPU the caller has just made the firing one
# (`machine.current = vcpu`, an attribute store where a call per firing would cost more).
Firing = Callable[[], None]
_ZEROS = (0,) * spec.PROBE_ARGS
# The groups of built-in globals whose values do not depend on where the firing VCPU executes
# (its registers and stack): a breakpoint's firing sets the registers of the probed function's
# entry only for a script that reads a global of another group or calls a builtin that reads
# registers or guest memory (`Probes.needs_place`).
_PLACE_FREE_GROUPS = frozenset((spec.HARDWARE, spec.PROBE, spec.VMCS, spec.VMCB))
# The static probes a hardware-virtualization exit fires, in order.
HV_EXIT = "HV_Exit"
HV_NPF = "HV_NPF"
HV_RESUME = "HV_Resume"


class Probes:
    def __init__(self, machine):
        self.machine = machine
        self.args: list[int] = [0] * spec.PROBE_ARGS
        self.static: dict[str, Firing] = {}
        self.breakpoints: dict[int, Firing] = {}
        self.watch_writes: dict[int, Firing] = {}
        self.watch_reads: dict[int, Firing] = {}
        self.returns: dict[int, Firing] = {}  # a function's entry -> its EXIT: probe
        self.track_hv = False
        self.fire_static = self._fire_static  # what the guest calls for a static point (`prepare`)
        self.charge = machine.config.charge_probe_time == CHARGE_HOST  # charge host time
        self.charged_ns = 0  # host time spent in probes, added to the guest's clocks
        # The script called exit(): no probe of it fires again but, while `unloading`, its unload probes.
        self.ended = False
        self.unloading = False
        self._firing_since: int | None = None  # perf counter at the start of the running handler
        # What the attached script needs of a firing (`prepare`).
        self.keeps_args = False  # it reads ARGn: static firings set them
        self.materializes = False  # it may read guest memory: the deferred frames are written first
        self.end_firing: Handler | None = None  # it writes text: its line ends after each firing
        self.script = None  # it may call exit(): the script, whose end each firing checks
        self.needs_place = False  # it reads registers, the stack or memory: a breakpoint's context is set
        # Counts the probe sets installed and dropped (`prepare`, `drop_points`): what the guest
        # model derives from the tables it may keep until this changes.
        self.generation = 0

    def prepare(self, script) -> None:
        """Note what `script`'s firings need, before its points are installed."""
        self.generation += 1
        self.keeps_args = any(name in spec.PROBE_ARG_INDEX for name in script.machine_globals)
        self.materializes = script.reads_guest_memory
        self.end_firing = script.end_firing if script.writes_text else None
        self.script = script if script.may_exit else None
        self.needs_place = (any(spec.GLOBALS[name].group not in _PLACE_FREE_GROUPS for name in script.machine_globals)
                            or any(spec.BUILTINS[name].reads_registers for name in script.builtins_called))
        self.fire_static = self._fire_static_with_args if self.keeps_args else self._fire_static

    def drop_points(self) -> None:
        """No point fires any more (the script is detached, or called exit())."""
        self.generation += 1
        self.static.clear()
        self.breakpoints.clear()
        self.watch_writes.clear()
        self.watch_reads.clear()
        self.returns.clear()
        self.track_hv = False

    def clear(self) -> None:
        self.drop_points()
        self.keeps_args = self.materializes = self.needs_place = False
        self.end_firing = None
        self.script = None
        self.fire_static = self._fire_static

    # ---- what a firing does, built once per point ----------------------------------

    def firing(self, handler: Handler) -> Firing:
        """What fires `handler`, doing only what the attached script needs: `handler` itself
        for a script that needs nothing more."""
        machine = self.machine
        if self.charge:
            handler = self._charged(handler)
        if self.end_firing is not None:
            handler = in_order(handler, self.end_firing)
        if self.script is not None:
            handler = self._ending(handler)
        if self.materializes:
            def fire() -> None:
                guest = machine.guest
                if guest is not None:
                    guest.materialize_all()
                handler()
            return fire
        return handler

    def on_each_vcpu(self, handler: Handler) -> Handler:
        """Fire `handler` once on every VCPU, in VCPU order (a VMM-context point)."""
        machine = self.machine
        vcpus = machine.vcpus
        if self.charge and not (self.materializes or self.end_firing is not None or self.script is not None):
            return self._charged_each(handler)
        fire = self.firing(handler)

        def fire_each() -> None:  # the hot path of a timer probe
            for vcpu in vcpus:
                machine.current = vcpu
                fire()
        return fire_each

    def _ending(self, handler: Handler) -> Handler:
        """`handler` of a script that may call exit(): after the firing that calls it the machine
        is told (`script_exited`), and no firing but the unload probes' runs after it."""
        probes, machine, script = self, self.machine, self.script

        def ending() -> None:
            if probes.ended and not probes.unloading:
                return
            handler()
            if script.exited is not None and not probes.ended:
                machine.script_exited()
        return ending

    def _charged(self, handler: Handler) -> Handler:
        """`handler`, with the host time it takes added to `charged_ns`."""
        probes = self
        clock = time.perf_counter_ns

        def charged() -> None:
            if probes._firing_since is not None:  # within a firing already: charged there
                handler()
                return
            probes._firing_since = start = clock()
            try:
                handler()
            finally:
                probes._firing_since = None
                probes.charged_ns += clock() - start
        return charged

    def _charged_each(self, handler: Handler) -> Handler:
        """`handler` fired on every VCPU, the host time of each firing added to `charged_ns`: one
        clock read ends a firing and starts the next (the firings follow each other)."""
        probes, machine, vcpus = self, self.machine, self.machine.vcpus
        clock = time.perf_counter_ns

        def charged_each() -> None:
            if probes._firing_since is not None:  # within a firing already: charged there
                for vcpu in vcpus:
                    machine.current = vcpu
                    handler()
                return
            start = clock()
            try:
                for vcpu in vcpus:
                    probes._firing_since = start
                    machine.current = vcpu
                    handler()
                    end = clock()
                    probes.charged_ns += end - start
                    start = end
            finally:
                probes._firing_since = None
        return charged_each

    def in_probe_ns(self) -> int:
        """Host time the running handler has taken so far (0 outside a handler)."""
        since = self._firing_since
        return 0 if since is None else time.perf_counter_ns() - since

    # ---- the guest's events -----------------------------------------------------------

    def fire_on(self, vcpu, handler: Handler) -> None:
        """Fire `handler` on `vcpu` once (load and unload probes; not a point's hot path)."""
        self.machine.current = vcpu
        self.firing(handler)()

    def _fire_static(self, vcpu, name: str, *args: int) -> None:
        """Static probe `name` fires on `vcpu` with ARGn `args`, which the script does not read
        (`fire_static`, chosen at `prepare`)."""
        fire = self.static.get(name)
        if fire is not None:
            self.machine.current = vcpu
            fire()

    def _fire_static_with_args(self, vcpu, name: str, *args: int) -> None:
        """Static probe `name` fires on `vcpu` with ARGn `args`, for a script that reads them."""
        fire = self.static.get(name)
        if fire is not None:
            self.args[:] = args + _ZEROS[len(args):]
            self.machine.current = vcpu
            fire()

    def execute(self, vcpu, address: int) -> None:
        """The guest executes the instruction at `address` (a dynamic probe may sit there)."""
        fire = self.breakpoints.get(address)
        if fire is not None:
            self.machine.current = vcpu
            fire()

    def guest_write(self, vcpu, address: int, size: int) -> None:
        """The guest writes `size` bytes at `address` (a GUEST_WRITE: probe may watch them)."""
        self._fire_watching(self.watch_writes, vcpu, address, size)

    def guest_read(self, vcpu, address: int, size: int) -> None:
        """The guest reads `size` bytes at `address` (a GUEST_READ: probe may watch them)."""
        self._fire_watching(self.watch_reads, vcpu, address, size)

    def _fire_watching(self, watches: dict[int, Firing], vcpu, address: int, size: int) -> None:
        """Fire the watchpoints of `watches` within the access, in the order they were set; none
        after a firing that called exit() (which empties the tables)."""
        for watched, fire in watches.items():
            if address <= watched < address + size:
                self.machine.current = vcpu
                fire()
                if self.ended:
                    return

    def hv_exit(self, vcpu, exit_: Exit, inject: int | None = None) -> None:
        """A hardware-virtualization exit and the resume after it (HV_Exit, HV_NPF, HV_Resume)."""
        if not self.track_hv:
            return
        vendor = self.machine.config.hv_vendor
        vcpu.hv.update(intel_fields(exit_) if vendor == "intel" else amd_fields(exit_))
        self.fire_static(vcpu, HV_EXIT)
        if is_npf(vendor, exit_):
            self.fire_static(vcpu, HV_NPF)
        vcpu.hv.update(entry_fields(vendor, inject))
        self.fire_static(vcpu, HV_RESUME)


def in_order(first: Handler, second: Handler) -> Handler:
    """One handler running `first`, then `second`."""
    def run() -> None:
        first()
        second()
    return run
