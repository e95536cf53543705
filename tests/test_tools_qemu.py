"""`vprobe` and `vmrun` on a real Linux VM under QEMU, end to end.

A QEMU .vmx (qemu.kernel, qemu.initrd ...) goes wherever a simulated one
does: `vprobe` boots it in its own process (and powers it off at the end),
`vmrun start` boots it in the background.  The guest is Debian's kernel with
the busybox initramfs of test_qemu_e2e, whose /init loops over `cat` and
`ls`.  Skipped, with the reason, when qemu-system-x86_64, the kernel or
busybox is missing.  Every QEMU and daemon a test starts is ended by its
teardown; the gdbstub listens on 127.0.0.1 only.

The first test needs no QEMU: the guest library a script gets is the
machine's own, under the machine's name for it.
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

from test_qemu_e2e import KERNELS, _missing
from vprobe_tools.commands.vprobe import run as vprobe_run
from vprobe_tools.vm import control

BIN = Path(sys.executable).parent
BOOT_S = 90.0  # TCG on a busy host boots the guest in ~7 s; leave room
needs_qemu = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

TICK_VP = ('(vprobe VMXLoad (printf "loaded\\n"))\n'
           '(vprobe VMM1Hz (printf "tick %d %s\\n" VCPUID (curprocname)))\n'
           '(vprobe VMXUnload (printf "bye\\n"))\n')
OPEN_VP = ('(defstring path)\n'
           '(vprobe GUEST:do_filp_open\n'
           '  (getgueststr path 255 (getguest RSI))\n'
           '  (printf "open %s %s\\n" (curprocname) path))\n')


def vprobe(*argv) -> tuple[int, str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    status = vprobe_run([str(a) for a in argv], io.BytesIO(), out, err)
    result = status, out.getvalue().decode("latin-1"), err.getvalue().decode()
    assert "Traceback" not in result[2]
    return result


def qemu_pids(directory: Path) -> list[int]:
    """The QEMU processes (not yet reaped zombies aside) whose command line names `directory`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state in ("Z", "X") or not cmdline or b"qemu-system" not in os.path.basename(cmdline[0]):
            continue
        if any(str(directory).encode() in arg for arg in cmdline):
            found.append(int(entry.name))
    return found


def kill_qemus(directory: Path) -> None:
    for pid in qemu_pids(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(predicate, what: str, timeout: float = BOOT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def initramfs(tmp_path_factory) -> Path:
    from machine.qemu.initramfs import build_initramfs

    path = tmp_path_factory.mktemp("initramfs") / "initramfs.gz"
    build_initramfs(path)
    return path


@pytest.fixture
def qemu_vmx(tmp_path, initramfs):
    """A QEMU .vmx in a directory of its own; any QEMU still running from there is killed afterwards."""
    directory = tmp_path / "vm"
    directory.mkdir(mode=0o700)
    vmx = directory / "guest.vmx"
    vmx.write_text('displayName = "guest"\n'
                   'numvcpus = "2"\n'
                   'memsize = "512"\n'
                   f'qemu.kernel = "{KERNELS[-1] if KERNELS else "/nonexistent"}"\n'
                   f'qemu.initrd = "{initramfs}"\n'
                   'qemu.append = "console=ttyS0 nokaslr quiet"\n'
                   'vprobe.enable = "TRUE"\n')
    yield vmx
    leftover = qemu_pids(directory)
    kill_qemus(directory)
    assert not leftover, f"QEMU processes left running: {leftover}"


# ---- the guest library is the machine's own ---------------------------------------------------------

def test_the_guest_library_comes_from_the_machine_under_its_name(tmp_path):
    from machine import SimulatedMachine, default_config
    from vprobe_tools.scripts.sources import SourceFile, load_program, machine_library, vp_program

    machine = SimulatedMachine(default_config())
    machine.guest_library_name = "my-guest.vp"  # another guest's library, with a fault on its line 3
    machine.guest_library_vp = lambda: '; my guest\n\n(defun curpid () (getguest "no_such_symbol"))\n'
    made = []

    def library():
        made.append(1)
        return machine_library(machine)

    plain = vp_program([SourceFile("p.vp", b'(vprobe VMXLoad (logint 1))\n')], library=library)
    assert not made and plain.files[-1].name == "p.vp"  # not needed: not even made
    program = vp_program([SourceFile("s.vp", b'(vprobe VMXLoad (logint (curpid)))\n')], library=library)
    assert made and program.files[-1].name == "my-guest.vp"
    out: list[str] = []
    script, _ = load_program(program, machine, out.append)
    machine.attach(script)
    machine.close()
    assert "".join(out).startswith("vprobe error: probe VMXLoad aborted at my-guest.vp:3:")


# ---- vprobe boots the VM itself ---------------------------------------------------------------------------

@needs_qemu
def test_vprobe_lists_only_what_the_qemu_vm_can_fire(qemu_vmx):
    status, out, err = vprobe("-p", qemu_vmx)
    assert (status, err) == (0, "")
    names = {line.split()[0] for line in out.splitlines()}
    assert {"VMM1Hz", "VMX1Hz", "Guest_PF", "Guest_IRQ", "GUEST:do_filp_open", "GUEST_WRITE:jiffies"} <= names
    assert not {name for name in names if name.startswith(("HV_", "SMM_", "Disk_"))}
    assert "In" not in names and "Out" not in names
    status, out, err = vprobe("-g", "--kallsyms", qemu_vmx)
    assert status == 0 and re.search(r"^RIP +integer +per-VCPU ", out, re.M)
    assert re.search(r"^ffffffff[0-9a-f]{8} [Tt] do_filp_open$", out, re.M)
    assert not qemu_pids(qemu_vmx.parent)  # powered off again


@needs_qemu
def test_vprobe_runs_a_periodic_probe_for_real_seconds_with_the_guests_library(qemu_vmx):
    script = qemu_vmx.parent / "tick.vp"
    script.write_text(TICK_VP)
    started = time.monotonic()
    status, out, err = vprobe("-d", "3", qemu_vmx, script)
    elapsed = time.monotonic() - started
    assert (status, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == "loaded" and lines[-1] == "bye"
    ticks = [re.fullmatch(r"tick ([01]) (\S+)", line) for line in lines[1:-1]]
    assert all(ticks), out
    per_vcpu = [sum(1 for t in ticks if t.group(1) == v) for v in "01"]
    assert all(2 <= n <= 3 for n in per_vcpu), out  # once a second for 3 s, on each VCPU (real time)
    assert 3.0 <= elapsed < BOOT_S + 60  # the boot (the script loads once the guest's init runs), then 3 s
    assert (qemu_vmx.parent / "vprobe.out").read_text() == out  # the .vmx's vprobe.outFile too
    assert not qemu_pids(qemu_vmx.parent)


@needs_qemu
def test_ctrl_c_unloads_and_powers_the_vm_off(qemu_vmx):
    script = qemu_vmx.parent / "tick.vp"
    script.write_text(TICK_VP)
    process = subprocess.Popen([str(BIN / "vprobe"), str(qemu_vmx), str(script)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = qemu_vmx.parent / "vprobe.out"
        wait_for(lambda: "tick" in (out.read_text() if out.exists() else ""), "a tick", BOOT_S)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr
    assert stdout.startswith(b"loaded\ntick ") and stdout.endswith(b"bye\n")
    assert not qemu_pids(qemu_vmx.parent)


@needs_qemu
def test_a_qemu_failure_is_a_plain_message(qemu_vmx):
    broken = qemu_vmx.with_name("broken.vmx")
    broken.write_text(qemu_vmx.read_text() + 'qemu.extraArgs = "-no-such-option"\n')
    status, out, err = vprobe("-p", broken)
    assert status == 1 and out == ""
    assert err.startswith("vprobe: ") and "-no-such-option" in err


# ---- vmrun runs it in the background --------------------------------------------------------------------

class BackgroundVM:
    def __init__(self, vmx: Path, env: dict):
        self.vmx = vmx
        self.env = env
        self.paths = control.vm_paths(vmx)

    def __call__(self, command: str, *args) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "vmrun"), command, str(self.vmx), *map(str, args)], env=self.env,
                                capture_output=True, timeout=90)
        assert b"Traceback" not in result.stderr
        return result

    def log(self) -> str:
        out = self.vmx.parent / "vprobe.out"
        return out.read_text() if out.exists() else ""

    def console(self) -> str:
        console = self.vmx.parent / "guest.console.log"
        return console.read_text(errors="replace") if console.exists() else ""

    def teardown(self) -> None:
        found = control.read_pidfile(self.paths.pidfile)
        if self.paths.pidfile.exists():
            self("stop")
        if found and found[0] > 0 and control.pid_alive(found[0], ""):
            os.kill(found[0], signal.SIGKILL)


@pytest.fixture
def background(qemu_vmx, tmp_path, monkeypatch):
    monkeypatch.setenv("VMRUN_STATE_DIR", str(tmp_path / "state"))
    vm = BackgroundVM(qemu_vmx, dict(os.environ))
    yield vm
    vm.teardown()  # before qemu_vmx's teardown, which checks that QEMU is gone


@needs_qemu
def test_vmrun_start_load_stream_and_stop_a_qemu_vm(background, tmp_path):
    vm = background
    started = vm("start")
    assert started.returncode == 0, started.stderr
    pid_lines = vm.paths.pidfile.read_text().splitlines()
    assert len(pid_lines) == 2 and pid_lines[1].startswith("vm ")  # QEMU's pid, for a stop that must kill
    assert vm("vprobeVersion").stdout == b"VProbes version: 1.0 (enabled)\n"
    probes = vm("vprobeListProbes").stdout.decode()
    assert "\nGuest_PF " in probes and "\nHV_Exit " not in probes and "GUEST:do_filp_open " in probes
    wait_for(lambda: "vprobes-guest: loop" in vm.console(), "the guest's loop")

    loaded = vm("vprobeLoad", OPEN_VP)  # calls curprocname: the VM's own library is added
    assert (loaded.returncode, loaded.stderr) == (0, b"")
    wait_for(lambda: "open cat /etc/hostname" in vm.log(), "the guest opening /etc/hostname", 30)
    assert vm("vprobeReset").returncode == 0

    script = tmp_path / "tick.vp"
    script.write_text(TICK_VP)
    status, out, err = vprobe("-d", "2", vm.vmx, script)  # streamed from the VM in the background
    assert (status, err) == (0, "")
    assert out.startswith("loaded\ntick ") and out.endswith("bye\n")
    assert sorted(set(re.findall(r"^tick ([01]) ", out, re.M))) == ["0", "1"]

    emmett = ('GUEST:do_filp_open { struct filename *f = (struct filename *)RSI;'
              ' printf("emt %s %s\\n", curprocname(), (string)f->name); }')
    status, out, err = vprobe("-d", "1.5", vm.vmx, "-c", emmett)  # the VM's Emmett preload (struct filename)
    assert status == 0, err
    assert re.search(r"^emt (cat|ls|sh) /", out, re.M), out

    stopped = vm("stop")
    assert stopped.returncode == 0, stopped.stderr
    log = vm.log()
    assert log.startswith("open ") and "open cat /etc/hostname\n" in log
    assert "loaded\ntick " in log and "bye\n" in log
    assert not vm.paths.pidfile.exists() and not vm.paths.socket.exists()
    wait_for(lambda: not qemu_pids(vm.vmx.parent), "QEMU to exit", 10)
