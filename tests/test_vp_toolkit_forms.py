"""The VP the public toolkit's compiler writes (VMware Workstation 8's): its version
directive, probe names, operators and builtins, on a fake machine and on the
simulated one; and what only ESX has, refused with the reason."""

from __future__ import annotations

import re

import pytest

from vp_runtime import spec
from vp_runtime.probe_points import parse_probe_spec

from conftest import (COMM_OFFSET, CURRENT_TASK_SEG_OFFSET, PID_OFFSET, FakeBackend, Loaded, fire, load_error,
                      position_of, run_machine)

# ---- the version directive --------------------------------------------------------------------


def test_version_as_a_bare_number_runs_and_warns_like_the_string():
    assert Loaded("(version 1.0)\n(vprobe VMXLoad (logint 7))").fire() == "7"
    newer = Loaded("(version 1.9)\n(vprobe VMXLoad (logint 7))").script.warnings
    assert len(newer) == 1 and "newer than this engine's 1.0" in newer[0].message
    diag = load_error("(version 2.0)\n(vprobe VMXLoad (logint 7))")
    assert "needs VProbes version 2.0" in diag.message and (diag.line, diag.col) == (1, 10)


def test_an_esx_target_line_is_refused_as_esx_only_where_it_is():
    text = "(version 1.0)\n@VM1 = /vmfs/volumes/ds/web/web.vmx\n(vprobe VMM1Hz (logint 1))"
    diag = load_error(text)
    assert (diag.line, diag.col) == (2, 1)
    assert diag.message.startswith("'@VM1 = /vmfs/volumes/ds/web/web.vmx' is ESX only")
    assert "ESX only" in load_error("@VMK\n(vprobe VMM1Hz (logint 1))").message


# ---- probe names --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, param, offset", [
    ("VMM:VMM1Hz", "VMM1Hz", None, 0),
    ("VMX:VMX1Hz", "VMX1Hz", None, 0),
    ("VMM:Guest_IRQ", "Guest_IRQ", None, 0),
    ("VMX:Disk_IOStart", "Disk_IOStart", None, 0),
    ("ENTER:sys_read", "GUEST", "sys_read", 0),
    ("GUEST:ENTER:0xffffffff81001000", "GUEST", "0xffffffff81001000", 0),
    ("GUEST:OFFSET:sys_read:12", "GUEST", "sys_read", 12),
    ("OFFSET:0xffffffff81001000:0x10", "GUEST", "0xffffffff81001000", 16),
    ("GUEST:READ:jiffies", "GUEST_READ", "jiffies", 0),
    ("WRITE:jiffies", "GUEST_WRITE", "jiffies", 0),
    ("TIMER:10msec", "USEC", "10000", 0),
    ("VMM:TIMER:2sec", "USEC", "2000000", 0),
    ("PROFILE:250usec", "USEC", "250", 0),
    ("VMM:PROFILE:1msec", "USEC", "1000", 0),
    ("VMX:TIMER:1sec", "VMX1Hz", None, 0),
    ("GUEST:nt!PsGetCurrentProcess", "GUEST", "nt!PsGetCurrentProcess", 0),
])
def test_the_toolkits_probe_names_are_points_the_reference_already_has(text, kind, param, offset):
    point = parse_probe_spec(text)
    assert (point.text, point.kind, point.param, point.offset) == (text, kind, param, offset)


@pytest.mark.parametrize("text, fragment", [
    ("VMX:VMM1Hz", "VMM1Hz fires in the VMM (on each VCPU), not in the VMX; write VMM:VMM1Hz or VMM1Hz"),
    ("VMM:Disk_IOFinish", "Disk_IOFinish fires in the VMX (once for the VM)"),
    ("VMM:ENTER:schedule", "probe code of VMware's monitor, which this VM does not expose; "
                           "for the guest's own code write GUEST:ENTER:schedule"),
    ("VMX:WRITE:jiffies", "the VM's VMX process"),
    ("GUEST:TIMER:1sec", "TIMER: probes fire in the VMM or the VMX, not in the guest"),
    ("VMX:PROFILE:1sec", "PROFILE: probes fire in the VMM, not in the VMX"),
    ("VMX:TIMER:10msec", "a VMX timer fires once a second"),
    ("TIMER:10", "a positive number and a unit, e.g. TIMER:10msec"),
    ("TIMER:0msec", "a positive number and a unit"),
    ("OFFSET:sys_read", "the offset a number of bytes"),
    ("GUEST:OFFSET:sys_read:-4", "the offset a number of bytes"),
    ("GUEST:STEP:sys_read", "STEP: probes are not supported: the toolkit's compiler accepts the name but its "
                            "documentation never says what such a probe fires on"),
    ("VMK:VMK1Hz", "is ESX only: 'VMK:' names the VMkernel"),
    ("POSIX:TIMER:1sec", "is ESX only: 'POSIX:' names a POSIX process of the ESX host"),
    ("VMM2:VMM1Hz", "is ESX only: 'VMM2:' names one VM of a script that probes several VMs"),
    ("VMM:Nothing", "after 'VMM:' comes a static probe of the VMM"),
])
def test_names_that_do_not_fit_a_hosted_vm_say_why(text, fragment):
    program = f"(vprobe {text} (logint 1))"
    diag = load_error(program)
    assert (diag.line, diag.col) == position_of(program, text)
    assert fragment in diag.message


def test_two_spellings_of_one_point_both_fire_in_script_order_with_their_own_probename():
    log = run_machine('(vprobe VMM:VMM1Hz (printf "%s %d\\n" PROBENAME VCPUID))\n'
                      '(vprobe VMM1Hz (printf "%s %d\\n" PROBENAME VCPUID))\n'
                      '(vprobe VMX:VMX1Hz (printf "%s\\n" PROBENAME))\n'
                      '(vprobe VMM:VMMLoad (printf "load %d\\n" VCPUID))\n'
                      '(vprobe VMX:VMXUnload (printf "unload\\n"))', 1)
    assert log == ("load 0\nload 1\n"
                   "VMM:VMM1Hz 0\nVMM1Hz 0\nVMM:VMM1Hz 1\nVMM1Hz 1\nVMX:VMX1Hz\nunload\n")


def test_timer_and_profile_fire_on_each_vcpu_at_their_interval():
    log = run_machine('(defaggr n 1 1)\n'
                      '(vprobe VMM:TIMER:100msec (aggr n (VCPUID) ("timer") 1))\n'
                      '(vprobe PROFILE:250msec (aggr n (VCPUID) ("profile") 1))\n'
                      '(vprobe VMXUnload (logaggr n))', 1)
    counts = {f"{vcpu} {what}": int(n) for vcpu, what, n in re.findall(r'n\[0x(\d), "(\w+)"\] == avg 1 count (\d+)', log)}
    assert counts == {"0 timer": 10, "1 timer": 10, "0 profile": 4, "1 profile": 4}


def test_enter_offset_read_and_write_names_fire_where_the_reference_names_do():
    from machine import SimulatedMachine
    m = SimulatedMachine()
    sys_read = m.lookup_symbol("sys_read")
    log = run_machine(f'(defaggr n 0 1)\n'
                      f'(vprobe GUEST:sys_read (aggr n () ("GUEST:") 1))\n'
                      f'(vprobe GUEST:ENTER:sys_read (aggr n () ("GUEST:ENTER:") 1))\n'
                      f'(vprobe ENTER:{sys_read:#x} (aggr n () ("ENTER:") 1))\n'
                      f'(vprobe GUEST:OFFSET:{sys_read - 4:#x}:4 (aggr n () ("OFFSET:") 1))\n'
                      f'(vprobe GUEST_WRITE:jiffies (aggr n () ("GUEST_WRITE:") 1))\n'
                      f'(vprobe GUEST:WRITE:jiffies (aggr n () ("GUEST:WRITE:") 1))\n'
                      f'(vprobe VMXUnload (logaggr n))', 4, machine=m)
    counts = dict(re.findall(r'n\["([A-Z_:]+)"\] == avg 1 count (\d+)', log))
    assert set(counts) == {"GUEST:", "GUEST:ENTER:", "ENTER:", "OFFSET:", "GUEST_WRITE:", "GUEST:WRITE:"}
    assert int(counts["GUEST:"]) > 0 and int(counts["GUEST_WRITE:"]) > 0
    assert counts["GUEST:ENTER:"] == counts["ENTER:"] == counts["OFFSET:"] == counts["GUEST:"]
    assert counts["GUEST:WRITE:"] == counts["GUEST_WRITE:"]


# ---- operators and forms --------------------------------------------------------------------------

def test_unary_minus_negates_modulo_two_to_the_64():
    log = fire('(definteger x 5)\n(vprobe VMXLoad (printf "%d %u %d %d\\n" (- x) (- x) (sub 0) (+ (- x) 7)))')
    assert log == "-5 18446744073709551611 0 2\n"


def test_logaggr_and_clearaggr_take_several_aggregates_in_turn():
    loaded = Loaded("(defaggr a 1 0)\n(defaggr b 0 1)\n"
                    '(vprobe VMXLoad (aggr a (1) () 2) (aggr b () ("x") 3) (logaggr a b) (clearaggr a b) (logaggr b a))')
    assert loaded.fire() == ("aggr: a (1 integer key) (0 string keys)\na[0x1] == avg 2 count 1 min 2 max 2 latest 2\n"
                             'aggr: b (0 integer keys) (1 string key)\nb["x"] == avg 3 count 1 min 3 max 3 latest 3\n'
                             "aggr: b (0 integer keys) (1 string key)\naggr: a (1 integer key) (0 string keys)\n")


# ---- builtins -------------------------------------------------------------------------------

def test_offat_builtins_take_an_address_as_well_as_a_symbol(linux_guest):
    b = linux_guest()
    b.define("strncpy", 0xFFFFFFFF81061248)  # where get_task_comm's `call` goes (call .+0x122f, after its 5 bytes)
    getpid, comm = b.symbols["sys_getpid"], b.symbols["get_task_comm"]
    log = fire(f'(vprobe VMXLoad (printf "%x %x %x %x %x %x\\n" (offatret {getpid}) (offatret "sys_getpid") '
               f'(offatseg {getpid - (1 << 64)}) (offatstrcpy {comm}) (offatstrcpy {comm} "strncpy") '
               f'(offatstrcpy "get_task_comm" {0xFFFFFFFF81061248})))', backend=b)
    assert log == (f"{PID_OFFSET:x} {PID_OFFSET:x} {CURRENT_TASK_SEG_OFFSET:x} {COMM_OFFSET:x} "
                   f"{COMM_OFFSET:x} {COMM_OFFSET:x}\n")
    fault = fire('(vprobe VMXLoad (offatstrcpy "get_task_comm" "sys_getpid"))', backend=b)
    assert "looked for a call to the copy routine at 0xffffffff81050000, but found none" in fault


def test_gueststack_without_a_destination_returns_the_stack():
    b = FakeBackend(frames=[0xFFFFFFFF81001000, 0xFFFFFFFF81002000])
    assert fire("(vprobe VMXLoad (logstr (gueststack)))", backend=b) == "GUEST_0xffffffff81001000_0xffffffff81002000"


def test_assert_passes_or_aborts_the_firing_with_its_message():
    text = ('(vprobe VMXLoad (assert (!= ARG0 1)) (logstr "a ")\n'
            '  (assert (!= ARG0 2) "line 2: ARG0 is 2") (logstr "b\\n"))')
    assert fire(text, ARG0=0) == "a b\n"
    assert fire(text, ARG0=1) == "vprobe error: probe VMXLoad aborted at t.vp:1:17: assertion failed\n"
    assert fire(text, ARG0=2) == ("a \nvprobe error: probe VMXLoad aborted at t.vp:2:3: "
                                  "assertion failed: line 2: ARG0 is 2\n")


def test_getgpr_numbers_registers_as_a_modrm_byte_does():
    b = FakeBackend()
    b.regs.update({name: 0x100 + i for i, name in enumerate(spec.GPR_ORDER)})
    log = fire('(vprobe VMXLoad (printf "%x %x %x %x %x\\n" (getgpr 0) (getgpr 1) (getgpr 3) (getgpr 4) (getgpr 15)))',
               backend=b)
    assert log == "100 101 103 104 10f\n"
    assert "no general-purpose register 16" in fire("(definteger n 16)\n(vprobe VMXLoad (getgpr n))", backend=b)
    diag = load_error("(vprobe VMXLoad (getgpr 16))")
    assert "getgpr: there is no general-purpose register 16" in diag.message and diag.col == 25


def test_getvmcs_reads_the_field_with_that_encoding():
    b = FakeBackend()
    b.regs.update(VMCS_EXIT_REASON=30, VMCS_EXIT_QUAL=0x3F80008, RIP=0xFFFFFFFF81000123, CR3=0x1A0D000)
    log = fire('(vprobe VMXLoad (printf "%d %x %x %x %d\\n" (getvmcs 0x4402) (getvmcs 0x6400) (getvmcs 0x681e) '
               '(getvmcs 0x6802) (getvmcs 0x4400)))', backend=b)
    assert log == "30 3f80008 ffffffff81000123 1a0d000 0\n"
    diag = load_error("(vprobe VMXLoad (getvmcs 0x1234))")
    assert "0x1234 is not the encoding of a VMCS field" in diag.message
    assert "0x1234 is not a VMCS field" in fire("(definteger f 0x1234)\n(vprobe VMXLoad (getvmcs f))", backend=b)


def test_getvmcs_on_an_amd_vm_is_refused():
    amd = FakeBackend(offered={n: g for n, g in spec.GLOBALS.items() if g.group != spec.VMCS})
    diag = load_error("(vprobe VMXLoad (getvmcs 0x4402))", backend=amd)
    assert "it runs on AMD-V, which keeps a VMCB" in diag.message
    assert "AMD-V" in fire("(definteger f 0x4402)\n(vprobe VMXLoad (getvmcs f))", backend=amd)
    amd.regs["RIP"] = 5
    assert fire("(vprobe VMXLoad (logint (getvmcs 0x681e)))", backend=amd) == "5"  # guest state is no VMCS global


def test_getguestphysstr_copies_a_string_from_physical_memory():
    b = FakeBackend().poke_phys(0x1000, b"Linux version 2.6.32\0")
    assert fire('(defstring s)\n(vprobe VMXLoad (getguestphysstr s 5 0x1000) (logstr s) (logstr "|")'
                '(getguestphysstr s 255 0x1000) (logstr s))', backend=b) == "Linux|Linux version 2.6.32"
    assert "not mapped" in fire('(defstring s)\n(vprobe VMXLoad (getguestphysstr s 8 0x9000))', backend=b)


# ---- what only ESX (or the monitor itself) has -------------------------------------------------------

@pytest.mark.parametrize("call, fragment", [
    ("(worldtovmid 1)", "'worldtovmid' is ESX only: it maps a VMkernel world to its VM"),
    ("(schedtrace 1 2 3 4 5)", "'schedtrace' is ESX only"),
    ("(fatalPSOD)", "'fatalPSOD' is ESX only"),
    ("(getvmw 0)", "'getvmw' is not available: it reads the VMware monitor's own memory"),
])
def test_esx_and_monitor_builtins_are_refused_with_the_reason(call, fragment):
    text = f"(vprobe VMM1Hz {call})"
    diag = load_error(text)
    assert fragment in diag.message and (diag.line, diag.col) == position_of(text, call[1:])


@pytest.mark.parametrize("name, fragment", [
    ("WORLDID", "'WORLDID' is ESX only: the VMkernel world that runs the probe"),
    ("PCPU", "'PCPU' is ESX only"),
    ("PRDA_ADDR", "'PRDA_ADDR' is ESX only"),
    ("MEMSCHED_ADDR", "'MEMSCHED_ADDR' is not available: the address of the monitor's memory-scheduler state"),
])
def test_esx_and_monitor_globals_are_refused_with_the_reason(name, fragment):
    text = f"(vprobe VMM1Hz (logint {name}))"
    diag = load_error(text)
    assert fragment in diag.message and (diag.line, diag.col) == position_of(text, name)


def test_emmett_calls_the_new_builtins_and_gives_offat_an_address():
    import emmett
    result = emmett.compile('VMM1Hz { string s; x = getgpr(4) + getvmcs(0x4402); getguestphysstr(s, 8, 0x1000);\n'
                            ' y = offatret(0xffffffff81001ce0) + offatstrcpy("get_task_comm", "strncpy"); }',
                            "t.emt", emmett.CompileOptions(preload=False))
    assert result.ok, [d.format() for d in result.diagnostics]
    assert "(getgpr 4)" in result.vp and "(getvmcs 0x4402)" in result.vp
    assert "(getguestphysstr VMM1Hz.s 8 0x1000)" in result.vp
    assert '(offatret 0xffffffff81001ce0)' in result.vp and '(offatstrcpy "get_task_comm" "strncpy")' in result.vp
