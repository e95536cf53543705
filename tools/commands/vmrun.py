"""`vmrun`: start and stop VMs in the background (simulated, or under QEMU), and control VProbes in them.

The VProbes commands of VMware's vmrun (Table 1-1 of the reference), for VMs
that `vmrun start` runs in the background (`vm.daemon`), through their
control socket (`control`).  Output a command was asked for goes to stdout;
errors go to stderr as `vmrun: Error: ...`, with exit status 1.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import LoadFailed, ToolError
from ..output import MessageStream
from ..views.listings import format_globals, format_probes, format_version
from ..vm import control
from ..vm.control import NotResponding, NotRunning

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

USAGE = """\
NAME
    vmrun - run VMs in the background and control VProbes in them

SYNOPSIS
    vmrun [-T ws] [--host-config FILE] COMMAND [PARAMETERS]

COMMANDS
    start VM.vmx [nogui]          power the VM on in the background (simulated time
                                  paced to the wall clock, or a QEMU VM); returns
                                  once it runs
    stop VM.vmx [soft|hard]       power it off: unload the script and stop (soft,
                                  the default); hard kills the VM's processes
    list                          list the running VMs
    vprobeVersion VM.vmx          print the VProbes version and whether VProbes are
                                  enabled for the VM
    vprobeLoad VM.vmx 'VP TEXT'   load a VP script, replacing the one that runs
    vprobeLoadFile VM.vmx FILE    load a VP script from FILE
    vprobeReset VM.vmx            unload the script that runs in the VM
    vprobeListProbes VM.vmx       list the probe points the VM offers
    vprobeListGlobals VM.vmx      list the built-in globals

DESCRIPTION
    A VM that runs in the background has, in its directory, a control socket
    (NAME.vmrun.sock, mode 0600: only the user who started the VM can control
    it), a pid file (NAME.vmrun.pid) and its own log (NAME.vmrun.log).  Files
    left by a VM that died are noticed and removed.  A script's output is
    appended to the VM's vprobe.out (or vprobe.outFile), a line at a time.
    A load replaces the running script atomically: a script that does not
    load leaves the previous one running, and vmrun exits 1 with the located
    error.  To watch a script's output as it runs, use vprobe VM.vmx SCRIPT.

    A .vmx that sets qemu.* keys (qemu.kernel, qemu.initrd ...) describes a
    real Linux VM: start boots it under QEMU (or attaches to a running QEMU's
    gdbstub, qemu.attach) and stop powers it off (or detaches).  It offers
    only the probe points QEMU can fire (vprobeListProbes), and its scripts
    get the guest helpers made for its kernel.

    --host-config FILE (start): the host configuration that holds vprobe.allow
    (default /etc/vmware/config).  -T (the host type) is accepted and ignored.
    VMRUN_STATE_DIR overrides where running VMs are listed for vmrun list.

EXAMPLES
    vmrun start web01.vmx
    vmrun vprobeLoad web01.vmx '(vprobe VMM1Hz (printf "hello!\\n"))'
    tail -f vprobe.out
    vmrun vprobeLoadFile web01.vmx irqs.vp
    vmrun vprobeReset web01.vmx
    vmrun stop web01.vmx

EXIT STATUS
    0 done; 1 an error (the VM is not running, a script did not load ...);
    2 a malformed command line.
"""


class UsageError(ToolError):
    def __init__(self, message: str):
        super().__init__(message, status=2)


class Vmrun:
    def __init__(self, stdout: MessageStream, stderr: MessageStream, host_config: str | None):
        self.out = stdout
        self.err = stderr
        self.host_config = host_config

    # ---- power -----------------------------------------------------------------------------------

    def start(self, vmx: str, *options: str) -> int:
        from machine.vms import read_vm_config
        from machine.vmx import VmxError

        _options(options, ("gui", "nogui"))
        paths = control.vm_paths(vmx)
        try:
            config = read_vm_config(str(paths.vmx))
        except VmxError as e:
            self.err.write(e.format() + "\n")
            return 1
        for warning in config.warnings:
            self.err.write(warning.format() + "\n")
        if control.clean_stale(paths):
            raise ToolError(f"the VM {paths.vmx.name} is already running")
        control.check_vm_directory(paths)
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "vprobe_tools.vm.daemon", "--ready-fd", str(write_end), str(paths.vmx)]
        if self.host_config:
            command[-1:-1] = ["--host-config", os.path.abspath(self.host_config)]
        try:
            with open(paths.logfile, "ab") as daemon_log:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=daemon_log, stderr=daemon_log,
                                           pass_fds=(write_end,), start_new_session=True, cwd=paths.directory)
        except OSError as e:
            os.close(read_end)
            raise ToolError(f"cannot start the VM: {e.strerror or e}") from None
        finally:
            os.close(write_end)
        answer = _read_ready(read_end, START_TIMEOUT_S)
        if answer is None or not answer.get("ok"):
            if process.poll() is None:
                vm_process = control.read_vm_process(paths.pidfile)
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
                if vm_process is not None:
                    control.end_process(*vm_process, STOP_TIMEOUT_S)
                control.clean_stale(paths)
            why = answer.get("error") if answer else f"it did not start (see {paths.logfile})"
            raise ToolError(f"cannot start the VM {paths.vmx.name}: {why}")
        process.returncode = 0  # it keeps running on its own: not ours to wait for
        for warning in answer.get("warnings", ()):
            self.err.write(f"vmrun: warning: {warning}\n")
        return 0

    def stop(self, vmx: str, *options: str) -> int:
        mode = _options(options, ("soft", "hard"))
        paths = control.vm_paths(vmx)
        found = control.read_pidfile(paths.pidfile) if control.check_owned(paths.pidfile, "the pid file") else None
        if not control.clean_stale(paths) or found is None:
            raise NotRunning(f"the VM {paths.vmx.name} is not running")
        pid, start = found
        vm_process = control.read_vm_process(paths.pidfile)  # QEMU, which the daemon powers off itself
        try:
            return self._stop_daemon(paths, pid, start, mode)
        finally:
            if vm_process is not None and not control.end_process(*vm_process, STOP_TIMEOUT_S):
                self.err.write(f"vmrun: cannot end the VM's QEMU process (pid {vm_process[0]})\n")

    def _stop_daemon(self, paths, pid: int, start: str, mode: str | None) -> int:
        if mode != "hard":
            try:
                control.checked(control.request(paths, {"op": "stop"}))
                if control.wait_gone(pid, start, STOP_TIMEOUT_S):
                    return 0
            except (NotResponding, ToolError) as e:
                if isinstance(e, NotRunning):
                    return 0
                self.err.write(f"vmrun: the VM does not stop by itself ({e.message}); ending its process\n")
        for signum, wait in ((signal.SIGTERM, STOP_TIMEOUT_S / 2), (signal.SIGKILL, STOP_TIMEOUT_S / 2)):
            if not control.pid_alive(pid, start):
                break
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                break
            if control.wait_gone(pid, start, wait):
                break
        if control.pid_alive(pid, start):
            raise ToolError(f"cannot stop the VM {paths.vmx.name} (pid {pid})")
        control.clean_stale(paths)
        control.unregister(paths)
        return 0

    def list(self) -> int:
        vms = control.running_vms()
        self.out.write(f"Total running VMs: {len(vms)}\n" + "".join(f"{vm}\n" for vm in vms))
        return 0

    # ---- VProbes -----------------------------------------------------------------------------------

    def _ask(self, vmx: str, message: dict) -> dict:
        return control.checked(control.request(control.vm_paths(vmx), message))

    def vprobeversion(self, vmx: str) -> int:
        answer = self._ask(vmx, {"op": "version"})
        self.out.write(format_version(str(answer.get("version")), bool(answer.get("enabled"))))
        return 0

    def vprobelistprobes(self, vmx: str) -> int:
        self.out.write(format_probes(self._ask(vmx, {"op": "probes"})["rows"]))
        return 0

    def vprobelistglobals(self, vmx: str) -> int:
        self.out.write(format_globals(self._ask(vmx, {"op": "globals"})["rows"]))
        return 0

    def vprobereset(self, vmx: str) -> int:
        self._ask(vmx, {"op": "reset"})
        return 0

    def vprobeload(self, vmx: str, text: str) -> int:
        return self._load(vmx, "<command line>", os.fsencode(text))

    def vprobeloadfile(self, vmx: str, path: str) -> int:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise ToolError(f"cannot read {path}: {e.strerror or e}") from None
        return self._load(vmx, path, data)

    def _load(self, vmx: str, name: str, text: bytes) -> int:
        answer = control.request(control.vm_paths(vmx), {
            "op": "load", "sources": [{"name": name, "text": text.decode("latin-1")}]})
        if not answer.get("ok"):
            if answer.get("diagnostics"):
                raise LoadFailed(answer["diagnostics"])
            raise ToolError(str(answer.get("error")))
        for warning in answer.get("warnings", ()):
            self.err.write(warning + "\n")
        return 0


COMMANDS = {
    "start": (1, 2), "stop": (1, 2), "list": (0, 0),
    "vprobeversion": (1, 1), "vprobeload": (2, 2), "vprobeloadfile": (2, 2), "vprobereset": (1, 1),
    "vprobelistprobes": (1, 1), "vprobelistglobals": (1, 1),
}


def _options(given: tuple[str, ...], allowed: tuple[str, ...]) -> str | None:
    for option in given:
        if option.lower() not in allowed:
            raise UsageError(f"unknown option {option!r} (expected {' or '.join(allowed)})")
    return given[0].lower() if given else None


def _read_ready(fd: int, timeout: float) -> dict | None:
    """The daemon's one-line report on its start (None if it said nothing in time)."""
    import time

    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    try:
        return control.decode(data.split(b"\n", 1)[0])
    except ValueError:
        return None


def run(argv: list[str], stdout, stderr) -> int:
    out, err = MessageStream(stdout), MessageStream(stderr)
    args = list(argv)
    host_config = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-h", "--help", "-?"):
            out.write(USAGE)
            return 0
        if flag in ("-T", "--host-config") and args:
            value = args.pop(0)
            if flag == "--host-config":
                host_config = value
            continue
        err.write(f"vmrun: unknown option {flag}\n{USAGE.split('COMMANDS')[0]}")
        return 2
    if not args:
        out.write(USAGE)
        return 2
    command, params = args[0], args[1:]
    name = command.lower()
    if name == "help":
        out.write(USAGE)
        return 0
    if name not in COMMANDS:
        err.write(f"vmrun: Error: unknown command {command!r} (vmrun --help lists them)\n")
        return 2
    low, high = COMMANDS[name]
    if not low <= len(params) <= high:
        wanted = "no parameters" if high == 0 else "the VM's .vmx file" if low == high == 1 else \
            f"{low} to {high} parameters" if low != high else f"{low} parameters"
        err.write(f"vmrun: Error: {command} takes {wanted}\n")
        return 2
    vmrun = Vmrun(out, err, host_config)
    try:
        return getattr(vmrun, name)(*params)
    except LoadFailed as e:
        err.write(f"vmrun: Error: the script did not load\n{e.text}\n")
        return 1
    except NotRunning as e:
        err.write(f"vmrun: Error: {e.message}\n")
        return 1
    except ToolError as e:
        err.write(f"vmrun: Error: {e.message}\n")
        return e.status
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> None:
    try:
        status = run(sys.argv[1:] if argv is None else argv, sys.stdout.buffer, sys.stderr.buffer)
    except Exception as e:  # a defect of vmrun itself: say so plainly
        sys.stderr.write(f"vmrun: internal error: {type(e).__name__}: {e}\n")
        status = 2
    sys.exit(status)


if __name__ == "__main__":
    main()
