"""`vprobe`: load a script into a VM, stream its log, unload.

stdout carries exactly what the user asked to see (the script's log, or the
probe and global lists); status, warnings and errors go to stderr.  A script
that fails to load exits 1 with located diagnostics; a VM that cannot run
scripts (a broken `.vmx`, VProbes disabled or not allowed) exits 1 too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from machine import SimulatedMachine, default_config, read_vmx

from machine.vmx import VMConfig, VmxError, VProbesDisabled, check_enabled, host_allows_vprobes
from vp_runtime import VPLoadError, load

from .guest_library import with_guest_library
from .output import LogFile, LogStream, Tee

# How much simulated time passes between checks of the wall clock when a run
# is paced to real time (no -d): fine enough that output appears smoothly.
PACE_SLICE_S = 0.01


def _fail(message: str) -> None:
    click.echo(f"vprobe: {message}", err=True)
    sys.exit(1)


def _read_script(path: str | None, from_stdin: bool) -> tuple[bytes, str]:
    if from_stdin:
        return sys.stdin.buffer.read(), "<stdin>"
    if path is None:
        raise click.UsageError("give a script file, or -i to read VP from standard input")
    if path.endswith(".emt"):
        _fail(f"{path}: Emmett scripts need the Emmett compiler, which is not available yet")
    try:
        return Path(path).read_bytes(), path
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}")


def _vm_config(vmx: str | None, host_config: str | None) -> VMConfig:
    try:
        config = read_vmx(vmx) if vmx else default_config()
        allowed, why = host_allows_vprobes(host_config)
    except VmxError as e:
        click.echo(e.format(), err=True)
        sys.exit(1)
    for warning in config.warnings:
        click.echo(warning.format(), err=True)
    if not allowed:
        _fail(why)
    try:
        check_enabled(config)
    except VProbesDisabled as e:
        _fail(str(e))
    return config


def _run(machine: SimulatedMachine, duration: float | None) -> None:
    """Run for `duration` simulated seconds as fast as possible, or paced to the wall clock until Ctrl-C."""
    if duration is not None:
        machine.run(duration)
        return
    start = time.monotonic()
    simulated = 0.0
    while True:
        machine.run(PACE_SLICE_S)
        simulated += PACE_SLICE_S
        ahead = simulated - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def _list_probes(machine: SimulatedMachine) -> None:
    for name, description in machine.probe_points():
        click.echo(f"{name:<40} {description}")


def _list_globals(machine: SimulatedMachine) -> None:
    for info in machine.globals().values():
        click.echo(f"{info.name:<24} {info.type:<8} {info.scope:<10} {info.description}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("files", nargs=-1, metavar="[VM.vmx] [SCRIPT]")
@click.option("-d", "--duration", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Run for SECONDS of simulated time as fast as possible, then unload. "
                   "Without it, the VM runs in real time until Ctrl-C.")
@click.option("-i", "--stdin", "from_stdin", is_flag=True, help="Read the VP script from standard input.")
@click.option("-p", "--list-probes", is_flag=True, help="List the probe points the VM offers, and exit.")
@click.option("-g", "--list-globals", is_flag=True, help="List the built-in globals with type and scope, and exit.")
@click.option("--kallsyms", is_flag=True, help="Print the guest kernel's symbols (/proc/kallsyms format), and exit.")
@click.option("--host-config", metavar="FILE",
              help="The host-wide VMware configuration that holds vprobe.allow (default /etc/vmware/config).")
def main(files: tuple[str, ...], duration: float | None, from_stdin: bool, list_probes: bool,
         list_globals: bool, kallsyms: bool, host_config: str | None) -> None:
    """Load SCRIPT (VP) into a VM and stream its log to stdout.

    The VM is the one VM.vmx describes, or the embedded default machine (two
    VCPUs, a 64-bit Linux guest, a default workload) when no .vmx is given.
    The script is attached from power-on, so boot-time probes fire.  With a
    .vmx the log is also written to its vprobe.outFile (default vprobe.out
    beside the .vmx).  Scripts may call curpid, curprocname, curtid and
    curppid without defining them: the guest's library is added on demand.

    \b
    Examples:
      vprobe -d 3 hello.vp             run hello.vp for three simulated seconds
      vprobe -d 10 web01.vmx vptop.vp  the same on the VM web01.vmx describes
      vprobe -p | grep GUEST:sys_      which system calls can be probed
      echo '(vprobe VMM1Hz (printf "tick\\n"))' | vprobe -i -d 2
    """
    vmx = files[0] if files and files[0].endswith(".vmx") else None
    rest = files[1:] if vmx else files
    if len(rest) > 1:
        raise click.UsageError("give one script (VP files are not concatenated yet)")
    config = _vm_config(vmx, host_config)
    machine = SimulatedMachine(config)
    if list_probes or list_globals or kallsyms:
        if list_probes:
            _list_probes(machine)
        if list_globals:
            _list_globals(machine)
        if kallsyms:
            click.echo(machine.kallsyms_text, nl=False)
        return
    script_path = rest[0] if rest else (str(config.vp_file) if config.vp_file and not from_stdin else None)
    text, name = _read_script(script_path, from_stdin)
    stream = LogStream(sys.stdout.buffer)
    sink = stream.write
    log_file = None
    if vmx:
        try:
            log_file = LogFile(config.out_file)
        except OSError as e:
            _fail(f"cannot write {config.out_file}: {e.strerror}")
        sink = Tee(stream.write, log_file.write)
    try:
        loaded = load(with_guest_library(text), machine.load_config, backend=machine, filename=name, log_sink=sink)
    except VPLoadError as e:
        click.echo(e.format(), err=True)
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(warning.format(), err=True)
    status = 0
    try:
        machine.attach(loaded)
        _run(machine, duration)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # a defect of the machine model: report it plainly, keep the log
        click.echo(f"vprobe: internal error in the simulated machine: {type(e).__name__}: {e}", err=True)
        status = 2
    machine.detach()
    stream.close()
    if log_file:
        log_file.close()
    sys.exit(status)
