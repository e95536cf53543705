"""Probe dispatch: how the machine's events reach the attached script's handlers.

"Free when disabled": only probe points the loaded script enables have an
entry here.  The guest model asks `static.get(name)`, tests the breakpoint and
watchpoint tables for emptiness, and checks `track_hv` before it even builds
a VMCS/VMCB description; nothing else is paid for a disabled point.

A firing sets the firing VCPU and the ARGn values, writes any frames the
guest model deferred into guest memory, runs the handler and, with
`vprobe.chargeProbeTime = "host"`, charges the host time the handler took to
the guest's clocks (the modelled charge costs the dispatcher nothing: the
script counts its own operations, see `SimulatedMachine`).
"""

from __future__ import annotations

import time
from typing import Callable

from vp_runtime import spec

from .guest.hv import Exit, amd_fields, entry_fields, intel_fields, is_npf
from .vmx import CHARGE_HOST

Handler = Callable[[], None]
_ZEROS = (0,) * spec.PROBE_ARGS
# The static probes a hardware-virtualization exit fires, in order.
HV_EXIT = "HV_Exit"
HV_NPF = "HV_NPF"
HV_RESUME = "HV_Resume"


class Probes:
    def __init__(self, machine):
        self.machine = machine
        self.args: list[int] = [0] * spec.PROBE_ARGS
        self.static: dict[str, Handler] = {}
        self.breakpoints: dict[int, Handler] = {}
        self.watch_writes: dict[int, Handler] = {}
        self.watch_reads: dict[int, Handler] = {}
        self.track_hv = False
        self.charge = machine.config.charge_probe_time == CHARGE_HOST  # charge host time
        self.charged_ns = 0  # host time spent in probes, added to the guest's clocks
        self._firing_since: int | None = None  # perf counter at the start of the running handler

    def clear(self) -> None:
        self.static.clear()
        self.breakpoints.clear()
        self.watch_writes.clear()
        self.watch_reads.clear()
        self.track_hv = False

    # ---- firing ---------------------------------------------------------------

    def fire_on(self, vcpu, handler: Handler) -> None:
        machine = self.machine
        machine.current = vcpu
        guest = machine.guest
        if guest is not None:
            guest.materialize_all()
        if self.charge and self._firing_since is None:
            self._firing_since = start = time.perf_counter_ns()
            try:
                handler()
            finally:
                self._firing_since = None
                self.charged_ns += time.perf_counter_ns() - start
        else:
            handler()
        script = machine.script
        if script is not None:
            script.end_firing()

    def in_probe_ns(self) -> int:
        """Host time the running handler has taken so far (0 outside a handler)."""
        since = self._firing_since
        return 0 if since is None else time.perf_counter_ns() - since

    def fire_static(self, vcpu, name: str, *args: int) -> None:
        handler = self.static.get(name)
        if handler is None:
            return
        self.args[:] = args + _ZEROS[len(args):]
        self.fire_on(vcpu, handler)

    def execute(self, vcpu, address: int) -> None:
        """The guest executes the instruction at `address` (a dynamic probe may sit there)."""
        handler = self.breakpoints.get(address)
        if handler is not None:
            self.fire_on(vcpu, handler)

    def guest_write(self, vcpu, address: int, size: int) -> None:
        for watched, handler in self.watch_writes.items():
            if address <= watched < address + size:
                self.fire_on(vcpu, handler)

    def guest_read(self, vcpu, address: int, size: int) -> None:
        for watched, handler in self.watch_reads.items():
            if address <= watched < address + size:
                self.fire_on(vcpu, handler)

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
