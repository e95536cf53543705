"""Interrupt delivery and the timer tick, shared by every guest profile.

An external interrupt reaches a CPU as the monitor injects it: an exit for
the interrupt (now and then an interrupt-window exit first), the `Guest_IRQ`
probe with the vector, the kernel's handler path for that vector, and the
EOI write to the local APIC.  The timer tick is the kernel's periodic
interrupt: CPU 0 keeps the tick counter (Linux's jiffies) and every CPU
accounts the tick to the running task, whose slice may run out.
"""

from __future__ import annotations

from functools import cache

from .contexts import FixedPath
from .hv import Exit
from .state import CpuState

APIC_EOI = 0xB0  # the local APIC's end-of-interrupt register
# The exits an interrupt takes, made once rather than at every interrupt, whether or not a
# script looks at exits (an `Exit` is only read): the interrupt window, the EOI write, and
# the interrupt itself, one per vector.
EXIT_WINDOW = Exit("window")
EXIT_EOI = Exit("apic", address=APIC_EOI, write=True, instr_len=6)


@cache
def interrupt_exit(vector: int) -> Exit:
    return Exit("interrupt", vector=vector)


class Interrupts:
    def __init__(self, guest):
        self.g = guest
        paths = guest.paths
        self.device_prefix = list(paths.device_irq)
        self.device_paths: dict[str, FixedPath] = {}  # a driver's interrupt path, made at its first interrupt
        self.timer_vector = paths.timer_vector
        # The timer interrupt's paths, walked on every tick: the handler's (with the timekeeping
        # on the CPU that keeps the tick counter) and the tick's accounting past it.
        timer = list(paths.timer)
        self.timer_path = FixedPath(timer)
        self.keeper_path = FixedPath(timer + list(paths.timekeeping))
        self.tick_path = FixedPath(timer + list(paths.tick_accounting), start=len(timer) + 1)

    def irq(self, cpu: CpuState, vector: int, path: FixedPath) -> None:
        """Deliver external interrupt `vector` to `cpu` and run its handler `path`."""
        g = self.g
        task = cpu.current
        if g.rng.random() < 0.02:
            g.hv_exit(cpu, EXIT_WINDOW)
        g.hv_exit(cpu, interrupt_exit(vector), inject=vector)
        g.probes.fire_static(cpu.vcpu, "Guest_IRQ", vector)
        g.contexts.walk_fixed(cpu, task, path)
        g.hv_exit(cpu, EXIT_EOI)

    def device_irq(self, cpu: CpuState, vector: int, driver: str) -> None:
        path = self.device_paths.get(driver)
        if path is None:
            path = self.device_paths[driver] = FixedPath([*self.device_prefix, driver])
        self.irq(cpu, vector, path)

    def timer_tick(self, cpu: CpuState) -> None:
        if not cpu.online:
            return
        g = self.g
        probes = g.probes
        was_idle = cpu.current is cpu.idle
        keeper = cpu.vcpu.index == 0
        self.irq(cpu, self.timer_vector, self.keeper_path if keeper else self.timer_path)
        counter = g.tick_counter
        if keeper:
            g.kwrite_u64(counter, g.kread_u64(counter) + 1)
            if probes.watch_writes:
                probes.guest_write(cpu.vcpu, counter, 8)
        g.contexts.walk_fixed(cpu, cpu.current, self.tick_path)
        if probes.watch_reads:
            probes.guest_read(cpu.vcpu, counter, 8)
        scheduler = g.scheduler
        if was_idle:
            if scheduler.runqueue:
                scheduler.schedule(cpu)
            else:
                scheduler.go_idle(cpu)
            return
        cpu.slice_ticks -= 1
        if cpu.slice_ticks <= 0 and scheduler.runqueue:
            scheduler.schedule(cpu)
        else:
            self.resume_after_interrupt(cpu)

    def resume_after_interrupt(self, cpu: CpuState) -> None:
        """Back from an interrupt to what `cpu` was running: the idle loop, user code or a kernel thread."""
        task = cpu.current
        if task is cpu.idle:
            self.g.scheduler.go_idle(cpu)
        elif task.mm is not None:
            self.g.contexts.user(cpu, task)
        elif cpu.online:
            self.g.kernel_thread_context(cpu, task)
