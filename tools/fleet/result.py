"""A fleet's merged result, in a canonical form: the same bytes whatever the merge tree was.

Aggregates are in the script's order with their entries sorted by key; each
entry holds the exact count and sum (so the average is exact), min, max,
`latest` and the VM it came from (see `merge` for the rule).  The per-VM
breakdown, kept only when asked for, has each VM's own entries.  Lines are in
guest-time order (then fleet order), at most the bound, the rest counted.
The result is incomplete when a VM failed: the failed VMs are named, with
why, and their aggregates are not in the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .merge import Line, Partial, VMOutcome


@dataclass(frozen=True)
class MergedEntry:
    keys: tuple  # the integer keys, then the string keys
    count: int
    sum: int
    min: int
    max: int
    latest: int
    latest_vm: str  # the VM whose update came last (in its own guest time)

    @property
    def avg(self) -> int:
        """The average as the log prints it (rounded down), of the exact sum and count."""
        return self.sum // self.count


@dataclass(frozen=True)
class MergedAggregate:
    name: str
    int_keys: int
    str_keys: int
    entries: tuple[MergedEntry, ...]  # sorted by key


@dataclass(frozen=True)
class WorkerLoss:
    """A Dask worker that died during the run, and the VMs it was running (run again elsewhere)."""

    address: str
    running: tuple[str, ...]


@dataclass(frozen=True)
class FleetResult:
    duration: float
    aggregates: tuple[MergedAggregate, ...]
    lines: tuple[Line, ...]
    dropped_lines: int
    vms: tuple[VMOutcome, ...]  # in fleet order
    by_vm: dict[str, tuple[MergedAggregate, ...]] | None  # VM name -> its own tables (when asked for)
    lost_workers: tuple[WorkerLoss, ...] = ()

    @property
    def failed(self) -> tuple[VMOutcome, ...]:
        return tuple(vm for vm in self.vms if not vm.ok)

    @property
    def incomplete(self) -> bool:
        return bool(self.failed)

    @property
    def firings(self) -> tuple[int, ...]:
        """How often each probe fired, in script order, summed over the VMs that ran."""
        ran = [vm.firings for vm in self.vms if vm.ok and vm.firings]
        return tuple(sum(counts) for counts in zip(*ran))

    def vm_name(self, order: int) -> str:
        return self._names[order]

    @cached_property
    def _names(self) -> dict[int, str]:
        return {vm.order: vm.name for vm in self.vms}

    @classmethod
    def from_partial(cls, partial: Partial, duration: float, lost_workers=()) -> "FleetResult":
        names = {vm.order: vm.name for vm in partial.vms}
        aggregates = tuple(_canonical(name, table.int_keys, table.str_keys, table.entries, names)
                           for name, table in partial.aggregates.items())
        by_vm = None
        if partial.by_vm is not None:
            shapes = {a.name: (a.int_keys, a.str_keys) for a in aggregates}
            by_vm = {names[order]: tuple(_canonical(name, *shapes[name], entries, names)
                                         for name, entries in tables.items())
                     for order, tables in sorted(partial.by_vm.items())}
        return cls(duration, aggregates, partial.lines, partial.dropped, partial.vms, by_vm, tuple(lost_workers))


def _canonical(name: str, int_keys: int, str_keys: int, entries: dict, names: dict[int, str]) -> MergedAggregate:
    single = int_keys + str_keys == 1
    shown = []
    for key in sorted(entries):
        count, total, low, high, latest, _stamp, order = entries[key]
        shown.append(MergedEntry((key,) if single else tuple(key), count, total, low, high, latest, names[order]))
    return MergedAggregate(name, int_keys, str_keys, tuple(shown))
