"""What a running task does, step by step, drawn from its program: shared by every guest profile.

While a task has a CPU it advances in steps (exponentially distributed CPU
time, `Program.step_us` on average).  At each step it runs somewhere in its
hot code and then, as its program's statistics draw: ends at the end of its
lifetime, starts a child, takes a rare exception, takes the lazy-FPU #NM,
touches a new page, or makes a system call.  A step scheduled before the CPU
switched task is void (the CPU's generation moved on).
"""

from __future__ import annotations

from itertools import accumulate

from ..events import NS_PER_SEC, NS_PER_US
from .state import CpuState


class Activity:
    def __init__(self, guest, exit_call: str, spawn_call: str):
        self.g = guest
        self.exit_call = exit_call  # the system call a task ends with (Linux: exit_group)
        self.spawn_call = spawn_call  # the one that starts a child (Linux: clone)
        self._mixes: dict[str, tuple[list[str], list[float]]] = {}  # program -> its calls and cumulative weights

    def schedule_step(self, cpu: CpuState) -> None:
        g = self.g
        task = cpu.current
        gen = cpu.generation
        delay = int(g.rng.expovariate(1.0 / task.program.step_us) * NS_PER_US) + 1000
        g.at(g.events.now_ns + delay, lambda: self.step(cpu, gen, delay))

    def step(self, cpu: CpuState, generation: int, ran_ns: int) -> None:
        if cpu.generation != generation:
            return
        g = self.g
        task = cpu.current
        task.cpu_ns += ran_ns
        program = task.program
        rng = g.rng
        if task.mm is not None:
            task.user_rip = rng.choice(task.hot) + rng.randrange(64)
            g.contexts.user(cpu, task)
        if program.kernel_thread:
            if rng.random() < 0.3:
                g.scheduler.sleep(cpu, task, rng.expovariate(1.0 / program.sleep_us) * NS_PER_US)
                return
            self.schedule_step(cpu)
            return
        syscall = g.syscalls.run
        if task.lifetime_ns is not None and task.cpu_ns >= task.lifetime_ns:
            syscall(cpu, task, self.exit_call)
            return
        if program.spawns and g.events.now_ns >= task.next_spawn_ns and not task.waiting_child:
            task.next_spawn_ns = g.events.now_ns + int(program.spawn_every_s * NS_PER_SEC * rng.uniform(0.5, 1.5))
            syscall(cpu, task, self.spawn_call, child=rng.choice(program.spawns))
            return
        faults = g.faults
        for fault, probability in program.rare_faults.items():
            if rng.random() < probability:
                faults.exception(cpu, task, fault)
                if cpu.current is not task or cpu.generation != generation:
                    return
        if program.fpu and cpu.fpu_owner is not task:
            faults.exception(cpu, task, "Guest_NM")
        roll = rng.random()
        if roll < program.fault_share:
            faults.user_page_fault(cpu, task)
        elif roll < program.fault_share + program.syscall_share and program.syscalls:
            mix = self._mixes.get(program.comm)
            if mix is None:
                mix = self._mixes[program.comm] = (list(program.syscalls), list(accumulate(program.syscalls.values())))
            name = rng.choices(mix[0], cum_weights=mix[1])[0]
            if not syscall(cpu, task, name):
                return
        if cpu.current is task and cpu.generation == generation:
            self.schedule_step(cpu)
