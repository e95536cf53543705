"""`vprobe --fleet`: one script on many simulated VMs, on Dask, shown as one merged result.

The client compiles an Emmett script once and checks that the program loads
on the fleet's first VM (so a typo is one located error and exit 1, before
any cluster starts); then the VMs run on a Dask cluster (`fleet.runner`: a
local one, or the one at --scheduler) and only their merged result comes
back.  It is shown as a log (`fleet.render.log_text`: the printed lines
prefixed with their VM's name, then the merged aggregates, then each VM's
with --by-vm), through the same views as one VM's log (-a, -s), or as JSON
lines naming the VM in every object (-f json).  A failed VM or a lost worker
is named on stderr, and the exit status is 1 when the result is incomplete.
"""

from __future__ import annotations

import time

from ..errors import ToolError
from ..fleet import render
from ..fleet.members import Member, members
from ..fleet.merge import DEFAULT_MAX_LINES
from ..fleet.runner import local_client, remote_client, run_fleet
from ..fleet.worker import Program
from ..scripts.sources import probe_summary
from ..output import is_terminal
from ..log.json_lines import dumps
from ..views.symbolize import Symbolizer
from ..views.tables import histograms, is_histogram
from .status_line import StatusLine

FLEET_ONLY = ("scheduler", "workers", "max_lines", "by_vm")
NOT_WITH_FLEET = {"load_only": "-l", "reset": "-r", "list_probes": "-p", "list_globals": "-g", "kallsyms": "--kallsyms",
                  "structs": "--structs"}


def check_fleet_usage(args) -> None:
    """Options that need --fleet, or that a fleet cannot take."""
    if args.fleet is None:
        given = [name for name in FLEET_ONLY if getattr(args, name) not in (None, False)]
        if given:
            raise ToolError(f"--{given[0].replace('_', '-')} needs --fleet")
        return
    for name, flag in NOT_WITH_FLEET.items():
        if getattr(args, name):
            raise ToolError(f"{flag} does not go with --fleet")
    if args.duration is None:
        raise ToolError("--fleet needs -d SECONDS: every VM of the fleet runs that long in simulated time")
    if args.scheduler is not None and args.workers is not None:
        raise ToolError("--workers sizes the local cluster: give it or --scheduler, not both")


class Progress(StatusLine):
    """VMs done and simulated seconds reached, redrawn on one line of a terminal's stderr."""

    def __init__(self, err, duration: float, enabled: bool):
        super().__init__(err, enabled)
        self.duration = duration
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        self.show(f"vprobe: fleet: {done}/{total} VMs done, {done * self.duration:g} of "
                  f"{total * self.duration:g} simulated s, {time.monotonic() - self.started:.1f} s")


def max_lines(args) -> int:
    return DEFAULT_MAX_LINES if args.max_lines is None else args.max_lines


def fleet_label(given: str, vmx: str | None, size: int) -> str:
    """The fleet, as the report names it."""
    if given.isdigit():
        return f"{size} VMs of {vmx or 'the embedded default machine'} (sim.seed 0 .. {size - 1})"
    return f"{size} VMs: {given}"


def first_vm(command, fleet: list[Member]):
    """The fleet's first VM that powers on here, for compiling and checking the script."""
    first_error = None
    for member in fleet:
        try:
            return command.embedded(member.vmx)
        except ToolError as e:
            first_error = first_error or f"{member.name}: {e.message}"
    raise ToolError(f"no VM of the fleet can run scripts ({first_error})")


def run_fleet_command(command, vmx: str | None, scripts: list[str]) -> int:
    """Run the fleet the command line describes (`command` is the vprobe run, with its args and streams)."""
    a = command.args
    fleet = members(a.fleet, vmx)
    vm = first_vm(command, fleet)
    try:
        files = command.script_files(scripts, vm, None)
        script, loaded = vm.load(files, lambda text: None, command.warn)  # a script that does not load stops here
    finally:
        vm.close(command.warn)
    program = Program(tuple(files), a.charge)
    run = command.run_summary(vm, vmx, scripts)
    run.vm = fleet_label(a.fleet, vmx, len(fleet))
    progress = Progress(command.err, a.duration, is_terminal(command.stderr))
    clients = remote_client(a.scheduler) if a.scheduler else local_client(a.workers)
    try:
        with clients as client:
            result = run_fleet(client, fleet, program, a.duration, max_lines=max_lines(a), by_vm=a.by_vm,
                               progress=progress)
    finally:
        progress.clear()
    run.fleet = render.summary_json(result)
    run.probes = [dict(row, firings=fired) for row, fired in zip(probe_summary(loaded, script), result.firings)]
    show(command, result, vm, files, run)
    return report(command, result)


def show(command, result, vm, files, run) -> None:
    """The merged result on stdout (and with --html, its report of `run`)."""
    a = command.args
    if a.format == "json" and not a.stacks:  # the merged tables are in it, with their VMs: -a adds nothing
        catalog = command.catalog(files)
        keys = command.key_format(vm, catalog, Symbolizer(command.symbols_text(vm)))
        for obj, block in render.json_objects(result, catalog):
            command.out.write(dumps(obj))
            if block is not None and is_histogram(block):  # then its histograms, drawn as -a -f json draws them
                for histogram in histograms(block, keys).as_json():
                    command.out.write(dumps({"type": histogram.pop("type"), "vm": obj["vm"], **histogram}))
        command.out.close()
        sink, finish = command.report_output(vm, files, run) or (None, None)
    else:
        sink, finish = command.output(vm, files, run)
    if sink is None:
        return
    try:
        for text in render.log_text(result):
            sink(text)
    finally:
        finish()


def report(command, result) -> int:
    """Failures, losses and what the bound left out, on stderr; the exit status."""
    warn = command.warn
    for text in dict.fromkeys(w for vm in result.vms for w in vm.warnings):
        warn(text)
    for loss in result.lost_workers:
        running = f" while running {', '.join(loss.running)}" if loss.running else ""
        warn(f"vprobe: the Dask worker {loss.address} died{running}")
    for vm in result.failed:
        warn(f"vprobe: VM {vm.name} failed: {vm.error}")
    if result.dropped_lines:
        warn(f"vprobe: {result.dropped_lines} more printed lines were left out (--max-lines "
             f"{max_lines(command.args)}; the first in guest-time order were kept)")
    if result.incomplete:
        warn(f"vprobe: the fleet's result is incomplete: {len(result.failed)} of {len(result.vms)} VMs failed")
        return 1
    return 0

