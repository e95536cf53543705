"""End to end: VP scripts on a real Linux guest under QEMU, through the gdbstub.

The guest boots once for the module: Debian's kernel with an initramfs
built here from busybox-static, whose /init loops over `cat` and `ls`.
Skipped (with the reason) when qemu-system-x86_64, the kernel or busybox is
missing; CI installs them (qemu-system-x86 linux-image-amd64 busybox-static).
"""

from __future__ import annotations

import glob
import re
import shutil
import time
from pathlib import Path

import pytest

import vp_runtime
from machine.qemu.initramfs import build_initramfs, find_busybox

KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))


def _missing() -> str | None:
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    if not KERNELS:
        return "no kernel in /boot (apt-get install linux-image-amd64)"
    if find_busybox() is None:
        return "no static busybox (apt-get install busybox-static)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    from machine.qemu import QemuMachine, read_qemu_vmx

    vm = tmp_path_factory.mktemp("qemu-vm")
    build_initramfs(vm / "initramfs.gz")
    (vm / "guest.vmx").write_text(
        'displayName = "guest"\n'
        'numvcpus = "2"\n'
        'memsize = "512"\n'
        f'qemu.kernel = "{KERNELS[-1]}"\n'
        'qemu.initrd = "initramfs.gz"\n'
        'qemu.append = "console=ttyS0 nokaslr quiet"\n'
        'vprobe.enable = "TRUE"\n')
    m = QemuMachine(read_qemu_vmx(vm / "guest.vmx"))
    try:
        deadline = time.monotonic() + 60
        while "vprobes-guest: loop" not in m.console_text():
            assert time.monotonic() < deadline, "the guest did not reach its loop:\n" + m.console_text()[-2000:]
            m.run(0.25)
        yield m
    finally:
        m.close()
        assert not m.process.alive()


def run_script(machine, vp: str, seconds: float, *, library: bool = False) -> str:
    text = vp + ("\n" + machine.guest_library_vp() if library else "")
    out: list[str] = []
    script = vp_runtime.load(text, machine.load_config, backend=machine, log_sink=out.append)
    machine.attach(script)
    try:
        machine.run(seconds)
    finally:
        machine.detach()
    return "".join(out)


def test_open_path_probe_sees_the_files_the_loop_opens_with_process_names(machine):
    log = run_script(machine, """
        (defstring path)
        (vprobe GUEST:do_filp_open
          (getgueststr path 255 (getguest RSI))
          (printf "open %s %s %d\\n" (curprocname) path (curpid)))
    """, 2.5, library=True)
    opens = re.findall(r"^open (\S+) (\S+) (\d+)$", log, re.M)
    assert ("cat", "/etc/hostname") in {(name, path) for name, path, _ in opens}, log
    assert ("cat", "/etc/vprobes-motd") in {(name, path) for name, path, _ in opens}, log
    assert all(int(pid) > 1 for name, path, pid in opens if name == "cat")


def test_probe_on_a_traceable_function_calls_a_trampoline_and_sees_the_entry_context(machine):
    from machine.qemu.callsites import NOP5, TRAMPOLINE

    site = machine.lookup_symbol("do_filp_open")
    thread = machine.vcpus[0].thread
    out: list[str] = []
    script = vp_runtime.load("""
        (vprobe GUEST:do_filp_open (printf "at %x ret %x\\n" RIP (getguest RSP)))
    """, machine.load_config, backend=machine, log_sink=out.append)
    machine.attach(script)
    try:
        trampoline = machine.call_site_trampoline(site)
        assert trampoline is not None, "do_filp_open's ftrace site was not patched"
        code = machine.stub.read_memory(thread, site, 5)
        assert code[0] == 0xE8 and site + 5 + int.from_bytes(code[1:], "little", signed=True) == trampoline
        assert machine.stub.read_memory(thread, trampoline, len(TRAMPOLINE)) == TRAMPOLINE
        assert not machine.stub.breakpoints  # a watchpoint on the trampoline, no breakpoint
        machine.run(1.5)
    finally:
        machine.detach()
    machine._ensure_stopped()
    assert machine.stub.read_memory(thread, site, 5) == NOP5  # the site is as the kernel left it
    hits = re.findall(r"^at ([0-9a-f]+) ret ([0-9a-f]+)$", "".join(out), re.M)
    assert len(hits) >= 3, out
    for rip, ret in hits:
        assert int(rip, 16) == site
        ret = int(ret, 16)
        caller = machine.kernel.function_at(ret)
        assert caller is not None and caller[0] != "do_filp_open", hex(ret)
        assert machine.stub.read_memory(thread, ret - 5, 1) == b"\xe8"  # returns after the caller's call


def test_with_call_sites_off_the_same_probe_is_a_breakpoint_and_guest_memory_stays_untouched(machine):
    from machine.qemu.callsites import NOP5

    site = machine.lookup_symbol("do_filp_open")
    out: list[str] = []
    script = vp_runtime.load('(vprobe GUEST:do_filp_open (printf "at %x\\n" RIP))', machine.load_config,
                             backend=machine, log_sink=out.append)
    enabled, machine.call_sites_enabled = machine.call_sites_enabled, False
    try:
        machine.attach(script)
        assert machine.call_site_trampoline(site) is None and site in machine.stub.breakpoints
        assert machine.stub.read_memory(machine.vcpus[0].thread, site, 5) == NOP5
        machine.run(1.0)
        machine.detach()
    finally:
        machine.call_sites_enabled = enabled
    assert "".join(out).count(f"at {site:x}\n") >= 2, out


def test_periodic_probe_reports_rips_in_kernel_or_user_text(machine):
    log = run_script(machine, '(vprobe VMM10Hz (printf "rip %d %x\\n" VCPUID RIP))', 1.05)
    rips = [(int(v), int(r, 16)) for v, r in re.findall(r"^rip (\d) ([0-9a-f]+)$", log, re.M)]
    assert {v for v, _ in rips} == {0, 1}
    assert len(rips) >= 16
    for _, rip in rips:
        in_kernel = machine.kernel.function_at(rip) is not None
        assert in_kernel or 0x1000 <= rip < 0x800000000000, hex(rip)
    assert any(machine.kernel.function_at(rip) is not None for _, rip in rips)


def test_jiffies_watchpoint_counts_ticks(machine):
    log = run_script(machine, """
        (definteger ticks)
        (vprobe GUEST_WRITE:jiffies (setint ticks (+ ticks 1)))
        (vprobe VMXUnload (printf "ticks %d\\n" ticks))
    """, 1.5)
    ticks = int(re.search(r"ticks (\d+)", log).group(1))
    assert 50 <= ticks <= 1000, log  # HZ=250, less while the guest is stopped or idle


def test_getguestphys_reads_the_kernel_banner(machine):
    banner = machine.lookup_symbol("linux_banner")
    physical = banner - 0xFFFFFFFF80000000  # the kernel's text mapping (nokaslr)
    log = run_script(machine, f"""
        (vprobe VMXLoad (printf "%x %x\\n" (getguestphys {physical}) (getguest {banner})))
    """, 0.0)
    words = [int(w, 16).to_bytes(8, "little") for w in log.split()]
    assert words[0] == b"Linux ve" and words[1] == b"Linux ve", log


def test_unloading_leaves_no_breakpoint_and_the_guest_runs_on(machine):
    run_script(machine, """
        (vprobe GUEST:do_filp_open (printf "x\\n"))
        (vprobe Guest_PF (printf "pf %x\\n" ARG0))
        (vprobe GUEST_WRITE:jiffies (printf "w\\n"))
    """, 0.5)
    stub = machine.stub
    assert not stub.breakpoints and not stub.watchpoints
    assert machine.call_site_trampoline(machine.lookup_symbol("do_filp_open")) is None
    before = machine.console_text().count("vprobes-guest: loop")
    assert stub.running
    assert stub.wait_stop(1.5) is None  # nothing of ours stops the VM any more
    assert machine.console_text().count("vprobes-guest: loop") > before


def test_refused_probe_points_say_why(machine):
    with pytest.raises(vp_runtime.VPLoadError) as err:
        vp_runtime.load("(vprobe HV_Exit (printf \"x\"))", backend=machine)
    assert "not offered by this QEMU VM" in err.value.format()
    offered = {name for name, _ in machine.probe_points()}
    assert "HV_Exit" not in offered and "Guest_PF" in offered and "GUEST:do_filp_open" in offered


def test_a_load_error_of_compiled_emmett_names_its_emmett_line_without_vp_text(machine):
    import emmett

    compiled = emmett.compile("int exits;\n\n// VT-x exits: none under QEMU\nHV_Exit {\n    exits++;\n}\n",
                              "exits.emt", emmett.CompileOptions(preload_text=machine.guest_preload_emmett()))
    assert compiled.ok, compiled.format_diagnostics()
    with pytest.raises(vp_runtime.VPLoadError) as err:
        vp_runtime.load(compiled.vp, backend=machine, filename="<exits.emt compiled to VP>")
    (diagnostic,) = err.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.col) == ("exits.emt", 4, 1)
    assert "not offered by this QEMU VM" in diagnostic.message and diagnostic.source_line == ""
    assert err.value.format().count("\n") == 0  # one line: no VP text echoed


def test_page_fault_probe_sees_the_faulting_context(machine):
    log = run_script(machine, """
        (vprobe Guest_PF (printf "pf %x %x %x\\n" CR2 ARG0 RIP))
    """, 0.5)
    faults = re.findall(r"^pf ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)$", log, re.M)
    assert faults, log
    # RIP is the faulting instruction (from the exception frame), not the kernel's entry stub.
    entry = machine.lookup_symbol("asm_exc_page_fault")
    assert all(int(rip, 16) != entry for _, _, rip in faults)
    assert all(int(code, 16) < 0x100 for _, code, _ in faults)


STATIC_PROBES = """
    (vprobe Guest_PF (printf "pf %x %x %x\\n" CR2 ARG0 RIP))
    (vprobe Guest_IRQ (printf "irq %x\\n" ARG0))
    (vprobe Guest_CR3Write (printf "cr3 %x\\n" CR3))
"""


@pytest.mark.parametrize("call_sites", [True, False], ids=["call sites", "breakpoints"])
def test_the_hot_static_probes_see_the_same_arguments_as_call_sites_or_breakpoints(machine, call_sites):
    from machine.qemu.kernel import KERNEL_SPACE

    out: list[str] = []
    script = vp_runtime.load(STATIC_PROBES, machine.load_config, backend=machine, log_sink=out.append)
    enabled, machine.call_sites_enabled = machine.call_sites_enabled, call_sites
    try:
        machine.attach(script)
        # Call sites stop the VM through watchpoints on trampolines, without one breakpoint at the entry
        # stubs; Guest_CR3Write keeps a breakpoint on a `mov cr3` no call site reaches.
        if call_sites:
            assert len(machine.breakpoints.called) >= 16  # the fault and interrupt entries, the CR3 sites
            assert len(machine.stub.breakpoints) <= 2, machine.stub.breakpoints
            assert machine.lookup_symbol("asm_exc_page_fault") not in machine.stub.breakpoints
        else:
            assert not machine.breakpoints.called and len(machine.stub.breakpoints) >= 16
        machine.run(1.5)
        machine.detach()
    finally:
        machine.call_sites_enabled = enabled
    log = "".join(out)
    faults = re.findall(r"^pf ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)$", log, re.M)
    user = [(int(cr2, 16), int(rip, 16)) for cr2, code, rip in faults if int(code, 16) & 4]
    assert user, log[-2000:]  # the loop's new processes fault in their pages
    # A user-mode fault (error code bit 2): the faulting instruction and address are the user's.
    odd = [(hex(cr2), hex(rip)) for cr2, rip in user if not (rip < KERNEL_SPACE and 0 < cr2 < KERNEL_SPACE)]
    assert not odd, (odd[:5], len(user))
    assert all(int(code, 16) < 0x100 for _, code, _ in faults)
    vectors = {int(v, 16) for v in re.findall(r"^irq ([0-9a-f]+)$", log, re.M)}
    assert 0xEC in vectors and all(0x20 <= v <= 0xFF for v in vectors), vectors  # the local timer's, and more
    tables = [int(v, 16) for v in re.findall(r"^cr3 ([0-9a-f]+)$", log, re.M)]
    assert tables, log[-2000:]
    # CR3 holds a page table's physical address (the low 12 bits a PCID, bit 63 "no flush"), in guest RAM.
    assert all((v & ((1 << 52) - 1) & ~0xFFF) < 512 << 20 for v in tables), [hex(v) for v in tables[:5]]


def test_emmett_program_with_the_generated_preload_reads_kernel_structs(machine):
    emmett = pytest.importorskip("emmett")
    source = machine.guest_preload_emmett() + """
GUEST:do_filp_open {
    struct filename *f = (struct filename *)RSI;
    printf("emt %s %s %d\\n", curprocname(), (string)f->name, curppid());
}
"""
    result = emmett.compile(source, "<strace.emt>", emmett.CompileOptions(preload=False))
    assert result.vp is not None, "\n".join(d.format() for d in result.diagnostics)
    log = run_script(machine, result.vp, 2.5)
    assert re.search(r"^emt cat /etc/hostname 1$", log, re.M), log


def test_a_qemu_whose_starter_is_killed_ends_too(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "vm.vmx").write_text(f'qemu.kernel = "{KERNELS[-1]}"\n')
    starter = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from machine.qemu import read_qemu_vmx\n"
        "from machine.qemu.process import QemuProcess\n"
        f"qemu = QemuProcess(read_qemu_vmx({str(tmp_path / 'vm.vmx')!r}))\n"
        "print(qemu.proc.pid, qemu.gdb_address, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).parent.parent))
    pid, socket_path = starter.stdout.readline().split()
    qemu = int(pid)
    os.kill(qemu, 0)  # running
    starter.kill()
    starter.wait()
    shutil.rmtree(Path(socket_path).parent)  # what the starter would have removed

    def ended() -> bool:
        try:
            with open(f"/proc/{qemu}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # ended, not yet reaped by init
        except FileNotFoundError:
            return True
    deadline = time.monotonic() + 10
    while not ended() and time.monotonic() < deadline:
        time.sleep(0.1)
    if not ended():
        os.kill(qemu, 9)
        pytest.fail("QEMU kept running after the process that started it was killed")


def test_probes_loaded_at_reset_start_as_breakpoints_and_become_call_sites_once_the_kernel_runs(tmp_path):
    """Before the kernel runs, its ftrace sites still hold `call __fentry__` and its text is not
    mapped for VCPU 0 (paging is off): the backend sets breakpoints and does not fail.  At a hit,
    once the kernel has turned the site into its nop, the breakpoint becomes a call site."""
    from machine.qemu import QemuMachine, read_qemu_vmx

    build_initramfs(tmp_path / "initramfs.gz")
    (tmp_path / "reset.vmx").write_text(
        f'numvcpus = "1"\nmemsize = "256"\nqemu.kernel = "{KERNELS[-1]}"\nqemu.initrd = "initramfs.gz"\n'
        'qemu.append = "console=ttyS0 quiet"\nqemu.loadAt = "reset"\nvprobe.enable = "TRUE"\n')
    with QemuMachine(read_qemu_vmx(tmp_path / "reset.vmx")) as machine:
        out: list[str] = []
        script = vp_runtime.load('(vprobe GUEST:do_filp_open (printf "open\\n"))', machine.load_config,
                                 backend=machine, log_sink=out.append)
        machine.attach(script)
        site = machine.lookup_symbol("do_filp_open")
        assert machine.call_site_trampoline(site) is None and site in machine.stub.breakpoints
        deadline = time.monotonic() + 60
        while machine.call_site_trampoline(site) is None and time.monotonic() < deadline:
            machine.run(0.5)
        assert out, "the probe never fired while the guest booted"
        assert machine.call_site_trampoline(site) is not None and site not in machine.stub.breakpoints
        fired = len(out)
        while len(out) < fired + 3 and time.monotonic() < deadline:
            machine.run(0.5)
        machine.detach()
    assert len(out) >= fired + 3, "the call site did not fire"


def test_a_return_probe_fires_as_the_function_returns_to_its_caller(machine):
    log = run_script(machine, """
        (vprobe GUEST:do_filp_open (printf "enter %x\\n" RSP))
        (vprobe GUEST:EXIT:do_filp_open (printf "exit %x %x %d %x\\n" RIP RSP (== ARG0 RAX) ARG0))
    """, 2.5)
    enters = [int(x, 16) for x in re.findall(r"^enter ([0-9a-f]+)$", log, re.M)]
    exits = re.findall(r"^exit ([0-9a-f]+) ([0-9a-f]+) (\d) ([0-9a-f]+)$", log, re.M)
    assert len(exits) >= 3 and len(enters) - len(exits) in (0, 1), log
    for rip, rsp, same, value in exits:
        caller = machine.kernel.function_at(int(rip, 16))
        assert caller is not None and caller[0] != "do_filp_open", rip
        assert int(rsp, 16) - 8 in enters  # the stack of a call that entered, one word up
        assert same == "1" and int(value, 16) >= 0xFFFF800000000000  # a struct file * (or an error)


def test_descriptor_tables_segments_and_smm_come_from_the_monitor(machine):
    log = run_script(machine, """
        (vprobe VMM1Hz (printf "%x %x %x %x %x %x %x %d %x\\n" CS CSAR SSAR DSAR GDTRLIMIT IDTRLIMIT TR SMM SELSTATE))
    """, 1.2)
    assert log.splitlines(), "VMM1Hz printed nothing in 1.2 s"
    for line in log.splitlines():
        cs, csar, ssar, dsar, gdtr_limit, idtr_limit, tr, smm, selstate = line.split()
        if cs == "10":  # a VCPU in the kernel (idle, as a rule)
            assert (csar, gdtr_limit, idtr_limit, tr, smm) == ("a09b", "7f", "fff", "40", "0"), line
            # SS is the kernel's data segment, or null (unusable): a 64-bit interrupt from user mode
            # loads SS with a null selector, so a kernel VCPU caught in such a handler has no SS.
            assert ssar in ("c093", "10000"), line
        assert dsar == "10000" and int(selstate, 16) & 0x39 == 0x39, line  # null DS, ES, FS, GS


def test_what_qemu_cannot_give_is_refused_with_the_reason(machine):
    refusals = {
        "(vprobe VMM1Hz (logint BRCNT))": "QEMU counts no retired branches",
        "(vprobe VMM1Hz (logint (readpmc 0)))": "readpmc: QEMU's gdbstub exposes no performance counters",
        "(vprobe VMM1Hz (logint (getvmcs 0x4402)))": "getvmcs: no VMCS is visible through QEMU's gdbstub",
        "(vprobe MAC_SendPacket (logint 1))": "does not report the VM's network I/O",
    }
    for text, reason in refusals.items():
        with pytest.raises(vp_runtime.VPLoadError) as err:
            vp_runtime.load(text, backend=machine)
        assert reason in err.value.format(), text
    log = run_script(machine, '(vprobe VMM1Hz (printf "%d %d\\n" (== (readmsr 0xc0000080) EFER) (getmeminfo)) '
                              '(readmsr 0x1234))', 1.2)
    assert log.startswith("1 512\n") and "QEMU's gdbstub does not expose MSR 0x1234" in log


def test_exit_detaches_the_script_at_the_next_stop(machine):
    out: list[str] = []
    script = vp_runtime.load('(vprobe VMM10Hz (printf "tick\\n") (exit))\n(vprobe VMXUnload (printf "bye\\n"))',
                             machine.load_config, backend=machine, log_sink=out.append)
    machine.attach(script)
    started = time.monotonic()
    machine.run(30)
    assert time.monotonic() - started < 5 and machine.script is None
    assert "".join(out) == "tick\nbye\n"
