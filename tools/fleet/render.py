"""A fleet's result as the log's events and as JSON lines, every object naming its VM.

As a log (`log_text`): printed lines are prefixed with their VM's name
(`web01: tick`), fault lines too; the merged aggregates follow as the blocks
`logaggr` writes (the average from the exact sum and count), then, with the
per-VM breakdown, each VM's own as `NAME@VM` — so every view of a log (`-a`
tables, `-s` stacks, `vprobe-aggr` on a saved copy) shows them as it shows
one VM's.

In JSON (`-f json`), each line is `{"type": "log"|"error", "vm": NAME,
"guest_ns": N, ...}` (the single-VM fields, plus its VM and the guest time
it was written at); each merged aggregate is `{"type": "aggr", "vm": null,
...}` whose entries also carry the exact `sum` and `latest_vm`; with the
per-VM breakdown, each VM's own tables follow with `"vm": NAME`; last comes
`{"type": "fleet", ...}`: how many VMs ran, which failed and why, whether the
result is complete, the lines left out by the bound, the workers lost.  Given
the script's catalog (`log.aggr_info`), an aggregate object carries what the
script says about it (columns, counted, value, hist), as `vprobe -f json`
writes it; `vprobe --fleet -f json` adds each histogram's objects after its
aggregate's (`commands.vprobe_fleet`).
"""

from __future__ import annotations

from typing import Iterator

from vp_runtime.state import AggregateTable

from ..log.aggr_info import AggregateCatalog
from ..log.json_lines import dumps, to_json
from ..log.parse import AggrBlock, AggrEntry, Event, LogText, parse_fault
from .result import FleetResult, MergedAggregate


def line_event(text: str) -> Event:
    fault = parse_fault(text)
    return fault if fault is not None else LogText(text)


def log_block(table: MergedAggregate, vm: str | None = None) -> str:
    """A merged aggregate as the block `logaggr` writes (named `NAME@VM` for one VM's own table)."""
    single = table.int_keys + table.str_keys == 1
    shown = AggregateTable(table.name if vm is None else f"{table.name}@{vm}", table.int_keys, table.str_keys)
    for e in table.entries:
        shown.entries[e.keys[0] if single else e.keys] = [e.count, e.sum, e.min, e.max, e.latest]
    return shown.format()


def log_text(result: FleetResult) -> Iterator[str]:
    """The result as a log: the prefixed lines, the merged tables, then each VM's (when kept)."""
    for line in result.lines:
        yield f"{result.vm_name(line.order)}: {line.text}"
    for table in result.aggregates:
        yield log_block(table)
    for name, tables in (result.by_vm or {}).items():
        for table in tables:
            yield log_block(table, name)


def block(table: MergedAggregate, catalog: AggregateCatalog | None = None) -> AggrBlock:
    """A merged aggregate as the block `logaggr` would have written for it, with what `catalog`
    says about it."""
    entries = [AggrEntry(e.keys, e.avg, e.count, e.min, e.max, e.latest, e.sum) for e in table.entries]
    shown = AggrBlock(table.name, table.int_keys, table.str_keys, entries)
    if catalog is not None:
        shown.info = catalog.info(table.name, table.int_keys, table.str_keys)
    return shown


def aggregate_json(table: MergedAggregate, vm: str | None, shown: AggrBlock | None = None) -> dict:
    obj = to_json(block(table) if shown is None else shown)
    for shown, entry in zip(obj["entries"], table.entries):
        shown["sum"] = entry.sum
        shown["latest_vm"] = entry.latest_vm
    return {"type": "aggr", "vm": vm, **{k: v for k, v in obj.items() if k != "type"}}


def summary_json(result: FleetResult) -> dict:
    return {
        "type": "fleet", "vms": len(result.vms), "ran": sum(vm.ok for vm in result.vms),
        "duration": result.duration, "complete": not result.incomplete,
        "failed": [{"vm": vm.name, "error": vm.error} for vm in result.failed],
        "lines": sum(vm.lines for vm in result.vms), "dropped_lines": result.dropped_lines,
        "faults": sum(vm.faults for vm in result.vms),
        "lost_workers": [{"worker": w.address, "running": list(w.running)} for w in result.lost_workers],
    }


def json_objects(result: FleetResult, catalog: AggregateCatalog | None = None) -> Iterator[tuple[dict, AggrBlock | None]]:
    """The whole result as JSON objects, each aggregate's with its block (None for the others)."""
    for line in result.lines:
        obj = to_json(line_event(line.text))
        yield {"type": obj.pop("type"), "vm": result.vm_name(line.order), "guest_ns": line.stamp, **obj}, None
    tables = [(table, None) for table in result.aggregates]
    tables += [(table, name) for name, own in (result.by_vm or {}).items() for table in own]
    for table, vm in tables:
        shown = block(table, catalog)
        yield aggregate_json(table, vm, shown), shown
    yield summary_json(result), None


def json_lines(result: FleetResult) -> Iterator[str]:
    """The whole result, one JSON object per line."""
    for obj, _ in json_objects(result):
        yield dumps(obj)
