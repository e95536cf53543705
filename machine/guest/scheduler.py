"""The scheduler's mechanics, shared by every guest profile: run queue, context switches, idle, sleep.

One FIFO run queue serves all CPUs; a task runs for a slice of a few timer
ticks.  A switch walks the kernel's scheduler path from where the previous
task called it, loads CR3 when the next task's address space differs (lazy
TLB: kernel threads and the idle loop keep the last one), and has the profile
record the new current task where its kernel keeps it.  An idle CPU halts in
the idle loop; a task made runnable wakes one with a reschedule IPI.
"""

from __future__ import annotations

from collections import deque

from .contexts import FixedPath
from .hv import Exit
from .state import CpuState, Task
from .x86asm import HLT

EXIT_HLT = Exit("hlt", instr_len=len(HLT))  # the idle loop's exit (an `Exit` is only read)


class Scheduler:
    def __init__(self, guest):
        self.g = guest
        self.runqueue: deque[Task] = deque()
        paths = guest.paths
        self.switch = paths.switch
        self.idle_path = paths.idle
        self.preempted = paths.preempted
        self.reschedule = (paths.reschedule_vector, FixedPath(paths.reschedule_ipi))
        self.halt_address = guest.kernel.idle_halt  # the idle loop's hlt instruction

    def make_runnable(self, task: Task) -> None:
        """Queue a new or woken task; an idle CPU gets a reschedule IPI and picks it up."""
        if task.state not in ("new", "sleeping"):
            return
        task.state = "runnable"
        self.runqueue.append(task)
        for cpu in self.g.cpus:
            if cpu.online and cpu.current is cpu.idle:
                vector, path = self.reschedule
                self.g.interrupts.irq(cpu, vector, path)
                self.schedule(cpu)
                break

    def schedule(self, cpu: CpuState) -> None:
        """Pick the next task for `cpu` and switch to it."""
        g = self.g
        prev = cpu.current
        nxt = self.runqueue.popleft() if self.runqueue else cpu.idle
        if nxt is prev:
            return
        if prev is not cpu.idle and prev.state == "running":
            prev.state = "runnable"
            self.runqueue.append(prev)
        base, outer_rbp = self._caller(cpu, prev)
        g.contexts.walk(cpu, prev, [*base, *self.switch], start=len(base) + 1, outer_rbp=outer_rbp)
        # The switch loads CR3 only when the next task's mm is not the one the CPU is on (an idle
        # CPU or a kernel thread keeps the previous task's mm: lazy TLB).
        new_mm = nxt.mm
        if new_mm is not None and cpu.vcpu.regs["CR3"] != new_mm.cr3:
            g.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
            cpu.vcpu.regs["CR3"] = new_mm.cr3
        g.set_current(cpu, nxt)
        now = g.events.now_ns
        if prev is cpu.idle:
            cpu.busy_since = now
        elif nxt is cpu.idle and cpu.busy_since is not None:
            cpu.busy_ns += now - cpu.busy_since
            cpu.busy_since = None
        cpu.current = nxt
        cpu.generation += 1
        if nxt is cpu.idle:
            self.go_idle(cpu)
            return
        nxt.state = "running"
        cpu.slice_ticks = 3 + g.rng.randrange(4)
        if nxt.program.fpu and cpu.fpu_owner is not nxt:
            # Lazy FPU: CR0.TS is set at switch; the first FPU instruction takes #NM.
            g.hv_exit(cpu, Exit("cr", cr=0, cr_access=0))
        self.resume(cpu, nxt)

    def _caller(self, cpu: CpuState, prev: Task) -> tuple[tuple[str, ...], int]:
        """Where `prev` calls the scheduler from: the kernel path it is in and the frame below it.

        The idle loop calls it from its first function; a task that blocks, from the deepest
        function of its kernel path that calls the scheduler (a wait in a system call, a kernel
        thread's loop); a task preempted on the way back from an interrupt, from the entry code.
        """
        if prev is cpu.idle:
            return self.idle_path[:1], 0
        path = cpu.path if cpu.mode == "kernel" else ()
        calls = self.g.kernel.calls
        scheduler = self.switch[0]
        for i in range(len(path) - 1, -1, -1):
            if scheduler in calls.get(path[i], ()):
                return path[:i + 1], cpu.path_outer_rbp
        return self.preempted, prev.user_rbp if prev.mm is not None else 0

    def resume(self, cpu: CpuState, task: Task) -> None:
        """`task` (just switched to) carries on where it was: in its own code or its kernel thread's loop."""
        if task.mm is None:
            self.g.kernel_thread_context(cpu, task)
        else:
            self.g.contexts.user(cpu, task)
        self.g.activity.schedule_step(cpu)

    def go_idle(self, cpu: CpuState) -> None:
        if cpu.idle.returns:
            self.g.contexts.unwind(cpu, cpu.idle, self.idle_path)
        cpu.mode = "idle"
        self.g.contexts.kernel_path(cpu, cpu.idle, self.idle_path)
        cpu.mode = "idle"
        # The idle function: push rbp; mov rbp,rsp; sti; hlt.  The HLT exit reports the hlt itself;
        # the VCPU then sits halted after it, where an interrupt finds it.
        hlt = self.halt_address
        cpu.vcpu.regs["RIP"] = hlt
        self.g.hv_exit(cpu, EXIT_HLT)
        cpu.vcpu.regs["RIP"] = hlt + len(HLT)

    def sleep(self, cpu: CpuState, task: Task, ns: float) -> None:
        """`task` blocks for `ns` (then wakes); `cpu` switches away at once."""
        task.state = "sleeping"
        self.g.at(self.g.events.now_ns + int(ns) + 1000, lambda: self.wake(task))
        self.schedule(cpu)

    def block(self, cpu: CpuState, task: Task) -> None:
        """`task` waits for something that will `wake` it; `cpu` switches away at once."""
        task.state = "sleeping"
        self.schedule(cpu)

    def wake(self, task: Task) -> None:
        if task.state == "sleeping":
            self.make_runnable(task)
