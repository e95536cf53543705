"""Exceptions, demand paging and the triple fault, shared by every guest profile.

The vectors and which exceptions push an error code are the architecture's
(the language's specification has them, `spec.GUEST_FAULTS`); the handler
each exception enters is the guest kernel's (`KernelPaths`).  A
`Guest_<X>` probe fires as the exception is delivered, before the handler
runs; the monitor sees an exit only for the exceptions it intercepts (#DB,
#BP, #MC, and NMIs).
"""

from __future__ import annotations

from vp_runtime import spec

from ..memory import PAGE
from .hv import Exit
from .state import CpuState, Task

# The exceptions the monitor intercepts (its exception bitmap): #DB, #BP and #MC exit.
_EXITING_VECTORS = frozenset({1, 3, 18})
PF_WRITE, PF_USER = 0x2, 0x4  # page-fault error code bits (P = 0: not present)
CLTS_LENGTH = 2


class Faults:
    def __init__(self, guest):
        self.g = guest
        paths = guest.paths
        self.handlers = paths.exception_handlers
        self.page_fault_path = list(paths.page_fault)

    def user_page_fault(self, cpu: CpuState, task: Task) -> None:
        """`task` touches a page of its heap for the first time: demand paging."""
        g = self.g
        mm = task.mm
        address = mm.heap_next + g.rng.randrange(0, PAGE)
        write = g.rng.random() < 0.7
        error = PF_USER | (PF_WRITE if write else 0)
        cpu.vcpu.regs["CR2"] = address
        g.probes.fire_static(cpu.vcpu, "Guest_PF", error)
        g.contexts.walk(cpu, task, self.page_fault_path)
        frame = g.frames.alloc()
        mm.blocks.append((frame, 1))
        mm.tables.map(mm.heap_next, frame, PAGE, user=True)
        mm.heap_next += PAGE
        # The monitor backs the new guest page on the first touch: an EPT violation / #NPF.
        g.hv_exit(cpu, Exit("npf", address=frame | (address & (PAGE - 1)), write=write, linear=address))
        g.contexts.user(cpu, task)

    def exception(self, cpu: CpuState, task: Task, probe: str) -> None:
        """Deliver exception `probe` (a Guest_<X> name) to the task running on `cpu`.

        ARG0 is the error code of an exception that pushes one (0 here), else 0."""
        g = self.g
        fault = spec.STATIC_PROBES[probe].fault
        error = 0 if fault.error_code else None
        handler = self.handlers[probe]
        if probe == "Guest_NMI":
            g.hv_exit(cpu, Exit("nmi"))
        elif fault.vector in _EXITING_VECTORS:
            g.hv_exit(cpu, Exit("exception", vector=fault.vector, error_code=error))
        g.probes.fire_static(cpu.vcpu, probe, error or 0)
        g.contexts.walk(cpu, task, [handler, *g.kernel.first_callees(handler)])
        if probe == "Guest_NM":
            cpu.fpu_owner = task
            g.hv_exit(cpu, Exit("cr", cr=0, cr_access=2, instr_len=CLTS_LENGTH))  # clts
        if task.mm is not None and task is cpu.current:
            g.contexts.user(cpu, task)

    def triple_fault(self) -> None:
        """A driver unmaps the page the IDT is on: the next page fault cannot be delivered (#DF), and
        neither can that: the CPU shuts down and the machine resets."""
        g = self.g
        cpu = g.cpus[0]
        vcpu = cpu.vcpu
        vcpu.regs["CR2"] = g.idt_page
        g.probes.fire_static(vcpu, "Guest_PF", PF_WRITE)
        g.probes.fire_static(vcpu, "Guest_DF", 0)
        g.hv_exit(cpu, Exit("triple_fault"))
        g.probes.fire_static(vcpu, "Guest_TripleFault")
        g.m.reset()
