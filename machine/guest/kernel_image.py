"""The Linux guest kernel's image: its functions and calls, data, sys_call_table and /proc/kallsyms.

Laid out as every guest kernel is (`image.KernelImage`: real x86-64 code with
frame-pointer prologues and real calls along the modelled paths).
`sys_getpid` and `get_task_comm` are compiled from the task_struct layout,
so `offatret` and `offatstrcpy` recover the offsets from the bytes.
"""

from __future__ import annotations

import struct

from . import layout as L
from . import x86asm as asm
from .image import Function, KernelImage

# Syscalls the guest's processes make: x86-64 number -> name.
SYSCALLS: dict[int, str] = {
    0: "read", 1: "write", 2: "open", 3: "close", 4: "stat", 5: "fstat", 7: "poll", 8: "lseek",
    9: "mmap", 10: "mprotect", 11: "munmap", 12: "brk", 13: "rt_sigaction", 14: "rt_sigprocmask",
    16: "ioctl", 17: "pread64", 18: "pwrite64", 21: "access", 22: "pipe", 23: "select",
    24: "sched_yield", 35: "nanosleep", 39: "getpid", 41: "socket", 42: "connect", 43: "accept",
    44: "sendto", 45: "recvfrom", 56: "clone", 57: "fork", 59: "execve", 60: "exit", 61: "wait4",
    62: "kill", 63: "uname", 72: "fcntl", 74: "fsync", 78: "getdents", 89: "readlink",
    96: "gettimeofday", 102: "getuid", 110: "getppid", 186: "gettid", 202: "futex",
    228: "clock_gettime", 231: "exit_group", 232: "epoll_wait", 257: "openat",
}
NR_SYSCALLS = 300

# Direct calls inside the kernel: caller -> callees, in the order they appear in
# the caller's code.  These are the paths the guest model walks.
CALLS: dict[str, list[str]] = {
    # boot
    "startup_64": ["x86_64_start_kernel"],
    "x86_64_start_kernel": ["start_kernel"],
    "start_kernel": ["setup_arch", "trap_init", "init_IRQ", "time_init", "calibrate_delay", "rest_init"],
    "rest_init": ["kernel_thread", "cpu_idle"],
    "kernel_init": ["do_basic_setup", "init_post"],
    "init_post": ["kernel_execve"],
    "start_secondary": ["cpu_init", "cpu_idle"],
    # idle and scheduling
    "cpu_idle": ["default_idle", "schedule"],
    "schedule": ["pick_next_task_fair", "__switch_to"],
    "ret_from_fork": ["schedule_tail"],
    "retint_careful": ["schedule"],  # entry code: reschedule before returning from an interrupt
    "kernel_thread_helper": ["kthread"],
    "kthread": ["kthreadd", "run_ksoftirqd", "worker_thread", "kjournald2", "bdi_writeback_task"],
    "kthreadd": ["schedule"],
    "run_ksoftirqd": ["__do_softirq", "schedule"],
    "worker_thread": ["schedule"],
    "kjournald2": ["submit_bio", "schedule"],
    "bdi_writeback_task": ["schedule"],
    # system calls
    "sys_read": ["vfs_read"],
    "vfs_read": ["do_sync_read"],
    "do_sync_read": ["generic_file_aio_read", "sock_aio_read", "tty_read"],
    "generic_file_aio_read": ["mpage_readpages", "schedule"],
    "mpage_readpages": ["submit_bio"],
    "submit_bio": ["generic_make_request"],
    "generic_make_request": ["__make_request"],
    "__make_request": ["blk_queue_bio", "ata_qc_issue"],
    "sys_write": ["vfs_write"],
    "vfs_write": ["do_sync_write"],
    "do_sync_write": ["generic_file_aio_write", "sock_aio_write", "tty_write"],
    "tty_write": ["n_tty_write"],
    "sys_pread64": ["vfs_read"],
    "sys_pwrite64": ["vfs_write"],
    "sys_fsync": ["vfs_fsync"],
    "vfs_fsync": ["submit_bio", "schedule"],
    "sys_open": ["do_sys_open"],
    "sys_openat": ["do_sys_open"],
    "do_sys_open": ["getname", "do_filp_open", "fd_install"],
    "do_filp_open": ["path_walk"],
    "sys_stat": ["vfs_stat"],
    "vfs_stat": ["path_walk"],
    "sys_close": ["filp_close"],
    "sys_mmap": ["do_mmap_pgoff"],
    "sys_munmap": ["do_munmap"],
    "do_munmap": ["unmap_region"],
    "sys_brk": ["do_brk"],
    "sys_clone": ["do_fork"],
    "sys_fork": ["do_fork"],
    "do_fork": ["copy_process", "wake_up_new_task"],
    "sys_execve": ["do_execve"],
    "do_execve": ["search_binary_handler"],
    "search_binary_handler": ["load_elf_binary"],
    "sys_exit_group": ["do_group_exit"],
    "do_group_exit": ["do_exit"],
    "do_exit": ["exit_mm", "schedule"],
    "sys_wait4": ["do_wait"],
    "do_wait": ["schedule"],
    "sys_nanosleep": ["hrtimer_nanosleep"],
    "hrtimer_nanosleep": ["do_nanosleep"],
    "do_nanosleep": ["schedule"],
    "sys_select": ["core_sys_select"],
    "core_sys_select": ["do_select"],
    "do_select": ["schedule_hrtimeout_range"],
    "schedule_hrtimeout_range": ["schedule"],
    "sys_poll": ["do_sys_poll"],
    "do_sys_poll": ["schedule_hrtimeout_range"],
    "sys_epoll_wait": ["ep_poll"],
    "ep_poll": ["schedule_hrtimeout_range"],
    "sys_futex": ["do_futex"],
    "do_futex": ["futex_wait", "futex_wake"],
    "futex_wait": ["schedule"],
    "sys_recvfrom": ["sock_recvmsg"],
    "sock_recvmsg": ["tcp_recvmsg"],
    "tcp_recvmsg": ["schedule"],
    "sys_sendto": ["sock_sendmsg"],
    "sock_sendmsg": ["tcp_sendmsg"],
    "tcp_sendmsg": ["dev_queue_xmit"],
    "dev_queue_xmit": ["e1000_xmit_frame"],
    "sys_getdents": ["vfs_readdir"],
    "sys_ioctl": ["do_vfs_ioctl"],
    "sys_sched_yield": ["schedule"],
    "sys_kill": ["kill_pid_info"],
    "sys_getpid": [],
    # faults and exceptions
    "page_fault": ["do_page_fault"],
    "do_page_fault": ["handle_mm_fault"],
    "handle_mm_fault": ["handle_pte_fault"],
    "handle_pte_fault": ["do_anonymous_page", "__do_fault", "do_wp_page"],
    "__do_fault": ["filemap_fault"],
    "device_not_available": ["math_state_restore"],
    "divide_error": ["do_divide_error"],
    "debug": ["do_debug"],
    "nmi": ["do_nmi"],
    "do_nmi": ["perf_event_nmi_handler"],
    "int3": ["do_int3"],
    "overflow": ["do_overflow"],
    "bounds": ["do_bounds"],
    "invalid_op": ["do_invalid_op"],
    "double_fault": ["do_double_fault"],
    "invalid_TSS": ["do_invalid_TSS"],
    "segment_not_present": ["do_segment_not_present"],
    "stack_segment": ["do_stack_segment"],
    "general_protection": ["do_general_protection"],
    "spurious_interrupt_bug": ["do_spurious_interrupt_bug"],
    "coprocessor_error": ["do_coprocessor_error"],
    "alignment_check": ["do_alignment_check"],
    "machine_check": ["do_machine_check"],
    "simd_coprocessor_error": ["do_simd_coprocessor_error"],
    "do_general_protection": ["force_sig_info"],
    "do_divide_error": ["force_sig_info"],
    "do_invalid_op": ["force_sig_info"],
    # interrupts
    "apic_timer_interrupt": ["smp_apic_timer_interrupt"],
    "smp_apic_timer_interrupt": ["hrtimer_interrupt", "irq_exit"],
    "hrtimer_interrupt": ["tick_sched_timer"],
    "tick_sched_timer": ["tick_do_update_jiffies64", "update_process_times"],
    "tick_do_update_jiffies64": ["do_timer"],
    "update_process_times": ["run_local_timers", "scheduler_tick"],
    "scheduler_tick": ["task_tick_fair"],
    "irq_exit": ["__do_softirq"],
    "__do_softirq": ["run_timer_softirq", "net_rx_action", "blk_done_softirq"],
    "blk_done_softirq": ["end_that_request_last"],
    "end_that_request_last": ["wake_up_process"],
    "common_interrupt": ["do_IRQ"],
    "do_IRQ": ["handle_irq", "irq_exit"],
    "handle_irq": ["handle_fasteoi_irq", "handle_edge_irq"],
    "handle_fasteoi_irq": ["handle_IRQ_event"],
    "handle_edge_irq": ["handle_IRQ_event"],
    "handle_IRQ_event": ["ata_interrupt", "e1000_intr"],
    "ata_interrupt": ["ata_sff_host_intr"],
    "e1000_intr": ["__napi_schedule"],
    "net_rx_action": ["e1000_clean"],
    "e1000_clean": ["netif_receive_skb"],
    "netif_receive_skb": ["ip_rcv"],
    "ip_rcv": ["tcp_v4_rcv"],
    "tcp_v4_rcv": ["wake_up_process"],
    "reschedule_interrupt": ["smp_reschedule_interrupt"],
    "call_function_interrupt": ["smp_call_function_interrupt"],
    "smp_call_function_interrupt": ["flush_tlb_func"],
    # console
    "printk": ["vprintk"],
    "vprintk": ["release_console_sem"],
    "release_console_sem": ["call_console_drivers"],
    "call_console_drivers": ["serial8250_console_write"],
    # helpers with no modelled callees
    "get_task_comm": ["strncpy"],
}

# Low-level entry points written in assembly (not C): no frame-pointer prologue.
ASM_ENTRIES = {
    "startup_64", "system_call", "page_fault", "kernel_thread_helper", "device_not_available", "divide_error", "debug", "nmi",
    "int3", "overflow", "bounds", "invalid_op", "double_fault", "invalid_TSS", "segment_not_present",
    "stack_segment", "general_protection", "spurious_interrupt_bug", "coprocessor_error",
    "alignment_check", "machine_check", "simd_coprocessor_error", "apic_timer_interrupt",
    "common_interrupt", "reschedule_interrupt", "call_function_interrupt", "ret_from_fork",
    "retint_careful",
}

EXTRA_FUNCTIONS = [
    "sys_ni_syscall", "strncpy", "memcpy", "memset", "copy_to_user", "copy_from_user", "kmalloc", "kfree",
]


class LinuxKernelImage(KernelImage):
    """The Linux kernel: one text section, its data, sys_call_table and /proc/kallsyms."""

    def __init__(self):
        names = list(dict.fromkeys(
            [n for caller, callees in CALLS.items() for n in [caller, *callees]]
            + ["system_call"] + [f"sys_{name}" for name in SYSCALLS.values()] + EXTRA_FUNCTIONS
        ))
        self._data_cursor = L.KERNEL_TEXT_VIRT + L.KERNEL_DATA_OFFSET
        super().__init__(names, CALLS, ASM_ENTRIES)
        self.data["sys_call_table"].value = b"".join(
            struct.pack("<Q", self.functions[f"sys_{SYSCALLS[n]}"].address if n in SYSCALLS
                        else self.functions["sys_ni_syscall"].address)
            for n in range(NR_SYSCALLS)
        )
        self.symbols["jiffies_64"] = self.data["jiffies"].address
        self.symbols["per_cpu__current_task"] = L.PERCPU_CURRENT_TASK
        # default_idle is `push rbp; mov rbp, rsp; sti; hlt; ...`: where an idle CPU halts.
        self.idle_halt = self.functions["default_idle"].address + len(asm.PROLOGUE + asm.STI)

    def text_start(self, name: str) -> int:
        return L.KERNEL_TEXT_VIRT + 0x1000

    # ---- text -----------------------------------------------------------------

    def _code_for(self, func: Function, addresses: dict[str, int]) -> bytes:
        """The functions whose code matters exactly; the others as every kernel function is."""
        name = func.name
        at = func.address
        if name == "sys_getpid":
            return (asm.PROLOGUE + asm.mov_rax_gs(L.PERCPU_CURRENT_TASK)
                    + asm.mov_eax_mem_rax(L.TASK_TGID) + asm.EPILOGUE)
        if name == "get_task_comm":
            head = (asm.PROLOGUE + asm.PUSH_RBX + asm.MOV_RBX_RDI + asm.lea_rsi_rsi(L.TASK_COMM)
                    + asm.mov_edx_imm(L.TASK_COMM_LEN))
            call = asm.call_rel32(at + len(head), addresses["strncpy"] or at)
            func.call_sites["strncpy"] = at + len(head) + len(call)
            return head + call + asm.MOV_RAX_RBX + asm.POP_RBX + asm.EPILOGUE
        if name == "system_call":
            # swapgs; save user state; call *sys_call_table(,%rax,8); swapgs; sysretq
            head = asm.SWAPGS + asm.NOP * 12
            table = self.data["sys_call_table"].address
            icall = b"\xff\x14\xc5" + struct.pack("<i", table - (1 << 64))
            func.call_sites["*"] = at + len(head) + len(icall)
            return head + icall + asm.NOP * 4 + asm.SWAPGS + asm.SYSRETQ
        if name == "default_idle":
            return asm.PROLOGUE + asm.STI + asm.HLT + asm.EPILOGUE
        return super()._code_for(func, addresses)

    # ---- data -----------------------------------------------------------------

    def _lay_out_data(self) -> None:
        self._add_data("linux_banner", L.BANNER.encode() + b"\0", "R")
        cmdline = self._add_data("boot_command_line", L.COMMAND_LINE.encode() + b"\0", "D")
        self._add_data("saved_command_line", struct.pack("<Q", cmdline), "D")
        self._add_data("jiffies", struct.pack("<Q", 0xFFFFFFFF_FFFB6C20), "D")
        self._add_data("tsc_enabled", struct.pack("<I", 1), "d", 4)
        self._add_data("tsc_khz", struct.pack("<I", 0), "D", 4)
        self._add_data("current_tsc_khz", struct.pack("<I", 0), "D", 4)
        self._add_data("__per_cpu_offset", bytes(8 * 64), "D")
        self._add_data("init_task", bytes(L.TASK_STRUCT_SIZE), "D", 64)
        self._add_data("sys_call_table", bytes(8 * NR_SYSCALLS), "R", 64)

    # ---- queries -----------------------------------------------------------------

    def set_tsc_khz(self, khz: int) -> None:
        for name in ("tsc_khz", "current_tsc_khz"):
            self.data[name].value = struct.pack("<I", khz)

    def kallsyms(self) -> str:
        """The symbol table in /proc/kallsyms format, sorted by address."""
        rows = [(L.PERCPU_CURRENT_TASK, "D", "per_cpu__current_task")]
        rows.append((L.KERNEL_TEXT_VIRT, "T", "_text"))
        for f in self._sorted:
            rows.append((f.address, "t" if f.name in ASM_ENTRIES and f.name != "system_call" else "T", f.name))
        rows.append((self._sorted[-1].end, "T", "_etext"))
        for d in sorted(self.data.values(), key=lambda d: d.address):
            rows.append((d.address, d.kind, d.name))
            if d.name == "jiffies":
                rows.append((d.address, "D", "jiffies_64"))
        return "".join(f"{addr:016x} {kind} {name}\n" for addr, kind, name in sorted(rows, key=lambda r: r[0]))
