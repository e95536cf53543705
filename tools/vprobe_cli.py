"""`vprobe`: load a script into a VM, stream its log, unload.

stdout carries exactly the script's log; status, warnings and errors go to
stderr.  A script that fails to load exits 1 with located diagnostics.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from machine import SimulatedMachine
from vp_runtime import VPLoadError, load

from .output import LogStream

# How much simulated time passes between checks of the wall clock when a run
# is paced to real time (no -d): fine enough that output appears smoothly.
PACE_SLICE_S = 0.01


def _read_script(path: str | None, from_stdin: bool) -> tuple[bytes, str]:
    if from_stdin:
        return sys.stdin.buffer.read(), "<stdin>"
    if path is None:
        raise click.UsageError("give a script file, or -i to read VP from standard input")
    if path.endswith(".emt"):
        raise click.ClickException(f"{path}: Emmett scripts need the Emmett compiler, which is not available yet")
    try:
        return Path(path).read_bytes(), path
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None


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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", required=False)
@click.option("-d", "--duration", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Run for SECONDS of simulated time as fast as possible, then unload. "
                   "Without it, the VM runs in real time until Ctrl-C.")
@click.option("-i", "--stdin", "from_stdin", is_flag=True, help="Read the VP script from standard input.")
def main(script: str | None, duration: float | None, from_stdin: bool) -> None:
    """Load SCRIPT (VP) into the embedded default VM and stream its log to stdout.

    \b
    Examples:
      vprobe -d 3 hello.vp          run hello.vp for three simulated seconds
      echo '(vprobe VMM1Hz (printf "tick\\n"))' | vprobe -i -d 2
    """
    text, name = _read_script(script, from_stdin)
    machine = SimulatedMachine()
    stream = LogStream(sys.stdout.buffer)
    try:
        loaded = load(text, machine.load_config, backend=machine, filename=name, log_sink=stream.write)
    except VPLoadError as e:
        click.echo(e.format(), err=True)
        sys.exit(1)
    for warning in loaded.warnings:
        click.echo(warning.format(), err=True)
    try:
        machine.attach(loaded)
        _run(machine, duration)
    except KeyboardInterrupt:
        pass
    except Exception as e:  # a defect of the machine model: report it plainly, keep the log
        click.echo(f"vprobe: internal error in the simulated machine: {type(e).__name__}: {e}", err=True)
        machine.detach()
        stream.close()
        sys.exit(2)
    machine.detach()
    stream.close()
