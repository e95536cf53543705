"""Sorted aggregates (`vprobe -a`, `vprobe-aggr`): each `logaggr` as an aligned table.

    aggr: pf  (1 integer key, 1 string key)  epoch 2  total count 8
    key1                key2  count  avg  min  max  latest      %  bar
    0xffffffff81001370  bash      5    1    1    1       1  62.5%  ####################
    0x4005b3            init      3    2    1    3       3  37.5%  ############

Key columns come first (integers in hex, strings unquoted, a stack key as
its symbolized frames, one per line), then count, avg, min, max, latest, the
entry's share of the aggregate's total count and a bar scaled to the largest
count.  Rows are sorted by count, largest first (`--sort`, `--reverse`,
`--top N`); equal rows keep the order the log listed them in.

Each block of the log is one epoch of its aggregate.  A live view (a terminal)
redraws every aggregate's latest table whenever the input pauses, like top;
otherwise each epoch's table is printed as it arrives, and ordinary log lines
pass through in order.
"""

from __future__ import annotations

import time

from ..log.json_lines import dumps, to_json
from ..log.parse import AggrBlock, AggrEntry, Event
from .symbolize import Symbolizer, is_stack, parse_stack

SORT_KEYS = ("count", "avg", "min", "max", "latest", "key")
BAR_WIDTH = 20
RECENT_LINES = 8
CLEAR_SCREEN = "\x1b[H\x1b[2J"
REDRAW_INTERVAL_S = 0.2


def _key_order(entry: AggrEntry) -> tuple:
    return entry.keys


def sort_entries(entries: list[AggrEntry], by: str = "count", reverse: bool = False) -> list[AggrEntry]:
    """Rows in display order: statistics largest first, keys smallest first; ties keep log order."""
    if by == "key":
        return sorted(entries, key=_key_order, reverse=reverse)
    return sorted(entries, key=lambda e: getattr(e, by), reverse=not reverse)


def text_width(text: str) -> int:
    """Columns `text` (log bytes as Latin-1) takes on a UTF-8 terminal."""
    return len(text.encode("latin-1", "replace").decode("utf-8", "replace"))


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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_table(block: AggrBlock, *, symbolizer: Symbolizer | None = None, by: str = "count",
                 reverse: bool = False, top: int | None = None, epoch: int | None = None) -> str:
    """`block` as an aligned table (see the module's description)."""
    total = block.total_count
    nkeys = block.int_keys + block.str_keys
    title = (f"aggr: {block.name}  ({_plural(block.int_keys, 'integer key')}, "
             f"{_plural(block.str_keys, 'string key')})")
    if epoch is not None:
        title += f"  epoch {epoch}"
    title += f"  total count {total}"
    if not block.entries:
        return f"{title}\n(no entries)\n"
    rows = sort_entries(block.entries, by, reverse)
    shown = rows[:top] if top else rows
    biggest = max(e.count for e in block.entries) or 1
    key_names = ["key"] if nkeys == 1 else [f"key{i + 1}" for i in range(nkeys)]
    headers = key_names + ["count", "avg", "min", "max", "latest", "%", "bar"]
    right = [i < block.int_keys for i in range(nkeys)] + [True] * 6 + [False]
    table: list[list[list[str]]] = [[[h] for h in headers]]
    for e in shown:
        cells: list[list[str]] = []
        for i, key in enumerate(e.keys):
            if i < block.int_keys:
                cells.append([f"0x{key:x}"])
            elif symbolizer is not None and is_stack(key):
                cells.append([symbolizer.frame(a) for a in parse_stack(key)])
            else:
                cells.append([printable(key)])
        share = f"{100.0 * e.count / total:.1f}%" if total else "-"
        bar = "#" * max(1 if e.count else 0, round(BAR_WIDTH * e.count / biggest))
        cells += [[str(v)] for v in (e.count, e.avg, e.min, e.max, e.latest)] + [[share], [bar]]
        table.append(cells)
    widths = [max(text_width(line) for row in table for line in row[c]) for c in range(len(headers))]
    lines = [title]
    for row in table:
        height = max(len(cell) for cell in row)
        for n in range(height):
            parts = []
            for c, cell in enumerate(row):
                text = cell[n] if n < len(cell) else ""
                pad = " " * (widths[c] - text_width(text))
                parts.append(pad + text if right[c] else text + pad)
            lines.append("  ".join(parts).rstrip())
    if len(shown) < len(rows):
        rest = rows[len(shown):]
        lines.append(f"({len(rest)} more {'entry' if len(rest) == 1 else 'entries'} not shown, "
                     f"count {sum(e.count for e in rest)})")
    return "\n".join(lines) + "\n"


class AggrView:
    """The -a view (see the module's description)."""

    def __init__(self, out, *, symbolizer: Symbolizer | None = None, by: str = "count", reverse: bool = False,
                 top: int | None = None, fmt: str = "text", live: bool = False, passthrough: bool = True,
                 min_interval: float = REDRAW_INTERVAL_S):
        self.out = out
        self.symbolizer = symbolizer
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
        return render_table(block, symbolizer=self.symbolizer, by=self.by, reverse=self.reverse, top=self.top,
                            epoch=self.epochs.get(block.name))

    def event(self, event: Event) -> None:
        if isinstance(event, AggrBlock):
            self.epochs[event.name] = self.epochs.get(event.name, 0) + 1
            self.latest[event.name] = event
            if self.live:
                self.dirty = self.new_epoch = True
            elif self.json:
                rows = sort_entries(event.entries, self.by, self.reverse)
                self.out.write(dumps(to_json(event, rows[:self.top] if self.top else rows)))
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
