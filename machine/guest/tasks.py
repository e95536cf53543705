"""Processes and threads from birth to reaping, shared by every guest profile.

A process is made (`spawn`) with a fresh image of its program (`exec`): its
own page tables sharing the kernel half, its program's text and the system
library as page-cache pages every process that maps them shares, a small
stack holding the frame-pointer chain of its start-up code, and a few hot
spots its steps run in.  A multi-threaded program's threads share the
address space.  An exiting task is reaped once the CPU has switched away
from it.  The structures the guest's kernel keeps for tasks and address
spaces (a Linux task_struct and mm_struct...) are the profile's to lay out
and write (`alloc_task_struct`, `write_task`, `new_mm_struct`...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..events import NS_PER_SEC
from ..memory import PAGE, PageTables
from .programs import Program
from .state import AddressSpace, CpuState, Task

USER_STACK_PAGES = 2


@dataclass(frozen=True)
class UserLayout:
    """Where a process's mappings go in its address space."""

    text: int  # the program's code
    heap: int  # the first heap page (demand-paged)
    library: int  # the system library's code
    library_name: str
    library_pages: int
    stack_top: int
    # Return addresses on a new process's stack below its main loop, outermost first, as
    # ("text" | "library", offset): the chain a frame-pointer walk of user code finds.
    start_frames: tuple[tuple[str, int], ...]


class Tasks:
    def __init__(self, guest, user: UserLayout):
        self.g = guest
        self.user = user
        self.page_cache: dict[str, int] = {}  # file -> physical address of its (text) pages

    def new_kernel_task(self, comm: str, pid: int | None = None, parent: Task | None = None,
                        at: int | None = None) -> Task:
        """A kernel thread (`at`: its task structure is the kernel's static one at that address)."""
        g = self.g
        addr, stack = g.alloc_task_struct()
        if at is not None:
            g.frames.free(g._phys(addr))
            addr = at
        program = g.programs.get(comm) or Program(comm, kernel_thread=True)
        pid, tgid = (pid, pid) if pid is not None else g.new_task_ids(program, None)
        task = Task(pid, tgid, program, addr, stack, None, parent)
        g.write_task(task)
        if pid:
            g.tasks[pid] = task
        return task

    def spawn(self, program_name: str, parent: Task | None, share_mm: Task | None = None) -> Task:
        """Start `program_name` (a thread of `share_mm`'s process when given); it is made runnable."""
        g = self.g
        program = g.programs[program_name]
        addr, stack = g.alloc_task_struct()
        pid, tgid = g.new_task_ids(program, share_mm)
        task = Task(pid, tgid, program, addr, stack, None, parent)
        g.tasks[pid] = task
        if program.kernel_thread:
            g.write_task(task)
        elif share_mm:
            task.mm = share_mm.mm
            task.mm.users += 1
            task.hot = share_mm.hot
            task.user_rip, task.user_rsp, task.user_rbp = share_mm.user_rip, share_mm.user_rsp, share_mm.user_rbp
            task.lifetime_ns = None
            g.write_task(task)
        else:
            self.exec(task, program)
        if parent is not None:
            parent.children += 1
        for _ in range(program.threads - 1 if not share_mm else 0):
            self.spawn(program_name, parent, share_mm=task)
        g.scheduler.make_runnable(task)
        return task

    def exec(self, task: Task, program: Program) -> None:
        """Give `task` a fresh image of `program` (execve)."""
        g = self.g
        rng = g.rng
        task.program = program
        if task.mm is not None:
            self.release_mm(task.mm)
        task.mm = self._new_address_space(program)
        task.lifetime_ns = int(program.lifetime_s * NS_PER_SEC * rng.uniform(0.5, 1.5)) if program.lifetime_s else None
        task.cpu_ns = 0
        task.next_spawn_ns = g.events.now_ns + int(program.spawn_every_s * NS_PER_SEC * rng.uniform(0.3, 1.0))
        # A few hot spots in its code and in the library, and the frame-pointer chain of its
        # start-up code on its stack (Linux: _start -> __libc_start_main -> main -> a hot function).
        text, library = task.mm.text, task.mm.library
        task.hot = tuple(text + 0x400 + rng.randrange(0, program.text_pages * 64) * 16 for _ in range(5)) + \
            tuple(library + 0x1000 + rng.randrange(0, 0x2000) for _ in range(3))
        bases = {"text": text, "library": library}
        sp = task.mm.stack_top - 0x400
        rbp = 0  # the chain ends in a saved frame pointer of 0
        for mapping, offset in self.user.start_frames:
            sp -= 16
            self._user_write_u64(task, sp, rbp)
            self._user_write_u64(task, sp + 8, bases[mapping] + offset)
            rbp = sp
        task.user_rbp = rbp
        task.user_rsp = rbp - 0x38
        task.user_rip = task.hot[0]
        g.write_task(task)

    def _new_address_space(self, program: Program) -> AddressSpace:
        g = self.g
        user = self.user
        tables = PageTables(g.memory, g.frames, g.mmu, share_kernel_from=g.kernel_tables)
        mm, mm_phys = g.new_mm_struct(tables)
        # Program text and the library are page-cache pages shared by every process that maps them;
        # all of their pages are present, so a user RIP or return address always reads.
        text_phys = self._shared_text(program.comm, program.text_pages)
        tables.map(user.text, text_phys, program.text_pages * PAGE, user=True, writable=False)
        library_phys = self._shared_text(user.library_name, user.library_pages)
        tables.map(user.library, library_phys, user.library_pages * PAGE, user=True, writable=False)
        stack_phys = g.frames.alloc(USER_STACK_PAGES)
        tables.map(user.stack_top - USER_STACK_PAGES * PAGE, stack_phys, USER_STACK_PAGES * PAGE, user=True)
        blocks = [(mm_phys, 1), (stack_phys, USER_STACK_PAGES)]
        return AddressSpace(tables, mm, user.text, user.library, user.stack_top, user.heap, blocks=blocks)

    def _shared_text(self, name: str, pages: int) -> int:
        """Physical address of the page-cache copy of file `name` (read in once, then shared)."""
        phys = self.page_cache.get(name)
        if phys is None:
            phys = self.page_cache[name] = self.g.frames.alloc(pages)
        return phys

    def _user_write_u64(self, task: Task, linear: int, value: int) -> None:
        g = self.g
        g.memory.write_u64(g.mmu.translate(task.mm.cr3, linear), value)

    def release_mm(self, mm: AddressSpace) -> None:
        """One user fewer of `mm`; the last one frees it."""
        mm.users -= 1
        if mm.users == 0:
            g = self.g
            # A CPU still on the dying page tables (an idle CPU borrows the last mm) moves to the kernel's.
            for cpu in g.cpus:
                if cpu.vcpu.regs["CR3"] == mm.cr3:
                    g.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
                    cpu.vcpu.regs["CR3"] = g.kernel_tables.cr3
            g.free_mm_struct(mm)
            for addr, pages in mm.blocks:
                g.frames.free(addr, pages)
            mm.tables.release()

    def exit(self, cpu: CpuState, task: Task) -> None:
        """`task` ends: its parent learns of it, and `cpu` switches away."""
        g = self.g
        task.state = "dead"
        g.tasks.pop(task.pid, None)
        # The task keeps its memory until the switch away from it; free it afterwards.
        g.at(g.events.now_ns, lambda: self._reap(task))
        parent = task.parent
        if parent is not None:
            parent.children -= 1
            if parent.waiting_child and parent.state == "sleeping":
                parent.waiting_child = False
                g.scheduler.make_runnable(parent)
        if cpu.fpu_owner is task:
            cpu.fpu_owner = None
        g.scheduler.schedule(cpu)

    def _reap(self, task: Task) -> None:
        if task.mm is not None:
            self.release_mm(task.mm)
        self.g.free_task_struct(task)
