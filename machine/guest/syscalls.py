"""System calls, table-driven, shared by every guest profile.

A profile describes each of its system calls in a `SystemCall` row: the
kernel path its handler goes down, whether it does disk I/O, whether it
waits with a timeout (reading the kernel's tick counter), and its effect on
the caller.  A call then runs the same way on every guest: the registers as
the user's system-call stub leaves them, the walk from the kernel's entry
point through the handler, and then, in this order, a disk request (the
caller blocks), a wait the program is known for (`Program.waits`), the
call's own effect, or a return to user mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..events import NS_PER_US
from ..memory import PAGE
from .hv import Exit
from .state import CpuState, Task

# An effect returns None to return to user mode as any call does, or whether the caller is still
# running (False: it blocked or exited).
Effect = Callable[["object", CpuState, Task, "str | None"], "bool | None"]

INVLPG_LENGTH, RDTSC_LENGTH = 3, 2
EXIT_RDTSC = Exit("rdtsc", instr_len=RDTSC_LENGTH)  # every clock read's exit, made once (an `Exit` is only read)
ARG_COUNT = 4096  # the third argument of every call the workload makes (the second: the top of its heap)


@dataclass(frozen=True)
class SystemCallABI:
    """How the guest's user code makes a system call (the number goes in RAX on every guest)."""

    stub: int  # the system-call instruction's offset in the system library
    registers: tuple[str, str, str]  # the registers of the first three arguments
    handle: int  # the first argument of every call the workload makes (a file descriptor, a handle)


# What a call returns to its caller (in RAX): the model's value for it, from the guest's
# system-call ABI and the calling task.
Result = Callable[[SystemCallABI, Task], int]


@dataclass(frozen=True)
class SystemCall:
    path: tuple[str, ...] = ()  # the kernel functions below the call's handler, outermost first
    disk: str | None = None  # "read": may miss the page cache and read the disk; "write": always writes
    timeout: bool = False  # waits with a timeout, so reads the tick counter
    effect: Effect | None = None
    result: Result | None = None  # None: the call returns 0


def transferred(abi: SystemCallABI, task: Task) -> int:
    """read, write and the like move the whole buffer the workload asks for."""
    return ARG_COUNT


def new_descriptor(abi: SystemCallABI, task: Task) -> int:
    """open, socket, accept: the descriptor (handle) the workload then uses."""
    return abi.handle


PLAIN = SystemCall()


# ---- effects -------------------------------------------------------------------------------------

def sleep_as_programmed(g, cpu: CpuState, task: Task, child: str | None) -> bool:
    """A timed wait (nanosleep, select...): for the program's usual sleep."""
    g.scheduler.sleep(cpu, task, g.rng.expovariate(1.0 / task.program.sleep_us) * NS_PER_US)
    return False


def receive(g, cpu: CpuState, task: Task, child: str | None) -> bool | None:
    """Half of the receives find no data and wait for the next packet."""
    if g.rng.random() < 0.5:
        g.nic.wait(cpu, task)
        return False
    return None


def contend(g, cpu: CpuState, task: Task, child: str | None) -> bool | None:
    """A futex: contended three times in ten, for about 200 us."""
    if g.rng.random() < 0.3:
        g.scheduler.sleep(cpu, task, g.rng.expovariate(1.0 / 200) * NS_PER_US)
        return False
    return None


def _await_children(g, cpu: CpuState, task: Task) -> bool:
    """The caller blocks until its last child exits (`Tasks.exit` wakes it)."""
    task.waiting_child = True
    g.scheduler.block(cpu, task)
    return False


def wait_child(g, cpu: CpuState, task: Task, child: str | None) -> bool | None:
    """wait4: blocks while the caller has children."""
    return _await_children(g, cpu, task) if task.children else None


def yield_cpu(g, cpu: CpuState, task: Task, child: str | None) -> bool:
    g.scheduler.schedule(cpu)
    return cpu.current is task


def start_child(g, cpu: CpuState, task: Task, child: str | None) -> bool | None:
    """clone/fork: the child runs `child` (or the caller's program); a program that starts others
    (`Program.spawns`) waits for the child."""
    program = task.program
    g.processes.spawn(child or program.comm, task)
    return _await_children(g, cpu, task) if program.spawns else None


def send(g, cpu: CpuState, task: Task, child: str | None) -> None:
    """sendto: the NIC sends the buffer."""
    g.nic.transmit(ARG_COUNT)


def unmap(g, cpu: CpuState, task: Task, child: str | None) -> None:
    """munmap flushes the page's TLB entry (an INVLPG exit)."""
    if task.mm is not None:
        g.hv_exit(cpu, Exit("invlpg", address=task.mm.heap_next - PAGE, instr_len=INVLPG_LENGTH))


def read_clock(g, cpu: CpuState, task: Task, child: str | None) -> None:
    """gettimeofday, clock_gettime: an RDTSC exit."""
    g.hv_exit(cpu, EXIT_RDTSC)


def exit_task(g, cpu: CpuState, task: Task, child: str | None) -> bool:
    g.processes.exit(cpu, task)
    return False


# ---- the mechanism ---------------------------------------------------------------------------------

class SystemCalls:
    """Runs the guest's system calls from its table."""

    def __init__(self, guest, numbers: dict[str, int], table: dict[str, SystemCall], abi: SystemCallABI):
        self.g = guest
        paths = guest.paths
        self.read_miss = paths.disk_read_miss
        self.abi = abi
        # name -> (number, kernel path from the entry through the handler, row)
        self.calls = {name: (nr, (paths.syscall_entry, paths.syscall_handler.format(name),
                                  *table.get(name, PLAIN).path), table.get(name, PLAIN))
                      for name, nr in numbers.items()}

    def run(self, cpu: CpuState, task: Task, name: str, child: str | None = None) -> bool:
        """Run system call `name` for `task`; False if the task blocked or exited."""
        g = self.g
        nr, path, call = self.calls[name]
        r = cpu.vcpu.regs
        mm = task.mm
        r["RAX"] = nr
        abi = self.abi
        first, second, third = abi.registers
        r[first], r[second], r[third] = abi.handle, mm.heap_next if mm else 0, ARG_COUNT
        r["RIP"] = mm.library + abi.stub if mm else r["RIP"]
        value = call.result(abi, task) if call.result is not None else 0
        g.contexts.walk(cpu, task, path, result=value)
        probes = g.probes
        if call.timeout and probes.watch_reads:
            probes.guest_read(cpu.vcpu, g.tick_counter, 8)
        program = task.program
        if call.disk == "read" and g.rng.random() < program.disk_miss:
            g.disk.request(cpu, task, [*path, self.read_miss], write=False)
            return False
        if call.disk == "write":
            g.disk.request(cpu, task, list(path), write=True)
            return False
        if name in program.waits:
            g.scheduler.sleep(cpu, task, g.rng.expovariate(1.0 / program.waits[name]) * NS_PER_US)
            return False
        if call.effect is not None:
            still_running = call.effect(g, cpu, task, child)
            if still_running is not None:
                return still_running
        r["RAX"] = value
        g.contexts.user(cpu, task)
        return True
