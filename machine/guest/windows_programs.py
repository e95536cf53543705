"""What the Windows guest's processes do: a Windows server's programs and its workloads.

The statistics mean what they mean for the Linux guest (`programs.Program`);
the calls are Windows system services.  The System process's threads are
programs too (kernel threads, each with its loop in the kernel); every other
program is an executable image.  A workload names the programs started
beyond the system's own (`SYSTEM_PROCESSES`): the services services.exe
starts and what runs in the console (`CONSOLE_PROGRAMS`, started by
explorer.exe), with the workload's network rate; every workload of the
Linux guest has its counterpart here, under the same name.
"""

from __future__ import annotations

from .programs import Program, Workload

_FILE_IO = {"NtReadFile": 5, "NtWriteFile": 2, "NtCreateFile": 2, "NtClose": 2, "NtQueryInformationFile": 2,
            "NtQueryAttributesFile": 2, "NtSetInformationFile": 1, "NtMapViewOfSection": 1,
            "NtUnmapViewOfSection": 0.5, "NtAllocateVirtualMemory": 1, "NtQueryDirectoryFile": 0.3}
_REGISTRY = {"NtOpenKey": 1, "NtQueryValueKey": 2, "NtClose": 1}

# The threads of the System process: what each one's loop is (a kernel function), how often it wakes.
SYSTEM_THREADS: dict[str, str] = {
    "ExpWorkerThread": "nt!ExpWorkerThread",
    "ExpWorkerThreadBalanceManager": "nt!ExpWorkerThreadBalanceManager",
    "KeBalanceSetManager": "nt!KeBalanceSetManager",
    "KeSwapProcessOrStack": "nt!KeSwapProcessOrStack",
    "MmZeroPageThread": "nt!MmZeroPageThread",
    "MiModifiedPageWriter": "nt!MiModifiedPageWriter",
    "MiMappedPageWriter": "nt!MiMappedPageWriter",
}
# (a system thread, how many of it) in the order the kernel starts them.
SYSTEM_THREAD_COUNTS = (("MmZeroPageThread", 1), ("ExpWorkerThread", 4), ("ExpWorkerThreadBalanceManager", 1),
                        ("KeBalanceSetManager", 1), ("KeSwapProcessOrStack", 1), ("MiModifiedPageWriter", 1),
                        ("MiMappedPageWriter", 1))

WINDOWS_PROGRAMS: dict[str, Program] = {p.comm: p for p in [
    Program("ExpWorkerThread", kernel_thread=True, step_us=60, syscall_share=0.0, sleep_us=1_000_000),
    Program("ExpWorkerThreadBalanceManager", kernel_thread=True, step_us=30, syscall_share=0.0, sleep_us=1_000_000),
    Program("KeBalanceSetManager", kernel_thread=True, step_us=50, syscall_share=0.0, sleep_us=1_000_000),
    Program("KeSwapProcessOrStack", kernel_thread=True, step_us=40, syscall_share=0.0, sleep_us=4_000_000),
    Program("MmZeroPageThread", kernel_thread=True, step_us=200, syscall_share=0.0, sleep_us=500_000),
    Program("MiModifiedPageWriter", kernel_thread=True, step_us=120, syscall_share=0.0, sleep_us=5_000_000),
    Program("MiMappedPageWriter", kernel_thread=True, step_us=120, syscall_share=0.0, sleep_us=5_000_000),
    Program("smss.exe", step_us=80, syscall_share=0.6, syscalls={"NtWaitForMultipleObjects": 3, "NtClose": 1},
            sleep_us=10_000_000),
    Program("csrss.exe", step_us=60, syscall_share=0.7,
            syscalls={"NtReplyWaitReceivePortEx": 4, "NtQueryInformationProcess": 1, "NtClose": 1},
            sleep_us=2_000_000),
    Program("wininit.exe", step_us=80, syscall_share=0.6, syscalls={"NtWaitForMultipleObjects": 4, **_REGISTRY},
            sleep_us=10_000_000),
    Program("winlogon.exe", step_us=80, syscall_share=0.6, syscalls={"NtWaitForMultipleObjects": 4, **_REGISTRY},
            sleep_us=5_000_000),
    Program("services.exe", step_us=70, syscall_share=0.6, threads=2,
            syscalls={"NtReplyWaitReceivePortEx": 4, "NtWaitForMultipleObjects": 1, **_REGISTRY},
            sleep_us=1_000_000),
    Program("lsass.exe", step_us=90, syscall_share=0.6, threads=3,
            syscalls={"NtReplyWaitReceivePortEx": 3, "NtQueryInformationToken": 2, "NtOpenThreadToken": 1,
                      "NtWaitForSingleObject": 1, "NtClose": 1},
            sleep_us=1_000_000),
    Program("lsm.exe", step_us=80, syscall_share=0.6,
            syscalls={"NtReplyWaitReceivePortEx": 3, "NtWaitForMultipleObjects": 1}, sleep_us=5_000_000),
    Program("svchost.exe", step_us=90, syscall_share=0.6, threads=3,
            syscalls={"NtWaitForMultipleObjects": 3, "NtRemoveIoCompletion": 1, "NtDeviceIoControlFile": 1,
                      "NtReadFile": 1, "NtQueryPerformanceCounter": 1, **_REGISTRY},
            sleep_us=500_000),
    Program("spoolsv.exe", step_us=80, syscall_share=0.6,
            syscalls={"NtWaitForMultipleObjects": 3, "NtReplyWaitReceivePortEx": 1}, sleep_us=5_000_000),
    Program("explorer.exe", step_us=120, syscall_share=0.5, fault_share=0.05,
            syscalls={"NtWaitForMultipleObjects": 3, "NtQueryAttributesFile": 1, **_REGISTRY},
            sleep_us=2_000_000),
    # A database server: network requests through an I/O completion port, data and log files.
    Program("sqlservr.exe", step_us=120, syscall_share=0.45, fault_share=0.02, fpu=True, threads=6,
            syscalls={"NtRemoveIoCompletion": 3, "NtDeviceIoControlFile": 3, "NtReadFile": 4, "NtWriteFile": 2,
                      "NtFlushBuffersFile": 0.5, "NtWaitForSingleObject": 3, "NtSetEvent": 1,
                      "NtQueryPerformanceCounter": 2, "NtQuerySystemTime": 1, "NtYieldExecution": 0.3},
            disk_miss=0.25, sleep_us=30_000, rare_faults={"Guest_GP": 0.00001}),
    # The shell and what it runs.
    Program("cmd.exe", step_us=100, syscall_share=0.6, fault_share=0.1,
            syscalls={"NtReadFile": 3, "NtWriteFile": 2, "NtQueryAttributesFile": 1, "NtQueryInformationFile": 1,
                      "NtDeviceIoControlFile": 1, "NtQueryValueKey": 1},
            waits={"NtReadFile": 700_000}, spawns=("findstr.exe", "xcopy.exe", "tasklist.exe", "nmake.exe"),
            spawn_every_s=4.0),
    Program("findstr.exe", step_us=90, syscall_share=0.4, fault_share=0.15, lifetime_s=0.01, syscalls=_FILE_IO),
    Program("xcopy.exe", step_us=80, syscall_share=0.5, fault_share=0.15, lifetime_s=0.006,
            syscalls={**_FILE_IO, "NtQueryDirectoryFile": 3, "NtCreateFile": 3}),
    Program("tasklist.exe", step_us=80, syscall_share=0.5, fault_share=0.2, lifetime_s=0.004,
            syscalls={"NtQuerySystemInformation": 4, "NtOpenProcess": 2, "NtQueryInformationProcess": 2,
                      "NtClose": 2, "NtWriteFile": 1}),
    Program("nmake.exe", step_us=150, syscall_share=0.5, fault_share=0.1, lifetime_s=0.05,
            syscalls={**_FILE_IO, "NtQueryAttributesFile": 6}, spawns=("cl.exe", "link.exe"), spawn_every_s=0.01),
    Program("cl.exe", step_us=400, syscall_share=0.05, fault_share=0.12, fpu=True, lifetime_s=0.6,
            syscalls={**_FILE_IO, "NtAllocateVirtualMemory": 4, "NtMapViewOfSection": 2},
            rare_faults={"Guest_UD": 0.00002}),
    Program("link.exe", step_us=250, syscall_share=0.15, fault_share=0.1, lifetime_s=0.08, syscalls=_FILE_IO),
    # A CPU torture test: every few milliseconds it provokes one exception or another.
    Program("crashme.exe", step_us=300, syscall_share=0.6, fault_share=0.05,
            syscalls={"NtDelayExecution": 4, "NtQueryInformationProcess": 1, "NtSetEvent": 1}, sleep_us=5_000,
            rare_faults={name: 0.02 for name in (
                "Guest_DE", "Guest_DB", "Guest_BP", "Guest_OF", "Guest_BR", "Guest_UD", "Guest_NM",
                "Guest_TS", "Guest_NP", "Guest_SS", "Guest_GP", "Guest_MF", "Guest_AC", "Guest_XF",
                "Guest_RESERVED_FAULT", "Guest_MC", "Guest_NMI")}),
]}

# The system's own processes: (program, the program of its parent, milliseconds after the kernel
# starts its first process), in the order they start.  smss.exe is the System process's child.
SYSTEM_PROCESSES = (("smss.exe", "System", 0), ("csrss.exe", "smss.exe", 200), ("wininit.exe", "smss.exe", 220),
                    ("csrss.exe", "smss.exe", 250), ("winlogon.exe", "smss.exe", 270),
                    ("services.exe", "wininit.exe", 400), ("lsass.exe", "wininit.exe", 420),
                    ("lsm.exe", "wininit.exe", 440), ("explorer.exe", "winlogon.exe", 1500))
CONSOLE_PROGRAMS = frozenset({"cmd.exe", "crashme.exe"})  # started by explorer.exe; the others are services
SERVICES_START_MS = 700  # services.exe starts its services from then, one every 100 ms

_SERVICES = ("svchost.exe", "svchost.exe", "svchost.exe", "svchost.exe")
WINDOWS_WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("default", (*_SERVICES, "spoolsv.exe", "sqlservr.exe", "cmd.exe"), network_pps=80),
    Workload("idle", _SERVICES[:2], network_pps=2),
    Workload("io", (*_SERVICES, "sqlservr.exe", "sqlservr.exe", "cmd.exe"), network_pps=300),
    Workload("faults", (*_SERVICES[:2], "cmd.exe", "crashme.exe"), network_pps=20),
    Workload("triplefault", (*_SERVICES[:2], "cmd.exe"), network_pps=20, triple_fault_at_s=4.0),
]}
