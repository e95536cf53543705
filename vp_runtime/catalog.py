"""What the reference says a VM offers: built-in globals and probe points.

These are facts of the language (Tables 2-1 to 2-4 and 3-3 of the reference),
not of any one machine.  A backend says which of them it offers; the checker
uses this catalogue when no backend is given, e.g. to check a script without
running it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INT = "integer"
STR = "string"


@dataclass(frozen=True)
class GlobalInfo:
    name: str
    type: str  # INT or STR
    scope: str  # "per-VCPU", "per-PCPU", "per-thread", "global", "per-probe"
    description: str


def _group(names: str, type_: str, scope: str, description: str) -> list[GlobalInfo]:
    return [GlobalInfo(n, type_, scope, description.format(n=n)) for n in names.split()]


REGISTER_GLOBALS = (
    _group("RIP", INT, "per-VCPU", "instruction pointer of the VCPU where the probe fires")
    + _group(
        "RAX RBX RCX RDX RSI RDI RSP RBP R8 R9 R10 R11 R12 R13 R14 R15",
        INT, "per-VCPU", "general-purpose register {n}",
    )
    + _group("RFLAGS", INT, "per-VCPU", "flags register")
    + _group("CS SS DS ES FS GS", INT, "per-VCPU", "segment selector {n}")
    + _group("CR0 CR2 CR3 CR4 CR8", INT, "per-VCPU", "control register {n}")
    + _group("DR6 DR7", INT, "per-VCPU", "debug register {n}")
    + _group("EFER", INT, "per-VCPU", "extended feature enable register")
    + _group("KERNELGSBASE", INT, "per-VCPU", "KERNEL_GS_BASE MSR (swapped in by SWAPGS)")
    + _group("FSBASE GSBASE", INT, "per-VCPU", "base of the {n} segment")
    + _group("APIC_BASEPA", INT, "per-VCPU", "physical address of the local APIC")
)

HARDWARE_GLOBALS = (
    _group("TSC", INT, "per-PCPU", "time stamp counter of the physical CPU where the probe fires")
    + _group("TSC_HZ", INT, "per-PCPU", "frequency of that TSC in Hz")
    + _group("PTSC", INT, "global", "pseudo TSC: monotonic and the same on every CPU")
    + _group("VCPUID", INT, "per-VCPU", "number of the VCPU where the probe fires")
    + _group("PCPUID", INT, "per-PCPU", "number of the physical CPU where the probe fires")
    + _group("THREADID", INT, "per-thread", "host thread running the VCPU")
    + _group("NUMVCPUS", INT, "global", "number of VCPUs in the VM")
)

# Table 2-3, then the names a newer monitor exposes for the same VMCS fields.
VMCS_GLOBALS = _group(
    "VMCS_EXIT_REASON VMCS_INTR_INFO VMCS_INTR_ERR VMCS_IDTVEC_INFO VMCS_IDTVEC_ERR "
    "VMCS_INSTRLEN VMCS_VMENTRY_INTR_INFO VMCS_VMENTRYXCP_ERR VMCS_EXIT_QUAL "
    "VMCS_EXIT_INTR_INFO VMCS_EXIT_INTR_ERR VMCS_EXIT_INSTR_LEN VMCS_EXIT_INSTR_INFO "
    "VMCS_GUEST_PHYS_ADDR VMCS_GUEST_LINEAR_ADDR",
    INT, "per-VCPU", "Intel VT: VMCS field {n}",
)

VMCB_GLOBALS = _group(
    "VMCB_EXITCODE VMCB_EXITINFO1 VMCB_EXITINFO2 VMCB_EXITINTINFO VMCB_EVENTINJ "
    "VMCB_TLBCTL VMCB_VAPIC",
    INT, "per-VCPU", "AMD-V: VMCB field {n}",
)

PROBE_GLOBALS = _group(
    " ".join(f"ARG{i}" for i in range(10)), INT, "per-probe", "argument {n} of the firing static probe"
) + [GlobalInfo("PROBENAME", STR, "per-probe", "name of the firing probe")]

ALL_GLOBALS: dict[str, GlobalInfo] = {
    g.name: g
    for g in REGISTER_GLOBALS + HARDWARE_GLOBALS + VMCS_GLOBALS + VMCB_GLOBALS + PROBE_GLOBALS
}


@dataclass(frozen=True)
class ProbeInfo:
    name: str
    context: str  # "VMM" (fires per VCPU) or "VMX" (once per VM)
    args: tuple[str, ...]
    description: str


_DISK_ARGS = (
    "adapter type", "controller ID", "drive ID", "1 for read, 0 for write",
    "unique I/O identifier", "start sector", "number of sectors",
    "number of scatter/gather entries",
)
_GUEST_FAULTS = "DE DB NMI BP OF BR UD NM DF TS RESERVED_FAULT NP SS GP PF MF AC MC XF".split()

STATIC_PROBES: dict[str, ProbeInfo] = {
    p.name: p
    for p in [
        ProbeInfo("VMM1Hz", "VMM", (), "once a second, on each VCPU"),
        ProbeInfo("VMM10Hz", "VMM", (), "ten times a second, on each VCPU"),
        ProbeInfo("VMX1Hz", "VMX", (), "once a second, once per VM"),
        *[
            ProbeInfo(f"Guest_{f}", "VMM", ("error code, if the fault has one",),
                      f"before #{f} is delivered to the guest")
            for f in _GUEST_FAULTS
        ],
        ProbeInfo("Guest_CR3Write", "VMM", (), "immediately before the guest writes CR3"),
        ProbeInfo("Guest_IRQ", "VMM", ("IRQ vector",), "before a hardware interrupt is delivered"),
        ProbeInfo("Guest_TripleFault", "VMM", (), "a triple fault"),
        ProbeInfo("HV_Exit", "VMM", (), "exit from hardware-assisted execution (VT / AMD-V)"),
        ProbeInfo("HV_Resume", "VMM", (), "before resuming hardware-assisted execution"),
        ProbeInfo("HV_NPF", "VMM", (), "before a nested page fault is handled"),
        ProbeInfo("In", "VMM", ("port", "operand size", "rep count"), "the guest executes IN"),
        ProbeInfo("Out", "VMM", ("port", "operand size", "rep count"), "the guest executes OUT"),
        ProbeInfo("SMM_SMIPre", "VMM", (), "before an SMI is delivered"),
        ProbeInfo("SMM_SMIPost", "VMM", (), "immediately after an SMI is delivered"),
        ProbeInfo("SMM_RSMPre", "VMM", (), "before RSM executes"),
        ProbeInfo("SMM_RSMPost", "VMM", (), "immediately after RSM executes"),
        ProbeInfo("Disk_IOStart", "VMX", _DISK_ARGS, "at the start of a disk I/O"),
        ProbeInfo("Disk_IOFinish", "VMX", _DISK_ARGS, "when a disk I/O completes"),
        ProbeInfo("VMMLoad", "VMM", (), "once on each VCPU when the script loads"),
        ProbeInfo("VMMUnload", "VMM", (), "once on each VCPU when the script unloads"),
        ProbeInfo("VMXLoad", "VMX", (), "once when the script loads"),
        ProbeInfo("VMXUnload", "VMX", (), "once when the script unloads"),
    ]
}

# Probe points that take a parameter after a colon.
PARAMETRIC_PROBES = {
    "GUEST": "the guest executes the instruction at a linear address or symbol",
    "GUEST_READ": "the guest reads a linear address or symbol",
    "GUEST_WRITE": "the guest writes a linear address or symbol",
    "USEC": "periodically, every N microseconds, on each VCPU",
}

_USEC = re.compile(r"[0-9]+\Z")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe point as a script names it: `kind` is the static name or the prefix."""

    text: str
    kind: str
    param: str | None = None  # the text after the colon, for parametric probes

    @property
    def interval_us(self) -> int:
        return int(self.param)


def parse_probe_spec(text: str) -> ProbeSpec | str:
    """The ProbeSpec for `text`, or an error message saying what is wrong with it."""
    if text in STATIC_PROBES:
        return ProbeSpec(text, text)
    kind, colon, param = text.partition(":")
    if not colon:
        return f"unknown probe point '{text}'"
    if kind not in PARAMETRIC_PROBES:
        return f"unknown probe point '{text}': no probe kind '{kind}:'"
    if not param:
        return f"probe point '{text}' needs an address or symbol after '{kind}:'" if kind != "USEC" \
            else "probe point 'USEC:' needs an interval in microseconds"
    if kind == "USEC":
        if not _USEC.match(param) or int(param) == 0:
            return f"probe point '{text}': the interval must be a positive number of microseconds"
    return ProbeSpec(text, kind, param)
