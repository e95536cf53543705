"""What the guest's processes do: programs and the workloads made of them.

A program is a statistical description of a process's behaviour while it has
a CPU (how long between steps, how often a step is a system call or touches
an unmapped page, which calls it makes) and of how it blocks.  The guest
model draws every decision from one seeded random generator, so a workload
and a seed give one exact event sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Program:
    comm: str
    step_us: float = 200.0  # mean CPU time between two steps
    syscall_share: float = 0.3  # fraction of steps that are system calls
    fault_share: float = 0.05  # fraction of steps that touch a new page
    syscalls: dict[str, float] = field(default_factory=dict)  # name -> weight
    disk_miss: float = 0.1  # probability that a read misses the page cache
    sleep_us: float = 50_000.0  # mean sleep of nanosleep/select/poll/epoll_wait
    fpu: bool = False  # uses the FPU (lazy FPU switching: #NM after each switch-in)
    threads: int = 1
    lifetime_s: float | None = None  # exits (exit_group) after this much CPU time
    waits: dict[str, float] = field(default_factory=dict)  # syscall -> mean microseconds it blocks
    spawns: tuple[str, ...] = ()  # programs it starts with fork/execve and waits for
    spawn_every_s: float = 0.0  # mean simulated time between two spawns
    kernel_thread: bool = False
    text_pages: int = 64
    rare_faults: dict[str, float] = field(default_factory=dict)  # Guest_<X> -> probability per step


_FILE_IO = {"read": 5, "write": 2, "open": 2, "close": 2, "fstat": 2, "stat": 2, "lseek": 1, "mmap": 1,
            "munmap": 0.5, "brk": 1, "getdents": 0.3}

PROGRAMS: dict[str, Program] = {p.comm: p for p in [
    Program("init", step_us=80, syscall_share=0.6, syscalls={"select": 3, "wait4": 1, "stat": 1},
            sleep_us=5_000_000),
    Program("kthreadd", kernel_thread=True, step_us=50, syscall_share=0.0, sleep_us=10_000_000),
    Program("ksoftirqd/0", kernel_thread=True, step_us=30, syscall_share=0.0, sleep_us=400_000),
    Program("ksoftirqd/1", kernel_thread=True, step_us=30, syscall_share=0.0, sleep_us=450_000),
    Program("kworker/0:1", kernel_thread=True, step_us=60, syscall_share=0.0, sleep_us=1_000_000),
    Program("kworker/1:1", kernel_thread=True, step_us=60, syscall_share=0.0, sleep_us=1_100_000),
    Program("ata/0", kernel_thread=True, step_us=20, syscall_share=0.0, sleep_us=2_000_000),
    Program("jbd2/sda1-8", kernel_thread=True, step_us=120, syscall_share=0.0, sleep_us=5_000_000),
    Program("flush-8:0", kernel_thread=True, step_us=150, syscall_share=0.0, sleep_us=5_000_000),
    Program("sshd", step_us=60, syscall_share=0.7, syscalls={"select": 4, "read": 2, "write": 2, "rt_sigprocmask": 1},
            sleep_us=2_000_000, waits={"read": 300_000}),
    Program("bash", step_us=100, syscall_share=0.6, fault_share=0.1,
            syscalls={"read": 3, "write": 2, "rt_sigprocmask": 2, "ioctl": 1, "stat": 1, "rt_sigaction": 1},
            waits={"read": 700_000}, spawns=("ls", "cat", "grep", "make"), spawn_every_s=4.0),
    Program("ls", step_us=80, syscall_share=0.5, fault_share=0.2, lifetime_s=0.004,
            syscalls={**_FILE_IO, "getdents": 4, "open": 3}),
    Program("cat", step_us=80, syscall_share=0.5, fault_share=0.15, lifetime_s=0.003, syscalls=_FILE_IO),
    Program("grep", step_us=90, syscall_share=0.4, fault_share=0.15, lifetime_s=0.01, syscalls=_FILE_IO),
    Program("make", step_us=150, syscall_share=0.5, fault_share=0.1, lifetime_s=0.05,
            syscalls={**_FILE_IO, "stat": 6}, spawns=("gcc",), spawn_every_s=0.01),
    Program("gcc", step_us=150, syscall_share=0.4, fault_share=0.1, lifetime_s=0.02,
            syscalls={**_FILE_IO, "access": 2}, spawns=("cc1", "as"), spawn_every_s=0.005),
    Program("cc1", step_us=400, syscall_share=0.05, fault_share=0.12, fpu=True, lifetime_s=0.6,
            syscalls={**_FILE_IO, "brk": 4, "mmap": 2}, rare_faults={"Guest_UD": 0.00002}),
    Program("as", step_us=250, syscall_share=0.15, fault_share=0.1, lifetime_s=0.08, syscalls=_FILE_IO),
    Program("mysqld", step_us=120, syscall_share=0.45, fault_share=0.02, fpu=True, threads=4,
            syscalls={"epoll_wait": 2, "recvfrom": 3, "sendto": 3, "pread64": 4, "pwrite64": 2, "fsync": 0.5,
                      "futex": 3, "clock_gettime": 2, "gettimeofday": 1, "sched_yield": 0.3},
            disk_miss=0.25, sleep_us=30_000, rare_faults={"Guest_GP": 0.00001}),
    # A CPU torture test: every few milliseconds it provokes one exception or another.
    Program("crashme", step_us=300, syscall_share=0.6, fault_share=0.05,
            syscalls={"nanosleep": 4, "getpid": 1, "kill": 1}, sleep_us=5_000,
            rare_faults={name: 0.02 for name in (
                "Guest_DE", "Guest_DB", "Guest_BP", "Guest_OF", "Guest_BR", "Guest_UD", "Guest_NM",
                "Guest_TS", "Guest_NP", "Guest_SS", "Guest_GP", "Guest_MF", "Guest_AC", "Guest_XF",
                "Guest_RESERVED_FAULT", "Guest_MC", "Guest_NMI")}),
]}

KERNEL_THREADS = ("kthreadd", "ksoftirqd/0", "ksoftirqd/1", "kworker/0:1", "kworker/1:1", "ata/0",
                  "jbd2/sda1-8", "flush-8:0")


@dataclass(frozen=True)
class Workload:
    name: str
    daemons: tuple[str, ...]  # started by init at boot
    network_pps: float  # packets per second arriving at the NIC
    triple_fault_at_s: float | None = None


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("default", ("sshd", "mysqld", "bash"), network_pps=80),
    Workload("idle", ("sshd",), network_pps=2),
    Workload("io", ("sshd", "mysqld", "mysqld", "bash"), network_pps=300),
    Workload("faults", ("sshd", "bash", "crashme"), network_pps=20),
    Workload("triplefault", ("sshd", "bash"), network_pps=20, triple_fault_at_s=4.0),
]}
