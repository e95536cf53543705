"""Run-time state of a loaded script: string cells, aggregates, bags, the log.

Aggregates are plain dicts (key -> [count, sum, min, max, latest]) so that the
translated code can update them inline; this module owns their log format.
A script loaded with an aggregate clock (for tools that merge the aggregates
of several VMs) keeps a sixth field, the clock's value at the entry's last
update, and keeps what `clearaggr` clears in the table's run totals.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

from .limits import BAG_PAIR_BYTES


class Cell:
    """A string variable: shared by reference when passed to a function that writes it."""

    __slots__ = ("v",)

    def __init__(self, v: str = ""):
        self.v = v


class AggregateTable:
    """One aggregate's entries; keys are a scalar for one key, a tuple otherwise."""

    __slots__ = ("name", "int_keys", "str_keys", "entries", "cleared", "logged")

    def __init__(self, name: str, int_keys: int, str_keys: int, *, keep_run_totals: bool = False):
        self.name = name
        self.int_keys = int_keys
        self.str_keys = str_keys
        self.entries: dict = {}
        # What clearaggr took away, folded together (None: not kept).
        self.cleared: dict | None = {} if keep_run_totals else None
        self.logged = False  # whether `logaggr` has logged it

    def clear(self) -> None:
        """`clearaggr`: empty the table (keeping its entries in the run totals, if they are kept)."""
        if self.cleared is not None:
            fold_entries(self.cleared, self.entries)
        self.entries.clear()

    def run_totals(self) -> dict:
        """Every update of the run, cleared or not: key -> [count, sum, min, max, latest, stamp].

        Only for a table that keeps its run totals (a script loaded with an aggregate clock).
        """
        totals = {key: list(entry) for key, entry in self.cleared.items()}
        fold_entries(totals, self.entries)
        return totals

    def format(self) -> str:
        """The `logaggr` block: header, then one line per entry in first-insertion order."""
        ni, ns = self.int_keys, self.str_keys
        lines = [f"aggr: {self.name} ({ni} integer key{'' if ni == 1 else 's'}) "
                 f"({ns} string key{'' if ns == 1 else 's'})"]
        single = ni + ns == 1
        for key, entry in self.entries.items():
            count, total, low, high, latest = entry[:5]
            parts = (key,) if single else key
            shown = [f"0x{k:x}" for k in parts[:ni]] + [f'"{k}"' for k in parts[ni:]]
            lines.append(f"{self.name}[{', '.join(shown)}] == avg {total // count} count {count} "
                         f"min {low} max {high} latest {latest}")
        return "\n".join(lines) + "\n"


def fold_entries(into: dict, later: dict) -> None:
    """Add stamped entries `later` (updated after those of `into`, on the same VM) to `into`."""
    for key, entry in later.items():
        have = into.get(key)
        if have is None:
            into[key] = list(entry)
            continue
        have[0] += entry[0]
        have[1] += entry[1]
        have[2] = min(have[2], entry[2])
        have[3] = max(have[3], entry[3])
        have[4] = entry[4]
        have[5] = entry[5]


def aggregate_add(entries: dict, key, value: int, clock: Callable[[], int] | None = None) -> int:
    """Add `value` under `key` (used where an `aggr` form's value is needed; statements inline
    this); `clock` is the script's aggregate clock, if it has one."""
    entry = entries.get(key)
    if entry is None:
        entries[key] = [1, value, value, value, value] if clock is None else [1, value, value, value, value, clock()]
    else:
        entry[0] += 1
        entry[1] += value
        if value < entry[2]:
            entry[2] = value
        elif value > entry[3]:
            entry[3] = value
        entry[4] = value
        if clock is not None:
            entry[5] = clock()
    return 1


class BagStore:
    """All bags of a VM share `capacity_bytes` of storage; each bag has its own size."""

    def __init__(self, capacity_bytes: int):
        self.free_pairs = capacity_bytes // BAG_PAIR_BYTES


class Bag:
    """Integer key/value pairs; duplicate keys allowed, removed oldest first."""

    __slots__ = ("size", "count", "pairs", "store")

    def __init__(self, size: int, store: BagStore):
        self.size = size
        self.count = 0
        self.pairs: dict[int, deque] = {}
        self.store = store

    def insert(self, key: int, value: int) -> int:
        if self.count >= self.size or self.store.free_pairs <= 0:
            return 0
        self.pairs.setdefault(key, deque()).append(value)
        self.count += 1
        self.store.free_pairs -= 1
        return 1

    def remove(self, key: int) -> int:
        values = self.pairs.get(key)
        if not values:
            return 0
        value = values.popleft()
        if not values:
            del self.pairs[key]
        self.count -= 1
        self.store.free_pairs += 1
        return value


class LogWriter:
    """Line-buffered log output: whole lines go to the sink as soon as they end."""

    def __init__(self, sink: Callable[[str], None]):
        self.sink = sink
        self.partial = ""

    def write(self, text: str) -> None:
        if "\n" not in text:
            self.partial += text
            return
        head, _, tail = text.rpartition("\n")
        self.sink(self.partial + head + "\n")
        self.partial = tail

    def end_line(self) -> None:
        """End a partial line, if there is one."""
        if self.partial:
            self.write("\n")

    def line(self, text: str) -> None:
        """Write `text` as a line of its own, ending any partial line first."""
        if self.partial:
            self.write("\n")
        self.write(text + "\n")

    def flush(self) -> None:
        if self.partial:
            self.sink(self.partial)
            self.partial = ""
