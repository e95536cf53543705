"""The simulated 64-bit Linux guest: its kernel, its memory image, its structures and its boot.

The shared mechanics (`guest_os.GuestOS`) run the workload; this profile
supplies what is Linux's: the kernel image (`kernel_image`) and where it
sits in memory (`layout`), the kernel paths each activity goes down
(`LINUX_PATHS`), the system calls (`linux_syscalls`), the task_struct and
mm_struct every task and address space has, the per-CPU current task, the
kernel's boot (start_kernel, SMP bring-up, init and the daemons) and its NMI
watchdog, and the helper library (`linux64.vp`).

The model keeps the guest's memory truthful (page tables, task structures,
per-CPU data, kernel stacks with frame pointers, `jiffies`), keeps every
VCPU's registers consistent with what it is doing, and raises the events the
static, dynamic and data probes observe, through the machine's `Probes`
dispatcher.  Every decision comes from one seeded random generator and never
depends on which probes are enabled, so a configuration and seed give one
event sequence.
"""

from __future__ import annotations

import struct

from vp_runtime import spec

from .. import descriptors as D
from .. import x86
from ..events import NS_PER_SEC
from ..memory import PAGE, FrameAllocator, PageTables
from . import layout as L
from .boot import BOOT_SECTOR, boot_sector_image
from .contexts import ContextLayout
from .devices import apic_page
from .guest_os import GuestOS
from .kernel_image import SYSCALLS, LinuxKernelImage
from .linux_syscalls import LINUX_SYSCALLS
from .profile import KernelPaths
from .programs import KERNEL_THREADS, PROGRAMS, WORKLOADS
from .state import CpuState, Task
from .syscalls import SystemCallABI
from .tasks import UserLayout

SERIAL_PORT = 0x3F8  # COM1: the kernel's console
# libc's `syscall` instruction; the arguments go in RDI, RSI, RDX (the workload reads and writes fd 3).
SYSCALL_ABI = SystemCallABI(stub=0x9E2A5, registers=("RDI", "RSI", "RDX"), handle=3)

# The kernel's handler of each guest fault.
_FAULT_HANDLERS = {
    "Guest_DE": "divide_error", "Guest_DB": "debug", "Guest_NMI": "nmi", "Guest_BP": "int3", "Guest_OF": "overflow",
    "Guest_BR": "bounds", "Guest_UD": "invalid_op", "Guest_NM": "device_not_available", "Guest_DF": "double_fault",
    "Guest_TS": "invalid_TSS", "Guest_NP": "segment_not_present", "Guest_SS": "stack_segment",
    "Guest_GP": "general_protection", "Guest_PF": "page_fault", "Guest_RESERVED_FAULT": "spurious_interrupt_bug",
    "Guest_MF": "coprocessor_error", "Guest_AC": "alignment_check", "Guest_MC": "machine_check",
    "Guest_XF": "simd_coprocessor_error",
}
LINUX_PATHS = KernelPaths(
    syscall_entry="system_call",
    syscall_handler="sys_{}",
    idle=("cpu_idle", "default_idle"),
    switch=("schedule", "__switch_to"),
    preempted=("retint_careful",),
    reschedule_vector=L.RESCHEDULE_VECTOR,
    reschedule_ipi=("reschedule_interrupt", "smp_reschedule_interrupt"),
    device_irq=("common_interrupt", "do_IRQ", "handle_irq", "handle_fasteoi_irq", "handle_IRQ_event"),
    timer_vector=L.TIMER_VECTOR,
    timer=("apic_timer_interrupt", "smp_apic_timer_interrupt", "hrtimer_interrupt", "tick_sched_timer"),
    timekeeping=("tick_do_update_jiffies64", "do_timer"),
    tick_accounting=("update_process_times", "scheduler_tick"),
    page_fault=("page_fault", "do_page_fault", "handle_mm_fault", "handle_pte_fault", "do_anonymous_page"),
    exception_handlers=_FAULT_HANDLERS,
    disk_vector=L.DISK_VECTOR,
    disk_driver="ata_interrupt",
    disk_submit=("submit_bio", "generic_make_request", "__make_request", "ata_qc_issue"),
    disk_read_miss="mpage_readpages",
    disk_wait=(),  # the read path itself calls the scheduler
    disk_done=("irq_exit", "__do_softirq", "blk_done_softirq", "end_that_request_last", "wake_up_process"),
    net_vector=L.NET_VECTOR,
    net_driver="e1000_intr",
    net_receive=("irq_exit", "__do_softirq", "net_rx_action", "e1000_clean", "netif_receive_skb", "ip_rcv",
                 "tcp_v4_rcv"),
)
CONTEXTS = ContextLayout(kernel_cs=L.KERNEL_CS, kernel_ss=L.KERNEL_SS, user_cs=L.USER_CS, user_ss=L.USER_SS,
                         user_fs_base=L.USER_FS_BASE,
                         thread_size=L.THREAD_SIZE, regs_frame_size=L.PT_REGS_SIZE)
USER = UserLayout(text=L.USER_TEXT, heap=L.USER_HEAP, library=L.USER_MMAP_BASE, library_name="libc-2.11.so",
                  library_pages=L.LIBC_PAGES, stack_top=L.USER_STACK_TOP,
                  # _start -> __libc_start_main -> main
                  start_frames=(("text", 0x2a9), ("library", 0x21c4d), ("text", 0x5b3)))
# The function a kernel thread runs, by the first part of its name.
_KTHREAD_BODIES = {"kthreadd": "kthreadd", "ksoftirqd": "run_ksoftirqd", "jbd2": "kjournald2",
                   "flush-8:0": "bdi_writeback_task"}
_BOOT_PATH = ["startup_64", "x86_64_start_kernel", "start_kernel"]
_START_KERNEL_STEPS = ("setup_arch", "trap_init", "init_IRQ", "time_init", "calibrate_delay")


class LinuxGuest(GuestOS):
    """The Linux guest.  `machine` provides time, VCPUs, memory and the probe dispatcher."""

    name = "linux"
    library_name = "linux64.vp"
    boot_loader = "GRUB"
    structures = L.STRUCTS

    def __init__(self, machine, workload: str, seed: int):
        super().__init__(machine, PROGRAMS, WORKLOADS[workload], seed)
        self.kernel = LinuxKernelImage()
        self.paths = LINUX_PATHS
        self._build_memory()
        self.tick_counter = self.kernel.symbols["jiffies"]
        self.idt_page = L.IDT_PAGE
        self.assemble(CONTEXTS, USER, {name: nr for nr, name in SYSCALLS.items()}, LINUX_SYSCALLS,
                      SYSCALL_ABI, exit_call="exit_group", spawn_call="clone")
        for vcpu in machine.vcpus:
            # CPU 0's idle task is the kernel's static init_task; the others' are allocated.
            idle = self.processes.new_kernel_task("swapper", pid=0,
                                                  at=self.kernel.symbols["init_task"] if vcpu.index == 0 else None)
            percpu = self.percpu_base + vcpu.index * L.PERCPU_AREA_SIZE
            self.cpus.append(CpuState(vcpu, idle, idle, percpu=percpu))

    # ---- memory image ------------------------------------------------------------

    def _build_memory(self) -> None:
        mem = self.memory
        self.frames = FrameAllocator(mem, L.FRAMES_START, mem.size)
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
        mem.write(BOOT_SECTOR, boot_sector_image())  # where the BIOS will have loaded it
        mem.map_device(L.APIC_PHYS, apic_page(self.m, L.APIC_VERSION))
        self._descriptor_tables()

    def _descriptor_tables(self) -> None:
        """Each CPU's GDT and TSS in its per-CPU area, and the IDT: a page the kernel reads
        through its fixmap address, with a gate to the kernel's entry code for each vector."""
        mem = self.memory
        code, data = D.TYPE_CODE_RX, D.TYPE_DATA_RW
        flat = {
            L.GDT_KERNEL32_CS: D.access_rights(code, db=True, g=True),
            L.KERNEL_CS: D.access_rights(code, long=True, g=True),
            L.KERNEL_SS: D.access_rights(data, db=True, g=True),
            L.GDT_USER32_CS: D.access_rights(code, dpl=3, db=True, g=True),
            L.USER_SS & ~3: D.access_rights(data, dpl=3, db=True, g=True),
            L.USER_CS & ~3: D.access_rights(code, dpl=3, long=True, g=True),
        }
        for i in range(len(self.m.vcpus)):
            percpu = self.percpu_base + i * L.PERCPU_AREA_SIZE
            gdt = self._phys(percpu + L.PERCPU_GDT)
            for selector, ar in flat.items():
                mem.write_u64(gdt + selector, D.segment_descriptor(0, 0xFFFFF, ar))
            tss = D.system_descriptor(percpu + L.PERCPU_TSS, L.TSS_SIZE - 1,
                                      D.access_rights(D.TYPE_TSS_BUSY, s=False))
            mem.write(gdt + L.TSS_SELECTOR, tss)
        symbols = self.kernel.symbols
        paths = self.paths
        handlers = {spec.GUEST_FAULTS[probe[len(spec.GUEST_FAULT_PREFIX):]].vector: name
                    for probe, name in paths.exception_handlers.items()}
        handlers.update({vector: paths.device_irq[0] for vector in range(L.IRQ0_VECTOR, L.IDT_VECTORS)})
        handlers.update({paths.timer_vector: paths.timer[0], paths.reschedule_vector: paths.reschedule_ipi[0],
                         L.CALL_FUNCTION_VECTOR: "call_function_interrupt"})
        idt = self.frames.alloc()
        for vector, name in handlers.items():
            mem.write(idt + 16 * vector, D.interrupt_gate(symbols[name], L.KERNEL_CS, dpl=3 if vector in (3, 4) else 0))
        self.kernel_tables.map(L.IDT_PAGE, idt, PAGE, writable=False)

    def cpu_init(self, cpu: CpuState) -> None:
        """What the kernel loads on each CPU as it starts it: its GDT, the IDT, its TSS (TR) and
        no LDT, and the system-call MSRs (the 64-bit entry point, its selectors and flag mask)."""
        r = cpu.vcpu.regs
        r.update(GDTRBASE=cpu.percpu + L.PERCPU_GDT, GDTRLIMIT=8 * L.GDT_ENTRIES - 1, IDTRBASE=L.IDT_PAGE,
                 IDTRLIMIT=16 * L.IDT_VECTORS - 1, TR=L.TSS_SELECTOR, LDTR=0)
        cpu.vcpu.msrs.update({
            x86.MSR_STAR: (L.GDT_USER32_CS | 3) << 48 | L.KERNEL_CS << 32,
            x86.MSR_LSTAR: self.kernel.symbols[self.paths.syscall_entry],
            x86.MSR_SFMASK: x86.RFLAGS_TF | x86.RFLAGS_DF | x86.RFLAGS_IF | x86.RFLAGS_IOPL,
            x86.MSR_SYSENTER_CS: L.KERNEL_CS,
        })
        self.kwrite_u64(cpu.percpu + L.PERCPU_TSS + L.TSS_RSP0, cpu.idle.stack + L.THREAD_SIZE)

    @staticmethod
    def _kphys(virt: int) -> int:
        return virt - L.KERNEL_TEXT_VIRT + L.KERNEL_TEXT_PHYS

    def _phys(self, virt: int) -> int:
        """Physical address of a kernel virtual address (image or direct map)."""
        if virt >= L.KERNEL_TEXT_VIRT:
            return self._kphys(virt)
        return virt - L.PAGE_OFFSET

    # ---- the kernel's structures -----------------------------------------------------

    def alloc_task_struct(self) -> tuple[int, int]:
        task_phys = self.frames.alloc()
        stack_phys = self.frames.alloc(L.THREAD_SIZE // PAGE)
        return L.direct_map(task_phys), L.direct_map(stack_phys)

    def free_task_struct(self, task: Task) -> None:
        self.frames.free(self._phys(task.addr))
        self.frames.free(self._phys(task.stack), L.THREAD_SIZE // PAGE)

    def write_task(self, task: Task) -> None:
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

    def new_mm_struct(self, tables: PageTables) -> tuple[int, int]:
        mm_phys = self.frames.alloc()
        self.memory.write_u64(mm_phys + L.MM_PGD, L.direct_map(tables.cr3))
        return L.direct_map(mm_phys), mm_phys

    def free_mm_struct(self, mm) -> None:
        pass  # the mm_struct is its page, one of the address space's blocks

    def set_current(self, cpu: CpuState, task: Task) -> None:
        """The per-CPU current_task, the first word of the CPU's per-CPU area; and the TSS's
        RSP0, the top of the task's kernel stack, where the CPU enters the kernel from user mode."""
        current = cpu.percpu + L.PERCPU_CURRENT_TASK
        self.kwrite_u64(current, task.addr)
        self.kwrite_u64(cpu.percpu + L.PERCPU_TSS + L.TSS_RSP0, task.stack + L.THREAD_SIZE)
        if self.probes.watch_writes:
            self.probes.guest_write(cpu.vcpu, current, 8)

    def kernel_thread_context(self, cpu: CpuState, task: Task) -> None:
        body = _KTHREAD_BODIES.get(task.comm.split("/")[0], "worker_thread")
        loop = ["kernel_thread_helper", "kthread", body]
        if task.returns:
            self.contexts.unwind(cpu, task, loop)
        self.contexts.kernel_path(cpu, task, loop, outer_rbp=0)

    # ---- boot ---------------------------------------------------------------------------

    def kernel_entry(self) -> None:
        cpu = self.cpus[0]
        walk = self.contexts.walk
        self.boot.enter_long_mode(cpu, self.kernel_tables.cr3, L.KERNEL_CS, L.KERNEL_SS)
        self.cpu_init(cpu)
        self.kwrite_u64(cpu.percpu + L.PERCPU_CURRENT_TASK, cpu.idle.addr)
        walk(cpu, cpu.idle, _BOOT_PATH)
        for step in _START_KERNEL_STEPS:
            walk(cpu, cpu.idle, [*_BOOT_PATH, step], start=len(_BOOT_PATH) + 1)
        self._printk(cpu, L.BANNER)
        cpu.online = True
        self.scheduler.go_idle(cpu)
        self.m.start_timer(0)
        now = self.events.now_ns
        for i, other in enumerate(self.cpus[1:], 1):
            self.at(now + 150_000_000 + i * 10_000_000, lambda c=other: self._start_secondary(c))
        self.at(now + 300_000_000, self._start_init)

    def _printk(self, cpu: CpuState, text: str) -> None:
        self.contexts.walk(cpu, cpu.current, ["printk", "vprintk", "release_console_sem", "call_console_drivers",
                                              "serial8250_console_write"])
        self.port_io(cpu, SERIAL_PORT, 1, len(text), is_in=False)

    def _start_secondary(self, cpu: CpuState) -> None:
        self.boot.enter_long_mode(cpu, self.kernel_tables.cr3, L.KERNEL_CS, L.KERNEL_SS)
        self.cpu_init(cpu)
        self.kwrite_u64(cpu.percpu + L.PERCPU_CURRENT_TASK, cpu.idle.addr)
        self.contexts.walk(cpu, cpu.idle, ["start_secondary", "cpu_init"])
        cpu.online = True
        self.scheduler.go_idle(cpu)
        self.m.start_timer(cpu.vcpu.index)

    def _start_init(self) -> None:
        cpu = self.cpus[0]
        spawn = self.processes.spawn
        self.contexts.walk(cpu, cpu.idle, ["rest_init", "kernel_thread"])
        init = spawn("init", None)
        for name in KERNEL_THREADS:
            if name.endswith("/1") or name.endswith("/1:1"):
                if len(self.cpus) < 2:
                    continue
            spawn(name, self.tasks.get(2))
        for i, name in enumerate(self.workload.daemons):
            self.at(self.events.now_ns + (200 + 150 * i) * 1_000_000, lambda n=name: spawn(n, init))
        self.nic.schedule_packet()
        self.at(self.events.now_ns + 2 * NS_PER_SEC, self.smm.smi)
        for cpu in self.cpus:
            self.at(self.events.now_ns + (5 + cpu.vcpu.index) * NS_PER_SEC, lambda c=cpu: self._nmi_watchdog(c))
        if self.workload.triple_fault_at_s is not None:
            # Counted from the kernel's start, so that every boot of the VM meets the bug again.
            self.at(self.events.now_ns + int(self.workload.triple_fault_at_s * NS_PER_SEC), self.faults.triple_fault)

    def _nmi_watchdog(self, cpu: CpuState) -> None:
        """The NMI watchdog checks every CPU for lockups every 10 s."""
        if cpu.online:
            self.faults.exception(cpu, cpu.current, "Guest_NMI")
            self.interrupts.resume_after_interrupt(cpu)
        self.at(self.events.now_ns + 10 * NS_PER_SEC, lambda: self._nmi_watchdog(cpu))

    # ---- what the tools show ---------------------------------------------------------------

    def symbol_table(self) -> str:
        return self.kernel.kallsyms()

    def preload_emmett(self) -> str | None:
        return None  # the compiler's default preload (emmett/preload/linux64.emt) is this guest's
