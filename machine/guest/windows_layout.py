"""Where the simulated Windows guest keeps things: address-space layout and structure offsets.

The offsets are those of 64-bit Windows 7 SP1 (build 7601, ntkrnlmp.exe), so
that scripts written for that kernel (the toolkit's preloads, WinDbg habits)
find what they look for: the KPCR at the kernel GS base with its self
pointer and its KPRCB, whose CurrentThread is the running KTHREAD (the first
member of its ETHREAD); KTHREAD.Process (and ApcState.Process) the EPROCESS
(whose first member is its KPROCESS); EPROCESS.UniqueProcessId,
ActiveProcessLinks, ImageFileName.  These numbers are the single truth: the
kernel's accessor functions (PsGetCurrentProcess...) are generated from
them, so offatseg/offatret recover them, the model writes the structures
with them, and the guest's library and structure include (`STRUCTS`) name
them.
"""

from __future__ import annotations

from ..x86 import APIC_DEFAULT_BASE
from .structs import Field, Layouts

# ---- kernel address space -------------------------------------------------------------
# The boot loader maps the images it loads (hal, nt) at KSEG_BASE plus their physical address.
KSEG_BASE = 0xFFFF_F800_0000_0000
BOOT_IMAGES_PHYS = 0x0280_0000  # 40 MiB: mapped with 2 MiB pages up to BOOT_IMAGES_END
BOOT_IMAGES_END = 0x0340_0000
# Boot drivers load at system-PTE addresses, their pages after the boot images.
DRIVERS_PHYS = 0x0340_0000
# Module -> its image's base address (hal and nt: KSEG_BASE + physical address).
MODULE_BASES = {
    "hal": 0xFFFF_F800_02A0_2000,
    "nt": 0xFFFF_F800_02A4_B000,
    "ataport": 0xFFFF_F880_0105_D000,
    "Ntfs": 0xFFFF_F880_0124_E000,
    "ndis": 0xFFFF_F880_014A_7000,
    "tcpip": 0xFFFF_F880_0160_0000,
    "CLASSPNP": 0xFFFF_F880_0184_8000,
    "afd": 0xFFFF_F880_03C4_F000,
}
MODULE_SIZES = {"hal": 0x49000, "nt": 0x5E6000}  # the boot images'; a driver's is its code, in pages
IMPORTS_OFFSET = 0x200  # a module's import address table, in its first page
TEXT_OFFSET = 0x1000  # its code, from its second page
NT_DATA_OFFSET = 0x1AD000  # nt's .data section
# Nonpaged pool: a linear mapping of physical memory, where the kernel's objects live
# (EPROCESS, ETHREAD, the KPCRs of the other processors, kernel stacks).
POOL_BASE = 0xFFFF_FA80_0000_0000
FRAMES_START = 0x0400_0000  # physical pages for page tables, objects, stacks, user memory
# The boot processor's GDT, IDT and TSS, in memory the loader set aside (KSEG_BASE + physical).
BOOT_DESCRIPTORS_PHYS = 0x00B9_6000
GDT_OFFSET, IDT_OFFSET, TSS_OFFSET = 0x0, 0x80, 0x1080
POOL_HEADER = 0x60  # an object's body follows its pool header and object header

# ---- user address space --------------------------------------------------------------
USER_IMAGE = 0x0000_0000_FF6A_0000  # a 64-bit .exe's base, relocated below 4 GiB
USER_HEAP = 0x0000_0000_0034_0000  # the process heap (demand-paged)
NTDLL = 0x0000_0000_77A1_0000  # ntdll.dll, at the same address in every process
NTDLL_PAGES = 0x1A9
USER_STACK_TOP = 0x0000_0000_0013_0000
FIRST_TEB = 0x0000_07FF_FFFD_E000  # a thread's TEB (two pages); the next thread's is below
TEB_SIZE = 0x2000
PEB = 0x0000_07FF_FFFD_3000
USER_CS, USER_SS = 0x33, 0x2B  # KGDT64_R3_CODE | 3, KGDT64_R3_DATA | 3
KERNEL_CS, KERNEL_SS = 0x10, 0x18  # KGDT64_R0_CODE, KGDT64_R0_DATA

# ---- devices --------------------------------------------------------------------------
APIC_PHYS = APIC_DEFAULT_BASE
APIC_VERSION = 0x0005_0014  # version 0x14, 6 LVT entries
TIMER_VECTOR = 0xD1  # CLOCK_LEVEL
IPI_VECTOR = 0xE1  # IPI_LEVEL: the reschedule (and every other) interprocessor interrupt
DISK_VECTOR = 0x82
NET_VECTOR = 0x92

# ---- KPCR and KPRCB -------------------------------------------------------------------
KPCR_GDT_BASE = 0x000
KPCR_TSS_BASE = 0x008
KPCR_USER_RSP = 0x010
KPCR_SELF = 0x018
KPCR_CURRENT_PRCB = 0x020
KPCR_IDT_BASE = 0x038
KPCR_IRQL = 0x050
KPCR_PRCB = 0x180
KPRCB_CURRENT_THREAD = 0x008
KPRCB_NEXT_THREAD = 0x010
KPRCB_IDLE_THREAD = 0x018
KPRCB_NUMBER = 0x024
KPRCB_RSP_BASE = 0x028  # the top of the current thread's kernel stack (where KiSystemCall64 switches)
KPCR_SIZE = 0x4E80  # with its KPRCB

# ---- KTHREAD and ETHREAD ----------------------------------------------------------------
DISPATCHER_TYPE = 0x000  # the object type byte of a dispatcher header
THREAD_OBJECT, PROCESS_OBJECT = 6, 3
KTHREAD_INITIAL_STACK = 0x028
KTHREAD_STACK_LIMIT = 0x030
KTHREAD_KERNEL_STACK = 0x038
KTHREAD_APC_STATE = 0x050
KTHREAD_APC_STATE_PROCESS = 0x070  # ApcState.Process: the process the thread runs in
KTHREAD_TEB = 0x0B8
KTHREAD_STATE = 0x164
THREAD_READY, THREAD_RUNNING, THREAD_WAITING = 1, 2, 5
KTHREAD_PROCESS = 0x210  # the thread's own process
KTHREAD_THREAD_LIST_ENTRY = 0x2F8
KTHREAD_SIZE = 0x360
ETHREAD_TCB = 0x000
ETHREAD_CID = 0x3B8  # CLIENT_ID: UniqueProcess, then UniqueThread
ETHREAD_WIN32_START_ADDRESS = 0x418
ETHREAD_THREAD_LIST_ENTRY = 0x428
ETHREAD_SIZE = 0x498
CLIENT_ID_UNIQUE_PROCESS, CLIENT_ID_UNIQUE_THREAD = 0x0, 0x8

# ---- KPROCESS and EPROCESS --------------------------------------------------------------
KPROCESS_DIRECTORY_TABLE_BASE = 0x028  # the physical address of its PML4 (CR3)
KPROCESS_THREAD_LIST_HEAD = 0x030
KPROCESS_SIZE = 0x160
EPROCESS_PCB = 0x000
EPROCESS_UNIQUE_PROCESS_ID = 0x180
EPROCESS_ACTIVE_PROCESS_LINKS = 0x188
EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID = 0x290
EPROCESS_IMAGE_FILE_NAME = 0x2E0
IMAGE_FILE_NAME_LEN = 15  # UCHAR[15]: up to 14 characters and a NUL
EPROCESS_THREAD_LIST_HEAD = 0x308
EPROCESS_ACTIVE_THREADS = 0x328
EPROCESS_PEB = 0x338
EPROCESS_SE_AUDIT_PROCESS_CREATION_INFO = 0x390  # .ImageFileName: OBJECT_NAME_INFORMATION *
EPROCESS_SIZE = 0x4D0
LIST_ENTRY_FLINK, LIST_ENTRY_BLINK = 0x0, 0x8
UNICODE_STRING_LENGTH, UNICODE_STRING_MAXIMUM_LENGTH, UNICODE_STRING_BUFFER = 0x0, 0x2, 0x8
UNICODE_STRING_SIZE = 0x10  # OBJECT_NAME_INFORMATION is one UNICODE_STRING, Name

# ---- TEB and PEB -----------------------------------------------------------------------------
TEB_STACK_BASE = 0x008
TEB_STACK_LIMIT = 0x010
TEB_SELF = 0x030  # NT_TIB.Self
TEB_CLIENT_ID = 0x040
TEB_PEB = 0x060
PEB_IMAGE_BASE_ADDRESS = 0x010

KERNEL_STACK_SIZE = 0x6000
KTRAP_FRAME_SIZE = 0x190  # the user registers saved at the top of the kernel stack

# ---- the build ---------------------------------------------------------------------------
BUILD_NUMBER = 7601
NT_BUILD_NUMBER = 0xF000_0000 | BUILD_NUMBER  # a free (retail) build
NT_BUILD_LAB = "7601.17514.amd64fre.win7sp1_rtm.101119-1850"
SYSTEM_ROOT = "\\Device\\HarddiskVolume1\\Windows"
IDLE_PID, SYSTEM_PID = 0, 4
CID_STEP = 4  # process and thread ids come from one handle table: multiples of 4


def pool(phys: int) -> int:
    """The nonpaged-pool address of physical address `phys`."""
    return POOL_BASE + phys


def kseg(phys: int) -> int:
    """The address at which the boot loader mapped physical address `phys`."""
    return KSEG_BASE + phys


def _fields(*rows) -> tuple:
    return tuple(Field(*row) for row in rows)


_PTR, _U64 = "void *", "unsigned long long"
# The structures as the kernel's debug information describes them (the fields the model keeps).
STRUCTS: Layouts = {
    "_LIST_ENTRY": _fields((LIST_ENTRY_FLINK, "struct _LIST_ENTRY *", "Flink"),
                           (LIST_ENTRY_BLINK, "struct _LIST_ENTRY *", "Blink")),
    "_UNICODE_STRING": _fields((UNICODE_STRING_LENGTH, "unsigned short", "Length"),
                               (UNICODE_STRING_MAXIMUM_LENGTH, "unsigned short", "MaximumLength"),
                               (UNICODE_STRING_BUFFER, "unsigned short *", "Buffer")),
    "_OBJECT_NAME_INFORMATION": _fields((0, "struct _UNICODE_STRING", "Name")),
    "_SE_AUDIT_PROCESS_CREATION_INFO": _fields((0, "struct _OBJECT_NAME_INFORMATION *", "ImageFileName")),
    "_CLIENT_ID": _fields((CLIENT_ID_UNIQUE_PROCESS, _PTR, "UniqueProcess"),
                          (CLIENT_ID_UNIQUE_THREAD, _PTR, "UniqueThread")),
    "_DISPATCHER_HEADER": _fields((DISPATCHER_TYPE, "unsigned char", "Type")),
    "_KPRCB": _fields((KPRCB_CURRENT_THREAD, "struct _KTHREAD *", "CurrentThread"),
                      (KPRCB_NEXT_THREAD, "struct _KTHREAD *", "NextThread"),
                      (KPRCB_IDLE_THREAD, "struct _KTHREAD *", "IdleThread"),
                      (KPRCB_NUMBER, "unsigned int", "Number"),
                      (KPRCB_RSP_BASE, _U64, "RspBase")),
    "_KPCR": _fields((KPCR_GDT_BASE, _PTR, "GdtBase"), (KPCR_TSS_BASE, _PTR, "TssBase"),
                     (KPCR_USER_RSP, _U64, "UserRsp"), (KPCR_SELF, "struct _KPCR *", "Self"),
                     (KPCR_CURRENT_PRCB, "struct _KPRCB *", "CurrentPrcb"), (KPCR_IDT_BASE, _PTR, "IdtBase"),
                     (KPCR_IRQL, "unsigned char", "Irql"), (KPCR_PRCB, "struct _KPRCB", "Prcb")),
    "_KAPC_STATE": _fields((KTHREAD_APC_STATE_PROCESS - KTHREAD_APC_STATE, "struct _KPROCESS *", "Process")),
    "_KTHREAD": _fields((DISPATCHER_TYPE, "struct _DISPATCHER_HEADER", "Header"),
                        (KTHREAD_INITIAL_STACK, _PTR, "InitialStack"), (KTHREAD_STACK_LIMIT, _PTR, "StackLimit"),
                        (KTHREAD_KERNEL_STACK, _PTR, "KernelStack"),
                        (KTHREAD_APC_STATE, "struct _KAPC_STATE", "ApcState"), (KTHREAD_TEB, _PTR, "Teb"),
                        (KTHREAD_STATE, "unsigned char", "State"),
                        (KTHREAD_PROCESS, "struct _KPROCESS *", "Process")),
    "_ETHREAD": _fields((ETHREAD_TCB, "struct _KTHREAD", "Tcb"), (ETHREAD_CID, "struct _CLIENT_ID", "Cid"),
                        (ETHREAD_WIN32_START_ADDRESS, _PTR, "Win32StartAddress"),
                        (ETHREAD_THREAD_LIST_ENTRY, "struct _LIST_ENTRY", "ThreadListEntry")),
    "_KPROCESS": _fields((DISPATCHER_TYPE, "struct _DISPATCHER_HEADER", "Header"),
                         (KPROCESS_DIRECTORY_TABLE_BASE, _U64, "DirectoryTableBase")),
    "_EPROCESS": _fields((EPROCESS_PCB, "struct _KPROCESS", "Pcb"),
                         (EPROCESS_UNIQUE_PROCESS_ID, _PTR, "UniqueProcessId"),
                         (EPROCESS_ACTIVE_PROCESS_LINKS, "struct _LIST_ENTRY", "ActiveProcessLinks"),
                         (EPROCESS_INHERITED_FROM_UNIQUE_PROCESS_ID, _PTR, "InheritedFromUniqueProcessId"),
                         (EPROCESS_IMAGE_FILE_NAME, "unsigned char", "ImageFileName", IMAGE_FILE_NAME_LEN),
                         (EPROCESS_THREAD_LIST_HEAD, "struct _LIST_ENTRY", "ThreadListHead"),
                         (EPROCESS_ACTIVE_THREADS, "unsigned int", "ActiveThreads"),
                         (EPROCESS_PEB, "struct _PEB *", "Peb"),
                         (EPROCESS_SE_AUDIT_PROCESS_CREATION_INFO, "struct _SE_AUDIT_PROCESS_CREATION_INFO",
                          "SeAuditProcessCreationInfo")),
    "_NT_TIB": _fields((TEB_STACK_BASE, _PTR, "StackBase"), (TEB_STACK_LIMIT, _PTR, "StackLimit"),
                       (TEB_SELF, "struct _NT_TIB *", "Self")),
    "_TEB": _fields((0, "struct _NT_TIB", "NtTib"), (TEB_CLIENT_ID, "struct _CLIENT_ID", "ClientId"),
                    (TEB_PEB, "struct _PEB *", "ProcessEnvironmentBlock")),
    "_PEB": _fields((PEB_IMAGE_BASE_ADDRESS, _PTR, "ImageBaseAddress")),
}
