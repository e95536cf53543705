"""The simulated 64-bit Linux guest: boot, processes, scheduling, system calls, faults, devices.

The model keeps the guest's memory truthful (page tables, task structures,
per-CPU data, kernel stacks with frame pointers, `jiffies`), keeps every
VCPU's registers consistent with what it is doing, and raises the events the
static, dynamic and data probes observe, through the machine's `Probes`
dispatcher.  Every decision comes from one seeded random generator and never
depends on which probes are enabled, so a configuration and seed give one
event sequence.

Work that only a firing probe could observe is deferred: a context's kernel
stack frames are computed as register values at once but written into guest
memory only when a probe fires (`materialize`).
"""

from __future__ import annotations

import random
import struct
from collections import deque
from dataclasses import dataclass, field

from vp_runtime import spec

from ..memory import PAGE, FrameAllocator, MMU, PageTables, PhysicalMemory
from ..vcpu import VCPU
from . import layout as L
from .hv import Exit
from .kernel_image import ASM_ENTRIES, CALLS, SYSCALLS, KernelImage
from .programs import KERNEL_THREADS, PROGRAMS, WORKLOADS, Program
from .x86asm import HLT, PROLOGUE, STI

NS_PER_US = 1000
NS_PER_SEC = 1_000_000_000
PT_REGS_SIZE = 168
SYSCALL_NUMBERS = {name: nr for nr, name in SYSCALLS.items()}
# The kernel's handler of each guest fault.
_FAULT_HANDLERS = {
    "Guest_DE": "divide_error", "Guest_DB": "debug", "Guest_NMI": "nmi", "Guest_BP": "int3", "Guest_OF": "overflow",
    "Guest_BR": "bounds", "Guest_UD": "invalid_op", "Guest_NM": "device_not_available", "Guest_DF": "double_fault",
    "Guest_TS": "invalid_TSS", "Guest_NP": "segment_not_present", "Guest_SS": "stack_segment",
    "Guest_GP": "general_protection", "Guest_PF": "page_fault", "Guest_RESERVED_FAULT": "spurious_interrupt_bug",
    "Guest_MF": "coprocessor_error", "Guest_AC": "alignment_check", "Guest_MC": "machine_check",
    "Guest_XF": "simd_coprocessor_error",
}
# The function a kernel thread runs, by the first part of its name.
_KTHREAD_BODIES = {"kthreadd": "kthreadd", "ksoftirqd": "run_ksoftirqd", "jbd2": "kjournald2",
                   "flush-8:0": "bdi_writeback_task"}
# The exceptions the monitor intercepts (its exception bitmap): #DB, #BP and #MC exit.
_EXITING_VECTORS = frozenset({1, 3, 18})
# What a system call does to the calling task.
_SLEEPS = {"nanosleep", "select", "poll", "epoll_wait"}
_DISK_READS = {"read", "pread64"}
_PATHS = {  # syscall -> the kernel path below sys_<name> it walks (deepest last)
    "read": ["vfs_read", "do_sync_read", "generic_file_aio_read"],
    "pread64": ["vfs_read", "do_sync_read", "generic_file_aio_read"],
    "write": ["vfs_write", "do_sync_write", "generic_file_aio_write"],
    "pwrite64": ["vfs_write", "do_sync_write", "generic_file_aio_write"],
    "open": ["do_sys_open", "do_filp_open", "path_walk"],
    "stat": ["vfs_stat", "path_walk"],
    "fsync": ["vfs_fsync"],
    "recvfrom": ["sock_recvmsg", "tcp_recvmsg"],
    "sendto": ["sock_sendmsg", "tcp_sendmsg", "dev_queue_xmit", "e1000_xmit_frame"],
    "futex": ["do_futex", "futex_wait"],
    "nanosleep": ["hrtimer_nanosleep", "do_nanosleep"],
    "select": ["core_sys_select", "do_select", "schedule_hrtimeout_range"],
    "poll": ["do_sys_poll", "schedule_hrtimeout_range"],
    "epoll_wait": ["ep_poll", "schedule_hrtimeout_range"],
    "wait4": ["do_wait"],
    "munmap": ["do_munmap", "unmap_region"],
    "mmap": ["do_mmap_pgoff"],
    "brk": ["do_brk"],
    "clone": ["do_fork", "copy_process"],
    "fork": ["do_fork", "copy_process"],
    "execve": ["do_execve", "search_binary_handler", "load_elf_binary"],
    "exit_group": ["do_group_exit", "do_exit"],
    "getdents": ["vfs_readdir"],
    "ioctl": ["do_vfs_ioctl"],
    "kill": ["kill_pid_info"],
}


@dataclass(eq=False)
class AddressSpace:
    tables: PageTables
    mm: int  # virtual address of the mm_struct
    text: int
    libc: int
    stack_top: int
    heap_next: int = L.USER_HEAP
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
    addr: int  # task_struct (kernel virtual)
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
    percpu: int = 0


class LinuxGuest:
    """The guest OS model.  `machine` provides time, VCPUs, memory and the probe dispatcher."""

    def __init__(self, machine, workload: str, seed: int):
        self.m = machine
        self.probes = machine.probes
        self.events = machine.events
        self.workload = WORKLOADS[workload]
        self.rng = random.Random(seed)
        self.kernel = KernelImage()
        self.memory: PhysicalMemory = machine.memory
        self.mmu: MMU = machine.mmu
        self._build_memory()
        self.runqueue: deque[Task] = deque()
        self.tasks: dict[int, Task] = {}
        self.next_pid = 1
        self.next_io_id = 1
        self.net_waiters: deque[Task] = deque()
        self.jiffies_addr = self.kernel.symbols["jiffies"]
        self.cpus: list[CpuState] = []
        for vcpu in machine.vcpus:
            # CPU 0's idle task is the kernel's static init_task; the others' are allocated.
            idle = self._new_kernel_task("swapper", pid=0,
                                         at=self.kernel.symbols["init_task"] if vcpu.index == 0 else None)
            percpu = self.percpu_base + vcpu.index * L.PERCPU_AREA_SIZE
            self.cpus.append(CpuState(vcpu, idle, idle, percpu=percpu))
        self.next_pid = 1
        self.timer_period_ns = NS_PER_SEC // machine.config.timer_hz
        self._probed_key: tuple = ()
        self._probed: frozenset[str] = frozenset()

    def at(self, time_ns: int, action) -> None:
        """Schedule guest work; a reset of the machine voids it."""
        self.events.at(time_ns, action, owner=self)

    def materialize_all(self) -> None:
        for cpu in self.cpus:
            if cpu.pending is not None:
                self.materialize(cpu)

    # ---- memory image ------------------------------------------------------------

    def _build_memory(self) -> None:
        mem = self.memory
        self.frames = FrameAllocator(mem, L.FRAMES_START, mem.size)
        self.page_cache: dict[str, int] = {}  # file -> physical address of its (text) pages
        self.kernel_tables = PageTables(mem, self.frames, self.mmu)
        self.kernel_tables.map(L.KERNEL_TEXT_VIRT, L.KERNEL_TEXT_PHYS, L.KERNEL_IMAGE_SIZE, large=True)
        direct = (mem.size + (1 << 21) - 1) & ~((1 << 21) - 1)
        self.kernel_tables.map(L.PAGE_OFFSET, 0, direct, large=True)
        self.kernel.set_tsc_khz(self.m.config.tsc_hz // 1000)
        for func in self.kernel.functions.values():
            mem.write(self._kphys(func.address), func.code)
        for data in self.kernel.data.values():
            mem.write(self._kphys(data.address), data.value)
        # setup_arch keeps a copy of the boot command line in memory from the boot allocator
        # (the direct map), and saved_command_line points at it.
        saved = self.frames.alloc()
        mem.write(saved, L.COMMAND_LINE.encode() + b"\0")
        mem.write_u64(self._kphys(self.kernel.symbols["saved_command_line"]), L.direct_map(saved))
        self.percpu_base = L.direct_map(self.frames.alloc(len(self.m.vcpus) * L.PERCPU_AREA_SIZE // PAGE + 1))
        for i in range(len(self.m.vcpus)):
            mem.write_u64(self._phys(self.kernel.symbols["__per_cpu_offset"] + 8 * i),
                          self.percpu_base + i * L.PERCPU_AREA_SIZE)
        # The boot sector the BIOS will load: a jump, then the 0x55AA signature.
        sector = bytearray(512)
        sector[0:3] = b"\xeb\x3c\x90"
        sector[510:512] = b"\x55\xaa"
        mem.write(L.BOOT_SECTOR, bytes(sector))
        mem.map_device(L.APIC_PHYS, self._apic_read)

    @staticmethod
    def _kphys(virt: int) -> int:
        return virt - L.KERNEL_TEXT_VIRT + L.KERNEL_TEXT_PHYS

    def _phys(self, virt: int) -> int:
        """Physical address of a kernel virtual address (image or direct map)."""
        if virt >= L.KERNEL_TEXT_VIRT:
            return self._kphys(virt)
        return virt - L.PAGE_OFFSET

    def _apic_read(self, offset: int, size: int) -> bytes:
        regs = bytearray(PAGE)
        regs[0x20:0x24] = struct.pack("<I", self.m.current.index << 24)  # APIC ID
        regs[0x30:0x34] = struct.pack("<I", L.APIC_VERSION)
        return bytes(regs[offset:offset + size])

    def kwrite_u64(self, virt: int, value: int) -> None:
        self.memory.write_u64(self._phys(virt), value)

    # ---- tasks ---------------------------------------------------------------------

    def _alloc_task_struct(self) -> tuple[int, int]:
        task_phys = self.frames.alloc()
        stack_phys = self.frames.alloc(L.THREAD_SIZE // PAGE)
        return L.direct_map(task_phys), L.direct_map(stack_phys)

    def _write_task(self, task: Task) -> None:
        base = self._phys(task.addr)
        mem = self.memory
        mem.write_u64(base + L.TASK_STATE, 0 if task.state in ("runnable", "running") else 1)
        mem.write_u64(base + L.TASK_STACK, task.stack)
        mem.write(base + L.TASK_PID, struct.pack("<ii", task.pid, task.tgid))
        # A task without a parent (init, kthreadd, the idle tasks) is a child of init_task (pid 0).
        parent = task.parent.addr if task.parent else self.kernel.symbols["init_task"]
        mem.write_u64(base + L.TASK_REAL_PARENT, parent)
        mem.write_u64(base + L.TASK_PARENT, parent)
        mm = task.mm.mm if task.mm else 0
        mem.write_u64(base + L.TASK_MM, mm)
        mem.write_u64(base + L.TASK_ACTIVE_MM, mm)
        mem.write(base + L.TASK_COMM, task.comm.encode()[:15].ljust(L.TASK_COMM_LEN, b"\0"))

    def _new_kernel_task(self, comm: str, pid: int | None = None, parent: Task | None = None,
                         at: int | None = None) -> Task:
        addr, stack = self._alloc_task_struct()
        if at is not None:
            self.frames.free(self._phys(addr))
            addr = at
        if pid is None:
            pid = self.next_pid
            self.next_pid += 1
        program = PROGRAMS.get(comm) or Program(comm, kernel_thread=True)
        task = Task(pid, pid, program, addr, stack, None, parent)
        self._write_task(task)
        if pid:
            self.tasks[pid] = task
        return task

    def _new_address_space(self, program: Program) -> AddressSpace:
        tables = PageTables(self.memory, self.frames, self.mmu, share_kernel_from=self.kernel_tables)
        mm_phys = self.frames.alloc()
        self.memory.write_u64(mm_phys + L.MM_PGD, L.direct_map(tables.cr3))
        # Program text and libc are page-cache pages shared by every process that maps them;
        # all of their pages are present, so a user RIP or return address always reads.
        text_phys = self._shared_text(program.comm, program.text_pages)
        tables.map(L.USER_TEXT, text_phys, program.text_pages * PAGE, user=True, writable=False)
        libc_phys = self._shared_text("libc-2.11.so", L.LIBC_PAGES)
        tables.map(L.USER_MMAP_BASE, libc_phys, L.LIBC_PAGES * PAGE, user=True, writable=False)
        stack_phys = self.frames.alloc(2)
        stack_top = L.USER_STACK_TOP
        tables.map(stack_top - 2 * PAGE, stack_phys, 2 * PAGE, user=True)
        blocks = [(mm_phys, 1), (stack_phys, 2)]
        return AddressSpace(tables, L.direct_map(mm_phys), L.USER_TEXT, L.USER_MMAP_BASE, stack_top, blocks=blocks)

    def _shared_text(self, name: str, pages: int) -> int:
        """Physical address of the page-cache copy of file `name` (read in once, then shared)."""
        phys = self.page_cache.get(name)
        if phys is None:
            phys = self.page_cache[name] = self.frames.alloc(pages)
        return phys

    def _release_mm(self, mm: AddressSpace) -> None:
        mm.users -= 1
        if mm.users == 0:
            # A CPU still on the dying page tables (an idle CPU borrows the last mm) moves to the kernel's.
            for cpu in self.cpus:
                if cpu.vcpu.regs["CR3"] == mm.cr3:
                    self.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
                    cpu.vcpu.regs["CR3"] = self.kernel_tables.cr3
            for addr, pages in mm.blocks:
                self.frames.free(addr, pages)
            mm.tables.release()

    def _exec(self, task: Task, program: Program) -> None:
        """Give `task` a fresh image of `program` (execve)."""
        task.program = program
        if task.mm is not None:
            self._release_mm(task.mm)
        task.mm = self._new_address_space(program)
        task.lifetime_ns = int(program.lifetime_s * NS_PER_SEC * self.rng.uniform(0.5, 1.5)) if program.lifetime_s else None
        task.cpu_ns = 0
        task.next_spawn_ns = self.events.now_ns + int(program.spawn_every_s * NS_PER_SEC * self.rng.uniform(0.3, 1.0))
        # A few hot spots in its code and in libc, and a frame-pointer chain on its stack:
        # _start -> __libc_start_main -> main -> (hot function).
        text, libc = task.mm.text, task.mm.libc
        task.hot = tuple(text + 0x400 + self.rng.randrange(0, program.text_pages * 64) * 16 for _ in range(5)) + \
            tuple(libc + 0x1000 + self.rng.randrange(0, 0x2000) for _ in range(3))
        frames = [0, text + 0x2a9, libc + 0x21c4d, text + 0x5b3]  # saved rbp chain ends in 0
        sp = task.mm.stack_top - 0x400
        rbp = 0
        for ret in frames[1:]:
            sp -= 16
            self._user_write_u64(task, sp, rbp)
            self._user_write_u64(task, sp + 8, ret)
            rbp = sp
        task.user_rbp = rbp
        task.user_rsp = rbp - 0x38
        task.user_rip = task.hot[0]
        self._write_task(task)

    def _user_write_u64(self, task: Task, linear: int, value: int) -> None:
        self.memory.write_u64(self.mmu.translate(task.mm.cr3, linear), value)

    def spawn(self, program_name: str, parent: Task | None, share_mm: Task | None = None) -> Task:
        program = PROGRAMS[program_name]
        addr, stack = self._alloc_task_struct()
        pid = self.next_pid
        self.next_pid += 1
        tgid = share_mm.tgid if share_mm else pid
        task = Task(pid, tgid, program, addr, stack, None, parent)
        self.tasks[pid] = task
        if program.kernel_thread:
            self._write_task(task)
        elif share_mm:
            task.mm = share_mm.mm
            task.mm.users += 1
            task.hot = share_mm.hot
            task.user_rip, task.user_rsp, task.user_rbp = share_mm.user_rip, share_mm.user_rsp, share_mm.user_rbp
            task.lifetime_ns = None
            self._write_task(task)
        else:
            self._exec(task, program)
        if parent is not None:
            parent.children += 1
        for _ in range(program.threads - 1 if not share_mm else 0):
            self.spawn(program_name, parent, share_mm=task)
        self.make_runnable(task)
        return task

    # ---- register contexts -----------------------------------------------------------

    def _user_context(self, cpu: CpuState, task: Task) -> None:
        r = cpu.vcpu.regs
        r["CS"], r["SS"] = L.USER_CS, L.USER_SS
        r["RIP"], r["RSP"], r["RBP"] = task.user_rip, task.user_rsp, task.user_rbp
        r["GSBASE"], r["KERNELGSBASE"], r["FSBASE"] = L.USER_GS_BASE, cpu.percpu, L.USER_FS_BASE
        r["CR3"] = task.mm.cr3
        cpu.mode = "user"
        cpu.pending = None
        cpu.path = ()

    def _kernel_context(self, cpu: CpuState, task: Task, path: list[str], at_entry: bool = False,
                        swapped: bool = True, outer_rbp: int | None = None) -> None:
        """Registers for `task` executing the last function of `path` (called from the ones before).

        The frames are only computed here; `materialize` writes them if a probe looks.
        `outer_rbp` continues the frame chain below the kernel entry (the user's, after a
        system call or a fault from user mode).
        """
        sp = task.stack + L.THREAD_SIZE - PT_REGS_SIZE
        if outer_rbp is None:
            outer_rbp = task.user_rbp if cpu.mode == "user" else 0
        rbp = outer_rbp
        functions = self.kernel.functions
        for i in range(1, len(path)):
            sp -= 8
            if i == len(path) - 1 and at_entry:
                break
            if path[i] not in ASM_ENTRIES:
                sp -= 8
                rbp = sp
        r = cpu.vcpu.regs
        target = functions[path[-1]]
        r["RIP"] = target.address if at_entry else target.address + min(len(target.code) - 2, 8)
        r["RSP"] = sp if at_entry else sp - 0x28
        r["RBP"] = rbp
        r["CS"], r["SS"] = L.KERNEL_CS, L.KERNEL_SS
        if swapped:
            r["GSBASE"], r["KERNELGSBASE"] = cpu.percpu, L.USER_GS_BASE
        else:  # the first instructions of an entry point, before swapgs
            r["GSBASE"], r["KERNELGSBASE"] = L.USER_GS_BASE, cpu.percpu
        cpu.mode = "kernel"
        cpu.path, cpu.path_outer_rbp = tuple(path), outer_rbp
        cpu.pending = (task, cpu.path, at_entry, outer_rbp)

    def materialize(self, cpu: CpuState) -> None:
        """Write the pending kernel frames of `cpu` into its task's kernel stack."""
        pending = cpu.pending
        if pending is None:
            return
        cpu.pending = None
        task, path, at_entry, rbp = pending
        sp = task.stack + L.THREAD_SIZE - PT_REGS_SIZE
        for i in range(1, len(path)):
            sp -= 8
            self.kwrite_u64(sp, self.kernel.return_address(path[i - 1], path[i]))
            if i == len(path) - 1 and at_entry:
                break
            if path[i] not in ASM_ENTRIES:
                sp -= 8
                self.kwrite_u64(sp, rbp)
                rbp = sp

    # ---- probes along a path -------------------------------------------------------

    def walk(self, cpu: CpuState, task: Task, path: list[str], start: int = 1, outer_rbp: int | None = None) -> None:
        """Execute down `path`: a dynamic probe on any function entry fires with that function's context.

        `outer_rbp` is the frame pointer below the path (default: the user's if the CPU is in user
        mode; the same as before if the CPU goes on deeper from the same kernel entry).
        """
        if outer_rbp is None:
            if cpu.mode == "user":
                outer_rbp = task.user_rbp
            elif cpu.mode == "kernel" and cpu.path and cpu.path[0] == path[0]:
                outer_rbp = cpu.path_outer_rbp
            else:
                outer_rbp = 0
        breakpoints = self.probes.breakpoints
        if breakpoints and not self._probed_functions().isdisjoint(path):
            functions = self.kernel.functions
            for depth in range(start, len(path) + 1):
                handler = breakpoints.get(functions[path[depth - 1]].address)
                if handler is not None:
                    # At system_call's first instruction swapgs has not run yet.
                    swapped = depth > 1 or path[0] != "system_call"
                    self._kernel_context(cpu, task, path[:depth], True, swapped, outer_rbp)
                    self.probes.fire_on(cpu.vcpu, handler)
        self._kernel_context(cpu, task, path, outer_rbp=outer_rbp)

    def _probed_functions(self) -> frozenset[str]:
        """Names of the kernel functions with a dynamic probe at their entry (cached per probe set)."""
        breakpoints = self.probes.breakpoints
        key = tuple(breakpoints)
        if key != self._probed_key:
            self._probed_key = key
            self._probed = frozenset(f.name for f in self.kernel.functions.values() if f.address in breakpoints)
        return self._probed

    def hv_exit(self, cpu: CpuState, exit_: Exit, inject: int | None = None) -> None:
        self.probes.hv_exit(cpu.vcpu, exit_, inject)

    # ---- scheduling ------------------------------------------------------------------

    def make_runnable(self, task: Task) -> None:
        """Queue a new or woken task; an idle CPU gets a reschedule IPI and picks it up."""
        if task.state not in ("new", "sleeping"):
            return
        task.state = "runnable"
        self.runqueue.append(task)
        for cpu in self.cpus:
            if cpu.online and cpu.current is cpu.idle:
                self.irq(cpu, L.RESCHEDULE_VECTOR, ["reschedule_interrupt", "smp_reschedule_interrupt"])
                self.schedule(cpu)
                break

    def schedule(self, cpu: CpuState) -> None:
        """Pick the next task for `cpu` and switch to it."""
        prev = cpu.current
        nxt = self.runqueue.popleft() if self.runqueue else cpu.idle
        if nxt is prev:
            return
        if prev is not cpu.idle and prev.state == "running":
            prev.state = "runnable"
            self.runqueue.append(prev)
        base, outer_rbp = self._schedule_caller(cpu, prev)
        self.walk(cpu, prev, [*base, "schedule", "__switch_to"], start=len(base) + 1, outer_rbp=outer_rbp)
        # switch_mm loads CR3 only when the next task's mm is not the one the CPU is on (an idle
        # CPU or a kernel thread keeps the previous task's mm: lazy TLB).
        new_mm = nxt.mm
        if new_mm is not None and cpu.vcpu.regs["CR3"] != new_mm.cr3:
            self.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
            cpu.vcpu.regs["CR3"] = new_mm.cr3
        self.kwrite_u64(cpu.percpu + L.PERCPU_CURRENT_TASK, nxt.addr)
        if self.probes.watch_writes:
            self.probes.guest_write(cpu.vcpu, cpu.percpu + L.PERCPU_CURRENT_TASK, 8)
        cpu.current = nxt
        cpu.generation += 1
        if nxt is cpu.idle:
            self._go_idle(cpu)
            return
        nxt.state = "running"
        cpu.slice_ticks = 3 + self.rng.randrange(4)
        if nxt.program.fpu and cpu.fpu_owner is not nxt:
            # Lazy FPU: CR0.TS is set at switch; the first FPU instruction takes #NM.
            self.hv_exit(cpu, Exit("cr", cr=0, cr_access=0))
        self._resume_task(cpu, nxt)

    @staticmethod
    def _schedule_caller(cpu: CpuState, prev: Task) -> tuple[tuple[str, ...], int]:
        """Where `prev` calls schedule() from: the kernel path it is in and the frame below it.

        The idle loop calls it from cpu_idle; a task that blocks, from the deepest function of
        its kernel path that calls schedule (a wait in a system call, a kernel thread's loop);
        a task preempted on the way back from an interrupt, from the entry code's retint_careful.
        """
        if prev is cpu.idle:
            return ("cpu_idle",), 0
        path = cpu.path if cpu.mode == "kernel" else ()
        for i in range(len(path) - 1, -1, -1):
            if "schedule" in CALLS.get(path[i], ()):
                return path[:i + 1], cpu.path_outer_rbp
        return ("retint_careful",), prev.user_rbp if prev.mm is not None else 0

    def _resume_task(self, cpu: CpuState, task: Task) -> None:
        if task.mm is None:
            self._kthread_context(cpu, task)
        else:
            self._user_context(cpu, task)
        self._schedule_step(cpu)

    def _kthread_context(self, cpu: CpuState, task: Task) -> None:
        """Kernel thread `task` running its main loop."""
        body = _KTHREAD_BODIES.get(task.comm.split("/")[0], "worker_thread")
        self._kernel_context(cpu, task, ["kernel_thread_helper", "kthread", body], outer_rbp=0)

    def _go_idle(self, cpu: CpuState) -> None:
        cpu.mode = "idle"
        self._kernel_context(cpu, cpu.idle, ["cpu_idle", "default_idle"])
        cpu.mode = "idle"
        # default_idle: push rbp; mov rbp,rsp; sti; hlt.  The HLT exit reports the hlt itself;
        # the VCPU then sits halted after it, where an interrupt finds it.
        hlt = self.kernel.functions["default_idle"].address + len(PROLOGUE) + len(STI)
        cpu.vcpu.regs["RIP"] = hlt
        self.hv_exit(cpu, Exit("hlt", instr_len=len(HLT)))
        cpu.vcpu.regs["RIP"] = hlt + len(HLT)

    def _schedule_step(self, cpu: CpuState) -> None:
        task = cpu.current
        gen = cpu.generation
        delay = int(self.rng.expovariate(1.0 / task.program.step_us) * NS_PER_US) + 1000
        self.at(self.events.now_ns + delay, lambda: self._step(cpu, gen, delay))

    def _step(self, cpu: CpuState, generation: int, ran_ns: int) -> None:
        if cpu.generation != generation:
            return
        task = cpu.current
        task.cpu_ns += ran_ns
        program = task.program
        rng = self.rng
        if task.mm is not None:
            task.user_rip = task.hot[rng.randrange(len(task.hot))] + rng.randrange(0, 64)
            self._user_context(cpu, task)
        if program.kernel_thread:
            if rng.random() < 0.3:
                self._sleep(cpu, task, rng.expovariate(1.0 / program.sleep_us) * NS_PER_US)
                return
            self._schedule_step(cpu)
            return
        if task.lifetime_ns is not None and task.cpu_ns >= task.lifetime_ns:
            self.syscall(cpu, task, "exit_group")
            return
        if program.spawns and self.events.now_ns >= task.next_spawn_ns and not task.waiting_child:
            task.next_spawn_ns = self.events.now_ns + int(program.spawn_every_s * NS_PER_SEC * rng.uniform(0.5, 1.5))
            self.syscall(cpu, task, "clone", child=rng.choice(program.spawns))
            return
        for fault, probability in program.rare_faults.items():
            if rng.random() < probability:
                self.exception(cpu, task, fault)
                if cpu.current is not task or cpu.generation != generation:
                    return
        if program.fpu and cpu.fpu_owner is not task:
            self.exception(cpu, task, "Guest_NM")
        roll = rng.random()
        if roll < program.fault_share:
            self.user_page_fault(cpu, task)
        elif roll < program.fault_share + program.syscall_share and program.syscalls:
            names = list(program.syscalls)
            name = rng.choices(names, weights=[program.syscalls[n] for n in names])[0]
            if not self.syscall(cpu, task, name):
                return
        if cpu.current is task and cpu.generation == generation:
            self._schedule_step(cpu)

    def _sleep(self, cpu: CpuState, task: Task, ns: float) -> None:
        task.state = "sleeping"
        self.at(self.events.now_ns + int(ns) + 1000, lambda: self._wake(task))
        self.schedule(cpu)

    def _wake(self, task: Task) -> None:
        if task.state == "sleeping":
            self.make_runnable(task)

    # ---- system calls ---------------------------------------------------------------

    def syscall(self, cpu: CpuState, task: Task, name: str, child: str | None = None) -> bool:
        """Run system call `name` for `task`; False if the task blocked or exited."""
        nr = SYSCALL_NUMBERS[name]
        r = cpu.vcpu.regs
        r["RAX"] = nr
        r["RDI"], r["RSI"], r["RDX"] = 3, task.mm.heap_next if task.mm else 0, 4096
        r["RIP"] = task.mm.libc + 0x9e2a5 if task.mm else r["RIP"]
        path = ["system_call", f"sys_{name}", *_PATHS.get(name, [])]
        self.walk(cpu, task, path)
        if self.probes.watch_reads and name in _SLEEPS:
            self.probes.guest_read(cpu.vcpu, self.jiffies_addr, 8)
        rng = self.rng
        program = task.program
        if name in _DISK_READS and rng.random() < program.disk_miss:
            self.disk_request(cpu, task, path + ["mpage_readpages"], write=False)
            return False
        if name == "fsync":
            self.disk_request(cpu, task, path, write=True)
            return False
        if name in program.waits:
            self._sleep(cpu, task, rng.expovariate(1.0 / program.waits[name]) * NS_PER_US)
            return False
        if name in _SLEEPS:
            self._sleep(cpu, task, rng.expovariate(1.0 / program.sleep_us) * NS_PER_US)
            return False
        if name == "recvfrom" and rng.random() < 0.5:
            task.state = "sleeping"
            self.net_waiters.append(task)
            self.schedule(cpu)
            return False
        if name == "futex" and rng.random() < 0.3:
            self._sleep(cpu, task, rng.expovariate(1.0 / 200) * NS_PER_US)
            return False
        if name == "wait4" and task.children:
            task.state = "sleeping"
            task.waiting_child = True
            self.schedule(cpu)
            return False
        if name == "sched_yield":
            self.schedule(cpu)
            return cpu.current is task
        if name == "clone":
            self.spawn(child or program.comm, task)
            if program.comm in ("bash", "make", "gcc"):
                task.state = "sleeping"
                task.waiting_child = True
                self.schedule(cpu)
                return False
        if name == "munmap" and task.mm is not None:
            self.hv_exit(cpu, Exit("invlpg", address=task.mm.heap_next - PAGE, instr_len=3))
        if name in ("gettimeofday", "clock_gettime"):
            self.hv_exit(cpu, Exit("rdtsc", instr_len=2))
        if name == "exit_group":
            self._exit(cpu, task)
            return False
        r["RAX"] = 0
        self._user_context(cpu, task)
        return True

    def _exit(self, cpu: CpuState, task: Task) -> None:
        task.state = "dead"
        self.tasks.pop(task.pid, None)
        # The task keeps its memory until the switch away from it; free it afterwards.
        self.at(self.events.now_ns, lambda: self._reap(task))
        parent = task.parent
        if parent is not None:
            parent.children -= 1
            if parent.waiting_child and parent.state == "sleeping":
                parent.waiting_child = False
                self.make_runnable(parent)
        if cpu.fpu_owner is task:
            cpu.fpu_owner = None
        self.schedule(cpu)

    def _reap(self, task: Task) -> None:
        if task.mm is not None:
            self._release_mm(task.mm)
        self.frames.free(self._phys(task.addr))
        self.frames.free(self._phys(task.stack), L.THREAD_SIZE // PAGE)

    # ---- faults ---------------------------------------------------------------------------

    def user_page_fault(self, cpu: CpuState, task: Task) -> None:
        """`task` touches a page of its heap for the first time: demand paging."""
        mm = task.mm
        address = mm.heap_next + self.rng.randrange(0, PAGE)
        write = self.rng.random() < 0.7
        error = 0x4 | (0x2 if write else 0)  # user, not present, read/write
        cpu.vcpu.regs["CR2"] = address
        self.probes.fire_static(cpu.vcpu, "Guest_PF", error)
        self.walk(cpu, task, ["page_fault", "do_page_fault", "handle_mm_fault", "handle_pte_fault", "do_anonymous_page"])
        frame = self.frames.alloc()
        mm.blocks.append((frame, 1))
        mm.tables.map(mm.heap_next, frame, PAGE, user=True)
        mm.heap_next += PAGE
        # The monitor backs the new guest page on the first touch: an EPT violation / #NPF.
        self.hv_exit(cpu, Exit("npf", address=frame | (address & (PAGE - 1)), write=write, linear=address))
        self._user_context(cpu, task)

    def exception(self, cpu: CpuState, task: Task, probe: str) -> None:
        """Deliver exception `probe` (a Guest_<X> name) to the task running on `cpu`.

        ARG0 is the error code of an exception that pushes one (0 here), else 0."""
        fault = spec.STATIC_PROBES[probe].fault
        error = 0 if fault.error_code else None
        handler = _FAULT_HANDLERS[probe]
        if probe == "Guest_NMI":
            self.hv_exit(cpu, Exit("nmi"))
        elif fault.vector in _EXITING_VECTORS:
            self.hv_exit(cpu, Exit("exception", vector=fault.vector, error_code=error))
        self.probes.fire_static(cpu.vcpu, probe, error or 0)
        self.walk(cpu, task, [handler, *self.kernel_callees(handler)])
        if probe == "Guest_NM":
            cpu.fpu_owner = task
            self.hv_exit(cpu, Exit("cr", cr=0, cr_access=2, instr_len=2))  # clts
        if task.mm is not None and task is cpu.current:
            self._user_context(cpu, task)

    @staticmethod
    def kernel_callees(name: str) -> list[str]:
        """The chain of first callees below `name`: the path a handler takes."""
        path = []
        while CALLS.get(name):
            name = CALLS[name][0]
            path.append(name)
        return path

    # ---- interrupts ----------------------------------------------------------------------

    def irq(self, cpu: CpuState, vector: int, path: list[str]) -> None:
        """Deliver external interrupt `vector` to `cpu` and run its handler `path`."""
        task = cpu.current
        if self.rng.random() < 0.02:
            self.hv_exit(cpu, Exit("window"))
        self.hv_exit(cpu, Exit("interrupt", vector=vector), inject=vector)
        self.probes.fire_static(cpu.vcpu, "Guest_IRQ", vector)
        self.walk(cpu, task, path)
        self.hv_exit(cpu, Exit("apic", address=0xB0, write=True, instr_len=6))

    def timer_tick(self, cpu: CpuState) -> None:
        if not cpu.online:
            return
        was_idle = cpu.current is cpu.idle
        path = ["apic_timer_interrupt", "smp_apic_timer_interrupt", "hrtimer_interrupt", "tick_sched_timer"]
        self.irq(cpu, L.TIMER_VECTOR, path + (["tick_do_update_jiffies64", "do_timer"] if cpu.vcpu.index == 0 else []))
        if cpu.vcpu.index == 0:
            jiffies = self.memory.read_u64(self._phys(self.jiffies_addr))
            self.kwrite_u64(self.jiffies_addr, jiffies + 1)
            if self.probes.watch_writes:
                self.probes.guest_write(cpu.vcpu, self.jiffies_addr, 8)
        self.walk(cpu, cpu.current, path + ["update_process_times", "scheduler_tick"], start=len(path) + 1)
        if self.probes.watch_reads:
            self.probes.guest_read(cpu.vcpu, self.jiffies_addr, 8)
        if was_idle:
            if self.runqueue:
                self.schedule(cpu)
            else:
                self._go_idle(cpu)
            return
        cpu.slice_ticks -= 1
        if cpu.slice_ticks <= 0 and self.runqueue:
            self.schedule(cpu)
        else:
            self._resume_after_interrupt(cpu)

    def _resume_after_interrupt(self, cpu: CpuState) -> None:
        task = cpu.current
        if task is cpu.idle:
            self._go_idle(cpu)
        elif task.mm is not None:
            self._user_context(cpu, task)
        elif cpu.online:
            self._kthread_context(cpu, task)

    def device_irq(self, cpu: CpuState, vector: int, driver: str) -> None:
        self.irq(cpu, vector, ["common_interrupt", "do_IRQ", "handle_irq", "handle_fasteoi_irq",
                               "handle_IRQ_event", driver])

    # ---- disk --------------------------------------------------------------------------------

    def disk_request(self, cpu: CpuState, task: Task, path: list[str], write: bool) -> None:
        """`task` needs the disk: program the ATA controller, block until the interrupt.

        `path` is the kernel path so far; the block layer continues it.
        """
        rng = self.rng
        sectors = rng.choice((8, 8, 8, 16, 32, 64, 128, 256))
        sector = rng.randrange(2048, 40_000_000) & ~7
        self.walk(cpu, task, path + ["submit_bio", "generic_make_request", "__make_request", "ata_qc_issue"],
                  start=len(path) + 1)
        for port, value in ((0x1F2, sectors & 0xFF), (0x1F3, sector & 0xFF), (0x1F4, (sector >> 8) & 0xFF),
                            (0x1F5, (sector >> 16) & 0xFF), (0x1F6, 0xE0 | ((sector >> 24) & 0xF)),
                            (0x1F7, 0xCA if write else 0xC8)):
            self.port_io(cpu, port, 1, 1, is_in=False)
        self.port_io(cpu, 0xC000, 1, 1, is_in=False)  # bus master: start DMA
        io_id = self.next_io_id
        self.next_io_id += 1
        sg = max(1, sectors // 8 // rng.choice((1, 2, 4)))
        args = (0, 0, 0, 0 if write else 1, io_id, sector, sectors, sg)
        # The disk is emulated in the VMX process: its probes run in VMX context (VCPU 0's view).
        self.probes.fire_static(self.cpus[0].vcpu, "Disk_IOStart", *args)
        latency_us = 30 + sectors * 0.4 + rng.lognormvariate(4.3, 0.9) + (400 if write else 0) * rng.random()
        task.state = "sleeping"
        self.at(self.events.now_ns + int(latency_us * NS_PER_US), lambda: self._disk_done(task, args))
        self.schedule(cpu)

    def _disk_done(self, task: Task, args: tuple) -> None:
        cpu = self.cpus[0]
        self.probes.fire_static(cpu.vcpu, "Disk_IOFinish", *args)
        self.device_irq(cpu, L.DISK_VECTOR, "ata_interrupt")
        self.port_io(cpu, 0xC002, 1, 1, is_in=True)
        self.port_io(cpu, 0x1F7, 1, 1, is_in=True)
        self.walk(cpu, cpu.current, ["irq_exit", "__do_softirq", "blk_done_softirq", "end_that_request_last",
                                     "wake_up_process"])
        self._resume_after_interrupt(cpu)
        self._wake(task)

    def port_io(self, cpu: CpuState, port: int, size: int, count: int, is_in: bool) -> None:
        self.hv_exit(cpu, Exit("io", port=port, size=size, is_in=is_in, rep=count > 1, string=count > 1,
                               instr_len=2 if count > 1 else 1))
        self.probes.fire_static(cpu.vcpu, "In" if is_in else "Out", port, size, count)

    # ---- network -------------------------------------------------------------------------

    def packet(self) -> None:
        cpu = self.cpus[-1] if self.cpus[-1].online else self.cpus[0]
        self.device_irq(cpu, L.NET_VECTOR, "e1000_intr")
        self.walk(cpu, cpu.current, ["irq_exit", "__do_softirq", "net_rx_action", "e1000_clean",
                                     "netif_receive_skb", "ip_rcv", "tcp_v4_rcv"])
        self._resume_after_interrupt(cpu)
        if self.net_waiters:
            self._wake(self.net_waiters.popleft())
        self._schedule_packet()

    def _schedule_packet(self) -> None:
        delay = self.rng.expovariate(self.workload.network_pps)
        self.at(self.events.now_ns + int(delay * NS_PER_SEC) + 1000, self.packet)

    # ---- SMM, NMI watchdog, triple fault ------------------------------------------------------

    def smi(self) -> None:
        vcpu = self.cpus[0].vcpu
        self.probes.fire_static(vcpu, "SMM_SMIPre")
        self.probes.fire_static(vcpu, "SMM_SMIPost")
        self.at(self.events.now_ns + 80 * NS_PER_US, self._rsm)

    def _rsm(self) -> None:
        vcpu = self.cpus[0].vcpu
        self.probes.fire_static(vcpu, "SMM_RSMPre")
        self.probes.fire_static(vcpu, "SMM_RSMPost")
        self.at(self.events.now_ns + int(self.rng.uniform(3.0, 5.0) * NS_PER_SEC), self.smi)

    def nmi_watchdog(self, cpu: CpuState) -> None:
        if cpu.online:
            self.exception(cpu, cpu.current, "Guest_NMI")
            self._resume_after_interrupt(cpu)
        self.at(self.events.now_ns + 10 * NS_PER_SEC, lambda: self.nmi_watchdog(cpu))

    def triple_fault(self) -> None:
        cpu = self.cpus[0]
        vcpu = cpu.vcpu
        vcpu.regs["CR2"] = 0xFFFFFFFFFF5FD000  # the IDT's page, just unmapped by a buggy driver
        self.probes.fire_static(vcpu, "Guest_PF", 0x2)
        self.probes.fire_static(vcpu, "Guest_DF", 0)
        self.hv_exit(cpu, Exit("triple_fault"))
        self.probes.fire_static(vcpu, "Guest_TripleFault")
        self.m.reset()

    # ---- boot ---------------------------------------------------------------------------

    def power_on(self) -> None:
        """Start the boot sequence at the current time: BIOS, boot sector, kernel, init."""
        for cpu in self.cpus:
            # The architectural state after RESET/INIT (SDM vol. 3, table 9-1): real mode at F000:FFF0,
            # every general register, base and MSR cleared; the APs wait there for their SIPI.
            r = cpu.vcpu.regs
            for name in r:
                if name != "APIC_BASEPA":
                    r[name] = 0
            r.update(RIP=L.BIOS_ENTRY, CS=0xF000, CR0=0x60000010, RFLAGS=0x2, DR6=0xFFFF0FF0, DR7=0x400)
        self.cpus[0].vcpu.regs["RSP"] = 0x7000  # the BIOS's stack
        now = self.events.now_ns
        at = self.events.at
        at(now + 1_000_000, self._bios_post)
        at(now + 250_000_000, self._boot_sector)
        at(now + 500_000_000, self._kernel_entry)

    def _bios_post(self) -> None:
        cpu = self.cpus[0]
        for _ in range(2):
            self.hv_exit(cpu, Exit("cpuid", instr_len=2))
        for port, is_in in ((0x80, False), (0x70, False), (0x71, True), (0x20, False), (0x21, False),
                            (0xA0, False), (0xA1, False), (0x43, False), (0x40, False), (0x40, False)):
            self.port_io(cpu, port, 1, 1, is_in)
        self.vga_write(cpu, L.VGA_GRAPHICS, b"\x00\x3f" * 8)  # the BIOS logo
        self.vga_write(cpu, L.VGA_TEXT, b"B\x07I\x07O\x07S\x07")  # text mode: character, attribute

    def vga_write(self, cpu: CpuState, address: int, data: bytes) -> None:
        self.memory.write(address, data)
        if self.probes.watch_writes:
            self.probes.guest_write(cpu.vcpu, address, len(data))

    def _boot_sector(self) -> None:
        cpu = self.cpus[0]
        regs = cpu.vcpu.regs
        regs.update(RIP=L.BOOT_SECTOR, CS=0, RDX=0x80, RSP=0x7C00)
        self.probes.execute(cpu.vcpu, L.BOOT_SECTOR)
        self.vga_write(cpu, L.VGA_GRAPHICS, b"\x01" * 16)  # the boot loader's splash
        self.vga_write(cpu, L.VGA_TEXT, b"G\x07R\x07U\x07B\x07")

    def _enter_long_mode(self, cpu: CpuState) -> None:
        # As the boot code does it: PAE on, CR3 loaded, EFER.LME set, then paging on (which
        # activates long mode, EFER.LMA), then the 64-bit code segment and the per-CPU GS base.
        r = cpu.vcpu.regs
        r["CR4"] = 0x6F0
        self.probes.fire_static(cpu.vcpu, "Guest_CR3Write")
        r["CR3"] = self.kernel_tables.cr3
        r["EFER"] = 0x901  # SCE | LME | NXE
        self.hv_exit(cpu, Exit("cr", cr=0, cr_access=0))
        r.update(CR0=0x80050033, EFER=0xD01, CS=L.KERNEL_CS, SS=L.KERNEL_SS, DS=0, ES=0,
                 GSBASE=cpu.percpu, KERNELGSBASE=0, RFLAGS=0x46)

    def _kernel_entry(self) -> None:
        cpu = self.cpus[0]
        self._enter_long_mode(cpu)
        self.kwrite_u64(cpu.percpu + L.PERCPU_CURRENT_TASK, cpu.idle.addr)
        self.walk(cpu, cpu.idle, ["startup_64", "x86_64_start_kernel", "start_kernel"])
        for step in ("setup_arch", "trap_init", "init_IRQ", "time_init", "calibrate_delay"):
            self.walk(cpu, cpu.idle, ["startup_64", "x86_64_start_kernel", "start_kernel", step], start=4)
        self.printk(cpu, L.BANNER)
        cpu.online = True
        self._go_idle(cpu)
        self.m.start_timer(0)
        at = self.events.at
        now = self.events.now_ns
        for i, other in enumerate(self.cpus[1:], 1):
            at(now + 150_000_000 + i * 10_000_000, lambda c=other: self._start_secondary(c))
        at(now + 300_000_000, self._start_init)

    def printk(self, cpu: CpuState, text: str) -> None:
        self.walk(cpu, cpu.current, ["printk", "vprintk", "release_console_sem", "call_console_drivers",
                                     "serial8250_console_write"])
        self.port_io(cpu, 0x3F8, 1, len(text), is_in=False)

    def _start_secondary(self, cpu: CpuState) -> None:
        self._enter_long_mode(cpu)
        self.kwrite_u64(cpu.percpu + L.PERCPU_CURRENT_TASK, cpu.idle.addr)
        self.walk(cpu, cpu.idle, ["start_secondary", "cpu_init"])
        cpu.online = True
        self._go_idle(cpu)
        self.m.start_timer(cpu.vcpu.index)

    def _start_init(self) -> None:
        cpu = self.cpus[0]
        self.walk(cpu, cpu.idle, ["rest_init", "kernel_thread"])
        init = self.spawn("init", None)
        for name in KERNEL_THREADS:
            if name.endswith("/1") or name.endswith("/1:1"):
                if len(self.cpus) < 2:
                    continue
            self.spawn(name, self.tasks.get(2))
        for i, name in enumerate(self.workload.daemons):
            self.at(self.events.now_ns + (200 + 150 * i) * 1_000_000,
                           lambda n=name: self.spawn(n, init))
        self._schedule_packet()
        self.at(self.events.now_ns + 2 * NS_PER_SEC, self.smi)
        for cpu in self.cpus:
            self.at(self.events.now_ns + (5 + cpu.vcpu.index) * NS_PER_SEC, lambda c=cpu: self.nmi_watchdog(c))
        if self.workload.triple_fault_at_s is not None:
            # Counted from the kernel's start, so that every boot of the VM meets the bug again.
            self.at(self.events.now_ns + int(self.workload.triple_fault_at_s * NS_PER_SEC), self.triple_fault)
