"""The aggregates of a log as data: tables and histograms, apart from how they are drawn.

`views.aggr` draws these as text (`vprobe -a`, `vprobe-aggr`) and
`to_json` writes them as JSON lines; a report or a fleet can read the same
objects.  Each is made from one aggregate block of the log
(`log.parse.AggrBlock`) and what the script says about the aggregate
(`block.info`, a `log.aggr_info.AggregateInfo`, or None):

* `Table`: one column per key, named by the key's Emmett source (`RAX`,
  `curprocname()`; without info `key1`, `key2` ...), each cell the key as
  `KeyFormat` shows it; then count, avg, min, max, latest, the entry's
  share of the total count — for an aggregate only ever counted (`++`), just
  count and share.  Rows are sorted (count largest first by default).
* `Histogram`: an aggregate whose info has a histogram becomes one histogram
  per value of its other keys: its buckets in order, the empty ones inside
  the range included (a long run of them is one `Gap`), each bucket's count,
  min and max (exact: the aggregated value is the sample), the count, mean
  (exact from the sums where they are known, as a fleet's; else from the log's
  truncated averages), min and max of the whole, and the p50 / p90 / p99 as the bounds of the
  bucket each falls in (a bucket holds many values: a percentile is known
  to lie in it, nowhere more exactly).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..log.aggr_info import ADDRESS, BUCKET, HEX, INTEGER, LINEAR, SYSCALL, TOP, AggregateInfo, HistogramInfo
from ..log.parse import AggrBlock, AggrEntry
from .symbolize import Symbolizer, is_stack, parse_stack

SORT_KEYS = ("count", "avg", "min", "max", "latest", "key")
PERCENTILES = (50, 90, 99)
# Runs of empty buckets longer than this inside a histogram's range are shown as one gap.
MAX_EMPTY_RUN = 8


def printable(text: str) -> str:
    """A string key for a table cell: control characters escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, f"\\x{code:02x}"))
        else:
            out.append(ch)
    return "".join(out)


class KeyFormat:
    """How key values are shown, by kind: addresses in hex, symbolized `sym+0xoff` where the guest
    has a symbol; system call numbers by name (the VM's vprobe.syscalls, or its kernel's own table);
    hex kinds in hex; other integers in decimal; strings as they are (a guest stack symbolized, a
    frame per line).  A key without a kind (VP without annotations) is shown as today: hex.

    `syscalls` is called for the table of names the first time a system call is shown."""

    def __init__(self, symbolizer: Symbolizer | None = None,
                 syscalls: Callable[[], Mapping[int, str]] | None = None):
        self.symbolizer = symbolizer
        self._syscalls = syscalls
        self._names: Mapping[int, str] | None = None

    def syscall(self, number: int) -> str:
        if self._names is None:
            self._names = self._syscalls() if self._syscalls is not None else {}
        return self._names.get(number, str(number))

    def cell(self, value, kind: str | None) -> list[str]:
        """The lines `value` takes in a table cell."""
        if isinstance(value, str):
            if self.symbolizer is not None and is_stack(value):
                return [self.symbolizer.frame(a) for a in parse_stack(value)]
            return [printable(value)]
        if kind is None or kind == HEX:
            return [f"0x{value:x}"]
        if kind == ADDRESS:
            return [self.symbolizer.frame(value) if self.symbolizer is not None else f"0x{value:x}"]
        if kind == SYSCALL:
            return [self.syscall(value)]
        return [str(value)]

    def text(self, value, kind: str | None) -> str:
        """`value` as one string (a stack's frames joined by newlines)."""
        return "\n".join(self.cell(value, kind))


@dataclass(frozen=True)
class Column:
    header: str
    kind: str | None  # None: no info (VP without annotations)
    right: bool  # numbers are right-aligned; names (strings, symbols, system calls) left


@dataclass
class Row:
    entry: AggrEntry
    keys: list[list[str]]  # each key as shown, one list of lines per key
    share: float | None  # of the total count, 0..1 (None when the total is 0)


@dataclass
class Table:
    name: str
    int_keys: int
    str_keys: int
    columns: list[Column]
    rows: list[Row]  # shown, in display order
    total_count: int
    counted: bool  # only count and share mean anything
    value: str = ""  # the source of the values aggregated, when known
    annotated: bool = False
    hidden: int = 0  # rows cut by --top
    hidden_count: int = 0
    epoch: int | None = None

    def as_json(self) -> dict:
        """The table as a JSON object: the log's aggr object with the columns' names and kinds, and
        each entry's keys as shown and its share (an aggregate only counted: count and share only)."""
        entries = []
        for r in self.rows:
            e = r.entry
            entry = {"keys": list(e.keys), "shown": ["\n".join(lines) for lines in r.keys], "count": e.count,
                     "share": r.share}
            if not self.counted:
                entry.update(avg=e.avg, min=e.min, max=e.max, latest=e.latest)
            entries.append(entry)
        obj = {"type": "aggr", "name": self.name, "int_keys": self.int_keys, "str_keys": self.str_keys,
               "columns": [{"header": c.header, "kind": c.kind} for c in self.columns], "counted": self.counted}
        if self.value:
            obj["value"] = self.value
        obj.update(total_count=self.total_count, entries=entries)
        if self.hidden:
            obj.update(hidden=self.hidden, hidden_count=self.hidden_count)
        return obj


def sort_entries(entries: list[AggrEntry], by: str = "count", reverse: bool = False) -> list[AggrEntry]:
    """Rows in display order: statistics largest first, keys smallest first; ties keep log order."""
    if by == "key":
        return sorted(entries, key=lambda e: e.keys, reverse=reverse)
    return sorted(entries, key=lambda e: getattr(e, by), reverse=not reverse)


def columns_of(block: AggrBlock) -> list[Column]:
    info = block.info
    nkeys = block.int_keys + block.str_keys
    if info is None:
        return [Column("key" if nkeys == 1 else f"key{i + 1}", None, i < block.int_keys) for i in range(nkeys)]
    return [Column(k.header, k.kind, k.kind in (INTEGER, HEX, BUCKET)) for k in info.keys]


def table(block: AggrBlock, keys: KeyFormat, *, by: str = "count", reverse: bool = False,
          top: int | None = None, epoch: int | None = None) -> Table:
    """`block` as a Table (see the module's description)."""
    info = block.info
    columns = columns_of(block)
    total = block.total_count
    ordered = sort_entries(block.entries, by, reverse)
    shown = ordered[:top] if top else ordered
    rows = [Row(e, [keys.cell(v, c.kind) for v, c in zip(e.keys, columns)], e.count / total if total else None)
            for e in shown]
    rest = ordered[len(shown):]
    return Table(block.name, block.int_keys, block.str_keys, columns, rows, total,
                 counted=info is not None and info.counted, value=info.value if info else "",
                 annotated=info is not None, hidden=len(rest), hidden_count=sum(e.count for e in rest), epoch=epoch)


# ---- histograms ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bucket:
    low: int
    high: int  # exclusive; TOP (2^64) for the last
    count: int = 0
    min: int | None = None  # of the values in it (None: empty)
    max: int | None = None
    total: int = 0  # the sum of its values: exact where known (a fleet's), else as the log tells (avg x count)


@dataclass(frozen=True)
class Gap:
    """A run of empty buckets inside a histogram's range, shown as one line."""

    low: int
    high: int
    buckets: int


@dataclass
class Histogram:
    name: str
    group: list[str]  # the other keys, as shown
    group_keys: tuple  # ... and as they are
    info: HistogramInfo
    value: str  # the source of the sample, when known
    lines: list[Bucket | Gap]  # in order, lowest first
    count: int
    mean: float | None
    min: int | None
    max: int | None
    percentiles: dict[int, Bucket] = field(default_factory=dict)  # p -> the bucket it falls in

    @property
    def buckets(self) -> list[Bucket]:
        return [b for b in self.lines if isinstance(b, Bucket)]

    def as_json(self, headers: list[str]) -> dict:
        info = self.info
        obj = {"type": "histogram", "name": self.name, "headers": headers, "keys": list(self.group_keys),
               "shown": self.group, "kind": info.kind}
        if info.kind == LINEAR:
            obj.update(min=info.min, max=info.max, step=info.step)
        if info.unit:
            obj["unit"] = info.unit
        if self.value:
            obj["value"] = self.value
        obj.update(count=self.count, mean=self.mean, min_value=self.min, max_value=self.max,
                   percentiles={f"p{p}": _bounds_json(b.low, b.high) for p, b in self.percentiles.items()})
        buckets = []
        for line in self.lines:
            item = _bounds_json(line.low, line.high)
            if isinstance(line, Gap):
                item.update(count=0, empty_buckets=line.buckets)
            else:
                item.update(count=line.count, min=line.min, max=line.max)
            buckets.append(item)
        obj["buckets"] = buckets
        return obj


def _bounds_json(low: int, high: int) -> dict:
    return {"low": low, "high": None if high >= TOP else high}


@dataclass
class HistogramSet:
    """The histograms of one aggregate block."""

    name: str
    headers: list[str]  # of the group keys
    info: HistogramInfo
    value: str
    histograms: list[Histogram]
    total_count: int
    hidden: int = 0  # histograms cut by --top
    epoch: int | None = None

    def as_json(self) -> list[dict]:
        """One JSON object per histogram; a bucket's `high` is null for the last (no bound below 2^64),
        a run of empty buckets shown as a gap is one item with `empty_buckets`."""
        return [h.as_json(self.headers) for h in self.histograms]


def histograms(block: AggrBlock, keys: KeyFormat, *, by: str = "count", reverse: bool = False,
               top: int | None = None, epoch: int | None = None) -> HistogramSet:
    """`block`, whose info has a histogram, as one Histogram per value of its other keys."""
    info: AggregateInfo = block.info
    hist = info.histogram
    columns = columns_of(block)
    others = [i for i in range(len(columns)) if i != hist.bucket]
    groups: dict[tuple, list[AggrEntry]] = {}
    for e in block.entries:
        groups.setdefault(tuple(e.keys[i] for i in others), []).append(e)
    made = [_histogram(block.name, hist, info.value, group, entries,
                       [keys.text(v, columns[i].kind) for v, i in zip(group, others)])
            for group, entries in groups.items()]
    if by == "key":
        made.sort(key=lambda h: h.group_keys, reverse=reverse)
    else:
        made.sort(key=lambda h: h.count, reverse=not reverse)
    shown = made[:top] if top else made
    return HistogramSet(block.name, [columns[i].header for i in others], hist, info.value, shown,
                        block.total_count, hidden=len(made) - len(shown), epoch=epoch)


def _histogram(name: str, hist: HistogramInfo, value: str, group: tuple, entries: list[AggrEntry],
               shown: list[str]) -> Histogram:
    filled: dict[int, Bucket] = {}
    for e in entries:
        key = e.keys[hist.bucket]
        low, high = hist.bounds(key)
        have = filled.get(low)
        bucket = Bucket(low, high, e.count, e.min, e.max, e.avg * e.count if e.sum is None else e.sum)
        if have is not None:  # the same bucket twice (a malformed log): add them up
            bucket = Bucket(low, high, have.count + e.count, min(have.min, e.min), max(have.max, e.max),
                            have.total + bucket.total)
        filled[low] = bucket
    lines: list[Bucket | Gap] = []
    if filled:
        key, last = min(filled), max(filled)
        empty: list[Bucket] = []
        while key is not None and key <= last:
            bucket = filled.get(key)
            if bucket is None:
                empty.append(Bucket(*hist.bounds(key)))
            else:
                lines.extend(empty if len(empty) <= MAX_EMPTY_RUN else
                             [Gap(empty[0].low, empty[-1].high, len(empty))])
                empty = []
                lines.append(bucket)
            key = hist.following(key) if key < last else None
    buckets = [b for b in lines if isinstance(b, Bucket) and b.count]
    count = sum(b.count for b in buckets)
    result = Histogram(name, shown, group, hist, value, lines, count,
                       mean=sum(b.total for b in buckets) / count if count else None,
                       min=min((b.min for b in buckets), default=None),
                       max=max((b.max for b in buckets), default=None))
    for p in PERCENTILES:
        rank = max(1, math.ceil(p * count / 100))
        seen = 0
        for b in buckets:
            seen += b.count
            if seen >= rank:
                result.percentiles[p] = b
                break
    return result


def is_histogram(block: AggrBlock) -> bool:
    return block.info is not None and block.info.histogram is not None


def bound_text(value: int) -> str:
    """A bucket bound: decimal, 2^64 written as such."""
    return "2^64" if value >= TOP else str(value)


def range_text(low: int, high: int) -> str:
    return f"[{bound_text(low)}, {bound_text(high)})"


__all__ = ["Bucket", "Column", "Gap", "Histogram", "HistogramSet", "KeyFormat", "Row", "SORT_KEYS",
           "Table", "histograms", "is_histogram", "printable", "range_text", "sort_entries", "table"]
