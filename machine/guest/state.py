"""What a guest model tracks of its operating system: tasks, address spaces, and each CPU.

These are the model's own books, shared by every guest profile; what the
guest's memory holds (a Linux task_struct, a Windows EPROCESS) is written from
them by the profile.  A `Task` is one schedulable thread; threads of one
process share an `AddressSpace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..memory import PageTables
from ..vcpu import VCPU
from .programs import Program


@dataclass(eq=False)
class AddressSpace:
    tables: PageTables
    mm: int  # virtual address of the OS's descriptor of the address space (Linux: the mm_struct)
    text: int
    library: int  # the system library every process maps (Linux: libc)
    stack_top: int
    heap_next: int
    users: int = 1
    blocks: list = field(default_factory=list)  # (physical address, pages) of its memory

    @property
    def cr3(self) -> int:
        return self.tables.cr3


@dataclass(eq=False)
class Task:
    pid: int
    tgid: int
    program: Program
    addr: int  # the OS's task structure (kernel virtual)
    stack: int  # kernel stack base (kernel virtual)
    mm: AddressSpace | None
    parent: "Task | None" = None
    state: str = "new"  # new, runnable, running, sleeping, dead
    cpu_ns: int = 0
    user_rip: int = 0
    user_rsp: int = 0
    user_rbp: int = 0
    children: int = 0
    waiting_child: bool = False
    next_spawn_ns: int = 0
    lifetime_ns: int | None = None
    hot: tuple[int, ...] = ()
    user_gs_base: int = 0  # GS base while it runs user code (Linux leaves it 0; Windows: the thread's TEB)
    # Functions with a return probe the task is in: (the path down to each, the value it returns),
    # outermost first.  They return when the task leaves them (`Contexts.unwind`).
    returns: list = field(default_factory=list)

    @property
    def comm(self) -> str:
        return self.program.comm


@dataclass(eq=False)
class CpuState:
    vcpu: VCPU
    idle: Task
    current: Task
    online: bool = False
    mode: str = "halted"  # halted (before SIPI), user, kernel, idle
    slice_ticks: int = 0
    generation: int = 0  # invalidates a scheduled step when the CPU switches task
    fpu_owner: Task | None = None
    pending: tuple | None = None  # frames to write into guest memory if a probe looks
    path: tuple[str, ...] = ()  # the kernel call path the CPU is in (empty in user mode)
    path_outer_rbp: int = 0  # the frame pointer below that path (the user's, if entered from user mode)
    percpu: int = 0  # the kernel GS base of this CPU (Linux: its per-CPU area)
    busy_ns: int = 0  # time spent running tasks (not the idle loop's halt), up to `busy_since`
    busy_since: int | None = None  # when the CPU last left the idle loop, while it runs a task

    def unhalted_ns(self, now_ns: int) -> int:
        """How long the CPU has run something other than its idle loop's halt."""
        return self.busy_ns + (now_ns - self.busy_since if self.busy_since is not None else 0)
