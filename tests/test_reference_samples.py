"""The reference's VP samples (tests/samples/*.vp, transcribed with ERRATA.md applied).

Samples that need no guest state run on the SimulatedMachine and must print
output of their sample's form.  Samples that read guest memory or symbols run
on the FakeBackend of conftest.py, which holds exactly the guest state they
read.  VMM-context probes fire once per VCPU (two on the default machine).
"""

from __future__ import annotations

import re

import pytest

from vp_runtime import VPLoadError, load

from conftest import (COMM_OFFSET, PID_OFFSET, SAMPLES, FakeBackend, Loaded, load_error, load_on_machine,
                      new_machine, run_machine, sample)

NEEDS_CURPROCNAME = {"vptop.vp", "curpid_irq.vp", "curprocname_irq.vp", "user_probe.vp", "emmett_usec.vp"}
AGGR_HEADER = re.compile(r"aggr: (\S+) \((\d+) integer keys?\) \((\d+) string keys?\)\Z")


def with_library(name: str) -> str:
    """A sample that calls curprocname/curpid, preceded by the appendix's implementation."""
    return sample("curprocname.vp") + sample(name)


def lines(text: str) -> list[str]:
    return text.splitlines()


# ---- every transcribed sample loads (or fails) as the reference says --------------

ALL_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.vp"))


def test_every_sample_is_transcribed():
    expected = {
        "hello.vp", "logstr_hello_world.vp", "logint_cr3.vp", "cond_first_true.vp", "cond_none_true.vp",
        "cond_default.vp", "do_logint.vp", "functions.vp", "strcmp_event.vp", "elapsed_seconds.vp",
        "sprintf_rip.vp", "printf_rip.vp", "tsc_frequency.vp", "page_faults.vp", "irqs.vp", "disk_latency.vp",
        "boot_device.vp", "boot_sector.vp", "system_call.vp", "vga_writes.vp", "tsc_khz.vp", "command_line.vp",
        "guest_stack.vp", "apic_version.vp", "curprocname.vp", "vptop.vp", "curpid_irq.vp",
        "curprocname_irq.vp", "user_probe.vp", "emmett_usec.vp", "pagefault_stack.vp",
        "pagefault_stack_fixed.vp",
    }
    assert expected <= set(ALL_SAMPLES)


@pytest.mark.parametrize("name", [n for n in ALL_SAMPLES if n not in ("pagefault_stack.vp", "curprocname.vp")])
def test_sample_loads_against_the_reference_catalogue(name):
    text = with_library(name) if name in NEEDS_CURPROCNAME else sample(name)
    script = load(text, filename=name)
    assert script.warnings == []


def test_curprocname_library_alone_has_no_probe():
    diag = load_error(sample("curprocname.vp"))
    assert "no probe" in diag.message


# ---- on the simulated machine ------------------------------------------------------------

def test_hello():
    out = run_machine(sample("hello.vp"), 3)
    assert out == "hello!\n" * 6  # VMM1Hz: once a second on each of 2 VCPUs


def test_logstr_hello_world():
    out = run_machine(sample("logstr_hello_world.vp"), 2)
    assert out == "Hello world!\n" * 4


def test_logint_cr3_loads_on_the_machine():
    script = load_on_machine(sample("logint_cr3.vp"), new_machine(), "logint_cr3.vp")
    assert [s.text for s in script.probe_specs()] == ["Guest_CR3Write"]
    # The guest writes CR3 while it boots; each record is one integer on its line.
    got = lines(run_machine(sample("logint_cr3.vp"), 1))
    assert got
    for line in got:
        assert re.fullmatch(r"\d+", line)


def test_logint_cr3_on_a_guest_that_writes_cr3():
    b = FakeBackend()
    loaded = Loaded(sample("logint_cr3.vp"), b)
    for cr3 in (160600064, 515477504):
        b.regs["CR3"] = cr3
        loaded.fire("Guest_CR3Write")
    assert loaded.log() == "160600064\n515477504\n"


@pytest.mark.parametrize("name, expected", [
    ("cond_first_true.vp", "B\n"), ("cond_none_true.vp", ""), ("cond_default.vp", "B\n"), ("do_logint.vp", "9\n"),
])
def test_cond_and_do(name, expected):
    assert run_machine(sample(name), 1) == expected


def test_functions_sample():
    assert re.fullmatch(r"[0-9a-f]+ 42\n", run_machine(sample("functions.vp"), 0.1))
    b = FakeBackend()
    b.regs["CR0"] = 0x80050033
    assert Loaded(sample("functions.vp"), b).fire() == "80050033 42\n"


def test_strcmp_event_ok_on_the_machine():
    out = run_machine(sample("strcmp_event.vp"), 3)
    assert lines(out) == ["Guest status is OK!"] * 6


def test_strcmp_event_calamity_in_a_triple_fault():
    loaded = Loaded(sample("strcmp_event.vp"))
    assert loaded.fire("Guest_TripleFault") == "Guest status is Calamity!\n"
    assert loaded.fire("VMM1Hz") == "Guest status is Calamity!\nGuest status is OK!\n"


@pytest.mark.parametrize("numvcpus", [1, 2])
def test_elapsed_seconds_counts_up(numvcpus):
    out = run_machine(sample("elapsed_seconds.vp"), 4, numvcpus=numvcpus)
    got = lines(out)
    # USEC:333333 fires on every VCPU, each firing adds 333333 us to the count.
    firings = 12 * numvcpus
    assert got == [f"{k * 333333 // 1000000} seconds have elapsed." for k in range(1, firings + 1)]
    assert got[0] == "0 seconds have elapsed."


def test_sprintf_rip_ten_times_a_second():
    out = run_machine(sample("sprintf_rip.vp"), 1)
    got = lines(out)
    assert len(got) == 20  # 10 Hz on 2 VCPUs
    for line in got:
        assert re.fullmatch(r"Current RIP is 0x[0-9a-f]{16}", line)


def test_printf_rip_ten_times_a_second():
    out = run_machine(sample("printf_rip.vp"), 1)
    # As printed, the format has no newline: the records run together.
    assert re.fullmatch(r"(Current RIP is 0x[0-9a-f]{16}\n){20}", out)  # one line per firing, as in the sample


def test_tsc_frequency_estimate():
    out = run_machine(sample("tsc_frequency.vp"), 4)
    got = lines(out)
    assert len(got) == 4  # VMX1Hz: once a second, once per VM
    pattern = re.compile(r"Calculated TSC HZ (-?\d+), Actual TSC HZ (\d+) \(difference (-?\d+)\)")
    values = [tuple(int(v) for v in pattern.fullmatch(line).groups()) for line in got]
    hz = values[0][1]
    assert hz > 0
    assert values[0] == (0, hz, hz)  # no previous reading yet
    for calculated, actual, difference in values[1:]:
        assert actual == hz
        assert difference == actual - calculated
        assert abs(difference) < hz // 1000


def test_page_fault_aggregate_prints_aggregate_blocks():
    out = run_machine(sample("page_faults.vp"), 2)
    got = lines(out)
    assert got.count("aggr: pf (1 integer key) (0 string keys)") == 4
    entries = [line for line in got if not AGGR_HEADER.fullmatch(line)]
    assert entries  # the guest's processes fault in its second second
    for line in entries:
        assert re.fullmatch(r"pf\[0x[0-9a-f]+\] == avg \d+ count \d+ min \d+ max \d+ latest \d+", line), line


def test_page_fault_aggregate_sample_output_on_a_guest():
    b = FakeBackend()
    loaded = Loaded(sample("page_faults.vp"), b)
    for cr2 in (0xFFFFF9800BF8E000, 0xFFFFF9800408A01C, 0xFFFFF980044EBDED, 0xFFFFF9800984C410):
        b.regs["CR2"] = cr2
        loaded.fire("Guest_PF")
    assert loaded.fire("VMM1Hz") == (
        "aggr: pf (1 integer key) (0 string keys)\n"
        "pf[0xfffff9800bf8e000] == avg 1 count 1 min 1 max 1 latest 1\n"
        "pf[0xfffff9800408a01c] == avg 1 count 1 min 1 max 1 latest 1\n"
        "pf[0xfffff980044ebded] == avg 1 count 1 min 1 max 1 latest 1\n"
        "pf[0xfffff9800984c410] == avg 1 count 1 min 1 max 1 latest 1\n"
    )


def test_irq_aggregate():
    out = run_machine(sample("irqs.vp"), 3)
    blocks = out.split("aggr: irqs (1 integer key) (0 string keys)\n")
    assert blocks[0] == ""
    blocks = blocks[1:]
    assert len(blocks) == 6  # one per VCPU per second
    for block in blocks:
        for line in lines(block):
            assert re.fullmatch(r"irqs\[0x[0-9a-f]+\] == avg 1 count \d+ min 1 max 1 latest 1", line), line
    # The local APIC timer (vector 0xef) interrupts each VCPU; the first VCPU's VMM1Hz logs
    # and clears, so its blocks hold the second's timer interrupts once the guest has booted.
    assert all("irqs[0xef] == avg 1 count " in block for block in blocks[2::2])


def test_irq_aggregate_sample_output_on_a_guest():
    loaded = Loaded(sample("irqs.vp"))
    loaded.fire("Guest_IRQ", ARG0=0xA1)
    loaded.fire("Guest_IRQ", times=7, ARG0=0xA9)
    loaded.fire("Guest_IRQ", times=7, ARG0=0xEF)
    assert loaded.fire("VMM1Hz") == (
        "aggr: irqs (1 integer key) (0 string keys)\n"
        "irqs[0xa1] == avg 1 count 1 min 1 max 1 latest 1\n"
        "irqs[0xa9] == avg 1 count 7 min 1 max 1 latest 1\n"
        "irqs[0xef] == avg 1 count 7 min 1 max 1 latest 1\n"
    )


def test_disk_latency_loads_and_logs_empty_aggregates():
    # No disk I/O completes in the guest's first second: each VCPU's VMM1Hz logs an empty aggregate.
    out = run_machine(sample("disk_latency.vp"), 1)
    assert out == "aggr: latencies (0 integer keys) (1 string key)\n" * 2


def test_disk_latency_sample_output_on_a_guest():
    b = FakeBackend()
    b.regs["TSC_HZ"] = 2_000_000_000
    loaded = Loaded(sample("disk_latency.vp"), b)
    for start, ticks in ((1000, 52_000), (10_000_000, 56_000), (20_000_000, 168_000)):
        b.regs["TSC"] = start
        loaded.fire("Disk_IOStart")
        b.regs["TSC"] = start + ticks
        loaded.fire("Disk_IOFinish")
    assert loaded.fire("VMM1Hz") == (
        "aggr: latencies (0 integer keys) (1 string key)\n"
        'latencies["uSec"] == avg 46 count 3 min 26 max 84 latest 84\n'
    )


def test_vptop_with_curprocname_loads_on_the_machine():
    script = load_on_machine(with_library("vptop.vp"), new_machine(), "vptop.vp")
    assert [s.text for s in script.probe_specs()] == ["Guest_IRQ", "VMM1Hz"]


def test_pagefault_stack_as_printed_fails_naming_print_stack_32():
    text = sample("pagefault_stack.vp")
    with pytest.raises(VPLoadError) as info:
        load_on_machine(text, new_machine(), "pagefault_stack.vp")
    first = info.value.diagnostics[0]
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "(print-stack-32" in t)
    assert "print-stack-32" in first.message
    assert "undefined" in first.message
    assert first.line == line
    assert first.format().startswith(f"pagefault_stack.vp:{line}:")
    assert any("print-stack-64" in d.message for d in info.value.diagnostics)


def test_pagefault_stack_fixed_loads_and_runs():
    # The guest's processes take their first page faults a little after its first second.
    got = lines(run_machine(sample("pagefault_stack_fixed.vp"), 1.5))
    assert got and len(got) % 16 == 0, got
    for start in range(0, len(got), 16):  # one dump of 16 entries per fault
        dump = [re.fullmatch(r"([ 1]\d) \(([0-9a-f]{16})\): [0-9a-f]{16}", line) for line in got[start:start + 16]]
        assert all(dump), got[start:start + 16]
        levels = [int(m.group(1)) for m in dump]
        addresses = [int(m.group(2), 16) for m in dump]
        # A long-mode guest: 8-byte entries up from RSP, the deepest printed first.
        assert levels == list(range(15, -1, -1))
        assert addresses == [addresses[-1] + 8 * level for level in levels]


@pytest.mark.parametrize("long_mode, width", [(True, 8), (False, 4)])
def test_pagefault_stack_fixed_dumps_the_stack(long_mode, width):
    b = FakeBackend()
    rsp = 0xFFFF880012345F00 if long_mode else 0xC7654F00
    for i in range(16):
        b.poke_u64(rsp + i * width, 0x1111111100000000 * long_mode + 0x1000 + i) if long_mode else \
            b.poke(rsp + i * 4, (0xC0100000 + i).to_bytes(4, "little") + b"\xaa\xaa\xaa\xaa")
    b.regs.update(RSP=rsp, EFER=0xD01 if long_mode else 0)
    out = Loaded(sample("pagefault_stack_fixed.vp"), b).fire("Guest_PF")
    got = lines(out)
    assert len(got) == 16
    if long_mode:
        assert got[0] == f"15 ({rsp + 15 * 8:016x}): {0x1111111100000000 + 0x1000 + 15:016x}"
        assert got[-1] == f" 0 ({rsp:016x}): {0x1111111100001000:016x}"
    else:
        assert got[0] == f"15 ({rsp + 15 * 4:08x}): {0xC0100000 + 15:08x}"
        assert got[-1] == f" 0 ({rsp:08x}): c0100000"


# ---- samples that read guest state, on the fake backend ------------------------------------

def test_boot_device():
    b = FakeBackend()
    loaded = Loaded(sample("boot_device.vp"), b)
    for rdx in (0x1280, 0x7700, 0x42):
        b.regs["RDX"] = rdx
        loaded.fire("GUEST:0x7c00")
    assert loaded.log() == ("Booting from hard drive (0x80)\n"
                            "Booting from floppy drive (0x0)\n"
                            "Booting from unknown device (0x42)\n")


def test_boot_sector_loads_on_the_machine():
    assert set(lines(run_machine(sample("boot_sector.vp"), 0.5))) <= {"Executing boot sector!"}
    assert Loaded(sample("boot_sector.vp")).fire("GUEST:0x7c00") == "Executing boot sector!\n"


def test_dynamic_probes_by_symbol_and_address():
    b = FakeBackend(symbols={"system_call": 0xFFFFFFFF81000000})
    loaded = Loaded(sample("system_call.vp"), b)
    loaded.fire("GUEST:system_call")
    loaded.fire("GUEST:0xc0106ae0")
    assert loaded.log() == "Hi from GUEST:system_call\nreached 0xc0106ae0\n"


def test_data_probes():
    loaded = Loaded(sample("vga_writes.vp"))
    for _ in range(2):
        loaded.fire("GUEST_WRITE:0xa0000")
        loaded.fire("GUEST_WRITE:0xb8000")
    assert loaded.log() == "Write to VGA graphics RAM.\nWrite to VGA text RAM.\n" * 2


def test_getguest_tsc_khz():
    b = FakeBackend()
    b.define("tsc_enabled", 0xFFFFFFFF81A00000, (1).to_bytes(4, "little") + b"\xff\xff\xff\xff")
    b.define("current_tsc_khz", 0xFFFFFFFF81A00010, (2992171).to_bytes(4, "little") + b"\x01\x02\x03\x04")
    loaded = Loaded(sample("tsc_khz.vp"), b)
    assert loaded.fire("VMM1Hz", times=2) == "TSC kHz: 2992171\nTSC kHz: 2992171\n"
    b.poke(0xFFFFFFFF81A00000, b"\0\0\0\0")
    assert lines(loaded.fire("VMM1Hz"))[-1] == "TSC not enabled"


def test_getgueststr_command_line():
    b = FakeBackend()
    cmdline = b"BOOT_IMAGE=/casper/vmlinuz file=/cdrom/preseed/ubuntu.seed boot=casper initrd=/casper/initrd.gz quiet splash --"
    b.define("saved_command_line", 0xC1500000, (0xC1402000).to_bytes(4, "little") + b"\x55" * 4)
    b.poke_str(0xC1402000, cmdline)
    out = Loaded(sample("command_line.vp"), b).fire("VMM1Hz")
    assert out == f"Linux command line (at 0xc1402000):\n{cmdline.decode()}\n"


def test_gueststack_sample():
    b = FakeBackend(frames=[0xFFFFFFFFFB8006FC, 0xFFFFFFFFFB823415, 0xFFFFFFFFFB800875, 0xFEFDEF7E])
    out = Loaded(sample("guest_stack.vp"), b).fire("VMM1Hz")
    assert out == "Stack: GUEST_0xfffffffffb8006fc_0xfffffffffb823415_0xfffffffffb800875_0xfefdef7e\n"


def test_getguestphys_apic_version():
    b = FakeBackend()
    b.regs["APIC_BASEPA"] = 0xFEE00000
    b.poke_phys(0xFEE00000 + 48, (0x40011).to_bytes(8, "little"))
    assert Loaded(sample("apic_version.vp"), b).fire("VMMLoad") == "VCPU 0: APIC version = 40011\n"


def test_getguestphys_sample_on_the_machine():
    out = run_machine(sample("apic_version.vp"), 0.1)
    got = lines(out)
    assert len(got) == 2  # VMMLoad on each VCPU: the version, or a clean fault if the APIC page is unbacked
    for cpu, line in enumerate(got):
        assert re.fullmatch(f"VCPU {cpu}: APIC version = [0-9a-f]+", line) or line.startswith(
            "vprobe error: probe VMMLoad aborted at t.vp:4:11: "), line


# ---- Appendix A: curprocname / curpid, unchanged, against a fake Linux guest -----------------

def test_curprocname_and_curpid(linux_guest):
    b = linux_guest(name=b"swapper", pid=1978)
    loaded = Loaded(sample("curprocname.vp") + '(vprobe VMXLoad (printf "%s %d\\n" (curprocname) (curpid)))', b)
    assert loaded.fire() == "swapper 1978\n"
    # curthrptr found the offsets by decoding sys_getpid and get_task_comm.
    assert loaded.var("_pidOffset") == PID_OFFSET
    assert loaded.var("_nameOffset") == COMM_OFFSET
    # _procName was filled through guestloadstr's `str` parameter: passed by reference.
    assert loaded.var("_procName") == "swapper"


def test_curprocname_uses_kernelgsbase_below_4g(linux_guest):
    b = linux_guest(name=b"ata/0", gsbase=0x7FFF0000, kernel_gsbase=0xFFFF88003FCC0000)
    loaded = Loaded(with_library("curprocname_irq.vp"), b)
    assert loaded.fire("Guest_IRQ", ARG0=0xEF) == "Current process during IRQ: ata/0\n"


def test_curprocname_null_task_reads_null(linux_guest):
    b = linux_guest()
    b.poke_u64(b.regs["GSBASE"], 0)  # no current task: guestloadstr sees a null-page address
    loaded = Loaded(with_library("curprocname_irq.vp"), b)
    assert loaded.fire("Guest_IRQ") == "Current process during IRQ: <NULL>\n"


def test_curpid_sample(linux_guest):
    loaded = Loaded(with_library("curpid_irq.vp"), linux_guest(pid=0))
    assert loaded.fire("Guest_IRQ") == "Current PID during IRQ: 0\n"
    loaded = Loaded(with_library("curpid_irq.vp"), linux_guest(pid=1978))
    assert loaded.fire("Guest_IRQ") == "Current PID during IRQ: 1978\n"


def test_vptop_on_a_guest(linux_guest):
    b = linux_guest(name=b"swapper")
    loaded = Loaded(with_library("vptop.vp"), b)
    loaded.fire("Guest_IRQ", times=3, ARG0=0xEF)
    b.poke_str(b.task + COMM_OFFSET, b"ata/0")
    loaded.fire("Guest_IRQ", ARG0=0xA9)
    assert loaded.fire("VMM1Hz") == (
        "aggr: running (1 integer key) (1 string key)\n"
        'running[0xef, "swapper"] == avg 1 count 3 min 1 max 1 latest 1\n'
        'running[0xa9, "ata/0"] == avg 1 count 1 min 1 max 1 latest 1\n'
    )
    # Cleared: the next second starts empty.
    assert loaded.fire("VMM1Hz").endswith("aggr: running (1 integer key) (1 string key)\n")


def test_user_probe_filters_by_process_name(linux_guest):
    loaded = Loaded(with_library("user_probe.vp"), linux_guest(name=b"app"))
    assert loaded.fire("GUEST:0x1234") == "0x1234 in app"
    loaded = Loaded(with_library("user_probe.vp"), linux_guest(name=b"apple"))
    assert loaded.fire("GUEST:0x1234") == ""


def test_emmett_appendix_vp(linux_guest):
    loaded = Loaded(with_library("emmett_usec.vp"), linux_guest(name=b"bash"))
    loaded.backend.regs["VCPUID"] = 1
    assert loaded.fire("USEC:1001", times=2) == (
        "aggr: a (1 integer key) (1 string key)\n"
        'a[0x1, "bash"] == avg 1 count 1 min 1 max 1 latest 1\n'
        "aggr: a (1 integer key) (1 string key)\n"
        'a[0x1, "bash"] == avg 1 count 2 min 1 max 1 latest 1\n'
    )


def test_vptop_runs_on_the_machine():
    out = run_machine(with_library("vptop.vp"), 1.01)
    got = lines(out)
    assert got, "Guest_IRQ and VMM1Hz should have fired"
    for line in got:  # the guest's process names, or clean faults where the guest has no such symbols
        assert (line.startswith("vprobe error: probe Guest_IRQ aborted at t.vp:") or AGGR_HEADER.fullmatch(line)
                or re.fullmatch(r'running\[0x[0-9a-f]+, ".*"\] == avg 1 count \d+ min 1 max 1 latest 1', line)), line
    assert got.count("aggr: running (1 integer key) (1 string key)") == 2
