"""`vmrun`: start and stop VMs in the background (simulated, or under QEMU), and control VProbes in them.

The VProbes commands of VMware's vmrun (Table 1-1 of the reference), for VMs
that `vmrun start` runs in the background (`vm.daemon`), through their
control socket (`control`).  Output a command was asked for goes to stdout;
errors go to stderr as `vmrun: Error: ...`, with exit status 1 (2 for a
malformed command line).  The verbs keep the reference's spellings
(`vmrun vprobeLoad ...`) and are matched without regard to case.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

import click

from ..errors import LoadFailed, ToolError
from ..output import MessageStream
from ..views.listings import format_costs, format_globals, format_probes, format_version
from ..vm import control
from ..vm.control import NotResponding, NotRunning
from .base import Streams, ToolCommand, ToolGroup, option, version_option, write_message, write_rows

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

NAME = """\
NAME
    vmrun - run VMs in the background and control VProbes in them"""

DESCRIPTION = """\
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
    get the guest helpers made for its kernel.  createGuest writes such a VM
    from this host's kernel and busybox (docs/real-guests.md).

    Command names are matched without regard to case (vprobeload is
    vprobeLoad); vmrun help COMMAND (or vmrun COMMAND --help) describes one.
    VMRUN_STATE_DIR overrides where running VMs are listed for vmrun list.

EXAMPLES
    vmrun start web01.vmx
    vmrun vprobeLoad web01.vmx '(vprobe VMM1Hz (printf "hello!\\n"))'
    tail -f vprobe.out
    vmrun vprobeLoadFile web01.vmx irqs.vp
    vmrun vprobeReset web01.vmx
    vmrun stop web01.vmx

SHELL COMPLETION
    eval "$(_VMRUN_COMPLETE=bash_source vmrun)"
    in ~/.bashrc completes options, their values, the verbs and file names
    (zsh_source in ~/.zshrc; fish_source for fish).

EXIT STATUS
    0 done; 1 an error (the VM is not running, a script did not load ...);
    2 a malformed command line.

SEE ALSO
    vprobe(1): run a script and watch its output, in a VM running in the
    background or in one it powers on itself."""


class Vmrun:
    def __init__(self, stdout: MessageStream, stderr: MessageStream, host_config: str | None):
        self.out = stdout
        self.err = stderr
        self.host_config = host_config

    # ---- power -----------------------------------------------------------------------------------

    def start(self, vmx: str, window: str | None = None) -> int:
        """Power the VM on in the background (`window`, gui or nogui, is VMware's and changes nothing)."""
        from machine.owned_files import UnusableFile, open_append
        from machine.vms import read_vm_config
        from machine.vmx import VmxError, host_allows_vprobes

        paths = control.vm_paths(vmx)
        try:
            config = read_vm_config(str(paths.vmx))
            host_allows_vprobes(self.host_config)  # a bad --host-config fails now, not at the first load
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
            daemon_log = open_append(paths.logfile, "the VM's own log")
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=daemon_log, stderr=daemon_log,
                                           pass_fds=(write_end,), start_new_session=True, cwd=paths.directory)
            finally:
                os.close(daemon_log)
        except (OSError, UnusableFile) as e:
            os.close(read_end)
            if isinstance(e, UnusableFile):
                raise ToolError(str(e)) from None
            raise ToolError(f"cannot start the VM: {e.strerror or e}") from None
        finally:
            os.close(write_end)
        # A QEMU VM is ready once its guest's init has started (qemu.loadAt), which may take its boot.
        answer = _read_ready(read_end, START_TIMEOUT_S + getattr(config, "boot_timeout_s", 0.0))
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

    def stop(self, vmx: str, mode: str | None) -> int:
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

    def createguest(self, vmx: str, workload: str, kernel: str | None, vcpus: int, memory: int,
                    force: bool) -> int:
        """Write a bootable QEMU guest: VM.vmx and its initramfs beside it."""
        from machine.qemu.guest_builder import GuestBuildError, create_guest

        try:
            made, initrd = create_guest(vmx, workload=workload.lower(), kernel=kernel, vcpus=vcpus,
                                        memory_mb=memory, force=force)
        except GuestBuildError as e:
            raise ToolError(str(e)) from None
        self.out.write(f"{made}\n{initrd}\n")
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
        lost = self._ask(vmx, {"op": "reset"}).get("lost")
        if lost:
            self.err.write(f"vmrun: warning: {lost}\n")
        return 0

    def vprobelistloaded(self, vmx: str) -> int:
        answer = self._ask(vmx, {"op": "loaded"})
        self.out.write(format_costs(answer.get("costs", [])))
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



# ---- the command line ----------------------------------------------------------------------------------

class VmrunGroup(ToolGroup):
    """vmrun and its verbs: named as the reference spells them, matched without regard to case."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined: the reference's

    def get_command(self, ctx: click.Context, name: str):
        found = self.commands.get(name)
        if found is None:
            found = next((c for n, c in self.commands.items() if n.lower() == name.lower()), None)
        return found

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0]
        if not ctx.resilient_parsing and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise click.UsageError(f"unknown command {name!r} (vmrun --help lists them)", ctx)
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list:
        """The verbs that start with `incomplete` in any case (vprobel completes to vprobeLoad ...), and options."""
        from click.shell_completion import CompletionItem

        verbs = [CompletionItem(name, help=verb.get_short_help_str()) for name, verb in self.commands.items()
                 if not verb.hidden and name.lower().startswith(incomplete.lower())]
        return verbs + super(click.Group, self).shell_complete(ctx, incomplete)  # click.Command's: the options

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(f"{name} {verb.synopsis}".rstrip(), verb.short_help or "")
                for name, verb in self.commands.items() if not verb.hidden]
        formatter.write("\n")
        formatter.write_heading("COMMANDS")
        with formatter.indentation():
            write_rows(formatter, rows, max(len(names) for names, _ in rows))

    def format_usage_error(self, ctx: click.Context | None, error: click.UsageError) -> str:
        return f"vmrun: Error: {error.format_message()}\n{self.usage_of(ctx)}\n"


@click.group("vmrun", cls=VmrunGroup, synopsis="[-T ws] [--host-config FILE] COMMAND [PARAMETERS]",
             help=NAME, epilog=DESCRIPTION, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help", "-?"]})
@option("-T", "host_type", metavar="TYPE", help="the host type (ws, server, fusion ...): accepted and ignored")
@option("--host-config", type=click.Path(), metavar="FILE",
        help="the host configuration that holds vprobe.allow, for start (default /etc/vmware/config)")
@version_option(with_vp=True)
@click.pass_context
def command(ctx: click.Context, host_type: str | None, host_config: str | None) -> int | None:
    if ctx.invoked_subcommand is None:  # no command: what there is, and the status of a usage error
        write_message(Streams.of(ctx).stdout, ctx.get_help() + "\n")
        return 2
    return None


def verb(ctx: click.Context, action: Callable[[Vmrun], int]) -> int:
    """Run one verb; its errors are reported as `vmrun: Error: ...`."""
    streams = Streams.of(ctx)
    out, err = MessageStream(streams.stdout), MessageStream(streams.stderr)
    try:
        return action(Vmrun(out, err, ctx.find_root().params.get("host_config")))
    except LoadFailed as e:
        err.write(f"vmrun: Error: the script did not load\n{e.text}\n")
        return 1
    except ToolError as e:
        err.write(f"vmrun: Error: {e.message}\n")
        return e.status


def add_verb(name: str, method: Callable[..., int], synopsis: str, short_help: str, help: str,
             *params: click.Parameter) -> None:
    """Add the verb `name`: its parameters (VM.vmx first, unless `params` is empty) go to `method` of `Vmrun`."""

    @click.pass_context
    def callback(ctx: click.Context, **values) -> int:
        return verb(ctx, lambda vmrun: method(vmrun, **values))

    command.add_command(ToolCommand(name, params=list(params), callback=callback, synopsis=synopsis,
                                    short_help=short_help, help=help))


def vmx() -> click.Argument:
    return click.Argument(["vmx"], metavar="VM.vmx", type=click.Path())


def choice(name: str, choices: list[str]) -> click.Argument:
    """An optional word such as stop's soft|hard, in any case."""
    return click.Argument([name], required=False, metavar=name.upper(),
                          type=click.Choice(choices, case_sensitive=False))


# The verbs of Table 1-1 of the reference (and start, stop, list), in its order.
add_verb("start", Vmrun.start, "VM.vmx [nogui]",
         "power the VM on in the background (simulated time paced to the wall clock, or a QEMU VM); "
         "returns once it runs",
         "Power the VM on in the background: a simulated machine, its time paced to the\n"
         "wall clock, or a QEMU VM (booted here, or attached to).  Returns once it runs\n"
         "(a QEMU VM it boots: once the guest's init has started, unless qemu.loadAt = reset).\n"
         "A script its .vmx names (vprobe.vpFile) is loaded at power-on.  gui and nogui\n"
         "are accepted as VMware's vmrun takes them; there is no window either way.",
         vmx(), choice("window", ["gui", "nogui"]))
add_verb("stop", Vmrun.stop, "VM.vmx [soft|hard]",
         "power it off: unload the script and stop (soft, the default); hard kills the VM's processes",
         "Power the VM off.  soft (the default) unloads its script, whose unload probes\n"
         "fire, and stops; hard ends the VM's processes.",
         vmx(), choice("mode", ["soft", "hard"]))
add_verb("list", Vmrun.list, "", "list the running VMs",
         "List the VMs running in the background: how many, then the .vmx of each.")
add_verb("vprobeVersion", Vmrun.vprobeversion, "VM.vmx",
         "print the VProbes version and whether VProbes are enabled for the VM",
         "Print the VProbes version of the VM and whether VProbes are enabled for it.", vmx())
add_verb("vprobeLoad", Vmrun.vprobeload, "VM.vmx 'VP TEXT'", "load a VP script, replacing the one that runs",
         "Load the VP script VP TEXT into the VM, replacing the one that runs (whose\n"
         "unload probes fire).  A script that does not load leaves the old one running.",
         vmx(), click.Argument(["text"], metavar="VP TEXT"))
add_verb("vprobeLoadFile", Vmrun.vprobeloadfile, "VM.vmx FILE", "load a VP script from FILE",
         "Load the VP script in FILE into the VM, as vprobeLoad does.",
         vmx(), click.Argument(["path"], metavar="FILE", type=click.Path()))
add_verb("vprobeReset", Vmrun.vprobereset, "VM.vmx", "unload the script that runs in the VM",
         "Unload the script that runs in the VM (its unload probes fire).", vmx())
add_verb("vprobeListProbes", Vmrun.vprobelistprobes, "VM.vmx", "list the probe points the VM offers",
         "List the probe points the VM offers, one a line, with what each is.", vmx())
add_verb("vprobeListGlobals", Vmrun.vprobelistglobals, "VM.vmx", "list the built-in globals",
         "List the built-in globals the VM offers, with their type and scope.", vmx())
add_verb("vprobeListLoaded", Vmrun.vprobelistloaded, "VM.vmx",
         "list the probes of the script that runs, each with the most VP operations one firing can execute",
         "List the probes of the script that runs in the VM: each probe point, where it\n"
         "is in the script, and the most VP operations one firing of it can execute\n"
         "(its bound at load; with recursion, under vprobe.maxCallsPerFiring).", vmx())
# Not one of the reference's verbs: it writes a QEMU guest for the others to run.
add_verb("createGuest", Vmrun.createguest,
         "VM.vmx [OPTIONS]",
         "write a bootable QEMU guest (VM.vmx and its initramfs) from this host's kernel and busybox",
         "Write a QEMU guest: VM.vmx and, beside it, VM.initramfs.gz, built from this\n"
         "host's kernel (the newest /boot/vmlinuz-*, or --kernel) and busybox-static, with\n"
         "a workload: idle (nothing but the kernel), files (opens and lists files in a\n"
         "loop; the default), compile (tcc compiling a C file over and over; needs\n"
         "Debian's tcc) or server (busybox httpd on the guest's 127.0.0.1:8080 and a\n"
         "client fetching from it).  Prints the two paths.  Then: vmrun start VM.vmx, or\n"
         "vprobe -d 5 VM.vmx SCRIPT (docs/real-guests.md).",
         vmx(),
         click.Option(["--workload"], default="files", show_default=True, metavar="NAME",
                      type=click.Choice(["idle", "files", "compile", "server"], case_sensitive=False),
                      help="what the guest runs"),
         click.Option(["--kernel"], type=click.Path(), metavar="FILE", help="the kernel to boot"),
         click.Option(["--vcpus"], type=click.IntRange(1, 255), default=2, show_default=True, metavar="N",
                      help="VCPUs"),
         click.Option(["--memory"], type=click.IntRange(32, 1_048_576), default=512, show_default=True,
                      metavar="MB", help="memory in MB"),
         click.Option(["--force"], is_flag=True, help="replace the files if they exist"))


@command.command("help", cls=ToolCommand, synopsis="[COMMAND]", short_help="describe vmrun, or one command",
                 help="Describe vmrun, or the command COMMAND.")
@click.argument("name", required=False, metavar="[COMMAND]")
@click.pass_context
def help_command(ctx: click.Context, name: str | None) -> int:
    root = ctx.find_root()
    if name is None:
        click.echo(root.get_help())
        return 0
    found = command.get_command(root, name)
    if found is None:
        raise click.UsageError(f"unknown command {name!r} (vmrun --help lists them)", ctx)
    click.echo(found.get_help(click.Context(found, info_name=found.name, parent=root)))
    return 0


def main(argv: list[str] | None = None) -> None:
    command.main(argv, "vmrun")


if __name__ == "__main__":
    main()
