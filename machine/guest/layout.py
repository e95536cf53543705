"""Where the simulated Linux guest keeps things: address-space layout and structure offsets.

The numbers follow a 64-bit Linux 2.6.32 kernel closely enough that scripts
written for one (the reference's appendix, the toolkit's preloads) find what
they look for.  The structure offsets here are the only truth: the kernel's
machine code (sys_getpid, get_task_comm) is generated from them, so
offatret/offatstrcpy recover them, the guest preload library names them, and
`STRUCTS` declares them for scripts.
"""

from __future__ import annotations

from ..x86 import APIC_DEFAULT_BASE
from .structs import Field, Layouts

# ---- virtual address space -----------------------------------------------------
PAGE_OFFSET = 0xFFFF_8800_0000_0000  # direct map of all physical memory
KERNEL_TEXT_VIRT = 0xFFFF_FFFF_8100_0000
KERNEL_TEXT_PHYS = 0x0100_0000  # 16 MiB
KERNEL_IMAGE_SIZE = 0x0080_0000  # text + data + bss (8 MiB), mapped with 2 MiB pages
KERNEL_DATA_OFFSET = 0x0040_0000  # data starts 4 MiB into the image
FRAMES_START = 0x0200_0000  # physical pages for page tables, tasks, stacks, user memory

USER_TEXT = 0x0040_0000
USER_HEAP = 0x0060_0000
USER_MMAP_BASE = 0x7F3A_2C00_0000  # shared libraries (libc) and anonymous mmaps
LIBC_PAGES = 0x180  # libc's text (1.5 MiB), mapped at USER_MMAP_BASE
USER_STACK_TOP = 0x7FFF_F7FF_F000
USER_FS_BASE = 0x7F3A_2C4E_B700  # TLS is in FS; user processes leave GS base at 0
USER_CS, USER_SS = 0x33, 0x2B
KERNEL_CS, KERNEL_SS = 0x10, 0x18

IDT_PAGE = 0xFFFF_FFFF_FF5F_D000  # the fixmap page the IDT is read through

# ---- devices ---------------------------------------------------------------------
APIC_PHYS = APIC_DEFAULT_BASE  # the kernel leaves each local APIC at its reset base
APIC_VERSION = 0x0004_0011  # version 0x11, 5 LVT entries (max LVT index 4)

# ---- per-CPU data ---------------------------------------------------------------
# The kernel GS base of each CPU points at its per-CPU area; the first word is
# the current task (as the x86-64 PDA's pcurrent was).
PERCPU_CURRENT_TASK = 0x0
PERCPU_GDT = 0x1000  # the CPU's GDT (gdt_page: GDT_ENTRIES 8-byte entries)
PERCPU_TSS = 0x1080  # the CPU's TSS (init_tss: the 104-byte hardware part, no I/O bitmap)
PERCPU_AREA_SIZE = 0x2000

# ---- descriptor tables ---------------------------------------------------------------
# The GDT of Linux 2.6 x86-64 (arch/x86/include/asm/segment.h): the flat 32- and 64-bit kernel
# and user segments, then the TSS (a 16-byte system descriptor) at its selector.
GDT_KERNEL32_CS = 0x08
GDT_USER32_CS = 0x20
TSS_SELECTOR = 0x40
GDT_ENTRIES = 16
TSS_SIZE = 0x68
TSS_RSP0 = 0x4  # the stack the CPU switches to on entering the kernel from user mode
IDT_VECTORS = 256

# ---- struct task_struct -----------------------------------------------------------
TASK_STATE = 0x0
TASK_STACK = 0x8
TASK_MM = 0x218
TASK_ACTIVE_MM = 0x220
TASK_PID = 0x2B8
TASK_TGID = 0x2BC
TASK_REAL_PARENT = 0x2C8
TASK_PARENT = 0x2D0
TASK_COMM = 0x490
TASK_COMM_LEN = 16
TASK_STRUCT_SIZE = 0x600

# ---- struct mm_struct ---------------------------------------------------------------
MM_PGD = 0x48  # virtual address of the PML4

THREAD_SIZE = 0x2000  # kernel stack per task
PT_REGS_SIZE = 168  # struct pt_regs: the user registers saved at the top of the kernel stack

# Linux x86-64 interrupt vectors
TIMER_VECTOR = 0xEF  # LOCAL_TIMER_VECTOR
CALL_FUNCTION_VECTOR = 0xFC
RESCHEDULE_VECTOR = 0xFD
IRQ0_VECTOR = 0x30  # legacy IRQ n arrives at 0x30 + n
DISK_IRQ = 14
DISK_VECTOR = IRQ0_VECTOR + DISK_IRQ
NET_VECTOR = 0x49  # the NIC's IO-APIC pin, as the kernel assigned it

KERNEL_VERSION = "2.6.32-5-amd64"
COMMAND_LINE = f"BOOT_IMAGE=/boot/vmlinuz-{KERNEL_VERSION} root=/dev/sda1 ro quiet"
BANNER = (f"Linux version {KERNEL_VERSION} (debian-kernel@lists.debian.org) "
          "(gcc version 4.3.5 (Debian 4.3.5-4) ) #1 SMP Mon Jan 16 16:22:28 UTC 2012\n")


def direct_map(phys: int) -> int:
    """The kernel virtual address of physical address `phys`."""
    return PAGE_OFFSET + phys

# The structures as the kernel's debug information describes them (the fields the model keeps).
STRUCTS: Layouts = {
    "task_struct": (Field(TASK_STATE, "long", "state"), Field(TASK_STACK, "void *", "stack"),
                    Field(TASK_MM, "struct mm_struct *", "mm"), Field(TASK_ACTIVE_MM, "struct mm_struct *", "active_mm"),
                    Field(TASK_PID, "int", "pid"), Field(TASK_TGID, "int", "tgid"),
                    Field(TASK_REAL_PARENT, "struct task_struct *", "real_parent"),
                    Field(TASK_PARENT, "struct task_struct *", "parent"),
                    Field(TASK_COMM, "char", "comm", TASK_COMM_LEN)),
    "mm_struct": (Field(MM_PGD, "void *", "pgd"),),
}
