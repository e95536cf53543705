"""VP's built-in globals (Tables 2-1 to 2-4 of the reference, ARGn and PROBENAME).

A built-in global is read-only.  Each has a type, a scope ("per-VCPU":
the firing VCPU's; "per-PCPU": the physical CPU's where the probe fires;
"per-thread"; "global": one value for the VM; "per-probe": set by the firing
probe), a group (which table of the reference it belongs to; a machine
offers the groups it can) and who supplies its value: the machine, or the
runtime itself (PROBENAME, the name of the firing probe point).
"""

from .limits import PROBE_ARGS
from .records import Record
from .values import INT, STR

PER_VCPU, PER_PCPU, PER_THREAD, GLOBAL, PER_PROBE = "per-VCPU", "per-PCPU", "per-thread", "global", "per-probe"
REGISTER, HARDWARE, VMCS, VMCB, PROBE = "register", "hardware", "vmcs", "vmcb", "probe"
MACHINE, RUNTIME = "machine", "runtime"



class GlobalInfo(Record):
    """A built-in global: name, type, scope, description, group, who supplies its value."""

    __slots__ = ("name", "type", "scope", "description", "group", "supplied_by")
    defaults = {"group": REGISTER, "supplied_by": MACHINE}


def _group(names: str, type_: str, scope: str, group: str, description: str) -> list[GlobalInfo]:
    return [GlobalInfo(n, type_, scope, description.format(n=n), group) for n in names.split()]


REGISTER_GLOBALS = tuple(
    _group("RIP", INT, PER_VCPU, REGISTER, "instruction pointer of the VCPU where the probe fires")
    + _group("RAX RBX RCX RDX RSI RDI RSP RBP R8 R9 R10 R11 R12 R13 R14 R15",
             INT, PER_VCPU, REGISTER, "general-purpose register {n}")
    + _group("RFLAGS", INT, PER_VCPU, REGISTER, "flags register")
    + _group("CS SS DS ES FS GS", INT, PER_VCPU, REGISTER, "segment selector {n}")
    + _group("CR0 CR2 CR3 CR4 CR8", INT, PER_VCPU, REGISTER, "control register {n}")
    + _group("DR6 DR7", INT, PER_VCPU, REGISTER, "debug register {n}")
    + _group("EFER", INT, PER_VCPU, REGISTER, "extended feature enable register")
    + _group("KERNELGSBASE", INT, PER_VCPU, REGISTER, "KERNEL_GS_BASE MSR (swapped in by SWAPGS)")
    + _group("FSBASE GSBASE", INT, PER_VCPU, REGISTER, "base of the {n} segment")
    + _group("APIC_BASEPA", INT, PER_VCPU, REGISTER, "physical address of the local APIC")
)

HARDWARE_GLOBALS = tuple(
    _group("TSC", INT, PER_PCPU, HARDWARE, "time stamp counter of the physical CPU where the probe fires")
    + _group("TSC_HZ", INT, PER_PCPU, HARDWARE, "frequency of that TSC in Hz")
    + _group("PTSC", INT, GLOBAL, HARDWARE, "pseudo TSC: monotonic and the same on every CPU")
    + _group("VCPUID", INT, PER_VCPU, HARDWARE, "number of the VCPU where the probe fires")
    + _group("PCPUID", INT, PER_PCPU, HARDWARE, "number of the physical CPU where the probe fires")
    + _group("THREADID", INT, PER_THREAD, HARDWARE, "host thread running the VCPU")
    + _group("NUMVCPUS", INT, GLOBAL, HARDWARE, "number of VCPUs in the VM")
)

# Table 2-3, then the names a newer monitor exposes for the same VMCS fields.
VMCS_GLOBALS = tuple(_group(
    "VMCS_EXIT_REASON VMCS_INTR_INFO VMCS_INTR_ERR VMCS_IDTVEC_INFO VMCS_IDTVEC_ERR "
    "VMCS_INSTRLEN VMCS_VMENTRY_INTR_INFO VMCS_VMENTRYXCP_ERR VMCS_EXIT_QUAL "
    "VMCS_EXIT_INTR_INFO VMCS_EXIT_INTR_ERR VMCS_EXIT_INSTR_LEN VMCS_EXIT_INSTR_INFO "
    "VMCS_GUEST_PHYS_ADDR VMCS_GUEST_LINEAR_ADDR",
    INT, PER_VCPU, VMCS, "Intel VT: VMCS field {n}",
))

VMCB_GLOBALS = tuple(_group(
    "VMCB_EXITCODE VMCB_EXITINFO1 VMCB_EXITINFO2 VMCB_EXITINTINFO VMCB_EVENTINJ "
    "VMCB_TLBCTL VMCB_VAPIC",
    INT, PER_VCPU, VMCB, "AMD-V: VMCB field {n}",
))

# ARGn -> n: the static probe argument each ARGn global holds.
PROBE_ARG_INDEX = {f"ARG{i}": i for i in range(PROBE_ARGS)}

PROBE_GLOBALS = tuple(
    _group(" ".join(PROBE_ARG_INDEX), INT, PER_PROBE, PROBE,
           "argument {n} of the firing static probe")
    + [GlobalInfo("PROBENAME", STR, PER_PROBE, "name of the firing probe", PROBE, RUNTIME)]
)

GLOBALS = {g.name: g for g in REGISTER_GLOBALS + HARDWARE_GLOBALS + VMCS_GLOBALS + VMCB_GLOBALS + PROBE_GLOBALS}
