"""Architectural x86-64 constants the machines share: control-register and EFER bits, reset values,
the local APIC's default base.

Numbers only the architecture fixes (Intel SDM vol. 3; AMD APM vol. 2) live
here, each named once; what a guest OS chooses (its selectors, its address
layout) lives with that guest.
"""

from __future__ import annotations

# CR0
CR0_PE = 1 << 0  # protection enable
CR0_MP = 1 << 1  # monitor coprocessor
CR0_ET = 1 << 4  # extension type (always 1)
CR0_NE = 1 << 5  # numeric error
CR0_WP = 1 << 16  # write protect
CR0_AM = 1 << 18  # alignment mask
CR0_NW = 1 << 29  # not write-through
CR0_CD = 1 << 30  # cache disable
CR0_PG = 1 << 31  # paging

# CR4
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_MCE = 1 << 6
CR4_PGE = 1 << 7
CR4_OSFXSR = 1 << 9
CR4_OSXMMEXCPT = 1 << 10

# EFER (MSR C000_0080)
EFER_SCE = 1 << 0  # syscall enable
EFER_LME = 1 << 8  # long mode enable
EFER_LMA = 1 << 10  # long mode active (set by the CPU when paging is turned on with LME)
EFER_NXE = 1 << 11  # no-execute enable

# RFLAGS
RFLAGS_FIXED = 1 << 1  # reserved, always 1
RFLAGS_PF = 1 << 2
RFLAGS_ZF = 1 << 6
RFLAGS_TF = 1 << 8
RFLAGS_IF = 1 << 9
RFLAGS_DF = 1 << 10
RFLAGS_IOPL = 3 << 12

# The state after RESET (SDM vol. 3, table 9-1): real mode at F000:FFF0, caches off.
RESET_CS = 0xF000
RESET_IP = 0xFFF0
CR0_RESET = CR0_CD | CR0_NW | CR0_ET  # 0x60000010
RFLAGS_RESET = RFLAGS_FIXED
DR6_RESET = 0xFFFF0FF0
DR7_RESET = 0x400
DESCRIPTOR_TABLE_RESET_LIMIT = 0xFFFF  # GDTR and IDTR: base 0, limit 0xffff

# The local APIC's physical base after reset (IA32_APIC_BASE), where every VCPU finds its own APIC.
APIC_DEFAULT_BASE = 0xFEE0_0000

# Model-specific registers (SDM vol. 4) readmsr reads (those that are register globals: spec.MSR_GLOBALS).
MSR_TSC = 0x10
MSR_APIC_BASE = 0x1B
APIC_BASE_BSP = 1 << 8  # IA32_APIC_BASE: this is the bootstrap processor
APIC_BASE_ENABLE = 1 << 11  # IA32_APIC_BASE: the local APIC is enabled
MSR_PMC0 = 0xC1  # IA32_PMC0..: the general-purpose performance counters
MSR_SYSENTER_CS = 0x174
MSR_SYSENTER_ESP = 0x175
MSR_SYSENTER_EIP = 0x176
MSR_PAT = 0x277
PAT_RESET = 0x0007040600070406
MSR_FIXED_CTR0 = 0x309  # IA32_FIXED_CTR0..2: instructions retired, core cycles, reference cycles
MSR_STAR = 0xC0000081
MSR_LSTAR = 0xC0000082
MSR_CSTAR = 0xC0000083
MSR_SFMASK = 0xC0000084

# Performance counters as RDPMC numbers them: general-purpose 0.., fixed ones with bit 30 set.
PMC_FIXED = 1 << 30
GENERAL_PMCS = 4  # an Intel core's general-purpose counters
FIXED_PMCS = 3
PMC_WIDTH_MASK = (1 << 48) - 1  # counters are 48 bits wide

