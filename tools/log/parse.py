"""The log a script writes, read back: plain text, aggregate blocks and fault lines.

Every pretty-printer reads the log through this module (or through the JSON
equivalent in `json_lines`), so the formats below are parsed in one place:

* an aggregate block, as `logaggr` writes it::

      aggr: pf (1 integer key) (1 string key)
      pf[0xfffff9800bf8e000, "bash"] == avg 1 count 1 min 1 max 1 latest 1

  integer keys first (hex), then string keys (double-quoted, unescaped);
  a keyless aggregate's entry is `name[] == ...`;
* a run-time fault: `vprobe error: probe NAME aborted at FILE:LINE:COL: MESSAGE`
  (the ` at FILE:LINE:COL` part may be missing);
* anything else is text, passed on line by line.

The log is bytes held as Latin-1 text (one character per byte).  Every event
keeps the exact text it came from (`text`), so a printer can always pass it on
unchanged.

`LogParser` is incremental: `feed` text as it arrives; an aggregate block is
complete when a line that is not one of its entries arrives, at `boundary()`
(the writer finished a write: `logaggr` writes a block in one piece) or at
`finish()` (end of the log, which also releases a last partial line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .aggr_info import AggregateInfo

_HEADER = re.compile(r"aggr: (\S+) \((\d+) integer keys?\) \((\d+) string keys?\)\Z")
_ENTRY_TAIL = re.compile(r"\] == avg (\d+) count (\d+) min (\d+) max (\d+) latest (\d+)\Z")
_INT_KEY = re.compile(r"0x([0-9a-fA-F]+)")
_FAULT = re.compile(r"vprobe error: probe (\S+) aborted(?: at (.+?):(\d+):(\d+))?: (.*)\Z", re.S)


@dataclass
class LogText:
    """A line of ordinary log text, with its newline (a last partial line has none)."""

    text: str


@dataclass
class Fault:
    """A probe firing aborted by a run-time fault (one log line)."""

    text: str
    probe: str
    file: str | None
    line: int | None
    col: int | None
    message: str


@dataclass(frozen=True)
class AggrEntry:
    keys: tuple  # the integer keys, then the string keys
    avg: int
    count: int
    min: int
    max: int
    latest: int
    # The exact sum of the values, where it is known (a fleet's merged aggregates; a log holds
    # only the truncated average).
    sum: int | None = None


@dataclass
class AggrBlock:
    """One `logaggr`: the aggregate's entries in the order they were logged."""

    name: str
    int_keys: int
    str_keys: int
    entries: list[AggrEntry] = field(default_factory=list)
    text: str = ""
    # What the script says about the aggregate (compiled Emmett's annotations; None for plain VP):
    # set by the pipeline from the script's catalog, or read from JSON input.
    info: AggregateInfo | None = None

    @property
    def total_count(self) -> int:
        return sum(e.count for e in self.entries)


Event = LogText | Fault | AggrBlock


def parse_fault(line: str) -> Fault | None:
    """The fault a log line reports, or None if it is not a fault line."""
    m = _FAULT.match(line.rstrip("\n"))
    if m is None:
        return None
    probe, file, ln, col, message = m.groups()
    return Fault(line, probe, file, int(ln) if ln else None, int(col) if col else None, message)


def parse_header(line: str) -> AggrBlock | None:
    m = _HEADER.match(line.rstrip("\n"))
    if m is None:
        return None
    return AggrBlock(m.group(1), int(m.group(2)), int(m.group(3)), text=line)


def parse_entry(block: AggrBlock, line: str) -> AggrEntry | None:
    """The entry `line` holds if it is one of `block`'s entry lines, else None."""
    body = line.rstrip("\n")
    prefix = block.name + "["
    if not body.startswith(prefix):
        return None
    tail = _ENTRY_TAIL.search(body)
    if tail is None:
        return None
    keys = _parse_keys(body[len(prefix):tail.start()], block.int_keys, block.str_keys)
    if keys is None:
        return None
    avg, count, low, high, latest = (int(g) for g in tail.groups())
    return AggrEntry(keys, avg, count, low, high, latest)


def _parse_keys(text: str, ni: int, ns: int) -> tuple | None:
    keys: list = []
    pos = 0
    for i in range(ni):
        m = _INT_KEY.match(text, pos)
        if m is None:
            return None
        keys.append(int(m.group(1), 16))
        pos = m.end()
        if i < ni - 1 or ns:
            if not text.startswith(", ", pos):
                return None
            pos += 2
    rest = text[pos:]
    if ns == 0:
        return tuple(keys) if rest == "" else None
    if len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
        return None
    parts = rest[1:-1].split('", "')
    if len(parts) < ns:
        return None
    # Strings are logged unescaped: a string key holding `", "` is ambiguous.
    # Read it as part of the last key, the only choice that keeps every key.
    keys.extend(parts[:ns - 1])
    keys.append('", "'.join(parts[ns - 1:]))
    return tuple(keys)


class LogParser:
    """Log text in, events out (see the module's description)."""

    def __init__(self):
        self._pending = ""  # an incomplete last line
        self._block: AggrBlock | None = None

    def feed(self, text: str) -> list[Event]:
        events: list[Event] = []
        data = self._pending + text
        lines = data.split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._line(line + "\n", events)
        return events

    def boundary(self) -> list[Event]:
        """The writer finished a write: an open aggregate block is complete."""
        events: list[Event] = []
        self._close(events)
        return events

    def finish(self) -> list[Event]:
        """The log ended: close any block and release a last partial line."""
        events = self.boundary()
        if self._pending:
            self._line(self._pending, events)
            self._pending = ""
            self._close(events)
        return events

    def _close(self, events: list[Event]) -> None:
        if self._block is not None:
            events.append(self._block)
            self._block = None

    def _line(self, line: str, events: list[Event]) -> None:
        block = self._block
        if block is not None:
            entry = parse_entry(block, line)
            if entry is not None:
                block.entries.append(entry)
                block.text += line
                return
            self._close(events)
        header = parse_header(line) if line.endswith("\n") else None
        if header is not None:
            self._block = header
            return
        fault = parse_fault(line)
        events.append(fault if fault is not None else LogText(line))


def parse_log(text: str) -> list[Event]:
    """Every event of a whole log."""
    parser = LogParser()
    return parser.feed(text) + parser.finish()
