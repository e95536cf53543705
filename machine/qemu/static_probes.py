"""Table 3-3's guest probes on a real kernel: the breakpoints each becomes, and what is refused.

* `Guest_PF` and the other `Guest_<fault>` probes -- a breakpoint on the
  kernel's own IDT entry point (`asm_exc_page_fault` ...).  At its first
  instruction nothing has run yet: the general registers are the interrupted
  context's and the exception frame the CPU pushed is at RSP, so the probe
  sees RIP, CS, RFLAGS, RSP and SS from the frame -- the state "before the
  fault is delivered" -- and ARG0 is the error code (CR2 is already set).
* `Guest_IRQ` -- breakpoints on the common external-interrupt entry (the
  vector is the byte its stub pushed) and on each system-vector entry (vector
  from the guest's IDT, or the kernel's fixed numbers); ARG0 is the vector.
* `Guest_CR3Write` -- breakpoints on every `mov cr3, reg` in the kernel's
  CR3-writing functions (found by decoding the guest's code); single-stepped.

Refused at load, with a reason (`REFUSED`): `HV_*` (no VT-x/AMD-V exits are
visible through the gdbstub), `In`/`Out` (QEMU's I/O trace points do not
fire under TCG and the gdbstub has no I/O stops), `SMM_*`, `Disk_*`,
`MAC_SendPacket` and `Guest_TripleFault`.
"""

from __future__ import annotations

import capstone

from vp_runtime import GuestMemoryFault, ProbeSpec, spec

from .breakpoints import Action, Handler
from .guest_info import read_idt
from .kernel import COMMON_IRQ_ENTRY, CR3_CANDIDATES, FAULT_ENTRIES, SYSVEC_VECTORS
from .reads import Vcpu

REFUSED = {
    "HV_Exit": "hardware-virtualization exits are not visible through QEMU's gdbstub (under TCG there are none)",
    "HV_Resume": "hardware-virtualization resumes are not visible through QEMU's gdbstub",
    "HV_NPF": "nested page faults are not visible through QEMU's gdbstub",
    "In": "QEMU's gdbstub cannot stop on port I/O, and its cpu_in trace point does not fire under TCG",
    "Out": "QEMU's gdbstub cannot stop on port I/O, and its cpu_out trace point does not fire under TCG",
    "SMM_SMIPre": "system management mode is not visible through QEMU's gdbstub",
    "SMM_SMIPost": "system management mode is not visible through QEMU's gdbstub",
    "SMM_RSMPre": "system management mode is not visible through QEMU's gdbstub",
    "SMM_RSMPost": "system management mode is not visible through QEMU's gdbstub",
    "Disk_IOStart": "QEMU's gdbstub does not report the VM's disk I/O",
    "Disk_IOFinish": "QEMU's gdbstub does not report the VM's disk I/O",
    "MAC_SendPacket": "QEMU's gdbstub does not report the VM's network I/O",
    "Guest_TripleFault": "QEMU resets the VM on a triple fault without telling the gdbstub",
}
FIRST_EXTERNAL_VECTOR = 32
LEGACY_SYSCALL_VECTOR = 0x80  # int 0x80: a system call, not an interrupt
IRQ_STUB_SIZE, IRQ_STUBS = 16, 224  # irq_entries_start: one stub per external vector
_FRAME_WORDS = 5  # RIP, CS, RFLAGS, RSP, SS

_DECODER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_DECODER.detail = False


def not_offered(point: ProbeSpec) -> str:
    return f"probe point '{point.text}' is not offered by this QEMU VM"


class StaticProbes:
    """Sets `machine`'s Guest_<fault>, Guest_IRQ and Guest_CR3Write probes on the kernel's entry code."""

    def __init__(self, machine):
        self.m = machine

    def check(self, point: ProbeSpec) -> str | None:
        """Why static probe `point` (not in `REFUSED`, neither periodic nor a load or unload probe)
        cannot be set on this kernel, or None."""
        symbols = self.m.kernel.symbols
        kind, fault = point.kind, point.static.fault
        if kind == "Guest_IRQ":
            if COMMON_IRQ_ENTRY not in symbols:
                return (f"probe point 'Guest_IRQ' needs the kernel's interrupt entry ({COMMON_IRQ_ENTRY}), "
                        f"which is not among the guest's symbols")
            return None
        if kind == "Guest_CR3Write":
            return None
        if fault is not None:
            entry = FAULT_ENTRIES.get(fault.name)
            if entry is None or entry not in symbols:
                return (f"probe point '{point.text}' needs the kernel's entry point for that exception, "
                        f"which is not among the guest's symbols")
            return None
        return not_offered(point)

    def attach(self, point: ProbeSpec, handler: Handler) -> None:
        kind, fault = point.kind, point.static.fault
        if kind == "Guest_IRQ":
            self._attach_irq(handler)
        elif kind == "Guest_CR3Write":
            self._attach_cr3(handler)
        elif fault is not None:
            entry = self.m.kernel.symbols[FAULT_ENTRIES[fault.name]]
            self.m.breakpoints.add(entry, self._frame_action(handler, fault.error_code, None))

    def _frame_action(self, handler: Handler, has_error: bool, vector: int | None,
                      vector_on_stack: bool = False) -> Action:
        """Fire `handler` with the interrupted context's RIP/CS/RFLAGS/RSP/SS from the frame at RSP."""
        machine = self.m
        args = machine.args
        skip = 8 if has_error or vector_on_stack else 0

        def action(vcpu: Vcpu) -> None:
            machine.current = vcpu
            block = vcpu.block or machine.reads.fetch_registers(vcpu)
            rsp = machine.stub.register(block, "rsp")
            try:
                frame = machine.read_linear(rsp, skip + 8 * _FRAME_WORDS)
            except GuestMemoryFault:
                return
            words = [int.from_bytes(frame[i:i + 8], "little") for i in range(0, len(frame), 8)]
            first = words[0] if skip else 0
            rip, cs, rflags, sp, ss = words[skip // 8:skip // 8 + _FRAME_WORDS]
            vcpu.over = {"RIP": rip, "CS": cs & 0xFFFF, "RFLAGS": rflags, "RSP": sp, "SS": ss & 0xFFFF}
            args[:] = [0] * spec.PROBE_ARGS
            if vector_on_stack:
                args[0] = first & 0xFF
            elif vector is not None:
                args[0] = vector
            elif has_error:
                args[0] = first
            try:
                machine.fire(vcpu, handler)
            finally:
                vcpu.over = None
        return action

    def _attach_irq(self, handler: Handler) -> None:
        symbols = self.m.kernel.symbols
        entries: dict[int, int] = {}
        for name, vector in SYSVEC_VECTORS.items():
            if name in symbols:
                entries[symbols[name]] = vector
        common = symbols[COMMON_IRQ_ENTRY]
        stubs = symbols.get("irq_entries_start")
        idt = read_idt(self.m.stub, self.m.vcpus[0].thread)
        for vector, target in idt.items():
            if vector < FIRST_EXTERNAL_VECTOR or vector == LEGACY_SYSCALL_VECTOR:
                continue
            if stubs is not None and stubs <= target < stubs + IRQ_STUBS * IRQ_STUB_SIZE:
                continue  # an external-interrupt stub: it jumps to the common entry
            if target != common:
                entries[target] = vector
        add = self.m.breakpoints.add
        add(common, self._frame_action(handler, False, None, vector_on_stack=True))
        for address, vector in sorted(entries.items()):
            add(address, self._frame_action(handler, False, vector))

    def _attach_cr3(self, handler: Handler) -> None:
        breakpoints = self.m.breakpoints
        for address in self._cr3_writes():
            breakpoints.add(address, self.m.fire_action(handler))
            breakpoints.always_step(address)

    def _cr3_writes(self) -> list[int]:
        """Addresses of `mov cr3, reg` in the kernel functions that switch address spaces."""
        kernel = self.m.kernel
        sites = []
        for name, start in kernel.functions():
            if not CR3_CANDIDATES.search(name):
                continue
            end = kernel.function_end(name) or start + 256
            code = self.m.code(start, min(end - start, 16384))
            if not code:
                continue
            for insn in _DECODER.disasm(code, start):
                if insn.mnemonic == "mov" and insn.op_str.startswith("cr3,"):
                    sites.append(insn.address)
        return sites
