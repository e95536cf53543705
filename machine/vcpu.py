"""Virtual CPUs: the architectural state probes read.

A VCPU starts in the state of a 64-bit Linux kernel idling in its idle loop:
long mode on (EFER.LME|LMA|SCE|NXE), paging and protection on, kernel code
and stack selectors, the kernel GS base pointing at the CPU's per-CPU area.
"""

from __future__ import annotations

from vp_runtime import spec

KERNEL_CS, KERNEL_SS = 0x10, 0x18
CR0_PG_WP_NE_ET_MP_PE = 0x80050033
CR4_LINUX = 0x1606F0
EFER_SCE_LME_LMA_NXE = 0xD01
APIC_DEFAULT_BASE = 0xFEE00000
RFLAGS_IF = 0x246
# Where an idle VCPU stands until a guest model schedules work on it: the
# kernel's idle loop, on the CPU's idle stack, with the kernel page tables.
IDLE_RIP = 0xFFFFFFFF8100B2A0
IDLE_STACK_TOP = 0xFFFF88003FC04000
PER_CPU_AREA = 0xFFFF88003FC80000
PER_CPU_STRIDE = 0x40000
KERNEL_CR3 = 0x1A0D000

# A VCPU holds a value for each of the spec's register globals (Table 2-1).
REGISTER_NAMES = tuple(g.name for g in spec.REGISTER_GLOBALS)


class VCPU:
    """One virtual CPU: its index, the physical CPU it runs on, and its registers."""

    __slots__ = ("index", "pcpu", "thread_id", "regs", "hv")

    def __init__(self, index: int, pcpu: int, thread_id: int):
        self.index = index
        self.pcpu = pcpu
        self.thread_id = thread_id
        self.regs: dict[str, int] = dict.fromkeys(REGISTER_NAMES, 0)
        self.regs.update(
            CS=KERNEL_CS, SS=KERNEL_SS, DS=0, ES=0, FS=0, GS=0,
            CR0=CR0_PG_WP_NE_ET_MP_PE, CR4=CR4_LINUX, EFER=EFER_SCE_LME_LMA_NXE,
            RFLAGS=RFLAGS_IF, DR6=0xFFFF0FF0, DR7=0x400, APIC_BASEPA=APIC_DEFAULT_BASE,
            RIP=IDLE_RIP, CR3=KERNEL_CR3,
            RSP=IDLE_STACK_TOP - 0x10000 * index - 0xA8, RBP=IDLE_STACK_TOP - 0x10000 * index - 0x60,
            GSBASE=PER_CPU_AREA + PER_CPU_STRIDE * index,
        )
        # Hardware-virtualization fields (VMCS or VMCB names) of the last exit.
        self.hv: dict[str, int] = {}
