"""Hardware-virtualization exits: what the VMCS (Intel VT) or VMCB (AMD-V) says about each.

The guest model describes an exit in vendor-neutral terms (`Exit`); this
module encodes it into the fields a VT or AMD-V monitor would see, per the
Intel SDM (exit reasons, qualifications, interruption information) and the
AMD APM (exit codes, EXITINFO1/2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..x86 import APIC_DEFAULT_BASE

VALID = 1 << 31
INTR_TYPE_EXTERNAL, INTR_TYPE_NMI, INTR_TYPE_HW_EXCEPTION = 0, 2, 3

# Intel basic exit reasons (SDM Appendix C)
VMX_EXCEPTION_NMI = 0
VMX_EXTERNAL_INTERRUPT = 1
VMX_TRIPLE_FAULT = 2
VMX_INTERRUPT_WINDOW = 7
VMX_CPUID = 10
VMX_HLT = 12
VMX_INVLPG = 14
VMX_RDTSC = 16
VMX_CR_ACCESS = 28
VMX_IO_INSTRUCTION = 30
VMX_TPR_BELOW_THRESHOLD = 43
VMX_APIC_ACCESS = 44
VMX_EPT_VIOLATION = 48

# AMD exit codes (APM vol. 2, appendix C)
SVM_CR_READ, SVM_CR_WRITE = 0x00, 0x10
SVM_EXCEPTION = 0x40
SVM_INTR, SVM_NMI = 0x60, 0x61
SVM_VINTR = 0x64
SVM_RDTSC = 0x6E
SVM_CPUID = 0x72
SVM_HLT = 0x78
SVM_INVLPG = 0x79
SVM_IOIO = 0x7B
SVM_SHUTDOWN = 0x7F
SVM_NPF = 0x400

@dataclass(slots=True)
class Exit:
    """One exit, vendor-neutral.  `kind` is one of the names below; the rest depend on it.

    The guest model passes one for every exit, whether or not a script looks at exits, so it
    is a plain slotted class (a frozen dataclass's `__init__` costs several times more), and
    the frequent ones that say the same each time are made once and only read."""

    kind: str  # "interrupt", "nmi", "exception", "window", "cpuid", "hlt", "invlpg", "rdtsc",
    #            "cr", "io", "tpr", "apic", "npf", "triple_fault"
    vector: int = 0
    error_code: int | None = None
    address: int = 0  # INVLPG linear address, NPF guest-physical address, APIC offset
    cr: int = 0
    cr_access: int = 0  # 0 mov to CR, 1 mov from CR, 2 CLTS, 3 LMSW
    gpr: int = 0
    port: int = 0
    size: int = 1
    is_in: bool = False
    rep: bool = False
    string: bool = False
    write: bool = False
    instr_len: int = 0
    linear: int = 0  # NPF: the guest linear address whose translation led to the access


def is_npf(vendor: str, e: Exit) -> bool:
    """Whether `e` reaches the monitor as a nested page fault (EPT violation / #NPF).

    On AMD-V without AVIC the local APIC page is not mapped in the nested page
    tables, so an APIC access is a nested page fault too; VT has APIC-access exits.
    """
    return e.kind == "npf" or (vendor == "amd" and e.kind == "apic")


# The exits that say only their reason (or code): the others' fields below add what they carry.
_VMX_REASONS = {
    "triple_fault": VMX_TRIPLE_FAULT, "window": VMX_INTERRUPT_WINDOW, "cpuid": VMX_CPUID, "hlt": VMX_HLT,
    "rdtsc": VMX_RDTSC, "tpr": VMX_TPR_BELOW_THRESHOLD,
}
_SVM_CODES = {
    "interrupt": SVM_INTR, "nmi": SVM_NMI, "triple_fault": SVM_SHUTDOWN, "window": SVM_VINTR,
    "cpuid": SVM_CPUID, "hlt": SVM_HLT, "rdtsc": SVM_RDTSC,
    "tpr": SVM_CR_WRITE + 8,  # a write to CR8 (the TPR) is intercepted
}


def intel_fields(e: Exit) -> dict[str, int]:
    """VMCS fields for `e`, by their VProbes global names."""
    k = e.kind
    reason, qual, intr_info, intr_err = _VMX_REASONS.get(k, 0), 0, 0, 0
    if k == "interrupt":
        reason, intr_info = VMX_EXTERNAL_INTERRUPT, VALID | (INTR_TYPE_EXTERNAL << 8) | e.vector
    elif k == "nmi":
        reason, intr_info = VMX_EXCEPTION_NMI, VALID | (INTR_TYPE_NMI << 8) | 2
    elif k == "exception":
        reason = VMX_EXCEPTION_NMI
        intr_info = VALID | (INTR_TYPE_HW_EXCEPTION << 8) | e.vector | ((1 << 11) if e.error_code is not None else 0)
        intr_err = e.error_code or 0
    elif k == "invlpg":
        reason, qual = VMX_INVLPG, e.address
    elif k == "cr":
        reason, qual = VMX_CR_ACCESS, e.cr | (e.cr_access << 4) | (e.gpr << 8)
    elif k == "io":
        reason = VMX_IO_INSTRUCTION
        qual = (e.size - 1) | (int(e.is_in) << 3) | (int(e.string) << 4) | (int(e.rep) << 5) | (e.port << 16)
    elif k == "apic":
        reason, qual = VMX_APIC_ACCESS, e.address | ((1 if e.write else 0) << 12)
    elif k == "npf":
        # Bit 0/1: a data read/write; bits 5:3 clear: the EPT entry is not present (the
        # monitor has not backed that guest page yet); bits 7 and 8: the access was to the
        # translation of a guest linear address, which VMCS_GUEST_LINEAR_ADDR holds.
        reason, qual = VMX_EPT_VIOLATION, (2 if e.write else 1) | (1 << 7) | (1 << 8)
    fields = {
        "VMCS_EXIT_REASON": reason, "VMCS_EXIT_QUAL": qual,
        "VMCS_INTR_INFO": intr_info, "VMCS_INTR_ERR": intr_err,
        "VMCS_EXIT_INTR_INFO": intr_info, "VMCS_EXIT_INTR_ERR": intr_err,
        "VMCS_INSTRLEN": e.instr_len, "VMCS_EXIT_INSTR_LEN": e.instr_len, "VMCS_EXIT_INSTR_INFO": 0,
        "VMCS_IDTVEC_INFO": 0, "VMCS_IDTVEC_ERR": 0,
        "VMCS_GUEST_PHYS_ADDR": e.address if k == "npf" else 0,
        "VMCS_GUEST_LINEAR_ADDR": e.linear if k == "npf" else 0,
    }
    return fields


def amd_fields(e: Exit) -> dict[str, int]:
    """VMCB fields for `e`, by their VProbes global names."""
    k = e.kind
    code, info1, info2, intinfo = _SVM_CODES.get(k, 0), 0, 0, 0
    if k == "exception":
        code, info1 = SVM_EXCEPTION + e.vector, e.error_code or 0
    elif k == "invlpg":
        code, info1 = SVM_INVLPG, e.address
    elif k == "cr":
        code = (SVM_CR_READ if e.cr_access == 1 else SVM_CR_WRITE) + e.cr
    elif k == "io":
        size_bits = {1: 1 << 4, 2: 1 << 5, 4: 1 << 6}[e.size]
        code = SVM_IOIO
        info1 = (e.port << 16) | size_bits | (int(e.rep) << 3) | (int(e.string) << 2) | int(e.is_in)
    elif k == "npf":
        # EXITINFO1 is a page-fault error code: not present (P=0), R/W, U/S (nested walks are
        # user accesses), bit 32: the fault was on the final guest-physical address.
        code, info2 = SVM_NPF, e.address
        info1 = (2 if e.write else 0) | 4 | (1 << 32)
    elif k == "apic":
        # No AVIC: the APIC page is mapped with reserved bits in the nested page tables, so
        # an access is a present, reserved-bit nested page fault at the register's address.
        code, info2 = SVM_NPF, APIC_DEFAULT_BASE + e.address
        info1 = 1 | (2 if e.write else 0) | 4 | 8 | (1 << 32)
    return {
        "VMCB_EXITCODE": code, "VMCB_EXITINFO1": info1, "VMCB_EXITINFO2": info2,
        "VMCB_EXITINTINFO": intinfo, "VMCB_EVENTINJ": 0, "VMCB_TLBCTL": 0, "VMCB_VAPIC": 0,
    }


def entry_fields(vendor: str, vector: int | None) -> dict[str, int]:
    """Fields describing the event injected at the next entry (None: nothing injected)."""
    info = VALID | (INTR_TYPE_EXTERNAL << 8) | vector if vector is not None else 0
    if vendor == "intel":
        return {"VMCS_VMENTRY_INTR_INFO": info, "VMCS_VMENTRYXCP_ERR": 0}
    return {"VMCB_EVENTINJ": info}
