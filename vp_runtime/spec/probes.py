"""Probe points: the static probes of Table 3-3, guest faults, parametric kinds.

A probe point is named either by a static probe's name (`VMM1Hz`,
`Guest_PF`, `Disk_IOStart`) or as `KIND:PARAMETER`, where the kind is one of
PROBE_KINDS (`GUEST:0x7c00`, `GUEST_WRITE:jiffies`, `USEC:1000`).  A static
probe runs in VMM context (on the VCPU where its event happens; a periodic or
load/unload probe once on each VCPU) or in VMX context (once for the VM) and
passes its arguments in ARG0..ARG9.
"""

from .records import Record
from .values import ADDRESS

VMM, VMX = "VMM", "VMX"
# How a static probe fires: at an event of the guest or the VM, periodically, or when a
# script loads or unloads.
EVENT, PERIODIC, LOAD, UNLOAD = "event", "periodic", "load", "unload"



class GuestFault(Record):
    """An x86 exception the guest can take: its vector and whether it pushes an error code."""

    __slots__ = ("name", "vector", "error_code", "description")


GUEST_FAULTS = {f.name: f for f in (
    GuestFault("DE", 0, False, "divide error"),
    GuestFault("DB", 1, False, "debug exception"),
    GuestFault("NMI", 2, False, "non-maskable interrupt"),
    GuestFault("BP", 3, False, "breakpoint (int3)"),
    GuestFault("OF", 4, False, "overflow (into)"),
    GuestFault("BR", 5, False, "BOUND range exceeded"),
    GuestFault("UD", 6, False, "invalid opcode"),
    GuestFault("NM", 7, False, "device not available"),
    GuestFault("DF", 8, True, "double fault"),
    GuestFault("TS", 10, True, "invalid TSS"),
    GuestFault("RESERVED_FAULT", 15, False, "the reserved vector 15"),
    GuestFault("NP", 11, True, "segment not present"),
    GuestFault("SS", 12, True, "stack-segment fault"),
    GuestFault("GP", 13, True, "general protection"),
    GuestFault("PF", 14, True, "page fault"),
    GuestFault("MF", 16, False, "x87 floating-point error"),
    GuestFault("AC", 17, True, "alignment check"),
    GuestFault("MC", 18, False, "machine check"),
    GuestFault("XF", 19, False, "SIMD floating-point exception"),
)}
GUEST_FAULT_PREFIX = "Guest_"



class ProbeInfo(Record):
    """A static probe: its context (VMM or VMX), what ARG0.. hold, a description, how
    it fires (EVENT, PERIODIC every period_us, LOAD, UNLOAD) and, for a guest-fault
    probe, its GuestFault."""

    __slots__ = ("name", "context", "args", "description", "fires", "period_us", "fault")
    defaults = {"fires": EVENT, "period_us": 0, "fault": None}


_DISK_ARGS = (
    "adapter type", "controller ID", "drive ID", "1 for read, 0 for write",
    "unique I/O identifier", "start sector", "number of sectors",
    "number of scatter/gather entries",
)
_IO_ARGS = ("port", "operand size", "rep count")

STATIC_PROBES = {p.name: p for p in (
    ProbeInfo("VMM1Hz", VMM, (), "once a second, on each VCPU", PERIODIC, 1_000_000),
    ProbeInfo("VMM10Hz", VMM, (), "ten times a second, on each VCPU", PERIODIC, 100_000),
    ProbeInfo("VMX1Hz", VMX, (), "once a second, once per VM", PERIODIC, 1_000_000),
    *(ProbeInfo(GUEST_FAULT_PREFIX + f.name, VMM, ("error code, if the fault has one",),
                f"before #{f.name} is delivered to the guest", fault=f)
      for f in GUEST_FAULTS.values()),
    ProbeInfo("Guest_CR3Write", VMM, (), "immediately before the guest writes CR3"),
    ProbeInfo("Guest_IRQ", VMM, ("IRQ vector",), "before a hardware interrupt is delivered"),
    ProbeInfo("Guest_TripleFault", VMM, (), "a triple fault"),
    ProbeInfo("HV_Exit", VMM, (), "exit from hardware-assisted execution (VT / AMD-V)"),
    ProbeInfo("HV_Resume", VMM, (), "before resuming hardware-assisted execution"),
    ProbeInfo("HV_NPF", VMM, (), "before a nested page fault is handled"),
    ProbeInfo("In", VMM, _IO_ARGS, "the guest executes IN"),
    ProbeInfo("Out", VMM, _IO_ARGS, "the guest executes OUT"),
    ProbeInfo("SMM_SMIPre", VMM, (), "before an SMI is delivered"),
    ProbeInfo("SMM_SMIPost", VMM, (), "immediately after an SMI is delivered"),
    ProbeInfo("SMM_RSMPre", VMM, (), "before RSM executes"),
    ProbeInfo("SMM_RSMPost", VMM, (), "immediately after RSM executes"),
    ProbeInfo("MAC_SendPacket", VMX, ("the frame's length in bytes",),
              "the VM's virtual NIC sends a frame to the network (VMware Workstation 8)"),
    ProbeInfo("Disk_IOStart", VMX, _DISK_ARGS, "at the start of a disk I/O"),
    ProbeInfo("Disk_IOFinish", VMX, _DISK_ARGS, "when a disk I/O completes"),
    ProbeInfo("VMMLoad", VMM, (), "once on each VCPU when the script loads", LOAD),
    ProbeInfo("VMMUnload", VMM, (), "once on each VCPU when the script unloads", UNLOAD),
    ProbeInfo("VMXLoad", VMX, (), "once when the script loads", LOAD),
    ProbeInfo("VMXUnload", VMX, (), "once when the script unloads", UNLOAD),
)}

# What a parametric probe's parameter is: an ADDRESS (a guest linear address, hex or
# decimal, or a guest symbol), or an INTERVAL (a positive number of microseconds).
INTERVAL = "interval"
# What a parametric probe fires on (RETURN: the function at the address returns).
EXECUTE, READ, WRITE, RETURN = "execute", "read", "write", "return"



# The later releases' kinds also take a DURATION (a positive number and a unit:
# 10msec, 1sec, 500usec) or an ADDRESS_AND_OFFSET (<address or symbol>:<n>, n bytes in).
DURATION, ADDRESS_AND_OFFSET = "duration", "address and offset"
DURATION_UNITS_US = {"sec": 1_000_000, "msec": 1_000, "usec": 1}

# The domain a later release's probe name may start with: where the probe fires (the
# monitor, on a VCPU; the VM's own VMX process; the guest's code).  `VMM:VMM1Hz`,
# `VMX:VMX1Hz` name the static probes of their context; `GUEST:ENTER:sym` a guest kind.
GUEST = "GUEST"
DOMAINS = (VMM, VMX, GUEST)


class ProbeKind(Record):
    """A probe point written KIND:PARAMETER: its parameter (ADDRESS, INTERVAL, DURATION or
    ADDRESS_AND_OFFSET), what fires it (EXECUTE, READ, WRITE or PERIODIC), its context,
    how it is written and what it does.  A later release's kind is another spelling of a
    reference kind (`same_as`; the probe point is that kind's), may start with one of its
    `domains`, and may be one this runtime refuses (`refused`: why)."""

    __slots__ = ("name", "param", "fires", "context", "syntax", "description", "same_as", "domains", "refused")
    defaults = {"same_as": None, "domains": (), "refused": None}


PROBE_KINDS = {k.name: k for k in (
    ProbeKind("GUEST", ADDRESS, EXECUTE, VMM, "GUEST:<address or symbol>",
              "the guest executes the instruction at a linear address or symbol"),
    ProbeKind("GUEST_READ", ADDRESS, READ, VMM, "GUEST_READ:<address or symbol>",
              "the guest reads a linear address or symbol"),
    ProbeKind("GUEST_WRITE", ADDRESS, WRITE, VMM, "GUEST_WRITE:<address or symbol>",
              "the guest writes a linear address or symbol"),
    ProbeKind("USEC", INTERVAL, PERIODIC, VMM, "USEC:<n>",
              "periodically every n microseconds, on each VCPU"),
    # The toolkit's (VMware Workstation 8's) names.
    ProbeKind("ENTER", ADDRESS, EXECUTE, VMM, "[GUEST:]ENTER:<address or symbol>",
              "the guest enters a function: GUEST:<address or symbol>", "GUEST", (GUEST,)),
    ProbeKind("EXIT", ADDRESS, RETURN, VMM, "[GUEST:]EXIT:<address or symbol>",
              "the guest function at an address or symbol returns; ARG0 is its return value (RAX)",
              None, (GUEST,)),
    ProbeKind("OFFSET", ADDRESS_AND_OFFSET, EXECUTE, VMM, "[GUEST:]OFFSET:<address or symbol>:<n>",
              "the guest executes the instruction n bytes into a function", "GUEST", (GUEST,)),
    ProbeKind("READ", ADDRESS, READ, VMM, "[GUEST:]READ:<address or symbol>",
              "the guest reads a linear address or symbol: GUEST_READ:", "GUEST_READ", (GUEST,)),
    ProbeKind("WRITE", ADDRESS, WRITE, VMM, "[GUEST:]WRITE:<address or symbol>",
              "the guest writes a linear address or symbol: GUEST_WRITE:", "GUEST_WRITE", (GUEST,)),
    ProbeKind("TIMER", DURATION, PERIODIC, VMM, "[VMM:]TIMER:<n>sec|msec|usec, VMX:TIMER:1sec",
              "periodically, on each VCPU (VMX:, once a second for the VM): USEC:", "USEC", (VMM, VMX)),
    ProbeKind("PROFILE", DURATION, PERIODIC, VMM, "[VMM:]PROFILE:<n>sec|msec|usec",
              "periodically, on each VCPU, to sample what it runs: USEC:", "USEC", (VMM,)),
    ProbeKind("STEP", ADDRESS, EXECUTE, VMM, "[GUEST:]STEP:<address or symbol>",
              "a single-step probe", None, (GUEST,),
              "STEP: probes are not supported: the toolkit's compiler accepts the name but its "
              "documentation never says what such a probe fires on"),
)}
PROBE_KIND_SEPARATOR = ":"
