"""Table 3-3's guest probes on a real kernel: where each stops the VM, and what is refused.

* `Guest_PF` and the other `Guest_<fault>` probes -- the kernel's own IDT
  entry stub (`asm_exc_page_fault` ...).  Its first instructions change no
  general register (a nop or `clac`, `cld`, perhaps `push -1` for a fault
  without an error code) and then `call error_entry`: the probe is set on
  that call, as a call site (`callsites.py`: the call is detoured through a
  trampoline that a read watchpoint stops, so QEMU flushes no translation
  cache), or a breakpoint where a call site cannot be used.  There the
  general registers are still the interrupted context's and the exception
  frame the CPU pushed is just above the error code, so the probe sees RIP,
  CS, RFLAGS, RSP and SS from the frame -- the state "before the fault is
  delivered" -- and ARG0 is the error code (CR2 is already set).  An entry
  that does not have that shape (the paranoid NMI, #DB, #MC and #DF entries)
  is a breakpoint at its first instruction.
* `Guest_IRQ` -- the same, on the common external-interrupt entry (the
  vector is the word its stub pushed) and on each system-vector entry
  (vector from the guest's IDT, or the kernel's fixed numbers); ARG0 is the
  vector.
* `Guest_CR3Write` -- every `mov cr3, reg` in the kernel's CR3-writing
  functions (found by decoding the guest's code).  A function that is
  nothing but that write (`native_write_cr3`, which the paravirt calls of
  `write_cr3` reach) is probed at each direct call to it in those functions,
  as a call site; a traceable function that reaches its write on every call
  (`native_flush_tlb_local`) at its ftrace site; any other write is a
  breakpoint on the instruction, single-stepped.  The probe sees CR3 before
  the write (the new value is in the writing register).

Refused at load, with a reason (`REFUSED`): `HV_*` (no VT-x/AMD-V exits are
visible through the gdbstub), `In`/`Out` (QEMU's I/O trace points do not
fire under TCG and the gdbstub has no I/O stops), `SMM_*`, `Disk_*`,
`MAC_SendPacket` and `Guest_TripleFault`.
"""

from __future__ import annotations

import capstone

from vp_runtime import GuestMemoryFault, ProbeSpec, spec
from vp_runtime.spec import MASK64

from .breakpoints import Action, Handler
from .callsites import call_to
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
ERROR_ENTRY = "error_entry"  # what every non-paranoid entry stub calls first
_TRANSPARENT = frozenset({"nop", "endbr64", "cld", "clac"})  # change no general register
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
            self._add_entry(entry, handler, fault.error_code, None)

    def entry_site(self, entry: int) -> tuple[int, int]:
        """Where a probe on the entry stub at `entry` is set, and how many bytes the stub has pushed
        by then: its `call error_entry` when only instructions that change no general register (and
        pushes of a constant) come before it, else its first instruction."""
        code = self.m.code(entry, 32)
        target = self.m.kernel.symbols.get(ERROR_ENTRY)
        pushed = 0
        if code and target is not None:
            for insn in _DECODER.disasm(code, entry):
                if insn.mnemonic in _TRANSPARENT:
                    continue
                if insn.mnemonic == "push" and insn.op_str.lstrip("-").startswith(tuple("0123456789")):
                    pushed += 8
                    continue
                if insn.mnemonic == "call" and insn.op_str == hex(target):
                    return insn.address, pushed
                break
        return entry, 0

    def _add_entry(self, entry: int, handler: Handler, has_error: bool, vector: int | None,
                   vector_on_stack: bool = False) -> None:
        site, pushed = self.entry_site(entry)
        action = self._frame_action(handler, has_error, vector, vector_on_stack, pushed)
        self.m.breakpoints.add(site, action, call_site=site != entry)

    def _frame_action(self, handler: Handler, has_error: bool, vector: int | None,
                      vector_on_stack: bool = False, pushed: int = 0) -> Action:
        """Fire `handler` with the interrupted context's RIP/CS/RFLAGS/RSP/SS from the exception frame,
        `pushed` bytes (and the error code or vector, if any) above RSP at the probe's site."""
        machine = self.m
        args = machine.args
        skip = pushed + (8 if has_error or vector_on_stack else 0)

        def action(vcpu: Vcpu) -> None:
            machine.current = vcpu
            block = vcpu.block or machine.reads.fetch_registers(vcpu)
            rsp = (machine.stub.register(block, "rsp") + vcpu.rsp_bias) & MASK64
            try:
                frame = machine.read_linear(rsp, skip + 8 * _FRAME_WORDS)
            except GuestMemoryFault:
                return
            words = [int.from_bytes(frame[i:i + 8], "little") for i in range(0, len(frame), 8)]
            first = words[pushed // 8] if skip > pushed else 0
            rip, cs, rflags, sp, ss = words[skip // 8:skip // 8 + _FRAME_WORDS]
            saved = vcpu.over, vcpu.rsp_bias
            vcpu.over = {"RIP": rip, "CS": cs & 0xFFFF, "RFLAGS": rflags, "RSP": sp, "SS": ss & 0xFFFF}
            vcpu.rsp_bias = 0
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
                vcpu.over, vcpu.rsp_bias = saved
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
        self._add_entry(common, handler, False, None, vector_on_stack=True)
        for address, vector in sorted(entries.items()):
            self._add_entry(address, handler, False, vector)

    def _attach_cr3(self, handler: Handler) -> None:
        breakpoints = self.m.breakpoints
        action = self.m.fire_action(handler)
        calls, entries, writes = self.cr3_sites()
        for address in calls + entries:
            breakpoints.add(address, action, call_site=True)
        for address in writes:
            breakpoints.add(address, action)
            breakpoints.always_step(address)

    def cr3_sites(self) -> tuple[list[int], list[int], list[int]]:
        """Where Guest_CR3Write is set: direct calls to a function that only writes CR3, the entries of
        traceable functions that write it on every call, and the remaining `mov cr3, reg` instructions
        -- all in the kernel functions that switch address spaces or flush the TLB."""
        kernel = self.m.kernel
        fentry = kernel.symbols.get("__fentry__")
        decoded: dict[int, list] = {}
        for name, start in kernel.functions():
            if CR3_CANDIDATES.search(name):
                end = kernel.function_end(name) or start + 256
                code = self.m.code(start, min(end - start, 16384))
                if code:
                    decoded[start] = list(_DECODER.disasm(code, start))
        leaves = {start for start, insns in decoded.items() if insns and _writes_cr3(insns[0])}
        calls, entries, writes = [], [], []
        for start, insns in decoded.items():
            if start in leaves:
                continue
            calls += [i.address for i in insns if i.mnemonic == "call" and _target(i) in leaves]
            moves = [i for i in insns if _writes_cr3(i)]
            if not moves:
                continue
            if fentry is not None and _on_every_call(insns, moves[0]) and len(moves) == 1 \
                    and kernel.read_image(start, 5) == call_to(start, fentry):
                entries.append(start)
            else:
                writes += [i.address for i in moves]
        called = {_target(i) for start in decoded for i in decoded[start]
                  if i.mnemonic == "call" and _target(i) in leaves}
        # A write-only function no scanned function calls directly is probed at its own write.
        writes += [decoded[leaf][0].address for leaf in leaves if leaf not in called]
        return sorted(calls), sorted(entries), sorted(writes)


def _writes_cr3(insn) -> bool:
    return insn.mnemonic == "mov" and insn.op_str.startswith("cr3,")


def _target(insn) -> int | None:
    try:
        return int(insn.op_str, 16)
    except ValueError:
        return None


def _on_every_call(insns: list, write) -> bool:
    """Whether every way through the function from its entry passes `write` before it leaves (by a
    return, an indirect jump or a jump out of the function).  A `ud2` is the kernel's WARN, which
    resumes after it."""
    at = {insn.address: i for i, insn in enumerate(insns)}
    seen: set[int] = set()
    todo = [0]
    while todo:
        i = todo.pop()
        while i not in seen:
            seen.add(i)
            if i >= len(insns):
                return False  # ran off the decoded code
            insn = insns[i]
            if insn.address == write.address:
                break
            mnemonic = insn.mnemonic
            if mnemonic in ("ret", "iretq", "sysretq"):
                return False
            if mnemonic.startswith("j"):
                target = _target(insn)
                if target not in at:
                    return False
                if mnemonic == "jmp":
                    i = at[target]
                    continue
                todo.append(at[target])
            i += 1
    return True
