"""Every cookbook program on a real guest: run through `vprobe`, or refused at load with a reason.

One guest for the whole module, as a newcomer makes it: `vmrun createGuest`
(the files workload), `vmrun start` (which returns once the guest's init
runs), then `vprobe -d SECONDS guest.vmx cookbook/PROGRAM` for each program,
streamed from the VM in the background, and `vmrun stop`.  Each program's
output must have the form it has on this guest (`EXPECTED`), and each
program the guest cannot run must be refused with the reason (`REFUSED`).
Skipped, with the reason, when QEMU, a kernel or busybox is missing.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_qemu_e2e import _missing
from vprobe_tools.commands.vprobe import run as vprobe_run
from vprobe_tools.vm import control

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

BIN = Path(sys.executable).parent
COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"
SECONDS = "2.2"  # long enough for two VMM1Hz firings on each VCPU

AGGR = r"aggr: {} \(\d integer keys?\) \(\d string keys?\)"
LINE = {
    "hello": r"hello!",
    "rip": r"Current RIP is 0x[0-9a-f]{16}",
}
# program -> the regular expression each line of its output matches, and one that some line matches.
EXPECTED = {
    # QEMU's gdbstub reads guest physical memory, not devices: the APIC's registers read as 0.
    "apic-version.emt": (r"VCPU [01]: APIC version = 0", r"VCPU 1: "),
    # The appendix finds the pid's offset in 2.6's sys_getpid, which today calls a helper instead.
    "appendix-curprocname.emt": (r"vprobe error: probe Guest_IRQ aborted at .*: offatret: looked for a load of "
                                 r"the return register .*", r"from 0x[0-9a-f]+, \d+ instructions were decoded"),
    # The kernel command line createGuest's .vmx gives (nokaslr added for the probes).
    "command-line.emt": (r"Linux command line \(at 0x[0-9a-f]+\):|console=ttyS0 quiet nokaslr",
                         r"^console=ttyS0 quiet nokaslr$"),
    "curpid-irq.emt": (r"Current (PID|process) during IRQ: \S+", r"Current PID during IRQ: \d+"),
    "elapsed-seconds.emt": (r"\d+ seconds have elapsed\.", r"^1 seconds have elapsed\."),
    "guest-prof.emt": (rf"{AGGR.format('prof')}|prof\[0x[0-9a-f]+\] == .*", AGGR.format("prof")),
    "guest-stack.emt": (r"Stack: GUEST(_0x[0-9a-f]+)+", r"Stack: GUEST_0x"),
    "guest-top.emt": (rf"{AGGR.format('ticks')}|ticks\[0x[0-9a-f]+, \".*\"\] == .*", r"ticks\[0x"),
    "hello-math.emt": (r".+", r"^all is well$"),
    "hello.emt": (LINE["hello"], LINE["hello"]),
    "hello.vp": (LINE["hello"], LINE["hello"]),
    "irqs.emt": (rf"{AGGR.format('irqs')}|irqs\[0x[0-9a-f]+\] == .*", r"irqs\[0xec\]"),
    "logint-cr3.emt": (r"\d+", r"\d"),
    "logstr.emt": (r"Hello world!", r"Hello world!"),
    "page-faults.emt": (rf"{AGGR.format('pf')}|pf\[0x[0-9a-f]+\] == .*", r"pf\[0x"),
    # A fault that grows the user's stack has the stack page unmapped: that firing aborts.
    "pagefault-stack.emt": (r" ?\d+ \([0-9a-f]{16}\): [0-9a-f]{16}|vprobe error: probe Guest_PF aborted at .*: "
                            r"guest linear address 0x[0-9a-f]+ is not mapped", r"^15 \("),
    "pagefault-stacks.emt": (rf"{AGGR.format('stacks')}|stacks\[\".*\"\] == .*", r"stacks\[\"GUEST_0x"),
    "printf-rip.emt": (LINE["rip"], LINE["rip"]),
    "sprintf-rip.emt": (LINE["rip"], LINE["rip"]),
    "strace.emt": (rf"{AGGR.format('syscalls')}|syscalls\[0x[0-9a-f]+, \".*\"\] == .*", r"syscalls\[0x"),
    "system-call.emt": (r"Hi from GUEST:system_call", r"Hi from GUEST:system_call"),
    "tsc-frequency.emt": (r"Calculated TSC HZ \d+, Actual TSC HZ \d+ \(difference -?\d+\)", r"Actual TSC HZ"),
    "vprobe-bench.emt": (rf"{AGGR.format('cost')}|cost\[\".*\"\] == .*", r"cost\[\"getguestphys\"\]"),
    "vptop.emt": (rf"{AGGR.format('running')}|running\[0x[0-9a-f]+, \".*\"\] == .*", r"running\[0xec, "),
    # Probes the guest never reaches: QEMU boots the kernel itself (no boot sector at 0x7c00), no
    # process runs code at 0x1234 or is named "app", and this VM has no VGA device.
    "boot-device.emt": None,
    "user-probe.emt": None,
    "vga-writes.emt": None,
}
REFUSED = {
    "disk-latency.emt": "QEMU's gdbstub does not report the VM's disk I/O",
    "disk-latency-histogram.emt": "QEMU's gdbstub does not report the VM's disk I/O",
    "strcmp-event.emt": "QEMU resets the VM on a triple fault without telling the gdbstub",
    "tsc-khz.emt": "'tsc_enabled' is not a symbol of Linux",
    "vt-exit.emt": "hardware-virtualization exits are not visible through QEMU's gdbstub",
    "vt-exit-fast.emt": "hardware-virtualization exits are not visible through QEMU's gdbstub",
}


def vmrun(env: dict, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "vmrun"), *map(str, args)], env=env, capture_output=True, timeout=400)
    assert b"Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cookbook-guest")
    env = dict(os.environ, VMRUN_STATE_DIR=str(directory / "state"))
    vmx = directory / "guest.vmx"
    made = vmrun(env, "createGuest", vmx, "--workload", "files")
    assert made.returncode == 0, made.stderr
    assert made.stdout.decode().split() == [str(vmx), str(directory / "guest.initramfs.gz")]
    started = vmrun(env, "start", vmx)
    try:
        assert started.returncode == 0, started.stderr
        # start returned once the kernel ran /init (system_state): the init says so at once.
        console = directory / "guest.console.log"
        deadline = time.monotonic() + 20
        while "vprobes-guest: init running" not in console.read_text(errors="replace"):
            assert time.monotonic() < deadline, console.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        yield vmx
    finally:
        found = control.read_pidfile(control.vm_paths(vmx).pidfile)
        vmrun(env, "stop", vmx)
        if found and found[0] > 0 and control.pid_alive(found[0], ""):
            os.kill(found[0], signal.SIGKILL)


def test_the_lists_cover_the_whole_cookbook():
    programs = {p.name for p in COOKBOOK.iterdir() if p.suffix in (".emt", ".vp")}
    assert programs == set(EXPECTED) | set(REFUSED)
    assert not set(EXPECTED) & set(REFUSED)


def vprobe(*argv) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    status = vprobe_run([str(a) for a in argv], io.BytesIO(), out, err)
    return status, out.getvalue().decode("latin-1"), err.getvalue().decode()


@pytest.mark.parametrize("program", sorted(EXPECTED))
def test_a_cookbook_program_runs_on_the_real_guest_and_prints_its_form(guest, program):
    status, out, err = vprobe("-d", SECONDS, guest, COOKBOOK / program)
    assert "Traceback" not in err
    assert status == 0, err
    expected = EXPECTED[program]
    if expected is None:
        assert out == "", out
        return
    each, some = expected
    lines = out.splitlines()
    assert lines, f"{program} printed nothing"
    bad = [line for line in lines if not re.fullmatch(each, line)]
    assert not bad, f"{program}: lines not of its form: {bad[:5]}"
    assert any(re.search(some, line) for line in lines), out[-2000:]


@pytest.mark.parametrize("program", sorted(REFUSED))
def test_a_cookbook_program_the_real_guest_cannot_run_is_refused_with_the_reason(guest, program):
    status, out, err = vprobe("-d", SECONDS, guest, COOKBOOK / program)
    assert "Traceback" not in err
    assert status == 1 and out == ""
    assert REFUSED[program] in err, err
    assert re.search(rf"{re.escape(program)}|compiled to VP>:\d+:\d+: error: ", err), err
