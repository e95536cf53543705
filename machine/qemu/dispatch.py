"""Running a QEMU VM for a while: waiting for its stops, serving host timers, firing what each is for.

`VMM1Hz`, `VMM10Hz`, `USEC:n` (each VCPU) and `VMX1Hz` (once) are host
timers: when one is due the VM is interrupted (0x03), the probe fires on each
VCPU with that VCPU's registers and page tables, and the VM continues.  A
stop that happens anyway (a breakpoint) serves a due timer too.  Every stop
is first a fresh view of the VM (`Reads.invalidate`), then a watchpoint
(call site or data probe) or a breakpoint (`Breakpoints`).
"""

from __future__ import annotations

import time

from .breakpoints import Handler
from .errors import QemuError
from .gdbstub import StopReply
from .reads import Vcpu
from .rsp import RSPError

SIGTRAP = 5


class Timer:
    __slots__ = ("period", "due", "handler", "each")

    def __init__(self, period: float, handler: Handler, each: bool, now: float):
        self.period = period
        self.due = now + period
        self.handler = handler
        self.each = each  # on every VCPU (VMM context); else once, in VMX context


class Dispatch:
    def __init__(self, machine):
        self.m = machine
        self.timers: list[Timer] = []

    def add_timer(self, period: float, handler: Handler, each: bool, now: float) -> None:
        self.timers.append(Timer(period, handler, each, now))

    def timer_due(self) -> bool:
        return bool(self.timers) and min(t.due for t in self.timers) <= time.monotonic()

    def run(self, seconds: float) -> None:
        """Let the VM run for `seconds` of real time, firing probes as they come."""
        m = self.m
        stub = m.stub
        if stub is None:
            raise QemuError("the machine is closed")
        deadline = time.monotonic() + seconds
        busy = False  # the last stop came within the poll: a busy call site
        try:
            while not m.ended:
                now = time.monotonic()
                if not stub.running:
                    self._fire_timers(now)
                    if now >= deadline:
                        break
                    m.resume()
                due = min((t.due for t in self.timers), default=deadline)
                # A busy call site is hit again sooner than waking up from select takes: poll first.
                resumed = time.monotonic()
                reply = stub.wait_stop(max(0.0, min(deadline, due) - resumed),
                                       prompt=busy and bool(m.breakpoints.called))
                if reply is None:
                    if time.monotonic() >= deadline and due > deadline:
                        break
                    reply = stub.stop()
                busy = time.monotonic() - resumed < stub.rsp.spin_s
                self._handle_stop(reply)
        except RSPError as e:
            raise QemuError(f"lost the VM's gdbstub: {e}") from None

    def _fire_timers(self, now: float) -> None:
        m = self.m
        for timer in self.timers:
            if timer.due <= now:
                if timer.each:
                    m.fire_each_vcpu(timer.handler)
                else:
                    m.fire_vmx(timer.handler)
                timer.due += timer.period
                if timer.due <= now:  # late (the host was busy): skip the missed ticks
                    timer.due = now + timer.period

    def _handle_stop(self, reply: StopReply) -> bool:
        """Fire what the stop is for; True if the VM was resumed already."""
        m = self.m
        m.reads.invalidate()
        m.check_exit(reply)
        vcpu = m.current = self._thread_vcpu(reply.thread)
        m.stub.selected_by_stop(reply)
        if reply.watch is not None:
            m.breakpoints.watch_stop(vcpu, *reply.watch)
            return False
        if reply.signal != SIGTRAP or not m.breakpoints.by_address:
            return False
        return m.breakpoints.breakpoint_stop(vcpu)

    def _thread_vcpu(self, thread: int | None) -> Vcpu:
        for vcpu in self.m.vcpus:
            if vcpu.thread == thread:
                return vcpu
        return self.m.vcpus[0]
