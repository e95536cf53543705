"""Run-time state of a loaded script: string cells, aggregates, bags, the log.

Aggregates are plain dicts (key -> [count, sum, min, max, latest]) so that the
translated code can update them inline; this module owns their log format.
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

    __slots__ = ("name", "int_keys", "str_keys", "entries")

    def __init__(self, name: str, int_keys: int, str_keys: int):
        self.name = name
        self.int_keys = int_keys
        self.str_keys = str_keys
        self.entries: dict = {}

    def format(self) -> str:
        """The `logaggr` block: header, then one line per entry in first-insertion order."""
        ni, ns = self.int_keys, self.str_keys
        lines = [f"aggr: {self.name} ({ni} integer key{'' if ni == 1 else 's'}) "
                 f"({ns} string key{'' if ns == 1 else 's'})"]
        single = ni + ns == 1
        for key, (count, total, low, high, latest) in self.entries.items():
            parts = (key,) if single else key
            shown = [f"0x{k:x}" for k in parts[:ni]] + [f'"{k}"' for k in parts[ni:]]
            lines.append(f"{self.name}[{', '.join(shown)}] == avg {total // count} count {count} "
                         f"min {low} max {high} latest {latest}")
        return "\n".join(lines) + "\n"


def aggregate_add(entries: dict, key, value: int) -> int:
    """Add `value` under `key` (used where an `aggr` form's value is needed; statements inline this)."""
    entry = entries.get(key)
    if entry is None:
        entries[key] = [1, value, value, value, value]
    else:
        entry[0] += 1
        entry[1] += value
        if value < entry[2]:
            entry[2] = value
        elif value > entry[3]:
            entry[3] = value
        entry[4] = value
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
