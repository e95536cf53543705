"""What the HTML report keeps of a log while it streams: lines, faults, aggregate epochs, stacks.

It keeps at most `MAX_LOG_LINES` log lines (the first ones; the rest are
counted) and the last `MAX_EPOCHS` epochs of each aggregate, so that a long
run makes a report a browser opens; every fault is counted whether or not
its line is kept, and the distinct faults (probe, place, message) are
listed with their counts, up to `MAX_FAULT_KINDS` of them.  The report is written when the log ends (`finish`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Callable

from ...log.parse import AggrBlock, Event, Fault, parse_fault
from ..stacks import StackCounter
from ..symbolize import find_stacks

MAX_LOG_LINES = 20000
MAX_EPOCHS = 30
MAX_FAULT_KINDS = 200
_VM_PREFIX = re.compile(r"([^\s:]+): (?=vprobe error: )")
LOG_TEXT, LOG_FAULT, LOG_AGGR = "text", "fault", "aggr"
LINE_STACKS = ""  # the stack counter of stacks found in log lines (aggregates have their names)


def fleet_fault(text: str) -> tuple[str | None, Fault | None]:
    """A fleet's fault line (`VM: vprobe error: ...`, as `fleet.render.log_text` prefixes its lines):
    the VM and the fault; (None, None) for any other line."""
    m = _VM_PREFIX.match(text)
    fault = parse_fault(text[m.end():]) if m else None
    return (m.group(1), fault) if fault is not None else (None, None)


class ReportView:
    """Collects a log for the report; `finish` calls `write(self)` once the log has ended."""

    def __init__(self, write: Callable[["ReportView"], None], *, cumulative: bool = False):
        self.write = write
        self.cumulative = cumulative
        self.lines: list[tuple[str, str]] = []  # (kind, text) in log order
        self.dropped_lines = 0
        self.fault_kinds: Counter[tuple] = Counter()  # (probe, FILE:LINE:COL or "", message) -> count
        self.fault_counts: Counter[str] = Counter()  # by probe
        self.fault_vms: dict[tuple, Counter[str]] = {}  # a fleet's: the VMs each kind of fault happened on
        self.epochs: dict[str, list[AggrBlock]] = {}  # name -> its last epochs, in order
        self.epoch_counts: Counter[str] = Counter()
        self.stacks: dict[str, StackCounter] = {}  # LINE_STACKS or an aggregate's name -> its stacks
        self.finished = False

    def _line(self, kind: str, text: str) -> None:
        if len(self.lines) < MAX_LOG_LINES:
            self.lines.append((kind, text))
        else:
            self.dropped_lines += 1

    def _counter(self, name: str) -> StackCounter:
        if name not in self.stacks:
            self.stacks[name] = StackCounter(self.cumulative)
        return self.stacks[name]

    def event(self, event: Event) -> None:
        if isinstance(event, AggrBlock):
            self.epoch_counts[event.name] += 1
            kept = self.epochs.setdefault(event.name, [])
            kept.append(event)
            del kept[:-MAX_EPOCHS]
            if any(find_stacks(k) for e in event.entries for k in e.keys[event.int_keys:]):
                self._counter(event.name).add_block(event)
            self._line(LOG_AGGR, event.name)
            return
        vm, fault = (None, event) if isinstance(event, Fault) else fleet_fault(event.text)
        if fault is not None:
            where = f"{fault.file}:{fault.line}:{fault.col}" if fault.file else ""
            kind = (fault.probe, where, fault.message)
            if kind in self.fault_kinds or len(self.fault_kinds) < MAX_FAULT_KINDS:
                self.fault_kinds[kind] += 1
                if vm is not None:
                    self.fault_vms.setdefault(kind, Counter())[vm] += 1
            self.fault_counts[fault.probe] += 1
            self._line(LOG_FAULT, event.text)
            return
        if find_stacks(event.text):
            self._counter(LINE_STACKS).add_text(event.text)
        self._line(LOG_TEXT, event.text)

    def idle(self) -> None:
        pass

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.write(self)
