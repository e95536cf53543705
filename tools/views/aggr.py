"""Sorted aggregates (`vprobe -a`, `vprobe-aggr`): each `logaggr` as an aligned table or as histograms.

A VP script without annotations::

    aggr: pf  (1 integer key, 1 string key)  epoch 2  total count 8
    key1                key2  count  avg  min  max  latest      %  bar
    0xffffffff81001370  bash      5    1    1    1       1  62.5%  ####################
    0x4005b3            init      3    2    1    3       3  37.5%  ############

Key columns come first (integers in hex, strings unquoted, a stack key as
its symbolized frames, one per line), then count, avg, min, max, latest, the
entry's share of the aggregate's total count and a bar scaled to the largest
count.  Rows are sorted by count, largest first (`--sort`, `--reverse`,
`--top N`); equal rows keep the order the log listed them in.

Compiled Emmett says more about its aggregates (`log.aggr_info`), and the
table explains itself: columns named by the keys' Emmett source, integers in
decimal unless they are addresses (hex, symbolized `sym+0xoff`) or system
call numbers (their names), and for an aggregate only ever counted just the
count, share and bar::

    aggr: syscalls  epoch 2  total count 768
    RAX      curprocname()  count      %  bar
    pread64  mysqld           159  20.7%  ####################

A histogram is drawn as one, per value of its other keys: the buckets in
order with their decimal ranges, counts and bars, empty buckets inside the
range included, and its count, mean, min, max and percentiles (the bucket
each falls in)::

    aggr: lat  histogram of usec (us), power-of-two buckets, by curprocname()  epoch 1  total count 10
    lat[mysqld]  count 10  mean 97 us  min 40 us  max 300 us  p50 in [64, 128) us  p90 in [128, 256) us  p99 in [256, 512) us
      [32, 64)      2 |@@@@@@@@@@@@@@@@                        |
      ...

The data behind these (`views.tables`) is what -f json writes.

Each block of the log is one epoch of its aggregate.  A live view (a terminal)
redraws every aggregate's latest table whenever the input pauses, like top;
otherwise each epoch's table is printed as it arrives, and ordinary log lines
pass through in order.
"""

from __future__ import annotations

import time

from ..log.json_lines import dumps, to_json
from ..log.parse import AggrBlock, Event
from .symbolize import Symbolizer
from .tables import (SORT_KEYS, Bucket, Gap, HistogramSet, KeyFormat, Table, histograms, is_histogram,  # noqa: F401
                     printable, range_text, sort_entries, table)

BAR_WIDTH = 20
HISTOGRAM_BAR_WIDTH = 40
RECENT_LINES = 8
CLEAR_SCREEN = "\x1b[H\x1b[2J"
REDRAW_INTERVAL_S = 0.2


def text_width(text: str) -> int:
    """Columns `text` (log bytes as Latin-1) takes on a UTF-8 terminal."""
    return len(text.encode("latin-1", "replace").decode("utf-8", "replace"))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _bar(count: int, biggest: int, width: int, char: str = "#") -> str:
    return char * max(1 if count else 0, round(width * count / (biggest or 1)))


def _title(name: str, shape: str, epoch: int | None, total: int) -> str:
    title = f"aggr: {name}  {shape}" if shape else f"aggr: {name}"
    if epoch is not None:
        title += f"  epoch {epoch}"
    return title + f"  total count {total}"


def _aligned(table: list[list[list[str]]], right: list[bool]) -> list[str]:
    """Rows of cells (each a list of lines) as aligned text lines."""
    widths = [max(text_width(line) for row in table for line in row[c]) for c in range(len(right))]
    lines = []
    for row in table:
        for n in range(max(len(cell) for cell in row)):
            parts = []
            for c, cell in enumerate(row):
                text = cell[n] if n < len(cell) else ""
                pad = " " * (widths[c] - text_width(text))
                parts.append(pad + text if right[c] else text + pad)
            lines.append("  ".join(parts).rstrip())
    return lines


def format_table(t: Table) -> str:
    """A Table as text (see the module's description)."""
    if t.annotated:
        shape = f"of {t.value}" if t.value and not t.counted else ""
    else:
        shape = f"({_plural(t.int_keys, 'integer key')}, {_plural(t.str_keys, 'string key')})"
    title = _title(t.name, shape, t.epoch, t.total_count)
    if not t.rows:
        return f"{title}\n(no entries)\n"
    stats = ["count", "%", "bar"] if t.counted else ["count", "avg", "min", "max", "latest", "%", "bar"]
    headers = [c.header for c in t.columns] + stats
    right = [c.right for c in t.columns] + [True] * (len(stats) - 1) + [False]
    biggest = max(r.entry.count for r in t.rows)
    cells: list[list[list[str]]] = [[[h] for h in headers]]
    for r in t.rows:
        e = r.entry
        share = f"{100.0 * r.share:.1f}%" if r.share is not None else "-"
        values = [e.count] if t.counted else [e.count, e.avg, e.min, e.max, e.latest]
        cells.append(r.keys + [[str(v)] for v in values] + [[share], [_bar(e.count, biggest, BAR_WIDTH)]])
    lines = [title] + _aligned(cells, right)
    if t.hidden:
        lines.append(f"({t.hidden} more {'entry' if t.hidden == 1 else 'entries'} not shown, count {t.hidden_count})")
    return "\n".join(lines) + "\n"


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def format_histograms(hs: HistogramSet) -> str:
    """A HistogramSet as text (see the module's description)."""
    info = hs.info
    what = f"histogram of {hs.value}" if hs.value else "histogram"
    shape = what + (f" ({info.unit})" if info.unit and info.unit != hs.value else "") + f", {info.describe()}"
    if hs.headers:
        shape += f", by {', '.join(hs.headers)}"
    lines = [_title(hs.name, shape, hs.epoch, hs.total_count)]
    if not hs.histograms:
        lines.append("(no entries)")
    unit = _unit(info.unit)
    for h in hs.histograms:
        name = f"{hs.name}[{', '.join(printable(g) for g in h.group)}]" if h.group else hs.name
        summary = [name, f"count {h.count}"]
        if h.count:
            summary += [f"mean {h.mean // 1:.0f}{unit}", f"min {h.min}{unit}", f"max {h.max}{unit}"]
            summary += [f"p{p} in {range_text(b.low, b.high)}{unit}" for p, b in h.percentiles.items()]
        lines.append("  ".join(summary))
        biggest = max((b.count for b in h.buckets), default=0)
        rows = []
        for line in h.lines:
            if isinstance(line, Gap):
                rows.append((f"{range_text(line.low, line.high)}", "0", f"({line.buckets} empty buckets)"))
            else:
                rows.append((range_text(line.low, line.high), str(line.count),
                             f"|{_bar(line.count, biggest, HISTOGRAM_BAR_WIDTH, '@'):<{HISTOGRAM_BAR_WIDTH}}|"))
        if rows:
            w0 = max(len(r[0]) for r in rows)
            w1 = max(len(r[1]) for r in rows)
            lines += [f"  {r[0]:<{w0}}  {r[1]:>{w1}} {r[2]}".rstrip() for r in rows]
    if hs.hidden:
        lines.append(f"({hs.hidden} more histogram{'' if hs.hidden == 1 else 's'} not shown)")
    return "\n".join(lines) + "\n"


def render(block: AggrBlock, keys: KeyFormat, *, by: str = "count", reverse: bool = False,
           top: int | None = None, epoch: int | None = None) -> str:
    """`block` as text: its histograms if it is a histogram, else its table."""
    if is_histogram(block):
        return format_histograms(histograms(block, keys, by=by, reverse=reverse, top=top, epoch=epoch))
    return format_table(table(block, keys, by=by, reverse=reverse, top=top, epoch=epoch))


def render_table(block: AggrBlock, *, symbolizer: Symbolizer | None = None, by: str = "count",
                 reverse: bool = False, top: int | None = None, epoch: int | None = None) -> str:
    """`block` as text, its keys shown with `symbolizer` (and no system call names)."""
    return render(block, KeyFormat(symbolizer), by=by, reverse=reverse, top=top, epoch=epoch)


def render_json(block: AggrBlock, keys: KeyFormat, *, by: str = "count", reverse: bool = False,
                top: int | None = None) -> list[dict]:
    """`block` as JSON objects: today's aggr object without info; with it, the table's (names and
    shown keys added) or one histogram object per histogram."""
    if block.info is None:
        rows = sort_entries(block.entries, by, reverse)
        return [to_json(block, rows[:top] if top else rows)]
    if is_histogram(block):  # (one without a sample in this epoch: its aggr object, no entries)
        return histograms(block, keys, by=by, reverse=reverse, top=top).as_json() or [to_json(block)]
    return [table(block, keys, by=by, reverse=reverse, top=top).as_json()]


class AggrView:
    """The -a view (see the module's description)."""

    def __init__(self, out, *, symbolizer: Symbolizer | None = None, keys: KeyFormat | None = None,
                 by: str = "count", reverse: bool = False, top: int | None = None, fmt: str = "text",
                 live: bool = False, passthrough: bool = True, min_interval: float = REDRAW_INTERVAL_S):
        self.out = out
        self.keys = keys or KeyFormat(symbolizer)
        self.by, self.reverse, self.top = by, reverse, top
        self.json = fmt == "json"
        self.live = live and not self.json
        self.passthrough = passthrough
        self.latest: dict[str, AggrBlock] = {}
        self.epochs: dict[str, int] = {}
        self.recent: list[str] = []
        self.dirty = False  # something to redraw: a new epoch (now), or log lines (throttled)
        self.new_epoch = False
        self.min_interval = min_interval
        self.drawn_at = float("-inf")
        self.after_table = False  # a blank line separates consecutive tables

    def table(self, block: AggrBlock) -> str:
        return render(block, self.keys, by=self.by, reverse=self.reverse, top=self.top,
                      epoch=self.epochs.get(block.name))

    def event(self, event: Event) -> None:
        if isinstance(event, AggrBlock):
            self.epochs[event.name] = self.epochs.get(event.name, 0) + 1
            self.latest[event.name] = event
            if self.live:
                self.dirty = self.new_epoch = True
            elif self.json:
                for obj in render_json(event, self.keys, by=self.by, reverse=self.reverse, top=self.top):
                    self.out.write(dumps(obj))
            else:
                self.out.write(("\n" if self.after_table else "") + self.table(event))
                self.after_table = True
            return
        if not self.passthrough:
            return
        if self.live:
            self.recent = (self.recent + [event.text.rstrip("\n")])[-RECENT_LINES:]
            self.dirty = True
        elif self.json:
            self.out.write(dumps(to_json(event)))
        else:
            self.out.write(event.text)
            self.after_table = False

    def screen(self) -> str:
        parts = [self.table(block) for block in self.latest.values()] or ["(no aggregate logged yet)\n"]
        text = "\n".join(parts)
        if self.recent:
            text += "\n-- log --\n" + "".join(printable(line) + "\n" for line in self.recent)
        return text

    def idle(self, final: bool = False) -> None:
        """Redraw a live view: at once for a new epoch, at most every `min_interval` for log lines."""
        if not (self.live and self.dirty):
            return
        now = time.monotonic()
        if not (final or self.new_epoch or now - self.drawn_at >= self.min_interval):
            return
        self.out.write(CLEAR_SCREEN + self.screen())
        self.dirty = self.new_epoch = False
        self.drawn_at = now

    def finish(self) -> None:
        self.idle(final=True)
