"""The Linux guest's system calls: the kernel path below each handler and what the call does.

Numbers are the x86-64 ABI's (`kernel_image.SYSCALLS`, which also fills the
kernel's sys_call_table); a call not listed here goes no deeper than its
`sys_<name>` handler and returns.  How a row is run: `syscalls.SystemCalls`.
"""

from __future__ import annotations

from .syscalls import (SystemCall, contend, exit_task, new_descriptor, read_clock, receive, send,
                       sleep_as_programmed, start_child, transferred, unmap, wait_child, yield_cpu)

_READ = ("vfs_read", "do_sync_read", "generic_file_aio_read")
_WRITE = ("vfs_write", "do_sync_write", "generic_file_aio_write")
_FORK = ("do_fork", "copy_process")

LINUX_SYSCALLS: dict[str, SystemCall] = {
    "read": SystemCall(_READ, disk="read", result=transferred),
    "pread64": SystemCall(_READ, disk="read", result=transferred),
    "write": SystemCall(_WRITE, result=transferred),
    "pwrite64": SystemCall(_WRITE, result=transferred),
    "open": SystemCall(("do_sys_open", "do_filp_open", "path_walk"), result=new_descriptor),
    "stat": SystemCall(("vfs_stat", "path_walk")),
    "fsync": SystemCall(("vfs_fsync",), disk="write"),
    "recvfrom": SystemCall(("sock_recvmsg", "tcp_recvmsg"), effect=receive, result=transferred),
    "sendto": SystemCall(("sock_sendmsg", "tcp_sendmsg", "dev_queue_xmit", "e1000_xmit_frame"), effect=send,
                         result=transferred),
    "futex": SystemCall(("do_futex", "futex_wait"), effect=contend),
    "nanosleep": SystemCall(("hrtimer_nanosleep", "do_nanosleep"), timeout=True, effect=sleep_as_programmed),
    "select": SystemCall(("core_sys_select", "do_select", "schedule_hrtimeout_range"), timeout=True,
                         effect=sleep_as_programmed),
    "poll": SystemCall(("do_sys_poll", "schedule_hrtimeout_range"), timeout=True, effect=sleep_as_programmed),
    "epoll_wait": SystemCall(("ep_poll", "schedule_hrtimeout_range"), timeout=True, effect=sleep_as_programmed),
    "wait4": SystemCall(("do_wait",), effect=wait_child),
    "munmap": SystemCall(("do_munmap", "unmap_region"), effect=unmap),
    "mmap": SystemCall(("do_mmap_pgoff",)),
    "brk": SystemCall(("do_brk",)),
    "clone": SystemCall(_FORK, effect=start_child),
    "fork": SystemCall(_FORK),
    "execve": SystemCall(("do_execve", "search_binary_handler", "load_elf_binary")),
    "exit_group": SystemCall(("do_group_exit", "do_exit"), effect=exit_task),
    "getdents": SystemCall(("vfs_readdir",)),
    "ioctl": SystemCall(("do_vfs_ioctl",)),
    "kill": SystemCall(("kill_pid_info",)),
    "sched_yield": SystemCall(effect=yield_cpu),
    "gettimeofday": SystemCall(effect=read_clock),
    "getpid": SystemCall(result=lambda abi, task: task.tgid),
    "gettid": SystemCall(result=lambda abi, task: task.pid),
    "getppid": SystemCall(result=lambda abi, task: task.parent.tgid if task.parent else 0),
    "socket": SystemCall(result=new_descriptor),
    "accept": SystemCall(result=new_descriptor),
    "openat": SystemCall(result=new_descriptor),
    "clock_gettime": SystemCall(effect=read_clock),
}
