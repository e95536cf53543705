"""`vmrun` and VMs that keep running in the background, end to end.

Every VM is started in a test's own directory and stopped by the fixture's
teardown (with a kill as the last resort), so no process outlives a test.
Waits are bounded polls for output to appear, never timing assertions.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from report_html import tables

from vprobe_tools.commands.vprobe import run as vprobe_run
from vprobe_tools.vm import control

BIN = Path(sys.executable).parent
WAIT_S = 30.0

SCRIPT_A = ('(vprobe VMXLoad (printf "A loaded\\n"))\n'
            '(vprobe VMM10Hz (cond ((== VCPUID 0) (printf "A tick\\n"))))\n'
            '(vprobe VMXUnload (printf "A bye\\n"))\n')
SCRIPT_B = ('(vprobe VMXLoad (printf "B loaded\\n"))\n'
            '(vprobe VMXUnload (printf "B bye\\n"))\n')


def wait_for(predicate, what: str):
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class VM:
    def __init__(self, directory: Path, env: dict, name: str = "web01", settings: str = 'vprobe.enable = "TRUE"\n'):
        self.directory = directory
        self.env = env
        self.vmx = directory / f"{name}.vmx"
        self.vmx.write_text(f'displayName = "{name}"\n' + settings)
        self.paths = control.vm_paths(self.vmx)

    def vmrun(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run([str(BIN / "vmrun"), *[str(a) for a in args]], env=self.env, capture_output=True,
                                timeout=timeout)
        assert b"Traceback" not in result.stderr
        return result

    def __call__(self, command: str, *args: str) -> subprocess.CompletedProcess:
        return self.vmrun(command, self.vmx, *args)

    @property
    def out(self) -> Path:
        return self.directory / "vprobe.out"

    def log(self) -> str:
        return self.out.read_text() if self.out.exists() else ""

    def wait_log(self, text: str, count: int = 1) -> None:
        wait_for(lambda: self.log().count(text) >= count, f"{text!r} x{count} in {self.out}")

    def pid(self) -> int | None:
        found = control.read_pidfile(self.paths.pidfile)
        return found[0] if found else None

    def teardown(self) -> None:
        pid = self.pid()
        if self.paths.pidfile.exists():
            self.vmrun("stop", self.vmx, timeout=60)
        if pid and control.pid_alive(pid, ""):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("VMRUN_STATE_DIR", str(tmp_path / "state"))
    return dict(os.environ)


@pytest.fixture
def make_vm(tmp_path, env):
    vms = []

    def make(name: str = "web01", settings: str = 'vprobe.enable = "TRUE"\n', folder: str = "vm") -> VM:
        directory = tmp_path / folder
        directory.mkdir(mode=0o700, exist_ok=True)
        vm = VM(directory, env, name, settings)
        vms.append(vm)
        return vm

    yield make
    for vm in vms:
        vm.teardown()


@pytest.fixture
def vm(make_vm):
    vm = make_vm()
    started = vm("start")
    assert started.returncode == 0, started.stderr
    return vm


def vprobe(*argv, stdin: bytes = b""):
    out, err = io.BytesIO(), io.BytesIO()
    status = vprobe_run([str(a) for a in argv], io.BytesIO(stdin), out, err)
    return status, out.getvalue().decode("latin-1"), err.getvalue().decode()


# ---- the life of a background VM ------------------------------------------------------------------------

def test_start_load_reload_a_bad_script_reset_and_stop(vm, tmp_path):
    assert vm.vmrun("list").stdout.decode() == f"Total running VMs: 1\n{vm.vmx}\n"
    assert vm("vprobeVersion").stdout == b"VProbes version: 1.0 (enabled)\n"
    assert stat.S_IMODE(os.stat(vm.paths.socket).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(vm.paths.socket).st_mode) and vm.pid()

    loaded = vm("vprobeLoad", SCRIPT_A)
    assert (loaded.returncode, loaded.stdout, loaded.stderr) == (0, b"", b"")
    vm.wait_log("A tick", 2)

    bad = vm("vprobeLoad", '(vprobe VMM1Hz\n  (printf "%d" zork))')
    assert bad.returncode == 1
    assert bad.stderr.decode() == ("vmrun: Error: the script did not load\n"
                                   "<command line>:2:16: error: unknown name 'zork'\n"
                                   '  (printf "%d" zork))\n'
                                   "               ^\n")
    ticks = vm.log().count("A tick")
    vm.wait_log("A tick", ticks + 2)  # the previous script runs on, untouched
    assert "A bye" not in vm.log()

    script_b = tmp_path / "b.vp"
    script_b.write_text(SCRIPT_B)
    assert vm("vprobeLoadFile", script_b).returncode == 0
    vm.wait_log("B loaded")
    assert vm("vprobeReset").returncode == 0
    vm.wait_log("B bye")

    stopped = vm("stop")
    assert stopped.returncode == 0, stopped.stderr
    log = vm.log()
    assert log.startswith("A loaded\nA tick\n")
    assert log.endswith("A tick\nA bye\nB loaded\nB bye\n")  # replaced atomically, in order
    assert set(log.splitlines()) == {"A loaded", "A tick", "A bye", "B loaded", "B bye"}
    assert not vm.paths.socket.exists() and not vm.paths.pidfile.exists()
    assert vm.vmrun("list").stdout == b"Total running VMs: 0\n"
    gone = vm("vprobeVersion")
    assert gone.returncode == 1 and gone.stderr.decode() == f"vmrun: Error: the VM {vm.vmx.name} is not running\n"


def test_listings_of_a_running_vm_match_the_embedded_machine(vm):
    status, probes, _ = vprobe("-p")
    assert vm("vprobeListProbes").stdout.decode() == probes
    status, globals_, _ = vprobe("-g")
    assert vm("vprobeListGlobals").stdout.decode() == globals_
    assert vprobe("-p", vm.vmx)[1] == probes
    assert vprobe("--kallsyms", vm.vmx)[1] == vprobe("--kallsyms")[1]  # the guest's symbols, from the VM


def test_a_vm_without_vprobes_enabled_refuses_scripts(make_vm):
    vm = make_vm(settings='vprobe.enable = "FALSE"\n')
    assert vm("start").returncode == 0
    assert vm("vprobeVersion").stdout == b"VProbes version: 1.0 (disabled)\n"
    refused = vm("vprobeLoad", "(vprobe VMM1Hz (logint 1))")
    assert refused.returncode == 1 and b"VProbes are not enabled for this VM" in refused.stderr


def test_output_goes_to_vprobe_outfile(make_vm):
    vm = make_vm(settings='vprobe.enable = "TRUE"\nvprobe.outFile = "probes.log"\n')
    assert vm("start").returncode == 0
    assert vm("vprobeLoad", SCRIPT_B).returncode == 0
    assert vm("vprobeReset").returncode == 0
    wait_for(lambda: (vm.directory / "probes.log").read_text() == "B loaded\nB bye\n", "probes.log")
    assert not vm.out.exists()


# ---- vprobe and a running VM ----------------------------------------------------------------------------

def test_vprobe_streams_only_its_own_scripts_output(vm, tmp_path):
    assert vm("vprobeLoad", SCRIPT_B).returncode == 0
    vm.wait_log("B loaded")
    script = tmp_path / "s.vp"
    script.write_text('(vprobe VMXLoad (printf "S loaded\\n"))\n(vprobe VMM1Hz (printf "S tick %d\\n" VCPUID))\n'
                      '(vprobe VMXUnload (printf "S bye\\n"))\n')
    status, out, err = vprobe("-d", "1", vm.vmx, script)
    assert (status, err) == (0, "")
    assert out == "S loaded\nS tick 0\nS tick 1\nS bye\n"  # one simulated second, exactly
    assert vm.log() == "B loaded\nB bye\n" + out  # the VM's log has it all


def test_aggregates_never_logged_are_printed_when_the_script_unloads(vm, tmp_path):
    script = tmp_path / "count.vp"
    script.write_text('(defaggr ticks 1 0)\n(vprobe VMM1Hz (aggr ticks (VCPUID) () 1))\n')
    status, out, err = vprobe("-d", "2", vm.vmx, script)
    assert (status, err) == (0, "")
    assert out == "aggr: ticks (1 integer key) (0 string keys)\nticks[0x0] == avg 1 count 2 min 1 max 1 latest 1\n" \
                  "ticks[0x1] == avg 1 count 2 min 1 max 1 latest 1\n"
    # A script replaced by another, or reset, shows them too (in the VM's log).
    assert vm("vprobeLoad", "(defaggr a 0 0) (vprobe VMXLoad (aggr a () () 7))").returncode == 0
    assert vm("vprobeReset").returncode == 0
    vm.wait_log("a[] == avg 7 count 1 min 7 max 7 latest 7\n")


def test_the_report_of_a_run_on_a_running_vm_has_its_probes_firings(vm, tmp_path):
    script = tmp_path / "s.vp"
    script.write_text('(vprobe VMM1Hz (printf "tick %d\\n" VCPUID))\n(vprobe VMXUnload (logint (/ 1 0)))\n')
    status, out, err = vprobe("-d", "2", "--html", tmp_path / "r.html", vm.vmx, script)
    assert (status, err) == (0, "")
    html = (tmp_path / "r.html").read_text()
    (probes,) = tables(html, "probes")
    assert {row[0]: (row[2], row[3]) for row in probes[1:]} == {"VMM1Hz": ("4", "0"), "VMXUnload": ("1", "1")}
    assert str(vm.vmx) in html


def test_vprobe_concatenated_files_and_json_on_a_running_vm(vm, tmp_path):
    a = tmp_path / "a.vp"
    a.write_text("(definteger n 6)\n")
    b = tmp_path / "b.vp"
    b.write_text('\n(vprobe VMXLoad (logint (* n 7)) (logstr "\\n") (logint (getguest "nope")))\n')
    status, out, err = vprobe("-d", "0", "-f", "json", vm.vmx, a, b)
    assert status == 0, err
    assert out.splitlines()[0] == '{"type": "log", "data": "42\\n"}'
    assert f'"file": "{b}", "line": 2, "col": 56' in out.splitlines()[1]
    bad = vprobe("-d", "0", vm.vmx, a, b.with_name("c.vp"))
    assert bad[0] == 1


def test_vprobe_load_errors_from_a_running_vm_are_located(vm, tmp_path):
    script = tmp_path / "bad.vp"
    script.write_text("\n(vprobe VMM1Hz (logint zork))\n")
    status, out, err = vprobe(vm.vmx, script)
    assert (status, out) == (1, "")
    assert err.startswith(f"{script}:2:24: error: unknown name 'zork'\n")


def test_compiled_emmett_names_its_emmett_lines_through_vmrun(vm, tmp_path):
    (tmp_path / "div.emt").write_text("int zero;\n\nVMM1Hz {\n    logint(10 / zero);\n}\n")
    (tmp_path / "sym.emt").write_text("\nGUEST:no_such_function { logint(RIP); }\n")
    for name in ("div", "sym"):
        made = subprocess.run([str(BIN / "emmettc"), f"{name}.emt", "-o", f"{name}.vp"], cwd=tmp_path,
                              capture_output=True)
        assert made.returncode == 0, made.stderr
    bad = vm("vprobeLoadFile", tmp_path / "sym.vp")
    assert (bad.returncode, bad.stderr.decode()) == (1, "vmrun: Error: the script did not load\n"
                                                        "sym.emt:2:1: error: unknown guest symbol 'no_such_function' "
                                                        "in probe point 'GUEST:no_such_function'\n")
    assert vm("vprobeLoadFile", tmp_path / "div.vp").returncode == 0
    vm.wait_log("division by zero")
    assert vm.log().splitlines()[0] == "vprobe error: probe VMM1Hz aborted at div.emt:4:15: division by zero"
    assert vm("vprobeLoad", (tmp_path / "div.vp").read_text()).returncode == 0
    status, out, err = vprobe("-d", "1", "-f", "json", vm.vmx, tmp_path / "div.vp")
    assert status == 0, err
    first = json.loads(out.splitlines()[0])
    assert (first["file"], first["line"], first["col"]) == ("div.emt", 4, 15)


def test_vprobe_load_only_and_reset(vm, tmp_path):
    script = tmp_path / "b.vp"
    script.write_text(SCRIPT_B)
    status, out, err = vprobe("-l", vm.vmx, script)
    assert status == 0 and "loaded into web01.vmx" in err
    # What was loaded: each probe, where it is, and the most a firing of it executes.
    assert out.splitlines()[1:] == [f"VMXLoad    {script}:1:9  2", f"VMXUnload  {script}:2:9  2"]
    vm.wait_log("B loaded")
    assert vprobe("-r", vm.vmx) == (0, "", f"vprobe: unloaded the script in {vm.vmx}\n")
    vm.wait_log("B bye")
    assert vprobe("-r", vm.vmx) == (0, "", f"vprobe: no script was loaded in {vm.vmx}\n")


def start_vprobe(vm, script: Path, sigint=signal.SIG_DFL) -> subprocess.Popen:
    """vprobe streaming `script` from the VM, started with SIGINT as `sigint` (SIG_IGN: as a
    shell starts a background job)."""
    return subprocess.Popen([str(BIN / "vprobe"), str(vm.vmx), str(script)], env=vm.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["foreground", "background job"])
def test_ctrl_c_unloads_and_the_log_is_complete(vm, tmp_path, sigint):
    script = tmp_path / "a.vp"
    script.write_text(SCRIPT_A)
    process = start_vprobe(vm, script, sigint)
    try:
        vm.wait_log("A tick", 2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.startswith(b"A loaded\nA tick\n") and out.endswith(b"A tick\nA bye\n")
    assert out.decode() == vm.log()
    assert vprobe("-r", vm.vmx)[2] == f"vprobe: no script was loaded in {vm.vmx}\n"


def test_stop_works_while_a_script_streams(vm, tmp_path):
    script = tmp_path / "a.vp"
    script.write_text(SCRIPT_A)
    process = start_vprobe(vm, script)
    try:
        vm.wait_log("A tick")
        stopped = vm("stop")
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert stopped.returncode == 0, stopped.stderr
    assert process.returncode == 0
    assert out.endswith(b"A bye\n") and out.decode() == vm.log()
    assert err.decode() == f"vprobe: the VM {vm.vmx.name} was powered off\n"
    assert not vm.paths.pidfile.exists()


# ---- robustness ------------------------------------------------------------------------------------

def test_a_silent_client_does_not_hold_the_vm_up(vm):
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    partial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with control.socket_address(vm.paths.socket) as address:
            silent.connect(address)
            partial.connect(address)
        partial.sendall(b'{"op": "pi')
        assert vm("vprobeVersion").stdout == b"VProbes version: 1.0 (enabled)\n"
        assert vm("vprobeLoad", SCRIPT_B).returncode == 0
        assert vm("stop").returncode == 0
    finally:
        silent.close()
        partial.close()


def test_stale_files_of_a_dead_vm_are_cleaned(make_vm):
    vm = make_vm()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    vm.paths.pidfile.write_text(f"{dead.pid} 1\n")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with control.socket_address(vm.paths.socket) as address:
        stale.bind(address)
    stale.close()
    assert vm.paths.socket.exists()
    result = vm("vprobeLoad", SCRIPT_B)
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"vmrun: Error: the VM {vm.vmx.name} is not running")
    assert not vm.paths.socket.exists() and not vm.paths.pidfile.exists()
    vm.paths.pidfile.write_text(f"{dead.pid} 1\n")
    assert vm("start").returncode == 0  # a stale pid file does not stop a start
    assert vm("vprobeVersion").returncode == 0


def test_start_refuses_a_second_daemon_and_a_bad_vmx(vm, make_vm):
    again = vm("start")
    assert again.returncode == 1 and b"is already running" in again.stderr
    broken = make_vm(name="broken", settings="numvcpus = \"lots\"\n")
    result = broken("start")
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"{broken.vmx}:2:12: error: invalid number 'lots' for numvcpus")
    assert not broken.paths.pidfile.exists()


def test_a_directory_everyone_can_write_is_refused(make_vm):
    vm = make_vm(folder="shared")
    os.chmod(vm.directory, 0o777)
    result = vm("start")
    assert result.returncode == 1 and b"is writable by every user" in result.stderr
    assert not vm.paths.pidfile.exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a file another user's")
def test_another_users_socket_is_not_used(make_vm):
    vm = make_vm()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with control.socket_address(vm.paths.socket) as address:
        stale.bind(address)
    stale.close()
    os.chown(vm.paths.socket, 65534, 65534)
    result = vm("vprobeVersion")
    assert result.returncode == 1 and b"belongs to another user" in result.stderr


def test_hard_stop_kills_the_vm(vm):
    pid = vm.pid()
    assert vm("stop", "hard").returncode == 0
    assert not control.pid_alive(pid, "") and not vm.paths.socket.exists()


def test_vmrun_usage():
    run = subprocess.run([str(BIN / "vmrun"), "--help"], capture_output=True, timeout=60)
    assert run.returncode == 0 and b"vprobeLoadFile VM.vmx FILE" in run.stdout
    bad = subprocess.run([str(BIN / "vmrun"), "vprobeFrobnicate", "x.vmx"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith(b"vmrun: Error: unknown command 'vprobeFrobnicate'")
    short = subprocess.run([str(BIN / "vmrun"), "vprobeLoad", "x.vmx"], capture_output=True, timeout=60)
    assert short.returncode == 2


def test_the_vp_file_of_the_vmx_loads_at_power_on(make_vm):
    vm = make_vm(settings='vprobe.enable = "TRUE"\nvprobe.vpFile = "boot.vp"\n')
    (vm.directory / "boot.vp").write_text(SCRIPT_B)
    assert vm("start").returncode == 0
    vm.wait_log("B loaded")
    assert vm("stop").returncode == 0
    assert vm.log() == "B loaded\nB bye\n"


def test_a_script_that_calls_exit_in_a_running_vm_ends_its_stream(vm, tmp_path):
    script = tmp_path / "once.vp"
    script.write_text('(vprobe VMM1Hz (printf "once %d\\n" VCPUID) (exit))\n(vprobe VMXUnload (printf "bye\\n"))\n')
    status, out, err = vprobe(vm.vmx, script)  # no -d: it ends by itself
    assert (status, out) == (0, "once 0\nbye\n")
    assert err == f"vprobe: the script called exit() at {script}:1:44; it is unloaded\n"
    assert vm("vprobeListLoaded").stdout.strip() in ("", b"")
