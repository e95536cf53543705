"""What the toolkit's VP asks of the simulated machine: the descriptor tables, segment and
state globals, MSRs and counters, return probes, probes inside a function, MAC_SendPacket,
exit(), and ISVMM."""

from __future__ import annotations

import re

import pytest

from machine import SimulatedMachine, default_config
from machine.guest import layout as L
from conftest import load_error, load_on_machine, run_machine


def values(log: str) -> dict[str, int]:
    """NAME=0xVALUE pairs of a log line."""
    return {k: int(v, 16) for k, v in re.findall(r"(\w+)=(?:0x)?([0-9a-f]+)", log)}


def show(*names: str) -> str:
    return '(printf "' + " ".join(f"{n}=%#x" for n in names) + '\\n" ' + " ".join(names) + ")"


# ---- descriptor tables and segments -------------------------------------------------------------

def test_the_guest_has_a_gdt_idt_and_tss_and_its_registers_say_where():
    m = SimulatedMachine()
    log = run_machine(f"(vprobe VMM1Hz (cond ((== VCPUID 1) {show('GDTRBASE', 'GDTRLIMIT', 'IDTRBASE', 'IDTRLIMIT', 'TR', 'TRBASE', 'TRLIMIT', 'TRAR', 'LDTR', 'LDTRAR')})))", 2, machine=m)
    v = values(log.splitlines()[0])
    percpu = m.guest.cpus[1].percpu
    assert v == {"GDTRBASE": percpu + L.PERCPU_GDT, "GDTRLIMIT": 0x7F, "IDTRBASE": L.IDT_PAGE, "IDTRLIMIT": 0xFFF,
                 "TR": 0x40, "TRBASE": percpu + L.PERCPU_TSS, "TRLIMIT": 0x67, "TRAR": 0x8B, "LDTR": 0,
                 "LDTRAR": 0x10000}


def test_the_gdt_in_guest_memory_holds_linux_s_flat_segments_and_the_tss():
    m = SimulatedMachine()
    log = run_machine("(vprobe GUEST:sys_read\n"
                      '  (printf "%#x %#x %#x %#x %#x\\n" (getguest (+ GDTRBASE 0x10)) (getguest (+ GDTRBASE 0x30))\n'
                      "          (& (getguest (+ GDTRBASE 0x40)) 0xffff) (getguest (+ TRBASE 4)) RSP) (exit))", 4, machine=m)
    kernel_cs, user_cs, tss_limit, rsp0, rsp = (int(x, 16) for x in log.split())
    assert (kernel_cs, user_cs, tss_limit) == (0x00AF9B000000FFFF, 0x00AFFB000000FFFF, 0x67)
    # RSP0: the top of the running task's kernel stack, the one RSP is on
    assert rsp0 % L.THREAD_SIZE == 0 and rsp0 - L.THREAD_SIZE < rsp < rsp0


def test_the_idt_sends_each_vector_to_the_kernel_s_entry_code():
    m = SimulatedMachine()
    symbols = m.symbols
    gate = ("(defun gate (v) (| (& (getguest (+ IDTRBASE (* 16 v))) 0xffff)\n"
            "  (<< (& (>> (getguest (+ IDTRBASE (* 16 v))) 48) 0xffff) 16) (<< (getguest (+ IDTRBASE (* 16 v) 8)) 32)))\n")
    log = run_machine(gate + '(vprobe VMM1Hz (printf "%#x %#x %#x %#x\\n" (gate 14) (gate 0) (gate 0xef) (gate 0x31))'
                             ' (exit))', 2, machine=m)
    assert [int(x, 16) for x in log.split()] == [
        symbols["page_fault"], symbols["divide_error"], symbols["apic_timer_interrupt"], symbols["common_interrupt"]]


@pytest.mark.parametrize("probe, expected", [
    # kernel mode: the flat 64-bit kernel segments, null data segments
    ("GUEST:sys_read", {"CS": 0x10, "CSBASE": 0, "CSLIMIT": 0xFFFFFFFF, "CSAR": 0xA09B, "SS": 0x18,
                        "SSAR": 0xC093, "DSAR": 0x10000, "ESAR": 0x10000, "FSAR": 0x10000, "SELSTATE": 0x39}),
])
def test_segment_hidden_parts_come_from_the_descriptors_their_selectors_name(probe, expected):
    names = list(expected)
    log = run_machine(f"(vprobe {probe} {show(*names)} (exit))", 4)
    assert values(log) == expected


def test_user_mode_and_real_mode_segments():
    log = run_machine(f"(vprobe VMMLoad (cond ((== VCPUID 0) {show('CS', 'CSBASE', 'CSLIMIT', 'CSAR', 'SELSTATE', 'EMULATION_MODE', 'HVSTATE', 'TRAR', 'GDTRLIMIT')})))\n"
                      f"(vprobe VMM10Hz (cond ((== CS 0x33) (do {show('CS', 'CSAR', 'SS', 'SSAR', 'EMULATION_MODE', 'HVSTATE')} (exit)))))", 4)
    at_reset, user = (values(line) for line in log.splitlines())
    assert at_reset == {"CS": 0xF000, "CSBASE": 0xF0000, "CSLIMIT": 0xFFFF, "CSAR": 0x9B, "SELSTATE": 0,
                        "EMULATION_MODE": 1, "HVSTATE": 0, "TRAR": 0x8B, "GDTRLIMIT": 0xFFFF}
    assert user == {"CS": 0x33, "CSAR": 0xA0FB, "SS": 0x2B, "SSAR": 0xC0F3, "EMULATION_MODE": 0, "HVSTATE": 1}


def test_hvstate_names_the_vendor():
    import dataclasses
    amd = SimulatedMachine(dataclasses.replace(default_config(), hv_vendor="amd"))
    assert run_machine('(vprobe VMM1Hz (logint HVSTATE) (exit))', 2, machine=amd) == "2\n"


def test_getvmcs_reads_the_guest_state_fields_as_the_globals_hold_them():
    fields = {0x0802: "CS", 0x4816: "CSAR", 0x6816: "GDTRBASE", 0x4812: "IDTRLIMIT", 0x480E: "TRLIMIT",
              0x6808: "CSBASE"}
    checks = " ".join(f"(== (getvmcs {enc:#x}) {name})" for enc, name in fields.items())
    assert run_machine(f"(vprobe GUEST:sys_read (logint (&& {checks})) (exit))", 4) == "1\n"


# ---- state globals, MSRs, counters -------------------------------------------------------------------

def test_smm_is_set_between_the_smi_and_its_rsm():
    log = run_machine('(vprobe SMM_SMIPre (printf "pre %d\\n" SMM)) (vprobe SMM_SMIPost (printf "post %d\\n" SMM))\n'
                      '(vprobe SMM_RSMPre (printf "rsm %d\\n" SMM)) (vprobe SMM_RSMPost (printf "after %d\\n" SMM) (exit))', 4)
    assert log == "pre 0\npost 1\nrsm 1\nafter 0\n"


def test_brcnt_and_the_counters_grow_with_the_time_a_vcpu_runs():
    text = ("(defaggr c 1 1)\n(vprobe VMM1Hz (aggr c (VCPUID) (\"br\") BRCNT) (aggr c (VCPUID) (\"cycles\") (readpmc 0x40000001))"
            " (aggr c (VCPUID) (\"instr\") (readpmc 0x40000000)) (aggr c (VCPUID) (\"pmc0\") (readpmc 0))"
            " (aggr c (VCPUID) (\"pmc1\") (readpmc 1)) (aggr c (VCPUID) (\"msr\") (readmsr 0x309)))\n"
            "(vprobe VMXUnload (logaggr c))")
    log = run_machine(text, 4)
    latest = {(int(v, 16), k): int(n) for v, k, n in re.findall(r'c\[0x(\d), "(\w+)"\] .* latest (\d+)', log)}
    for vcpu in (0, 1):
        cycles = latest[(vcpu, "cycles")]
        assert cycles > 0 and latest[(vcpu, "instr")] == cycles == latest[(vcpu, "pmc0")] == latest[(vcpu, "msr")]
        assert latest[(vcpu, "br")] == cycles // 6
        assert latest[(vcpu, "pmc1")] == 0
    assert latest[(0, "cycles")] < 4 * default_config().tsc_hz  # halted time does not count


def test_readmsr_gives_what_the_guest_kernel_set_and_faults_on_an_msr_that_is_not_there():
    m = SimulatedMachine()
    log = run_machine("(vprobe GUEST:sys_read (printf \"%#x %#x %#x %#x %d %d\\n\" (readmsr 0xc0000082) "
                      "(readmsr 0xc0000081) (readmsr 0x1b) (readmsr 0xc0000084) (== (readmsr 0xc0000080) EFER) "
                      "(== (readmsr 0xc0000101) GSBASE)) (readmsr 0x1234))", 4, machine=m)
    first, fault = log.splitlines()[:2]
    lstar, star, apic, sfmask, efer, gs = first.split()
    assert int(lstar, 16) == m.symbols["system_call"]
    assert int(star, 16) == 0x0023001000000000 and int(sfmask, 16) == 0x3700
    assert int(apic, 16) & ~0x100 == 0xFEE00800  # enabled; the BSP bit only on VCPU 0
    assert (efer, gs) == ("1", "1")
    assert fault.endswith("readmsr: this VM's VCPUs have no MSR 0x1234 (the guest's rdmsr would take #GP)")


def test_readpmc_of_a_counter_that_does_not_exist_faults():
    log = run_machine("(vprobe VMM1Hz (readpmc 4))\n(vprobe VMXUnload (readpmc 0x40000003))", 1)
    assert "readpmc: there is no performance counter 4" in log
    assert "readpmc: there is no fixed performance counter 3" in log


def test_getmeminfo_is_the_memory_size_and_rdtsc_the_guest_s_tsc():
    log = run_machine('(vprobe VMM1Hz (cond ((== VCPUID 0) (printf "%d %d\\n" (getmeminfo) (<= RDTSC PTSC)))))', 1)
    assert log == f"{default_config().memsize_mb} 1\n"


def test_isvmm_says_where_the_probe_fires_also_in_the_functions_it_calls():
    log = run_machine('(defun where () ISVMM)\n(vprobe VMXLoad (printf "vmx %d %d\\n" ISVMM (where)))\n'
                      '(vprobe VMMLoad (cond ((== VCPUID 0) (printf "vmm %d %d\\n" ISVMM (where)))))', 0.1)
    assert log == "vmx 0 0\nvmm 1 1\n"


# ---- probes ---------------------------------------------------------------------------------------------

def test_a_return_probe_fires_as_the_function_returns_with_its_value():
    text = ('(defaggr n 1 1)\n(vprobe GUEST:sys_read (aggr n (0) ("enter") 1))\n'
            '(vprobe GUEST:EXIT:sys_read (aggr n (ARG0) ("exit") 1) (aggr n ((== RAX ARG0)) ("rax") 1))\n'
            '(vprobe GUEST:EXIT:schedule (aggr n (0) ("schedule returns") 1))\n'
            '(vprobe VMXUnload (logaggr n))')
    log = run_machine(text, 5)
    counts = {(k, int(v, 16)): int(c) for v, k, c in re.findall(r'n\[0x(\w+), "([\w ]+)"\] == avg 1 count (\d+)', log)}
    entered = counts[("enter", 0)]
    assert 0 < entered - 2 <= counts[("exit", 4096)] <= entered  # a read in progress has not returned yet
    assert counts[("rax", 1)] == counts[("exit", 4096)]
    assert counts[("schedule returns", 0)] > 0


def test_a_return_probe_sees_the_caller_s_frame_at_the_return_address():
    m = SimulatedMachine()
    log = run_machine("(vprobe GUEST:EXIT:vfs_read (printf \"%#x\\n\" RIP) (exit))", 5, machine=m)
    rip = int(log.split()[0], 16)
    caller = m.guest.kernel.function_at(rip)
    assert caller.name in ("sys_read", "sys_pread64") and rip != caller.address


def test_a_return_probe_needs_a_function_entry():
    m = SimulatedMachine()
    inside = m.symbols["sys_read"] + 2
    diag = load_error(f"(vprobe GUEST:EXIT:{inside:#x} (logint 1))", backend=m)
    assert f"a return probe needs the entry of a function, and {inside:#x} is not" in diag.message


def test_a_probe_inside_a_function_fires_when_the_function_runs():
    m = SimulatedMachine()
    start = m.symbols["sys_read"]
    log = run_machine(f'(defaggr at 1 0)\n(vprobe GUEST:OFFSET:sys_read:4 (aggr at (RIP) () 1))\n'
                      f'(vprobe GUEST:sys_read (aggr at (RIP) () 1))\n(vprobe VMXUnload (logaggr at))', 4, machine=m)
    counts = dict(re.findall(r"at\[0x([0-9a-f]+)\] == avg 1 count (\d+)", log))
    assert set(counts) == {f"{start:x}", f"{start + 4:x}"} and counts[f"{start:x}"] == counts[f"{start + 4:x}"]


def test_mac_sendpacket_fires_once_per_frame_in_vmx_context():
    log = run_machine('(defaggr f 2 0)\n(vprobe MAC_SendPacket (aggr f (ARG0 VCPUID) () 1))\n'
                      '(vprobe GUEST:sys_sendto (aggr f (0 9) () 1))\n(vprobe VMXUnload (logaggr f))', 4)
    counts = {(int(a, 16), int(b, 16)): int(c) for a, b, c in re.findall(r"f\[0x(\w+), 0x(\w+)\] .* count (\d+)", log)}
    sends = counts[(0, 9)]
    # 4096 bytes: two full 1460-byte segments and the rest, each behind 54 bytes of headers
    assert sends > 0 and counts == {(0, 9): sends, (1514, 0): 2 * sends, (1230, 0): sends}


def test_exit_unloads_the_script_after_the_firing_and_the_unload_probes_fire():
    m = SimulatedMachine()
    out: list[str] = []
    script = load_on_machine('(definteger n)\n(vprobe VMM10Hz (setint n (+ n 1)) (printf "%d " n) (cond ((== n 3) (exit))))\n'
                             '(vprobe VMXUnload (printf "unloaded at %d\\n" n))', m, log_sink=out.append)
    m.attach(script)
    m.run(100)
    assert "".join(out) == "1 \n2 \n3 \nunloaded at 3\n"
    assert m.script is None and script.exited == "t.vp:2:69"
    assert m.now_ns < 1_000_000_000  # run() returned once the script had gone
    assert not m.probes.breakpoints and not m.probes.static


@pytest.mark.parametrize("point", ["GUEST_WRITE:jiffies", "GUEST_READ:jiffies"])
def test_exit_in_a_watchpoint_probe_unloads_the_script_and_the_machine_runs_on(point):
    # exit() empties the watchpoint tables while the guest's access is still going through them
    m = SimulatedMachine()
    out: list[str] = []
    script = load_on_machine(f'(vprobe {point} (printf "hit %d\\n" VCPUID) (exit))\n'
                             '(vprobe VMXUnload (logstr "unloaded\\n"))', m, log_sink=out.append)
    m.attach(script)
    m.run(2)
    assert "".join(out) in ("hit 0\nunloaded\n", "hit 1\nunloaded\n")
    assert m.script is None and script.exited is not None
    assert not m.probes.watch_writes and not m.probes.watch_reads
    m.run(1)  # the guest goes on touching jiffies with no script


def test_exit_in_a_load_probe_stops_the_other_load_probes():
    log = run_machine('(vprobe VMXLoad (logstr "vmx ") (exit))\n(vprobe VMMLoad (logstr "vmm "))\n'
                      '(vprobe VMMUnload (printf "unload %d\\n" VCPUID))', 2)
    assert log == "vmx \nunload 0\nunload 1\n"  # VMMLoad never fired
