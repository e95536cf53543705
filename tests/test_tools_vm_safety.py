"""A background VM stays in charge of itself: against a busy or faulting script, a log it
cannot write, files planted in its directory, another user, and hundreds of loads.

Like test_tools_vmrun.py (whose fixtures these tests use), every VM is stopped by the
fixture's teardown, and waits are bounded polls, never timing assertions: a control
request "answers" when the client's own timeout (control.TIMEOUT_S) does not expire.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vp_runtime import load
from vprobe_tools.vm import control

from test_tools_vmrun import VM, env, make_vm, vm, vprobe, wait_for  # noqa: F401 (fixtures)

FIB_40 = ("(defun fib (n) (cond ((< n 2) n) (1 (+ (fib (- n 1)) (fib (- n 2))))))\n"
          "(vprobe VMM1Hz (logint (fib 40)))\n")
BUDGET_FAULT = ("vprobe error: probe VMM1Hz aborted at <command line>:1:8: work budget exhausted: more than 10000 "
                "calls of recursive functions in one firing (vprobe.maxCallsPerFiring)")


def busy_script(levels: int = 15) -> str:
    """A probe on a 10 us timer whose every firing executes about 200,000 VP operations."""
    return ("(definteger x)\n(defun f0 () (setint x (+ x 1)))\n"
            + "".join(f"(defun f{i} () (f{i - 1}) (f{i - 1}))\n" for i in range(1, levels + 1))
            + f'(vprobe USEC:10 (f{levels}) (cond ((== (& x 0x3ffff) 0) (printf "busy %d\\n" x))))\n')


# ---- the work of a firing ---------------------------------------------------------------------------------

def test_fib_40_on_a_background_vm_aborts_and_reset_answers(vm):
    assert vm("vprobeLoad", FIB_40).returncode == 0
    vm.wait_log(BUDGET_FAULT, 2)  # each firing aborts; the VM goes on firing
    listed = vm("vprobeListLoaded")
    assert listed.returncode == 0
    assert listed.stdout.decode().splitlines()[1] == (
        "VMM1Hz  <command line>:2:9  "
        "unbounded recursion (fib): budget 10,000 calls of at most 14 operations, so at most 140,003")
    reset = vm("vprobeReset")
    assert (reset.returncode, reset.stderr) == (0, b"")
    assert set(vm.log().splitlines()) == {BUDGET_FAULT}
    nothing = vm("vprobeListLoaded")
    assert nothing.returncode == 1 and nothing.stderr == f"vmrun: Error: no script is loaded in {vm.vmx.name}\n".encode()


def test_a_busy_script_does_not_keep_control_requests_waiting(vm, tmp_path):
    script = tmp_path / "busy.vp"
    script.write_text(busy_script())
    assert vm("vprobeLoadFile", script).returncode == 0
    vm.wait_log("busy")
    for _ in range(3):  # each answered well within the client's timeout, while the script keeps the VM busy
        assert vm("vprobeVersion").returncode == 0
    assert vm("vprobeReset").returncode == 0
    replaced = vm("vprobeLoad", "(vprobe VMXLoad (printf \"next\\n\"))")
    assert replaced.returncode == 0
    vm.wait_log("next")
    assert vm("stop").returncode == 0


def test_a_script_over_the_vms_limit_is_refused_by_the_vm(make_vm, tmp_path):
    vm = make_vm(settings='vprobe.enable = "TRUE"\nvprobe.maxOpsPerFiring = "100000"\n')
    assert vm("start").returncode == 0
    script = tmp_path / "busy.vp"
    script.write_text(busy_script())
    refused = vm("vprobeLoadFile", script)
    assert refused.returncode == 1
    (cost,) = load(busy_script()).costs
    assert 100_000 < cost.operations < 1_000_000  # the default limit takes it (the test above)
    assert (f"{script}:18:9: error: probe USEC:10 may execute up to {cost.operations:,} VP operations in one "
            f"firing, more than this VM allows (100,000, vprobe.maxOpsPerFiring)").encode() in refused.stderr


# ---- the log ---------------------------------------------------------------------------------------------------

def test_a_log_that_cannot_be_written_does_not_take_the_vm_down(make_vm, tmp_path):
    vm = make_vm(settings='vprobe.enable = "TRUE"\nvprobe.outFile = "/dev/full"\n')
    assert vm("start").returncode == 0
    assert vm("vprobeLoad", "(vprobe VMM10Hz (logint 1))").returncode == 0
    own_log = vm.paths.logfile
    wait_for(lambda: "cannot write the VM's log /dev/full" in own_log.read_text(), "the write error reported")
    assert vm("vprobeVersion").returncode == 0  # still running
    reset = vm("vprobeReset")
    assert reset.returncode == 0
    warning = reset.stderr.decode()
    assert warning.startswith("vmrun: warning: ") and warning.endswith(
        " of the log could not be written to /dev/full (No space left on device)\n")
    lost = int(warning.split()[2])
    assert lost >= 1
    daemon_log = own_log.read_text()
    assert daemon_log.count("cannot write the VM's log /dev/full") == 1  # reported once
    assert f"unloaded <command line> (reset); {lost} line" in daemon_log
    # A client that streams gets every line, and is told what the VM's log lost.
    script = tmp_path / "s.vp"
    script.write_text('(vprobe VMM1Hz (printf "tick\\n"))\n')
    status, out, err = vprobe("-d", "2", vm.vmx, script)
    assert (status, out) == (1, "tick\n" * 4)
    assert err == "vprobe: 4 lines of the log could not be written to /dev/full (No space left on device)\n"
    assert vm("stop").returncode == 0


def test_vprobe_on_a_vmx_whose_log_cannot_be_written(tmp_path):
    vmx = tmp_path / "full.vmx"
    vmx.write_text('vprobe.enable = "TRUE"\nvprobe.outFile = "/dev/full"\n')
    status, out, err = vprobe("-d", "1", vmx, "-c", 'VMM10Hz { printf("x\\n"); }')
    assert status == 1 and out == "x\n" * 20  # the output itself is complete
    assert err == ("vprobe: warning: cannot write the VM's log /dev/full: No space left on device; its lines are "
                   "dropped (and counted) while writing fails\n"
                   "vprobe: 20 lines of the log could not be written to /dev/full (No space left on device)\n")


class FullOutput(io.BytesIO):
    def write(self, data):
        raise OSError(28, "No space left on device")

    def fileno(self):
        raise io.UnsupportedOperation


def test_vprobe_whose_output_cannot_be_written_says_so():
    from vprobe_tools.commands.vprobe import run
    err = io.BytesIO()
    status = run(["-d", "1", "-c", 'VMM10Hz { printf("x\\n"); }'], io.BytesIO(), FullOutput(), err)
    assert status == 1
    assert err.getvalue() == b"vprobe: cannot write the output: No space left on device; the rest of it was dropped\n"


# ---- files planted in the VM's directory ----------------------------------------------------------------------

@pytest.mark.parametrize("planted", ["vprobe.out", "web01.vmrun.log"])
def test_a_planted_link_is_not_written_through(make_vm, tmp_path, planted):
    vm = make_vm()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (vm.directory / planted).symlink_to(victim)
    result = vm("start")
    assert result.returncode == 1
    assert f"{vm.directory / planted} is a symbolic link (to {victim}): refusing to use it".encode() in result.stderr
    assert victim.read_text() == "precious\n"
    assert not vm.paths.pidfile.exists() and not vm.paths.socket.exists()


def test_a_planted_pid_file_is_refused_with_a_message(make_vm, tmp_path):
    vm = make_vm()
    vm.paths.pidfile.symlink_to(tmp_path / "elsewhere")
    result = vm("start")
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"vmrun: Error: the pid file {vm.paths.pidfile} is a symbolic link")
    vm.paths.pidfile.unlink()
    os.mkfifo(vm.paths.pidfile)  # reading it would block a careless daemon
    try:
        result = vm("start")
        assert result.returncode == 1 and b"is not a regular file" in result.stderr
    finally:
        vm.paths.pidfile.unlink()
    assert vm("start").returncode == 0


def test_a_planted_socket_link_is_named_for_what_it_is(vm, tmp_path):
    real = tmp_path / "real.sock"
    os.rename(vm.paths.socket, real)
    vm.paths.socket.symlink_to(real)
    result = vm("vprobeVersion")
    assert result.returncode == 1
    assert result.stderr.decode() == (f"vmrun: Error: the control socket {vm.paths.socket} is a symbolic link "
                                      f"(to {real}), not a file a VM made: refusing to use it (remove it; another "
                                      f"user may have planted it)\n")
    vm.paths.socket.unlink()
    os.rename(real, vm.paths.socket)
    assert vm("vprobeVersion").returncode == 0


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make files another user's")
def test_a_sticky_shared_directory_with_planted_files(make_vm, tmp_path):
    vm = make_vm(folder="shared")
    os.chmod(vm.directory, 0o1777)  # like /tmp: accepted, because each file is checked
    planted = vm.directory / "vprobe.out"
    planted.write_text("")
    os.chown(planted, 65534, 65534)
    result = vm("start")
    assert result.returncode == 1
    assert f"the VM's log {planted} belongs to another user (uid 65534)".encode() in result.stderr
    planted.unlink()
    assert vm("start").returncode == 0
    vm.teardown()
    vm.paths.pidfile.write_text("1 \n")
    os.chown(vm.paths.pidfile, 65534, 65534)
    try:
        result = vm("start")
        assert result.returncode == 1
        assert result.stderr.decode().startswith(
            f"vmrun: Error: the pid file {vm.paths.pidfile} belongs to another user (uid 65534)")
    finally:
        vm.paths.pidfile.unlink()


# ---- another user, and a bad host configuration -----------------------------------------------------------------

def as_another_user(command: list[str]) -> list[str]:
    """`command` run so that a private directory of this user's is closed to it: as root,
    without the capabilities that bypass file permissions (else the directory is made 0000)."""
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to run without CAP_DAC_OVERRIDE as root")
        return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--inh-caps=-all", *command]
    return command


def test_another_users_private_vm_directory(vm):
    os.chown(vm.directory, 12345, 12345) if os.geteuid() == 0 else None
    os.chmod(vm.directory, 0o000 if os.geteuid() != 0 else 0o700)
    try:
        for args in (["vprobeVersion"], ["vprobeReset"], ["stop"], ["start"]):
            command = as_another_user([str(Path(sys.executable).parent / "vmrun"), args[0], str(vm.vmx)])
            result = subprocess.run(command, env=vm.env, capture_output=True, timeout=60)
            assert result.returncode == 1, (args, result.stderr)
            assert b"internal error" not in result.stderr and b"Traceback" not in result.stderr
            assert b"Permission denied" in result.stderr, result.stderr
    finally:
        os.chmod(vm.directory, 0o700)
        os.chown(vm.directory, os.getuid(), os.getgid()) if os.geteuid() == 0 else None


def test_a_bad_host_configuration_fails_the_start(make_vm, tmp_path):
    vm = make_vm()
    host = tmp_path / "config"
    host.write_text('vprobe.allow = "perhaps"\n')
    result = vm.vmrun("--host-config", host, "start", vm.vmx)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"{host}:1:16: error: invalid boolean 'perhaps' for vprobe.allow")
    assert not vm.paths.pidfile.exists()
    missing = vm.vmrun("--host-config", tmp_path / "none", "start", vm.vmx)
    assert missing.returncode == 1 and b"cannot read" in missing.stderr


# ---- a long life -------------------------------------------------------------------------------------------

def daemon_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


SOAK_SCRIPTS = [
    "(defaggr irqs 1 0)\n(vprobe Guest_IRQ (aggr irqs (ARG0) () 1))\n(vprobe VMXUnload (logaggr irqs))\n",
    FIB_40.replace("VMM1Hz", "VMXLoad"),  # aborts as it loads
    '(defstring s)\n(vprobe VMM10Hz (gueststack s) (printf "%s\\n" s))\n',
]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the daemon's RSS")
def test_two_hundred_loads_and_resets(vm):
    pid = vm.pid()
    fds = lambda: len(os.listdir(f"/proc/{pid}/fd"))  # noqa: E731
    paths = vm.paths

    def cycle(i: int) -> None:
        text = SOAK_SCRIPTS[i % len(SOAK_SCRIPTS)]
        if i % 4 == 3:  # a client that streams, and goes away without a word
            sock = control.connect(paths)
            sock.sendall(control.encode({"op": "load", "stream": True, "sources": [{"name": "s.vp", "text": text}]}))
            assert control.LineReader(sock).read(control.TIMEOUT_S)["ok"]
            sock.close()
        else:
            control.checked(control.request(paths, {"op": "load", "sources": [{"name": "s.vp", "text": text}]}))
        control.checked(control.request(paths, {"op": "reset"}))

    for i in range(20):  # warm up: caches, the guest's first allocations
        cycle(i)
    rss, open_fds = daemon_rss_kb(pid), fds()
    for i in range(20, 200):
        cycle(i)
    assert control.checked(control.request(paths, {"op": "ping"}))["script"] is None
    grown = daemon_rss_kb(pid) - rss
    assert grown < 10 * 1024, f"the daemon grew by {grown} kB over 180 load/reset cycles"
    assert fds() <= open_fds + 1
    fault = BUDGET_FAULT.replace("<command line>", "s.vp").replace("VMM1Hz", "VMXLoad")
    assert vm.log().count(fault) == sum(1 for i in range(200) if i % len(SOAK_SCRIPTS) == 1)
