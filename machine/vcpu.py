"""Virtual CPUs: the architectural state probes read.

A VCPU is made with every register clear but its local APIC's base; the
machine's power-on puts it in the architectural RESET state (`reset`), and
from there the guest's firmware and kernel set what they set.
"""

from __future__ import annotations

from vp_runtime import spec

from .x86 import (APIC_DEFAULT_BASE, CR0_RESET, DESCRIPTOR_TABLE_RESET_LIMIT, DR6_RESET, DR7_RESET, RESET_CS, RESET_IP,
                  RFLAGS_RESET)

# A VCPU holds a value for each of the spec's register globals (Table 2-1).
REGISTER_NAMES = tuple(g.name for g in spec.REGISTER_GLOBALS)


class VCPU:
    """One virtual CPU: its index, the physical CPU it runs on, and its registers."""

    __slots__ = ("index", "pcpu", "thread_id", "regs", "hv", "msrs", "smm")

    def __init__(self, index: int, pcpu: int, thread_id: int):
        self.index = index
        self.pcpu = pcpu
        self.thread_id = thread_id
        self.regs: dict[str, int] = dict.fromkeys(REGISTER_NAMES, 0)
        self.regs["APIC_BASEPA"] = APIC_DEFAULT_BASE
        # Hardware-virtualization fields (VMCS or VMCB names) of the last exit.
        self.hv: dict[str, int] = {}
        # The MSRs the guest's kernel writes (number -> value); the others are read from `regs`.
        self.msrs: dict[int, int] = {}
        self.smm = False  # in system-management mode

    def reset(self) -> None:
        """The state after RESET/INIT (SDM vol. 3, table 9-1): real mode at F000:FFF0, every general
        register, base and MSR cleared; the local APIC keeps its base.  An AP waits here for its SIPI."""
        regs = self.regs
        for name in regs:
            if name != "APIC_BASEPA":
                regs[name] = 0
        regs.update(RIP=RESET_IP, CS=RESET_CS, CR0=CR0_RESET, RFLAGS=RFLAGS_RESET, DR6=DR6_RESET, DR7=DR7_RESET,
                    GDTRLIMIT=DESCRIPTOR_TABLE_RESET_LIMIT, IDTRLIMIT=DESCRIPTOR_TABLE_RESET_LIMIT)
        self.msrs.clear()
        self.smm = False
