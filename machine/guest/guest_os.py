"""A guest profile made of the shared mechanics; the subclass supplies its kernel.

`GuestOS` holds the guest's books (CPUs, tasks, the seeded generator) and
its parts, each in its own module: the boot up to the kernel (`boot`), the
register contexts and kernel frames (`contexts`), tasks from spawn to reaping
(`tasks`), the scheduler (`scheduler`), what a running task does
(`activity`), system calls (`syscalls`), exceptions and paging (`faults`),
interrupts and the timer tick (`interrupts`), and the disk, NIC and SMIs
(`devices`).  The parts reach each other through the guest (`g.scheduler`,
`g.contexts`...).

A subclass (a guest OS) sets, before `assemble`: `kernel` (its image: `functions`,
`data`, `calls`, `frameless`, `first_callees`, `return_address`, `function_at`,
`idle_halt`), `paths` (`KernelPaths`), `frames`, `kernel_tables`,
`tick_counter` (the address of the kernel's tick count), `idt_page` and
`boot_loader`; and it
implements the hooks below, where its kernel's own structures come in.
"""

from __future__ import annotations

import random
from abc import abstractmethod
from importlib.resources import files

from vp_runtime import GuestMemoryFault

from ..events import NS_PER_SEC
from ..syscall_names import kernel_syscalls
from .activity import Activity
from .boot import Boot
from .contexts import ContextLayout, Contexts
from .devices import Disk, Nic, Smm
from .faults import Faults
from .hv import Exit
from .interrupts import Interrupts
from .profile import GuestProfile
from .programs import Program, Workload
from .scheduler import Scheduler
from .state import CpuState, Task
from .syscalls import SystemCall, SystemCallABI, SystemCalls
from .tasks import Tasks, UserLayout


class GuestOS(GuestProfile):
    boot_loader: str  # what the guest's boot loader writes on the screen

    def __init__(self, machine, programs: dict[str, Program], workload: Workload, seed: int):
        self.m = machine
        self.probes = machine.probes
        self.events = machine.events
        self.programs = programs  # what its processes run, by name
        self.workload = workload
        self.rng = random.Random(seed)
        self.memory = machine.memory
        self.mmu = machine.mmu
        self.tasks: dict[int, Task] = {}
        self.next_pid = 1
        self.cpus: list[CpuState] = []
        self.timer_period_ns = NS_PER_SEC // machine.config.timer_hz

    def assemble(self, contexts: ContextLayout, user: UserLayout, syscall_numbers: dict[str, int],
                 syscalls: dict[str, SystemCall], abi: SystemCallABI, exit_call: str, spawn_call: str) -> None:
        """Build the shared parts for this kernel (its image and paths are set)."""
        self.contexts = Contexts(self.kernel, self.paths.syscall_entry, contexts, self.probes, self.kwrite_u64)
        self.processes = Tasks(self, user)
        self.scheduler = Scheduler(self)
        self.activity = Activity(self, exit_call, spawn_call)
        self.syscalls = SystemCalls(self, syscall_numbers, syscalls, abi)
        self.faults = Faults(self)
        self.interrupts = Interrupts(self)
        self.disk = Disk(self)
        self.nic = Nic(self, self.workload.network_pps)
        self.smm = Smm(self)
        self.boot = Boot(self)

    # ---- the hooks a guest OS implements -------------------------------------------------------

    @abstractmethod
    def kernel_entry(self) -> None:
        """The boot loader has jumped to the kernel (on VCPU 0): boot it, then start the workload."""

    @abstractmethod
    def _phys(self, virt: int) -> int:
        """The physical address of kernel virtual address `virt`."""

    @abstractmethod
    def set_current(self, cpu: CpuState, task: Task) -> None:
        """Record `task` as `cpu`'s current task where the kernel keeps it (a switch is under way)."""

    @abstractmethod
    def kernel_thread_context(self, cpu: CpuState, task: Task) -> None:
        """Registers for kernel thread `task` running its main loop on `cpu`."""

    @abstractmethod
    def alloc_task_struct(self) -> tuple[int, int]:
        """Memory for a new task: (its task structure, its kernel stack), kernel virtual addresses."""

    @abstractmethod
    def free_task_struct(self, task: Task) -> None:
        """Free what `alloc_task_struct` gave `task`."""

    @abstractmethod
    def write_task(self, task: Task) -> None:
        """Write `task`'s structure (ids, state, parent, address space, name) into guest memory."""

    @abstractmethod
    def new_mm_struct(self, tables) -> tuple[int, int]:
        """The kernel's descriptor of a new address space with page tables `tables`:
        (kernel virtual address, physical address of its page)."""

    @abstractmethod
    def free_mm_struct(self, mm) -> None:
        """The address space `mm` goes (its page tables still in place): what the kernel undoes for its
        descriptor beyond freeing its page, which is one of `mm.blocks`."""

    def image_name(self, task: Task) -> str:
        """The name of `task`'s process as the kernel keeps it (what curprocname returns)."""
        return task.comm

    def new_task_ids(self, program: Program, share: Task | None) -> tuple[int, int]:
        """(thread id, process id) of a new task: a thread of `share`'s process, or a new process
        (Linux: one number, a new process's id is its first thread's)."""
        tid = self.next_pid
        self.next_pid += 1
        return tid, share.tgid if share else tid

    # ---- what the machine asks (GuestProfile) ----------------------------------------------------

    def power_on(self) -> None:
        self.boot.power_on()

    def timer_tick(self, cpu: CpuState) -> None:
        self.interrupts.timer_tick(cpu)

    def materialize_all(self) -> None:
        materialize = self.contexts.materialize
        for cpu in self.cpus:
            if cpu.pending is not None:
                materialize(cpu)

    def is_function_entry(self, address: int) -> bool:
        func = self.kernel.function_at(address)
        return func is not None and func.address == address

    def data_addresses(self) -> set[int]:
        return {d.address for d in self.kernel.data.values()}

    def library_vp(self) -> str:
        return (files("machine.guest") / self.library_name).read_text(encoding="utf-8")

    def system_calls(self) -> dict[int, str]:
        """The kernel's `sys_call_table` as its memory holds it, resolved through its symbols."""
        return kernel_syscalls(self.read_kernel, self.kernel.symbols)

    def read_kernel(self, address: int, size: int) -> bytes | None:
        """`size` bytes at kernel virtual address `address`, None where they are not mapped."""
        try:
            return self.mmu.read(self.kernel_tables.cr3, address, size)
        except GuestMemoryFault:
            return None

    # ---- services the parts share --------------------------------------------------------------

    @property
    def next_io_id(self) -> int:
        """The id the disk gives its next request."""
        return self.disk.next_io_id

    def at(self, time_ns: int, action) -> None:
        """Schedule guest work; a reset of the machine voids it."""
        self.events.at(time_ns, action, owner=self)

    def hv_exit(self, cpu: CpuState, exit_: Exit, inject: int | None = None) -> None:
        """An exit to the monitor (and the resume after it), for the HV_* probes."""
        probes = self.probes
        if probes.track_hv:
            probes.hv_exit(cpu.vcpu, exit_, inject)

    def port_io(self, cpu: CpuState, port: int, size: int, count: int, is_in: bool) -> None:
        """An IN/OUT instruction (`count` > 1: a string instruction with a rep prefix)."""
        self.hv_exit(cpu, Exit("io", port=port, size=size, is_in=is_in, rep=count > 1, string=count > 1,
                               instr_len=2 if count > 1 else 1))
        self.probes.fire_static(cpu.vcpu, "In" if is_in else "Out", port, size, count)

    def kread_u64(self, virt: int) -> int:
        return self.memory.read_u64(self._phys(virt))

    def kwrite_u64(self, virt: int, value: int) -> None:
        self.memory.write_u64(self._phys(virt), value)
