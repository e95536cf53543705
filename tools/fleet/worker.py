"""One VM of a fleet, run where a Dask worker runs it: what it sends back is small.

The worker powers the member's simulated machine on, loads the script with an
aggregate clock (the machine's guest time, so that the merge knows whose
`latest` came last), runs it for the fleet's duration and unloads it.  It
sends back a `merge.Partial`: the runtime's run totals of every aggregate
(what `clearaggr` cleared included: the fleet's tables count the whole run),
the lines the script printed and its fault lines, each stamped with the
guest time it was written at, at most `max_lines` of them — and not the
aggregate blocks the script logs, which the merged tables replace.

A VM that cannot run (a broken `.vmx`, a script its machine refuses, a
failure of the machine) comes back as a failed outcome naming why; the lines
it printed before it failed come back too, its aggregates do not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import LoadFailed, ToolError, machine_failure
from ..log.parse import AggrBlock, Fault, LogParser
from ..scripts.sources import SourceFile, load_program, machine_library, vp_program
from .members import Member
from .merge import Aggregate, Line, Partial, VMOutcome, failed_vm, merge


@dataclass(frozen=True)
class Program:
    """The VP sources every VM of the fleet loads (Emmett is compiled once, by the client)."""

    files: tuple[SourceFile, ...]
    charge: str | None = None  # vprobe --charge: the probe-time charge instead of each VM's own


class LineCollector:
    """The script's log, read as it is written: printed and fault lines kept, stamped."""

    def __init__(self, member: Member, clock, max_lines: int):
        self.member = member
        self.clock = clock
        self.max_lines = max_lines
        self.parser = LogParser()
        self.lines: list[Line] = []
        self.count = 0
        self.faults = 0

    def sink(self, text: str) -> None:
        self._take(self.parser.feed(text) + self.parser.boundary())

    def finish(self) -> None:
        self._take(self.parser.finish())

    def _take(self, events) -> None:
        for event in events:
            if isinstance(event, AggrBlock):
                continue
            fault = isinstance(event, Fault)
            self.faults += fault
            if self.count < self.max_lines:
                text = event.text if event.text.endswith("\n") else event.text + "\n"
                self.lines.append(Line(self.clock(), self.member.order, self.count, text, fault))
            self.count += 1


def machine_config(member: Member, charge: str | None = None):
    """The member's machine configuration, with its seed (and `charge`, if given)."""
    from machine.qemu import QemuConfig
    from machine.vms import read_vm_config
    from machine.vmx import VmxError, VProbesDisabled, check_enabled

    try:
        config = read_vm_config(member.vmx)
    except VmxError as e:
        raise ToolError(e.format()) from None
    if isinstance(config, QemuConfig):
        raise ToolError(f"{member.vmx} describes a VM under QEMU: a fleet runs simulated VMs")
    if member.seed is not None:
        config = dataclasses.replace(config, seed=member.seed)
    if charge is not None:
        config = dataclasses.replace(config, charge_probe_time=charge)
    try:
        check_enabled(config)
    except VProbesDisabled as e:
        raise ToolError(str(e)) from None
    return config


def run_members(members: list[Member], program: Program, duration: float, max_lines: int,
                by_vm: bool) -> Partial:
    """Run `program` on each of `members` in turn; their results merged here, where they ran."""
    result = None
    for member in members:
        part = run_member(member, program, duration, max_lines, by_vm)
        result = part if result is None else merge(result, part)
    return result


def run_member(member: Member, program: Program, duration: float, max_lines: int, by_vm: bool) -> Partial:
    """Run `program` on `member` for `duration` simulated seconds; its part of the fleet's result."""
    from machine.simulated import SimulatedMachine

    try:
        config = machine_config(member, program.charge)
        machine = SimulatedMachine(config)
    except ToolError as e:
        return failed_vm(member.order, member.name, e.message, max_lines)
    warnings = tuple(w.format() for w in config.warnings)
    lines = LineCollector(member, lambda: machine.now_ns, max_lines)
    source = vp_program(list(program.files), library=lambda: machine_library(machine))
    try:
        # Its warnings were said once, when the client checked that the program loads.
        script, _ = load_program(source, machine, lines.sink, aggregate_clock=lambda: machine.now_ns)
    except LoadFailed as e:
        return failed_vm(member.order, member.name, e.text, max_lines, warnings)
    error = None
    try:
        machine.attach(script)
        machine.run(duration)
    except Exception as e:  # the VM failed: say why; the lines it printed still come back
        error = _failure(e)
    try:
        machine.detach()  # the unload probes fire; the log is flushed
    except Exception as e:
        error = error or _failure(e)
    lines.finish()
    outcome = VMOutcome(member.order, member.name, error=error, simulated_s=machine.now_ns / 1e9,
                        lines=lines.count, faults=lines.faults, warnings=warnings,
                        firings=tuple(script.firings))
    aggregates, per_vm = {}, None
    if error is None:
        aggregates = _stamped(script, member.order)
        if by_vm:
            per_vm = {member.order: {name: table.entries for name, table in aggregates.items()}}
    kept = sorted(lines.lines, key=Line.sort_key)
    return Partial(aggregates, tuple(kept), lines.count - len(kept), (outcome,), max_lines, per_vm)


def _stamped(script, order: int) -> dict[str, Aggregate]:
    """The script's run totals, each entry marked with the VM it came from."""
    shapes = script.aggregates
    return {name: Aggregate(shapes[name].int_keys, shapes[name].str_keys,
                            {key: (*entry, order) for key, entry in entries.items()})
            for name, entries in script.run_totals().items()}


def _failure(error: Exception) -> str:
    return machine_failure(error) or f"internal error in the simulated machine: {type(error).__name__}: {error}"

