"""The exact merge of what VMs of a fleet send back: aggregates, printed lines, outcomes.

A `Partial` is the result of one VM or of several merged.  `merge` combines
two, and is commutative and associative, so the fleet's result is the same
whatever the shape of the merge tree, the number of workers or the order in
which VMs finish:

* aggregate entries are added key by key from the runtime's own state
  (`Script.run_totals`): counts and sums add (sums never wrap), so the
  average of the merged entry is exact; min and max are the min and max;
  `latest` is the latest of the VM whose update came last in its own guest
  time (nanoseconds since it powered on), and of two VMs whose updates came
  at the same guest nanosecond, the one later in the fleet's order (its
  `order`: the seed's place, or the `.vmx` file's in sorted order).  A
  histogram is an aggregate keyed by bucket, so it merges bucket by bucket;
* printed lines are kept in one order — guest time, then fleet order, then
  the order the VM printed them — and only the first `max_lines` of that
  order are kept (the rest are counted), so the bound is exact too;
* VM outcomes are listed in fleet order; a per-VM breakdown of the
  aggregates is kept only when asked for.

Nothing here mutates a `Partial` it is given: a merge runs on a Dask worker
that may hold its inputs for other tasks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

DEFAULT_MAX_LINES = 10_000  # printed lines of a whole fleet the client takes (--max-lines)

# One merged aggregate entry: (count, sum, min, max, latest, stamp, order) —
# the stamp is the guest time of the latest update, order the VM it came from.
Entry = tuple[int, int, int, int, int, int, int]


@dataclass(frozen=True)
class Line:
    """A line the script printed (or a fault line), with where and when it came from."""

    stamp: int  # the VM's guest time (ns) when the line was written
    order: int  # the VM's place in the fleet
    seq: int  # its place among the VM's lines
    text: str  # one line of the log, with its newline
    fault: bool = False

    def sort_key(self) -> tuple[int, int, int]:
        return self.stamp, self.order, self.seq


@dataclass(frozen=True)
class VMOutcome:
    """How one VM of the fleet ran."""

    order: int
    name: str
    error: str | None = None  # why the VM failed (its aggregates are then not in the result)
    simulated_s: float = 0.0  # guest time it reached
    lines: int = 0  # lines it printed (all of them, kept or not)
    faults: int = 0  # probe firings aborted by a run-time fault
    warnings: tuple[str, ...] = ()
    firings: tuple[int, ...] = ()  # how often each probe fired, in script order (Script.firings)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Aggregate:
    """One aggregate's merged entries (key as the runtime keys it: a scalar for one key)."""

    int_keys: int
    str_keys: int
    entries: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Partial:
    aggregates: dict[str, Aggregate]
    lines: tuple[Line, ...]  # sorted by Line.sort_key, at most max_lines
    dropped: int  # lines printed beyond the bound
    vms: tuple[VMOutcome, ...]  # by order
    max_lines: int
    by_vm: dict[int, dict[str, dict]] | None = None  # order -> aggregate -> entries (when asked for)


def merge_entry(a: Entry, b: Entry) -> Entry:
    """Two VMs' entries for one key, as one."""
    last = a if (a[5], a[6]) > (b[5], b[6]) else b
    return (a[0] + b[0], a[1] + b[1], min(a[2], b[2]), max(a[3], b[3]), last[4], last[5], last[6])


def merge_entries(a: dict, b: dict) -> dict:
    merged = dict(a)
    for key, entry in b.items():
        have = merged.get(key)
        merged[key] = entry if have is None else merge_entry(have, entry)
    return merged


def merge_aggregates(a: dict[str, Aggregate], b: dict[str, Aggregate]) -> dict[str, Aggregate]:
    merged = dict(a)
    for name, table in b.items():
        have = merged.get(name)
        if have is None:
            merged[name] = table
            continue
        if (have.int_keys, have.str_keys) != (table.int_keys, table.str_keys):
            raise ValueError(f"aggregate {name} has different keys on two VMs of the fleet")
        merged[name] = Aggregate(have.int_keys, have.str_keys, merge_entries(have.entries, table.entries))
    return merged


def bounded_lines(lines, limit: int) -> tuple[tuple[Line, ...], int]:
    """The first `limit` of `lines` (already in order), and how many were left out."""
    kept = tuple(lines[:limit])
    return kept, len(lines) - len(kept)


def merge(a: Partial, b: Partial) -> Partial:
    """Two partial results as one (commutative and associative)."""
    if a.max_lines != b.max_lines:
        raise ValueError("partial results of two fleets cannot be merged")
    lines = list(heapq.merge(a.lines, b.lines, key=Line.sort_key))
    kept, dropped = bounded_lines(lines, a.max_lines)
    by_vm = None
    if a.by_vm is not None or b.by_vm is not None:
        by_vm = {**(a.by_vm or {}), **(b.by_vm or {})}
    return Partial(
        aggregates=merge_aggregates(a.aggregates, b.aggregates),
        lines=kept,
        dropped=a.dropped + b.dropped + dropped,
        vms=tuple(heapq.merge(a.vms, b.vms, key=lambda vm: vm.order)),
        max_lines=a.max_lines,
        by_vm=by_vm,
    )


def failed_vm(order: int, name: str, error: str, max_lines: int, warnings: tuple[str, ...] = ()) -> Partial:
    """The part of the result of a VM that failed before it could run the script."""
    return Partial({}, (), 0, (VMOutcome(order, name, error=error, warnings=warnings),), max_lines)
