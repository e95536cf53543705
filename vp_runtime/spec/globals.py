"""VP's built-in globals (Tables 2-1 to 2-4 of the reference, ARGn and PROBENAME).

A built-in global is read-only.  Each has a type, a scope ("per-VCPU":
the firing VCPU's; "per-PCPU": the physical CPU's where the probe fires;
"per-thread"; "global": one value for the VM; "per-probe": set by the firing
probe), a group (which table of the reference it belongs to; a machine
offers the groups it can) and who supplies its value: the machine, or the
runtime itself (PROBENAME, the name of the firing probe point).  How its
values read best in a table (`shown_as`): a guest linear address (hex,
symbolized where the guest has symbols), bits or a physical address (hex),
or a number (decimal); the compiler tells the printers (aggregate keys).
"""

from .limits import PROBE_ARGS
from .records import Record
from .values import INT, STR

PER_VCPU, PER_PCPU, PER_THREAD, GLOBAL, PER_PROBE = "per-VCPU", "per-PCPU", "per-thread", "global", "per-probe"
REGISTER, HARDWARE, VMCS, VMCB, PROBE = "register", "hardware", "vmcs", "vmcb", "probe"
SEGMENT, STATE = "segment", "state"
MACHINE, RUNTIME = "machine", "runtime"
AS_ADDRESS, AS_HEX, AS_NUMBER = "address", "hex", "number"



class GlobalInfo(Record):
    """A built-in global: name, type, scope, description, group, who supplies its value, how its
    values read best."""

    __slots__ = ("name", "type", "scope", "description", "group", "supplied_by", "shown_as")
    defaults = {"group": REGISTER, "supplied_by": MACHINE, "shown_as": AS_NUMBER}


def _group(names: str, type_: str, scope: str, group: str, description: str,
           shown_as: str = AS_NUMBER) -> list[GlobalInfo]:
    return [GlobalInfo(n, type_, scope, description.format(n=n), group, MACHINE, shown_as) for n in names.split()]


REGISTER_GLOBALS = tuple(
    _group("RIP", INT, PER_VCPU, REGISTER, "instruction pointer of the VCPU where the probe fires", AS_ADDRESS)
    + _group("RAX RBX RCX RDX RSI RDI", INT, PER_VCPU, REGISTER, "general-purpose register {n}")
    + _group("RSP RBP", INT, PER_VCPU, REGISTER, "general-purpose register {n}", AS_ADDRESS)
    + _group("R8 R9 R10 R11 R12 R13 R14 R15", INT, PER_VCPU, REGISTER, "general-purpose register {n}")
    + _group("RFLAGS", INT, PER_VCPU, REGISTER, "flags register", AS_HEX)
    + _group("CS SS DS ES FS GS", INT, PER_VCPU, REGISTER, "segment selector {n}")
    + _group("CR0", INT, PER_VCPU, REGISTER, "control register {n}", AS_HEX)
    + _group("CR2", INT, PER_VCPU, REGISTER, "control register {n}", AS_ADDRESS)
    + _group("CR3 CR4 CR8", INT, PER_VCPU, REGISTER, "control register {n}", AS_HEX)
    + _group("DR6 DR7", INT, PER_VCPU, REGISTER, "debug register {n}", AS_HEX)
    + _group("EFER", INT, PER_VCPU, REGISTER, "extended feature enable register", AS_HEX)
    + _group("KERNELGSBASE", INT, PER_VCPU, REGISTER, "KERNEL_GS_BASE MSR (swapped in by SWAPGS)", AS_ADDRESS)
    + _group("FSBASE GSBASE", INT, PER_VCPU, REGISTER, "base of the {n} segment", AS_ADDRESS)
    + _group("APIC_BASEPA", INT, PER_VCPU, REGISTER, "physical address of the local APIC", AS_HEX)
    + _group("TR LDTR", INT, PER_VCPU, REGISTER, "selector of the {n} register", AS_HEX)
    + _group("GDTRBASE IDTRBASE", INT, PER_VCPU, REGISTER, "linear address of the descriptor table {n} names", AS_ADDRESS)
    + _group("GDTRLIMIT IDTRLIMIT", INT, PER_VCPU, REGISTER, "limit (size - 1) of the descriptor table {n} names", AS_HEX)
)

# The segment registers, in the order the SDM numbers them (VMCS fields, SELSTATE's bits); the
# system segments' (task register, LDT register); those whose base a 64-bit CPU reads from an MSR.
SEGMENT_REGISTERS = ("ES", "CS", "SS", "DS", "FS", "GS")
SYSTEM_SEGMENTS = ("LDTR", "TR")
MSR_BASED_SEGMENTS = ("FS", "GS")

# The hidden part of each segment register: what the CPU loaded from the descriptor its
# selector names (FSBASE and GSBASE, read from their MSRs in 64-bit mode, are registers above).
SEGMENT_GLOBALS = tuple(
    _group(" ".join(f"{s}BASE" for s in SEGMENT_REGISTERS + SYSTEM_SEGMENTS if s not in MSR_BASED_SEGMENTS),
           INT, PER_VCPU, SEGMENT, "base address loaded for segment {n}", AS_ADDRESS)
    + _group(" ".join(f"{s}LIMIT" for s in SEGMENT_REGISTERS + SYSTEM_SEGMENTS), INT, PER_VCPU, SEGMENT,
             "limit in bytes loaded for segment {n}", AS_HEX)
    + _group(" ".join(f"{s}AR" for s in SEGMENT_REGISTERS + SYSTEM_SEGMENTS), INT, PER_VCPU, SEGMENT,
             "access rights of segment {n}, as a VMCS holds them (bit 16: unusable)", AS_HEX)
)

# What the VM is doing when the probe fires (the toolkit's VMM/VMX globals).
STATE_GLOBALS = tuple(
    _group("SMM", INT, PER_VCPU, STATE, "1 while the VCPU is in system-management mode (from an SMI to its RSM)")
    + _group("EMULATION_MODE", INT, PER_VCPU, STATE,
             "1 while the monitor emulates the VCPU (real mode: before the guest turns protection on), "
             "0 while the guest runs under hardware virtualization")
    + _group("HVSTATE", INT, PER_VCPU, STATE,
             "how the VCPU's guest code runs: 0 emulated, 1 under Intel VT-x, 2 under AMD-V")
    + _group("SELSTATE", INT, PER_VCPU, STATE,
             "the segment registers holding a null selector in protected or long mode (unusable), as a "
             "mask: bit 0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS", AS_HEX)
    + _group("BRCNT", INT, PER_VCPU, STATE,
             "branches the VCPU has retired since power-on (the counter record and replay positions "
             "asynchronous events by)")
    + _group("RDTSC", INT, PER_VCPU, STATE, "the VCPU's time stamp counter as the guest reads it (RDTSC)")
    + [GlobalInfo("ISVMM", INT, PER_PROBE, "1 in a probe that fires in the VMM (on a VCPU), 0 in the VMX",
                  STATE, RUNTIME)]
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
    "VMCS_EXIT_INTR_INFO VMCS_EXIT_INTR_ERR VMCS_EXIT_INSTR_LEN VMCS_EXIT_INSTR_INFO",
    INT, PER_VCPU, VMCS, "Intel VT: VMCS field {n}",
) + _group("VMCS_GUEST_PHYS_ADDR", INT, PER_VCPU, VMCS, "Intel VT: VMCS field {n}", AS_HEX)
  + _group("VMCS_GUEST_LINEAR_ADDR", INT, PER_VCPU, VMCS, "Intel VT: VMCS field {n}", AS_ADDRESS)
  + [GlobalInfo("VMCS_INSTR_INFO", INT, PER_VCPU, "Intel VT: VM-exit instruction information "
                "(the toolkit's name for VMCS_EXIT_INSTR_INFO)", VMCS),
     GlobalInfo("VMCS_VMENTRY_XCP_ERR", INT, PER_VCPU, "Intel VT: VM-entry exception error code "
                "(the toolkit's name for VMCS_VMENTRYXCP_ERR)", VMCS)])

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

# The toolkit's names for globals the reference (or a newer monitor) names otherwise: the same value.
GLOBAL_ALIASES = {"VMCS_INSTR_INFO": "VMCS_EXIT_INSTR_INFO", "VMCS_VMENTRY_XCP_ERR": "VMCS_VMENTRYXCP_ERR"}

# MSRs whose value is a register global (what readmsr of them reads).
MSR_GLOBALS = {0xC0000080: "EFER", 0xC0000100: "FSBASE", 0xC0000101: "GSBASE", 0xC0000102: "KERNELGSBASE"}

GLOBALS = {g.name: g for g in REGISTER_GLOBALS + HARDWARE_GLOBALS + SEGMENT_GLOBALS + STATE_GLOBALS
           + VMCS_GLOBALS + VMCB_GLOBALS + PROBE_GLOBALS}

# The general-purpose registers in the order a ModR/M byte numbers them: getgpr's argument.
GPR_ORDER = ("RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
             "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")


class VmcsField(Record):
    """A VMCS field `getvmcs` reads (Intel SDM vol. 3, appendix B): its encoding, the
    constant the toolkit's Emmett names it by (or None), and the built-in global that
    holds its value (None: a field that is 0 on this VM, e.g. the VM-instruction error,
    as the monitor's VMX instructions do not fail)."""

    __slots__ = ("encoding", "constant", "global_name", "description")


VMCS_FIELDS = {f.encoding: f for f in (
    VmcsField(0x0800, None, "ES", "guest ES selector"),
    VmcsField(0x0802, None, "CS", "guest CS selector"),
    VmcsField(0x0804, None, "SS", "guest SS selector"),
    VmcsField(0x0806, None, "DS", "guest DS selector"),
    VmcsField(0x0808, None, "FS", "guest FS selector"),
    VmcsField(0x080a, None, "GS", "guest GS selector"),
    VmcsField(0x080c, None, "LDTR", "guest LDTR selector"),
    VmcsField(0x080e, None, "TR", "guest TR selector"),
    VmcsField(0x4800, None, "ESLIMIT", "guest ES limit"),
    VmcsField(0x4802, None, "CSLIMIT", "guest CS limit"),
    VmcsField(0x4804, None, "SSLIMIT", "guest SS limit"),
    VmcsField(0x4806, None, "DSLIMIT", "guest DS limit"),
    VmcsField(0x4808, None, "FSLIMIT", "guest FS limit"),
    VmcsField(0x480a, None, "GSLIMIT", "guest GS limit"),
    VmcsField(0x480c, None, "LDTRLIMIT", "guest LDTR limit"),
    VmcsField(0x480e, None, "TRLIMIT", "guest TR limit"),
    VmcsField(0x4810, None, "GDTRLIMIT", "guest GDTR limit"),
    VmcsField(0x4812, None, "IDTRLIMIT", "guest IDTR limit"),
    VmcsField(0x4814, None, "ESAR", "guest ES access rights"),
    VmcsField(0x4816, None, "CSAR", "guest CS access rights"),
    VmcsField(0x4818, None, "SSAR", "guest SS access rights"),
    VmcsField(0x481a, None, "DSAR", "guest DS access rights"),
    VmcsField(0x481c, None, "FSAR", "guest FS access rights"),
    VmcsField(0x481e, None, "GSAR", "guest GS access rights"),
    VmcsField(0x4820, None, "LDTRAR", "guest LDTR access rights"),
    VmcsField(0x4822, None, "TRAR", "guest TR access rights"),
    VmcsField(0x6806, None, "ESBASE", "guest ES base"),
    VmcsField(0x6808, None, "CSBASE", "guest CS base"),
    VmcsField(0x680a, None, "SSBASE", "guest SS base"),
    VmcsField(0x680c, None, "DSBASE", "guest DS base"),
    VmcsField(0x680e, None, "FSBASE", "guest FS base"),
    VmcsField(0x6810, None, "GSBASE", "guest GS base"),
    VmcsField(0x6812, None, "LDTRBASE", "guest LDTR base"),
    VmcsField(0x6814, None, "TRBASE", "guest TR base"),
    VmcsField(0x6816, None, "GDTRBASE", "guest GDTR base"),
    VmcsField(0x6818, None, "IDTRBASE", "guest IDTR base"),
    VmcsField(0x2400, "VT_PHYSICAL_ADDR", "VMCS_GUEST_PHYS_ADDR", "guest-physical address"),
    VmcsField(0x2806, None, "EFER", "guest IA32_EFER"),
    VmcsField(0x4400, "VT_VMINSTR_ERR", None, "VM-instruction error"),
    VmcsField(0x4402, "VT_EXIT_REASON", "VMCS_EXIT_REASON", "exit reason"),
    VmcsField(0x4404, "VT_EXIT_INT_INFO", "VMCS_EXIT_INTR_INFO", "VM-exit interruption information"),
    VmcsField(0x4406, "VT_EXIT_INT_ERR", "VMCS_EXIT_INTR_ERR", "VM-exit interruption error code"),
    VmcsField(0x4408, "VT_IDTVEC_INFO", "VMCS_IDTVEC_INFO", "IDT-vectoring information"),
    VmcsField(0x440A, "VT_IDTVEC_ERR", "VMCS_IDTVEC_ERR", "IDT-vectoring error code"),
    VmcsField(0x440C, "VT_INSTR_LEN", "VMCS_EXIT_INSTR_LEN", "VM-exit instruction length"),
    VmcsField(0x440E, "VT_INSTR_INFO", "VMCS_EXIT_INSTR_INFO", "VM-exit instruction information"),
    VmcsField(0x4016, "VT_VMENTRY_INT_INFO", "VMCS_VMENTRY_INTR_INFO", "VM-entry interruption information"),
    VmcsField(0x4018, "VT_VMENTRY_INT_ERR", "VMCS_VMENTRYXCP_ERR", "VM-entry exception error code"),
    VmcsField(0x6400, "VT_EXIT_QUAL", "VMCS_EXIT_QUAL", "exit qualification"),
    VmcsField(0x6402, "VT_IO_ECX", None, "I/O RCX (an SMI after an I/O instruction only)"),
    VmcsField(0x6404, "VT_IO_ESI", None, "I/O RSI (an SMI after an I/O instruction only)"),
    VmcsField(0x6406, "VT_IO_EDI", None, "I/O RDI (an SMI after an I/O instruction only)"),
    VmcsField(0x6408, "VT_IO_EIP", None, "I/O RIP (an SMI after an I/O instruction only)"),
    VmcsField(0x640A, "VT_LINEAR_ADDR", "VMCS_GUEST_LINEAR_ADDR", "guest-linear address"),
    VmcsField(0x6800, None, "CR0", "guest CR0"),
    VmcsField(0x6802, None, "CR3", "guest CR3"),
    VmcsField(0x6804, None, "CR4", "guest CR4"),
    VmcsField(0x681A, None, "DR7", "guest DR7"),
    VmcsField(0x681C, None, "RSP", "guest RSP"),
    VmcsField(0x681E, None, "RIP", "guest RIP"),
    VmcsField(0x6820, None, "RFLAGS", "guest RFLAGS"),
)}
