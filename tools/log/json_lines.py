"""The log as JSON lines: one object per event, for programs rather than people.

    {"type": "log", "data": "hello!\\n"}
    {"type": "aggr", "name": "pf", "int_keys": 1, "str_keys": 1,
     "entries": [{"keys": [4096, "bash"], "avg": 1, "count": 3, "min": 1, "max": 1, "latest": 1}]}
    {"type": "error", "probe": "VMM1Hz", "file": "t.vp", "line": 1, "col": 24,
     "message": "...", "data": "vprobe error: probe VMM1Hz aborted at t.vp:1:24: ...\\n"}

An aggregate the script's annotations describe (compiled Emmett) also
carries what they say — `"columns": [{"header": "RAX", "kind": "syscall"}, ...]`,
`"counted"`, and `"value"` and `"hist"` when known (`log.aggr_info`) — so a
printer reading these lines back shows it as `vprobe -a` would.  The -a
view in JSON writes tables with each entry's keys as shown and its share
(`views.tables.Table.as_json`), and histograms as
`{"type": "histogram", ...}` objects (`views.tables.Histogram.as_json`).

Log text is bytes held as Latin-1: every string in these objects holds one
character (U+0000..U+00FF) per byte of the log, so encoding it with Latin-1
gives the log's bytes back exactly.  The output itself is ASCII (other
characters are `\\u` escapes).  Integer keys and values are JSON integers
(unsigned 64-bit).  The stack printer adds
`{"type": "stack", "count": N, "stack": "GUEST_0x..", "frames": [...]}`.

`vprobe -f json` writes these (`views.json_view`, and the -a and -s views in
JSON); the printers of saved logs read them back as the log's events.
"""

from __future__ import annotations

import json

from .aggr_info import AggregateInfo
from .parse import AggrBlock, AggrEntry, Event, Fault, LogText, parse_fault

TYPES = ("log", "aggr", "error")


def entry_json(entry: AggrEntry) -> dict:
    return {"keys": list(entry.keys), "avg": entry.avg, "count": entry.count,
            "min": entry.min, "max": entry.max, "latest": entry.latest}


def to_json(event: Event, entries: list[AggrEntry] | None = None) -> dict:
    """The JSON object for `event`; `entries` replaces an aggregate's own (sorted, cut)."""
    if isinstance(event, AggrBlock):
        shown = event.entries if entries is None else entries
        obj = {"type": "aggr", "name": event.name, "int_keys": event.int_keys, "str_keys": event.str_keys}
        if event.info is not None:
            record = event.info.to_record()
            obj["columns"] = record.pop("keys")
            obj.update(record)
        obj["entries"] = [entry_json(e) for e in shown]
        return obj
    if isinstance(event, Fault):
        return {"type": "error", "probe": event.probe, "file": event.file, "line": event.line,
                "col": event.col, "message": event.message, "data": event.text}
    return {"type": "log", "data": event.text}


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=True) + "\n"


def from_json(obj: dict) -> Event | None:
    """The event a JSON object stands for (None for objects of other types)."""
    kind = obj.get("type")
    if kind == "log":
        return LogText(str(obj.get("data", "")))
    if kind == "error":
        text = obj.get("data")
        if isinstance(text, str):
            fault = parse_fault(text)
            if fault is not None:
                return fault
        where = f" at {obj.get('file')}:{obj.get('line')}:{obj.get('col')}" if obj.get("file") else ""
        text = f"vprobe error: probe {obj.get('probe')} aborted{where}: {obj.get('message')}\n"
        return Fault(text, str(obj.get("probe")), obj.get("file"), obj.get("line"), obj.get("col"),
                     str(obj.get("message")))
    if kind == "aggr":
        name = obj["name"]
        if not isinstance(name, str):
            raise ValueError("an aggregate's name must be a string")
        block = AggrBlock(name, int(obj.get("int_keys", 0)), int(obj.get("str_keys", 0)))
        if "columns" in obj:
            record = {"keys": obj["columns"], **{k: obj[k] for k in ("counted", "value", "hist") if k in obj}}
            block.info = AggregateInfo.of(record, block.int_keys, block.str_keys)
        counted = obj.get("counted") is True  # every value 1: the -a view leaves the statistics out
        for e in obj.get("entries", ()):
            count = int(e["count"])
            stats = (1, 1, 1, 1) if counted and "avg" not in e else (e["avg"], e["min"], e["max"], e["latest"])
            avg, low, high, latest = (int(v) for v in stats)
            block.entries.append(AggrEntry(tuple(e.get("keys", ())), avg, count, low, high, latest))
        return block
    return None


def parse_json_line(line: str) -> Event | None:
    """The event of one JSON line; None for blank lines and objects of other types.

    Raises ValueError for a line that is not such an object.
    """
    if not line.strip():
        return None
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    try:
        return from_json(obj)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"malformed {obj.get('type')} object: {e}") from None


def looks_like_json_log(first_line: str) -> bool:
    """Whether a log's first line is one of these objects (JSON input, read as such)."""
    try:
        obj = json.loads(first_line)
    except ValueError:
        return False
    return isinstance(obj, dict) and obj.get("type") in TYPES

