"""Hardware virtualization (VT / AMD-V exits), SMM, and the guest faults of Table 3-3."""

from __future__ import annotations

import pytest

from machine.guest import layout as L
from machine.guest.hv import Exit, amd_fields, entry_fields, intel_fields
from vp_runtime import GuestMemoryFault, VPLoadError, load
from vp_runtime.catalog import STATIC_PROBES

from test_machine_support import machine_for, run_script, snapshot

VALID = 1 << 31
# Intel basic exit reasons (SDM vol. 3, appendix C)
EXCEPTION_NMI, EXTERNAL_INTERRUPT, TRIPLE_FAULT, INTERRUPT_WINDOW = 0, 1, 2, 7
CPUID, HLT, INVLPG, RDTSC, CR_ACCESS, IO, APIC_ACCESS, EPT_VIOLATION = 10, 12, 14, 16, 28, 30, 44, 48
# AMD exit codes (APM vol. 2, appendix C)
SVM_CR0_WRITE, SVM_INTR, SVM_NMI, SVM_VINTR, SVM_RDTSC = 0x10, 0x60, 0x61, 0x64, 0x6E
SVM_CPUID, SVM_HLT, SVM_INVLPG, SVM_IOIO, SVM_SHUTDOWN, SVM_NPF = 0x72, 0x78, 0x79, 0x7B, 0x7F, 0x400

INTEL_FIELDS = ("VMCS_EXIT_REASON VMCS_EXIT_QUAL VMCS_INTR_INFO VMCS_INTR_ERR VMCS_INSTRLEN "
                "VMCS_GUEST_PHYS_ADDR VMCS_GUEST_LINEAR_ADDR").split()
AMD_FIELDS = "VMCB_EXITCODE VMCB_EXITINFO1 VMCB_EXITINFO2 VMCB_EXITINTINFO".split()


def hv_script(fields: list[str], entry: str) -> str:
    formats = " ".join(["%x"] * len(fields))
    return (f'(vprobe HV_Exit (printf "X {formats}\\n" {" ".join(fields)}))'
            f'(vprobe HV_NPF (printf "N {formats}\\n" {" ".join(fields)}))'
            f'(vprobe HV_Resume (printf "R %x\\n" {entry}))'
            '(vprobe In (printf "I %x %d %d\\n" ARG0 ARG1 ARG2))'
            '(vprobe Out (printf "O %x %d %d\\n" ARG0 ARG1 ARG2))'
            '(vprobe Guest_IRQ (printf "Q %x\\n" ARG0))'
            '(vprobe Guest_PF (printf "P %x\\n" CR2))')


def records(run):
    """(probe letter, values, firing) for every firing of the HV script."""
    out = []
    for f in run.firings:
        letter, *values = f.log.split()
        out.append((letter, [int(v, 16) if letter in "XNRQP" else v for v in values], f))
    return out


def exits(run):
    """(values, the three records after it, firing) for every exit (HV_Exit) of the HV script."""
    recs = records(run)
    return [(values, recs[i + 1:i + 4], f) for i, (letter, values, f) in enumerate(recs) if letter == "X"]


def hv_snapshot(m):
    """The usual snapshot, plus where the faulting linear address translates now (for NPFs)."""
    state = snapshot(m)
    regs = state["regs"]
    linear = state["hv"].get("VMCS_GUEST_LINEAR_ADDR") or regs["CR2"]
    try:
        state["translation"] = m.mmu.translate(regs["CR3"], linear)
    except GuestMemoryFault:
        state["translation"] = None
    if state.get("online"):
        state["instruction"] = m.read_linear(regs["RIP"], 1)[0]
    return state


@pytest.fixture(scope="module")
def intel_run():
    return run_script(hv_script(INTEL_FIELDS, "VMCS_VMENTRY_INTR_INFO"), 6, hook=hv_snapshot)


@pytest.fixture(scope="module")
def amd_run():
    return run_script(hv_script(AMD_FIELDS, "VMCB_EVENTINJ"), 3, hv_vendor="amd", hook=hv_snapshot)


def test_intel_exits_carry_consistent_vmcs_fields(intel_run):
    seen = set()
    for values, following, f in exits(intel_run):
        reason, qual, intr_info, intr_err, instr_len, gpa, linear = values
        seen.add(reason)
        if reason == EXTERNAL_INTERRUPT:
            vector = intr_info & 0xFF
            assert intr_info == VALID | vector and vector >= 0x20  # valid, type external interrupt
            # The monitor injects it at the next entry, and the guest gets that IRQ.
            assert following[0][0] == "R" and following[0][1] == [VALID | vector]
            assert following[1][0] == "Q" and following[1][1] == [vector]
        elif reason == HLT:
            assert instr_len == 1 and f.state["mode"] == "idle"
            code = intel_run.machine.guest.kernel.functions["default_idle"]
            assert code.address <= f.state["regs"]["RIP"] < code.end
            assert f.state["instruction"] == 0xF4  # the exit reports the hlt itself
        elif reason == IO:
            port, is_in, string, rep = qual >> 16, (qual >> 3) & 1, (qual >> 4) & 1, (qual >> 5) & 1
            size = (qual & 7) + 1
            # The In/Out probe right after the exit is the same instruction.
            nxt = next(r for r in following if r[0] in "IO")
            assert (nxt[0], int(nxt[1][0], 16), int(nxt[1][1])) == ("I" if is_in else "O", port, size)
            assert string == rep == (int(nxt[1][2]) > 1)
        elif reason == CR_ACCESS:
            assert qual & 0xF == 0 and (qual >> 4) & 3 in (0, 2)  # mov to CR0, or clts
        elif reason == APIC_ACCESS:
            assert qual == 0xB0 | (1 << 12)  # a write of the EOI register
        elif reason == EPT_VIOLATION:
            assert qual & 3 in (1, 2) and qual & 0x38 == 0 and qual & 0x180 == 0x180
            assert following[0][0] == "N" and following[0][1] == values  # HV_NPF, same exit
            # The guest-physical address is where the faulting linear address now translates.
            assert f.state["translation"] == gpa and linear == f.state["regs"]["CR2"]
        elif reason in (CPUID, RDTSC):
            assert instr_len == 2
        elif reason == INVLPG:
            assert L.USER_HEAP <= qual < L.USER_MMAP_BASE and instr_len == 3
        elif reason == EXCEPTION_NMI:
            assert intr_info & VALID and (intr_info >> 8) & 7 in (2, 3)
        if reason != EPT_VIOLATION:
            assert not any(r[0] == "N" for r in following[:1])
    assert {EXTERNAL_INTERRUPT, HLT, CPUID, RDTSC, CR_ACCESS, IO, APIC_ACCESS, EPT_VIOLATION,
            INTERRUPT_WINDOW} <= seen


def test_intel_every_exit_is_followed_by_a_resume(intel_run):
    letters = "".join(r[0] for r in records(intel_run) if r[0] in "XNR")
    assert letters.replace("XNR", "").replace("XR", "") == ""


def test_amd_exits_carry_consistent_vmcb_fields(amd_run):
    seen = set()
    for values, following, f in exits(amd_run):
        code, info1, info2, intinfo = values
        seen.add(code)
        if code == SVM_INTR:
            vector = following[1][1][0]
            assert following[0][0] == "R" and following[0][1] == [VALID | vector]
        elif code == SVM_IOIO:
            nxt = next(r for r in following if r[0] in "IO")
            assert int(nxt[1][0], 16) == info1 >> 16 and (info1 & 1) == (nxt[0] == "I")
            assert info1 & 0x70 == {1: 0x10, 2: 0x20, 4: 0x40}[int(nxt[1][1])]
        elif code == SVM_NPF:
            assert following[0][0] == "N" and info1 >> 32 == 1
            if info2 >> 12 == L.APIC_PHYS >> 12:  # no AVIC: the EOI write faults on the APIC page
                assert info2 == L.APIC_PHYS + 0xB0 and info1 & 0xF == 0xF
            else:  # a guest page the monitor has not backed yet
                assert info1 & 1 == 0
                assert f.state["translation"] == info2
        elif code == SVM_HLT:
            assert f.state["mode"] == "idle"
    assert {SVM_INTR, SVM_HLT, SVM_CPUID, SVM_IOIO, SVM_NPF, SVM_CR0_WRITE} <= seen


def test_vendor_decides_which_globals_exist():
    for vendor, offered, missing in (("intel", "VMCS_EXIT_REASON", "VMCB_EXITCODE"),
                                     ("amd", "VMCB_EXITCODE", "VMCS_EXIT_REASON")):
        m = machine_for(hv_vendor=vendor)
        names = set(m.globals())
        assert offered in names and missing not in names
        assert not any(n.startswith("VMCB_" if vendor == "intel" else "VMCS_") for n in names)
        load(f"(vprobe HV_Exit (logint {offered}))", m.load_config, backend=m)
        with pytest.raises(VPLoadError) as info:
            load(f"(vprobe HV_Exit (logint {missing}))", m.load_config, backend=m)
        assert missing in info.value.diagnostics[0].message


@pytest.mark.parametrize("exit_, intel, amd", [
    (Exit("interrupt", vector=0xEF), dict(VMCS_EXIT_REASON=1, VMCS_INTR_INFO=0x800000EF),
     dict(VMCB_EXITCODE=SVM_INTR)),
    (Exit("nmi"), dict(VMCS_EXIT_REASON=0, VMCS_INTR_INFO=0x80000202), dict(VMCB_EXITCODE=SVM_NMI)),
    (Exit("exception", vector=14, error_code=6), dict(VMCS_EXIT_REASON=0, VMCS_INTR_INFO=0x80000B0E, VMCS_INTR_ERR=6),
     dict(VMCB_EXITCODE=0x4E, VMCB_EXITINFO1=6)),
    (Exit("triple_fault"), dict(VMCS_EXIT_REASON=TRIPLE_FAULT), dict(VMCB_EXITCODE=SVM_SHUTDOWN)),
    (Exit("window"), dict(VMCS_EXIT_REASON=INTERRUPT_WINDOW), dict(VMCB_EXITCODE=SVM_VINTR)),
    (Exit("cpuid", instr_len=2), dict(VMCS_EXIT_REASON=CPUID, VMCS_INSTRLEN=2), dict(VMCB_EXITCODE=SVM_CPUID)),
    (Exit("hlt", instr_len=1), dict(VMCS_EXIT_REASON=HLT, VMCS_INSTRLEN=1), dict(VMCB_EXITCODE=SVM_HLT)),
    (Exit("invlpg", address=0x605000, instr_len=3), dict(VMCS_EXIT_REASON=INVLPG, VMCS_EXIT_QUAL=0x605000),
     dict(VMCB_EXITCODE=SVM_INVLPG, VMCB_EXITINFO1=0x605000)),
    (Exit("rdtsc", instr_len=2), dict(VMCS_EXIT_REASON=RDTSC), dict(VMCB_EXITCODE=SVM_RDTSC)),
    (Exit("cr", cr=0, cr_access=2, instr_len=2), dict(VMCS_EXIT_REASON=CR_ACCESS, VMCS_EXIT_QUAL=0x20),
     dict(VMCB_EXITCODE=SVM_CR0_WRITE)),
    (Exit("io", port=0x3F8, size=1, rep=True, string=True, instr_len=2),
     dict(VMCS_EXIT_REASON=IO, VMCS_EXIT_QUAL=0x3F80030), dict(VMCB_EXITCODE=SVM_IOIO, VMCB_EXITINFO1=0x3F8001C)),
    (Exit("io", port=0x71, size=1, is_in=True), dict(VMCS_EXIT_QUAL=0x710008), dict(VMCB_EXITINFO1=0x710011)),
    (Exit("apic", address=0xB0, write=True), dict(VMCS_EXIT_REASON=APIC_ACCESS, VMCS_EXIT_QUAL=0x10B0),
     dict(VMCB_EXITCODE=SVM_NPF, VMCB_EXITINFO2=0xFEE000B0)),
    (Exit("npf", address=0x3456789, write=True, linear=0x600789),
     dict(VMCS_EXIT_REASON=EPT_VIOLATION, VMCS_EXIT_QUAL=0x182, VMCS_GUEST_PHYS_ADDR=0x3456789,
          VMCS_GUEST_LINEAR_ADDR=0x600789),
     dict(VMCB_EXITCODE=SVM_NPF, VMCB_EXITINFO1=(1 << 32) | 6, VMCB_EXITINFO2=0x3456789)),
])
def test_exit_encodings(exit_, intel, amd):
    got = intel_fields(exit_)
    assert {k: got[k] for k in intel} == intel
    got = amd_fields(exit_)
    assert {k: got[k] for k in amd} == amd


def test_entry_injection_fields():
    assert entry_fields("intel", 0x49) == {"VMCS_VMENTRY_INTR_INFO": 0x80000049, "VMCS_VMENTRYXCP_ERR": 0}
    assert entry_fields("amd", None) == {"VMCB_EVENTINJ": 0}


def test_hv_exits_are_not_described_unless_a_script_looks():
    run = run_script('(vprobe Guest_IRQ (logint ARG0))', 1)
    assert all(not f.state["hv"] for f in run.firings)
    assert not run.machine.probes.track_hv


def test_smm_probes_in_order():
    text = "".join(f'(vprobe {p} (printf "%s\\n" PROBENAME))' for p in
                   ("SMM_SMIPre", "SMM_SMIPost", "SMM_RSMPre", "SMM_RSMPost"))
    run = run_script(text, 8)
    assert len(run.lines) >= 8
    assert run.lines == ["SMM_SMIPre", "SMM_SMIPost", "SMM_RSMPre", "SMM_RSMPost"] * (len(run.lines) // 4)


GUEST_FAULTS = [p for p in STATIC_PROBES if p.startswith("Guest_") and p not in (
    "Guest_IRQ", "Guest_CR3Write", "Guest_TripleFault")]
HAS_ERROR_CODE = {"Guest_DF", "Guest_TS", "Guest_NP", "Guest_SS", "Guest_GP", "Guest_PF", "Guest_AC"}


def test_every_guest_fault_fires_under_the_faults_workload():
    assert len(GUEST_FAULTS) == 19
    text = "".join(f'(vprobe {p} (printf "%s %x\\n" PROBENAME ARG0))' for p in GUEST_FAULTS)
    run = run_script(text, 4, workload="faults")
    fired = {line.split()[0] for line in run.lines}
    assert fired == set(GUEST_FAULTS) - {"Guest_DF"}
    for line in run.lines:
        name, error = line.split()
        if name not in HAS_ERROR_CODE:
            assert error == "0"
    for f in run.firings:  # raised by the user-mode code running (NMIs come from the watchdog)
        if f.probe != "Guest_NMI":
            assert f.state["regs"]["CS"] == L.USER_CS
    assert {f.state["comm"] for f in run.firings if f.probe == "Guest_GP"} == {"crashme"}


def test_double_and_triple_fault_then_reboot():
    text = ('(vprobe Guest_PF (cond ((> CR2 0xffff800000000000) (printf "PF %x %x\\n" CR2 ARG0))))'
            '(vprobe Guest_DF (printf "DF %x\\n" ARG0))'
            '(vprobe Guest_TripleFault (printf "TF\\n"))'
            '(vprobe HV_Exit (cond ((== VMCS_EXIT_REASON 2) (printf "exit triple fault\\n"))))'
            '(vprobe GUEST:0x7c00 (printf "boot %x\\n" (& RDX 0xff)))')
    run = run_script(text, 6, workload="triplefault")
    assert run.lines == ["boot 80", "PF ffffffffff5fd000 2", "DF 0", "exit triple fault", "TF", "boot 80"]
    tf = run.of("Guest_TripleFault")[0].time_ns
    assert 4e9 < tf < 5e9
