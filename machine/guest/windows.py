"""The simulated 64-bit Windows guest: a Windows 7 SP1-like kernel, its structures, its boot.

The shared mechanics (`guest_os.GuestOS`) run the workload; this profile
supplies what is Windows': the images of nt, hal and the boot drivers
(`windows_image`) and where they sit in memory (`windows_layout`), the
kernel paths each activity goes down (`WINDOWS_PATHS`), the system services
(`windows_syscalls`), the processes a Windows server runs
(`windows_programs`), and the kernel's structures as build 7601 lays them
out: a KPCR at each processor's kernel GS base (CPU 0's is
`nt!KiInitialPCR`) with its self pointer and its KPRCB, whose CurrentThread
is the running ETHREAD; each ETHREAD's process (KTHREAD.Process and
ApcState.Process), client id and TEB; each EPROCESS with its id, image name,
parent's id, threads, PEB and full image path, linked on
`nt!PsActiveProcessHead`; the Idle process (`nt!KiInitialProcess`, id 0,
whose threads are the processors' idle threads, CPU 0's
`nt!KiInitialThread`) and the System process (id 4) whose threads are the
kernel's own.  In user mode GS holds the thread's TEB.  Process and thread
ids are multiples of 4 from one table, so a process's first thread's id is
not the process's.  Its helper library (`win7_amd64.vp`) and Emmett preload
(`win7_amd64.emt`, after the declarations of `windows_layout.STRUCTS`) read
these structures.
"""

from __future__ import annotations

import struct
from importlib.resources import files

from ..events import NS_PER_SEC
from ..memory import PAGE, FrameAllocator, PageTables
from ..syscall_names import service_table_syscalls
from . import windows_layout as W
from .boot import BOOT_SECTOR, VGA_GRAPHICS, boot_sector_image
from .contexts import ContextLayout
from .devices import apic_page
from .guest_os import GuestOS
from .profile import KernelPaths
from .programs import Program
from .state import AddressSpace, CpuState, Task
from .syscalls import SystemCallABI
from .tasks import UserLayout
from .windows_image import CALLS, WindowsKernelImage
from .windows_programs import (CONSOLE_PROGRAMS, SERVICES_START_MS, SYSTEM_PROCESSES, SYSTEM_THREAD_COUNTS,
                               SYSTEM_THREADS, WINDOWS_PROGRAMS, WINDOWS_WORKLOADS)
from .structs import emmett_structs
from .windows_syscalls import SERVICES, WINDOWS_SYSCALLS

CMOS_INDEX, CMOS_DATA = 0x70, 0x71  # the HAL reads the real-time clock at boot
# ntdll's stubs: `mov r10, rcx; mov eax, NUMBER; syscall; ret`; the arguments in R10 (RCX), RDX, R8.
SYSCALL_ABI = SystemCallABI(stub=0x1368, registers=("R10", "RDX", "R8"), handle=0x1A4)
_FAULT_HANDLERS = {
    "Guest_DE": "nt!KiDivideErrorFault", "Guest_DB": "nt!KiDebugTrapOrFault", "Guest_NMI": "nt!KiNmiInterrupt",
    "Guest_BP": "nt!KiBreakpointTrap", "Guest_OF": "nt!KiOverflowTrap", "Guest_BR": "nt!KiBoundFault",
    "Guest_UD": "nt!KiInvalidOpcodeFault", "Guest_NM": "nt!KiNpxNotAvailableFault",
    "Guest_DF": "nt!KiDoubleFaultAbort", "Guest_TS": "nt!KiInvalidTssFault",
    "Guest_NP": "nt!KiSegmentNotPresentFault", "Guest_SS": "nt!KiStackFault",
    "Guest_GP": "nt!KiGeneralProtectionFault", "Guest_PF": "nt!KiPageFault",
    "Guest_RESERVED_FAULT": "nt!KiNpxSegmentOverrunAbort", "Guest_MF": "nt!KiFloatingErrorFault",
    "Guest_AC": "nt!KiAlignmentFault", "Guest_MC": "nt!KiMcheckAbort", "Guest_XF": "nt!KiXmmException",
}
_DPC = ("nt!KiDpcInterrupt", "nt!KiDispatchInterrupt", "nt!KiRetireDpcList")
_WAIT = "nt!KiCommitThreadWait"
WINDOWS_PATHS = KernelPaths(
    syscall_entry="nt!KiSystemCall64",
    syscall_handler="nt!{}",
    idle=("nt!KiIdleLoop", "nt!PoIdle", "hal!HalProcessorIdle"),
    switch=("nt!KiSwapThread", "nt!KiSwapContext", "nt!SwapContext"),
    preempted=("nt!KiDpcInterrupt", "nt!KiDispatchInterrupt"),
    reschedule_vector=W.IPI_VECTOR,
    reschedule_ipi=("nt!KiIpiInterrupt", "nt!KiIpiProcessRequests"),
    device_irq=("nt!KiInterruptDispatch",),
    timer_vector=W.TIMER_VECTOR,
    timer=("hal!HalpTimerClockInterrupt", "nt!KeUpdateSystemTime"),
    timekeeping=("nt!KiCheckForTimerExpiration",),
    tick_accounting=("nt!KeUpdateRunTime",),
    page_fault=("nt!KiPageFault", "nt!MmAccessFault", "nt!MiDispatchFault", "nt!MiResolveDemandZeroFault"),
    exception_handlers=_FAULT_HANDLERS,
    disk_vector=W.DISK_VECTOR,
    disk_driver="ataport!IdePortInterrupt",
    disk_submit=("nt!IofCallDriver", "CLASSPNP!ClassReadWrite", "ataport!IdePortDispatch"),
    disk_read_miss="nt!MiIssueHardFault",
    disk_wait=("nt!KeWaitForSingleObject", _WAIT),
    disk_done=(*_DPC, "ataport!IdePortCompletionDpc", "nt!IopfCompleteRequest", "nt!KeSetEvent"),
    net_vector=W.NET_VECTOR,
    net_driver="ndis!ndisMiniportIsr",
    net_receive=(*_DPC, "ndis!ndisInterruptDpc", "ndis!ndisMIndicateNetBufferListsToOpen",
                 "tcpip!FlReceiveNetBufferListChain", "tcpip!IppReceiveHeaderBatch", "tcpip!TcpDeliverDataToClient",
                 "nt!IopfCompleteRequest", "nt!KeInsertQueue"),
)
CONTEXTS = ContextLayout(kernel_cs=W.KERNEL_CS, kernel_ss=W.KERNEL_SS, user_cs=W.USER_CS, user_ss=W.USER_SS,
                         user_fs_base=0, thread_size=W.KERNEL_STACK_SIZE, regs_frame_size=W.KTRAP_FRAME_SIZE)
USER = UserLayout(text=W.USER_IMAGE, heap=W.USER_HEAP, library=W.NTDLL, library_name="ntdll.dll",
                  library_pages=W.NTDLL_PAGES, stack_top=W.USER_STACK_TOP,
                  # ntdll!RtlUserThreadStart -> kernel32!BaseThreadInitThunk -> the image's entry -> wmain
                  start_frames=(("library", 0x2C541), ("library", 0x1652D), ("text", 0x1F8C)))
_BOOT_PATH = ["nt!KiSystemStartup", "nt!KiInitializeKernel"]
_BOOT_STEPS = ("hal!HalInitializeProcessor", "nt!KiInitializeBootStructures", "nt!InitBootProcessor")
_SYSTEM_THREAD_START = ["nt!KiStartSystemThread", "nt!PspSystemThreadStartup"]
_PHASE1 = [*_SYSTEM_THREAD_START, "nt!Phase1Initialization", "nt!Phase1InitializationDiscard"]
CONSOLE_START_MS = 1800  # explorer.exe starts the console programs from then, one every 100 ms
IDLE = "Idle"


class WindowsGuest(GuestOS):
    """The Windows guest.  `machine` provides time, VCPUs, memory and the probe dispatcher."""

    name = "windows"
    library_name = "win7_amd64.vp"
    boot_loader = "BOOTMGR"
    structures = W.STRUCTS

    def __init__(self, machine, workload: str, seed: int):
        super().__init__(machine, WINDOWS_PROGRAMS, WINDOWS_WORKLOADS[workload], seed)
        self.kernel = WindowsKernelImage()
        self.paths = WINDOWS_PATHS
        self.next_pid = W.SYSTEM_PID + W.CID_STEP
        self._drivers: list[tuple[int, int, int]] = []  # (virtual base, physical base, size) of each driver
        self._build_memory()
        symbols = self.kernel.symbols
        self.tick_counter = symbols["nt!KeTickCount"]
        self.idt_page = W.kseg(W.BOOT_DESCRIPTORS_PHYS)
        self.assemble(CONTEXTS, USER, {name: nr for nr, name in SERVICES.items()}, WINDOWS_SYSCALLS, SYSCALL_ABI,
                      exit_call="NtTerminateProcess", spawn_call="NtCreateUserProcess")
        self._processes: dict[int, AddressSpace | None] = {}  # EPROCESS -> its address space, as linked
        self._tebs: dict[int, int] = {}  # EPROCESS -> the TEB its next thread gets
        self.idle_process = symbols["nt!KiInitialProcess"]
        self._write_process(self.idle_process, W.IDLE_PID, IDLE, 0, self.kernel_tables.cr3, peb=0)
        system_phys = self.frames.alloc()
        self.system_process = W.pool(system_phys)
        self._write_process(self.system_process, W.SYSTEM_PID, "System", 0, self.kernel_tables.cr3, peb=0)
        self._link_process(self.system_process, None)
        self.kwrite_u64(symbols["nt!PsInitialSystemProcess"], self.system_process)
        self.kwrite_u64(symbols["nt!PsIdleProcess"], self.idle_process)
        for vcpu in machine.vcpus:
            first = vcpu.index == 0
            idle = self.processes.new_kernel_task(IDLE, pid=W.IDLE_PID, at=symbols["nt!KiInitialThread"] if first else None)
            kpcr = symbols["nt!KiInitialPCR"] if first else W.pool(self.frames.alloc(W.KPCR_SIZE // PAGE + 1))
            self._write_kpcr(kpcr, vcpu.index, idle)
            self.cpus.append(CpuState(vcpu, idle, idle, percpu=kpcr))

    # ---- memory image ------------------------------------------------------------

    def _build_memory(self) -> None:
        mem = self.memory
        kernel = self.kernel
        self.frames = FrameAllocator(mem, W.FRAMES_START, mem.size)
        tables = self.kernel_tables = PageTables(mem, self.frames, self.mmu)
        tables.map(W.kseg(W.BOOT_IMAGES_PHYS), W.BOOT_IMAGES_PHYS, W.BOOT_IMAGES_END - W.BOOT_IMAGES_PHYS,
                   large=True)
        tables.map(W.kseg(W.BOOT_DESCRIPTORS_PHYS), W.BOOT_DESCRIPTORS_PHYS, 2 * PAGE)
        phys = W.DRIVERS_PHYS
        for module, pages in kernel.module_pages().items():
            base = W.MODULE_BASES[module]
            tables.map(base, phys, pages * PAGE, writable=False)
            self._drivers.append((base, phys, pages * PAGE))
            phys += pages * PAGE
        pool = (mem.size + (1 << 21) - 1) & ~((1 << 21) - 1)
        tables.map(W.POOL_BASE, 0, pool, large=True)
        kernel.set_processors(len(self.m.vcpus), 10_000_000 // self.m.config.timer_hz)
        for func in kernel.functions.values():
            mem.write(self._phys(func.address), func.code)
        for data in kernel.data.values():
            mem.write(self._phys(data.address), data.value)
        head = kernel.symbols["nt!PsActiveProcessHead"]
        self.kwrite_u64(head + W.LIST_ENTRY_FLINK, head)  # an empty list points at itself
        self.kwrite_u64(head + W.LIST_ENTRY_BLINK, head)
        mem.write(BOOT_SECTOR, boot_sector_image())
        mem.map_device(W.APIC_PHYS, apic_page(self.m, W.APIC_VERSION))

    def _phys(self, virt: int) -> int:
        """The physical address of a kernel virtual address (pool, a driver, or the loader's mapping)."""
        if virt >= W.POOL_BASE:
            return virt - W.POOL_BASE
        for base, phys, size in self._drivers:
            if base <= virt < base + size:
                return phys + virt - base
        return virt - W.KSEG_BASE

    def _kwrite(self, virt: int, data: bytes) -> None:
        self.memory.write(self._phys(virt), data)

    # ---- the kernel's structures -----------------------------------------------------

    def _write_kpcr(self, kpcr: int, number: int, idle: Task) -> None:
        prcb = kpcr + W.KPCR_PRCB
        for offset, value in ((W.KPCR_SELF, kpcr), (W.KPCR_CURRENT_PRCB, prcb),
                              (W.KPCR_PRCB + W.KPRCB_CURRENT_THREAD, idle.addr),
                              (W.KPCR_PRCB + W.KPRCB_IDLE_THREAD, idle.addr),
                              (W.KPCR_PRCB + W.KPRCB_RSP_BASE, idle.stack + W.KERNEL_STACK_SIZE)):
            self.kwrite_u64(kpcr + offset, value)
        self._kwrite(prcb + W.KPRCB_NUMBER, struct.pack("<I", number))
        self.kwrite_u64(self.kernel.symbols["nt!KiProcessorBlock"] + 8 * number, prcb)
        if number == 0:
            descriptors = W.kseg(W.BOOT_DESCRIPTORS_PHYS)
            for offset, value in ((W.KPCR_GDT_BASE, descriptors + W.GDT_OFFSET),
                                  (W.KPCR_TSS_BASE, descriptors + W.TSS_OFFSET),
                                  (W.KPCR_IDT_BASE, descriptors + W.IDT_OFFSET)):
                self.kwrite_u64(kpcr + offset, value)

    def image_name(self, task: Task) -> str:
        """The System process's threads are the kernel's own; the others run their program's image."""
        return "System" if task.tgid == W.SYSTEM_PID else task.comm[:W.IMAGE_FILE_NAME_LEN - 1]

    def new_task_ids(self, program: Program, share: Task | None) -> tuple[int, int]:
        """Ids from one table in steps of 4: a new process takes one for itself and one for its first
        thread; the System process's threads are its own."""
        cid = self.next_pid
        self.next_pid += W.CID_STEP
        if program.kernel_thread:
            return cid, W.SYSTEM_PID
        if share is not None:
            return cid, share.tgid
        self.next_pid += W.CID_STEP
        return cid + W.CID_STEP, cid

    def alloc_task_struct(self) -> tuple[int, int]:
        thread_phys = self.frames.alloc()
        stack_phys = self.frames.alloc(W.KERNEL_STACK_SIZE // PAGE)
        return W.pool(thread_phys), W.pool(stack_phys)

    def free_task_struct(self, task: Task) -> None:
        process = self._process_of(task)
        if process in self._processes:  # (a process's last thread goes with its process)
            self._unlink(task.addr + W.ETHREAD_THREAD_LIST_ENTRY)
            self._add_u32(process + W.EPROCESS_ACTIVE_THREADS, -1)
        self.frames.free(self._phys(task.addr))
        self.frames.free(self._phys(task.stack), W.KERNEL_STACK_SIZE // PAGE)

    def _process_of(self, task: Task) -> int:
        if task.mm is not None:
            return task.mm.mm
        return self.idle_process if task.tgid == W.IDLE_PID else self.system_process

    def write_task(self, task: Task) -> None:
        """The new task's ETHREAD (and, for a process's first thread, its EPROCESS), its TEB, and its
        place on its process's thread list.  A task is written once: Windows does not exec."""
        base = task.addr
        process = self._process_of(task)
        mm = task.mm
        if mm is not None and process not in self._processes:
            self._write_process(process, task.tgid, self.image_name(task), task.parent.tgid if task.parent else 0,
                                mm.cr3, peb=W.PEB)
            self._link_process(process, mm)
        self._kwrite(base + W.DISPATCHER_TYPE, bytes([W.THREAD_OBJECT]))
        top = task.stack + W.KERNEL_STACK_SIZE
        for offset, value in ((W.KTHREAD_INITIAL_STACK, top), (W.KTHREAD_STACK_LIMIT, task.stack),
                              (W.KTHREAD_KERNEL_STACK, top - W.KTRAP_FRAME_SIZE),
                              (W.KTHREAD_APC_STATE_PROCESS, process), (W.KTHREAD_PROCESS, process),
                              (W.ETHREAD_CID + W.CLIENT_ID_UNIQUE_PROCESS, task.tgid),
                              (W.ETHREAD_CID + W.CLIENT_ID_UNIQUE_THREAD, task.pid),
                              (W.ETHREAD_WIN32_START_ADDRESS, self._start_address(task))):
            self.kwrite_u64(base + offset, value)
        self._set_state(task, W.THREAD_READY)
        if mm is not None:
            task.user_gs_base = self._new_teb(task, process)
            self.kwrite_u64(base + W.KTHREAD_TEB, task.user_gs_base)
        self._insert_tail(process + W.EPROCESS_THREAD_LIST_HEAD, base + W.ETHREAD_THREAD_LIST_ENTRY)
        self._add_u32(process + W.EPROCESS_ACTIVE_THREADS, 1)

    def _start_address(self, task: Task) -> int:
        if task.mm is not None:
            return task.mm.text + USER.start_frames[-1][1]
        return self.kernel.symbols[SYSTEM_THREADS.get(task.comm, "nt!KiIdleLoop")]

    def _set_state(self, task: Task, state: int) -> None:
        self._kwrite(task.addr + W.KTHREAD_STATE, bytes([state]))

    def _write_process(self, process: int, pid: int, image: str, parent_pid: int, cr3: int, peb: int) -> None:
        self._kwrite(process + W.DISPATCHER_TYPE, bytes([W.PROCESS_OBJECT]))
        for offset, value in ((W.KPROCESS_DIRECTORY_TABLE_BASE, cr3), (W.EPROCESS_UNIQUE_PROCESS_ID, pid),
                              (W.EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID, parent_pid), (W.EPROCESS_PEB, peb)):
            self.kwrite_u64(process + offset, value)
        self._kwrite(process + W.EPROCESS_IMAGE_FILE_NAME, image.encode().ljust(W.IMAGE_FILE_NAME_LEN, b"\0"))
        threads = process + W.EPROCESS_THREAD_LIST_HEAD
        self.kwrite_u64(threads + W.LIST_ENTRY_FLINK, threads)
        self.kwrite_u64(threads + W.LIST_ENTRY_BLINK, threads)
        if pid not in (W.IDLE_PID, W.SYSTEM_PID):
            # SeAuditProcessCreationInfo.ImageFileName: the image's full path, after the EPROCESS.
            info = process + W.EPROCESS_SIZE + 0x30
            path = f"{W.SYSTEM_ROOT}\\System32\\{image}".encode("utf-16-le")
            self._kwrite(info, struct.pack("<HHIQ", len(path), len(path) + 2, 0, info + W.UNICODE_STRING_SIZE))
            self._kwrite(info + W.UNICODE_STRING_SIZE, path + b"\0\0")
            self.kwrite_u64(process + W.EPROCESS_SE_AUDIT_PROCESS_CREATION_INFO, info)

    def _link_process(self, process: int, mm: AddressSpace | None) -> None:
        self._insert_tail(self.kernel.symbols["nt!PsActiveProcessHead"], process + W.EPROCESS_ACTIVE_PROCESS_LINKS)
        self._processes[process] = mm

    def new_mm_struct(self, tables: PageTables) -> tuple[int, int]:
        """The process's EPROCESS (filled in with its first thread) and its PEB, mapped in its space."""
        process_phys = self.frames.alloc()
        peb_phys = self.frames.alloc()
        tables.map(W.PEB, peb_phys, PAGE, user=True)
        self.memory.write_u64(peb_phys + W.PEB_IMAGE_BASE_ADDRESS, W.USER_IMAGE)
        return W.pool(process_phys), process_phys

    def free_mm_struct(self, mm: AddressSpace) -> None:
        """The process object goes: off the active process list, its PEB freed (the EPROCESS page is
        one of the address space's blocks)."""
        process = mm.mm
        if self._processes.pop(process, None) is not None:
            self._unlink(process + W.EPROCESS_ACTIVE_PROCESS_LINKS)
        self._tebs.pop(process, None)
        self.frames.free(self.mmu.translate(mm.cr3, W.PEB))

    def _new_teb(self, task: Task, process: int) -> int:
        """The thread's TEB: two pages below its process's last one (skipping the PEB), mapped in its space."""
        teb = self._tebs.get(process, W.FIRST_TEB)
        if teb <= W.PEB < teb + W.TEB_SIZE:
            teb -= W.TEB_SIZE
        self._tebs[process] = teb - W.TEB_SIZE
        mm = task.mm
        phys = self.frames.alloc(W.TEB_SIZE // PAGE)
        mm.tables.map(teb, phys, W.TEB_SIZE, user=True)
        mm.blocks.append((phys, W.TEB_SIZE // PAGE))
        for offset, value in ((W.TEB_STACK_BASE, mm.stack_top), (W.TEB_STACK_LIMIT, mm.stack_top - 2 * PAGE),
                              (W.TEB_SELF, teb), (W.TEB_CLIENT_ID + W.CLIENT_ID_UNIQUE_PROCESS, task.tgid),
                              (W.TEB_CLIENT_ID + W.CLIENT_ID_UNIQUE_THREAD, task.pid), (W.TEB_PEB, W.PEB)):
            self.memory.write_u64(phys + offset, value)
        return teb

    def _insert_tail(self, head: int, entry: int) -> None:
        last = self.kread_u64(head + W.LIST_ENTRY_BLINK)
        self.kwrite_u64(entry + W.LIST_ENTRY_FLINK, head)
        self.kwrite_u64(entry + W.LIST_ENTRY_BLINK, last)
        self.kwrite_u64(last + W.LIST_ENTRY_FLINK, entry)
        self.kwrite_u64(head + W.LIST_ENTRY_BLINK, entry)

    def _unlink(self, entry: int) -> None:
        following = self.kread_u64(entry + W.LIST_ENTRY_FLINK)
        previous = self.kread_u64(entry + W.LIST_ENTRY_BLINK)
        self.kwrite_u64(previous + W.LIST_ENTRY_FLINK, following)
        self.kwrite_u64(following + W.LIST_ENTRY_BLINK, previous)

    def _add_u32(self, virt: int, delta: int) -> None:
        phys = self._phys(virt)
        value = struct.unpack("<I", self.memory.read(phys, 4))[0]
        self.memory.write(phys, struct.pack("<I", (value + delta) & 0xFFFF_FFFF))

    def set_current(self, cpu: CpuState, task: Task) -> None:
        """The KPRCB's CurrentThread and RspBase (the top of the thread's kernel stack), and the
        threads' states (the one switched from is ready, or waiting, again)."""
        prcb = cpu.percpu + W.KPCR_PRCB
        current = prcb + W.KPRCB_CURRENT_THREAD
        self.kwrite_u64(current, task.addr)
        self.kwrite_u64(prcb + W.KPRCB_RSP_BASE, task.stack + W.KERNEL_STACK_SIZE)
        previous = cpu.current
        if previous is not task and previous.state != "dead":
            self._set_state(previous, W.THREAD_READY if previous.state == "runnable" else W.THREAD_WAITING)
        self._set_state(task, W.THREAD_RUNNING)
        if self.probes.watch_writes:
            self.probes.guest_write(cpu.vcpu, current, 8)

    def kernel_thread_context(self, cpu: CpuState, task: Task) -> None:
        """A system thread in its loop, at the wait it spends its life in; an idle thread in the idle loop."""
        body = SYSTEM_THREADS.get(task.comm, "nt!ExpWorkerThread")
        self.contexts.kernel_path(cpu, task, [*_SYSTEM_THREAD_START, body, CALLS[body][0], _WAIT], outer_rbp=0)

    # ---- boot ---------------------------------------------------------------------------

    def kernel_entry(self) -> None:
        """The boot loader has started nt on the boot processor (KiSystemStartup): phase 0 of the
        kernel's initialization, then the idle loop; the other processors and phase 1 follow."""
        cpu = self.cpus[0]
        walk = self.contexts.walk
        self.boot.enter_long_mode(cpu, self.kernel_tables.cr3, W.KERNEL_CS, W.KERNEL_SS)
        walk(cpu, cpu.idle, _BOOT_PATH)
        for step in _BOOT_STEPS:
            walk(cpu, cpu.idle, [*_BOOT_PATH, step], start=len(_BOOT_PATH) + 1)
        walk(cpu, cpu.idle, [*_BOOT_PATH, "nt!InitBootProcessor", "hal!HalInitSystem"], start=len(_BOOT_PATH) + 2)
        self.port_io(cpu, CMOS_INDEX, 1, 1, is_in=False)
        self.port_io(cpu, CMOS_DATA, 1, 1, is_in=True)
        walk(cpu, cpu.idle, [*_BOOT_PATH, "nt!InitBootProcessor", "nt!InbvDisplayString"], start=len(_BOOT_PATH) + 2)
        self.boot.vga_write(cpu, VGA_GRAPHICS, b"\x0f\x1e" * 8)  # the boot screen
        cpu.online = True
        self.scheduler.go_idle(cpu)
        self.m.start_timer(0)
        now = self.events.now_ns
        for i, other in enumerate(self.cpus[1:], 1):
            self.at(now + 150_000_000 + i * 10_000_000, lambda c=other: self._start_secondary(c))
        self.at(now + 300_000_000, self._phase1)

    def _start_secondary(self, cpu: CpuState) -> None:
        self.boot.enter_long_mode(cpu, self.kernel_tables.cr3, W.KERNEL_CS, W.KERNEL_SS)
        self.contexts.walk(cpu, cpu.idle, [*_BOOT_PATH, "hal!HalInitializeProcessor"])
        cpu.online = True
        self.scheduler.go_idle(cpu)
        self.m.start_timer(cpu.vcpu.index)

    def _phase1(self) -> None:
        """Phase 1 (in a system thread): the System process's threads, then smss.exe and what it starts,
        services.exe's services and the console's programs, at their times."""
        cpu = self.cpus[0]
        walk = self.contexts.walk
        walk(cpu, cpu.idle, [*_PHASE1, "nt!IoInitSystem"])
        spawn = self.processes.spawn
        threads = [spawn(name, None) for name, count in SYSTEM_THREAD_COUNTS for _ in range(count)]
        walk(cpu, cpu.idle, [*_PHASE1, "nt!ExpLoadInitialProcess", "nt!PspAllocateProcess"])
        started: dict[str, Task] = {"System": threads[0]}
        now = self.events.now_ns

        def start(program: str, parent: str) -> None:
            task = spawn(program, started.get(parent))
            started.setdefault(program, task)

        for program, parent, ms in SYSTEM_PROCESSES:
            self.at(now + ms * 1_000_000, lambda p=program, q=parent: start(p, q))
        services = [p for p in self.workload.daemons if p not in CONSOLE_PROGRAMS]
        console = [p for p in self.workload.daemons if p in CONSOLE_PROGRAMS]
        for i, program in enumerate(services):
            self.at(now + (SERVICES_START_MS + 100 * i) * 1_000_000, lambda p=program: start(p, "services.exe"))
        for i, program in enumerate(console):
            self.at(now + (CONSOLE_START_MS + 100 * i) * 1_000_000, lambda p=program: start(p, "explorer.exe"))
        self.nic.schedule_packet()
        self.at(now + 2 * NS_PER_SEC, self.smm.smi)
        if self.workload.triple_fault_at_s is not None:
            # Counted from the kernel's start, so that every boot of the VM meets the bug again.
            self.at(now + int(self.workload.triple_fault_at_s * NS_PER_SEC), self.faults.triple_fault)

    # ---- what the tools show ---------------------------------------------------------------

    def symbol_table(self) -> str:
        return self.kernel.windbg_symbols()

    def system_calls(self) -> dict[int, str]:
        """The kernel's service table as its memory holds it, resolved through its symbols."""
        return service_table_syscalls(self.read_kernel, self.kernel.symbols)

    def preload_emmett(self) -> str | None:
        return emmett_structs(W.STRUCTS) + "\n" + (files("machine.guest") / "win7_amd64.emt").read_text(encoding="utf-8")
