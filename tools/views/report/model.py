"""The report's sections, as plain data for the templates: the run, the tables, the flame graphs, the log.

* The run (`RunSummary`): what ran where, for how long, each probe with how
  often it fired (`scripts.sources.probe_summary`; a saved log does not say),
  the faults by kind, and for a fleet its summary (`fleet.render.summary_json`).
* Aggregates: every epoch kept of every aggregate, the last first, as the
  `-a` view's data model has it (`views.tables`): a table with its columns'
  headers, its keys as shown (decimal, hex, `sym+0xoff`, system call names, a
  stack's frames) and its statistics (count and share only for an aggregate
  only counted), or, for a histogram, a bar chart per histogram with its
  count, mean and percentiles marked; a fleet's per-VM tables (`NAME@VM`)
  grouped by VM.  A table shows its `MAX_TABLE_ROWS` largest counts.
* Stacks: one flame graph per set of stacks (each aggregate with stack keys,
  and the stacks in log lines), a tree built from the folded stacks that
  `-s --folded` prints (`views.stacks.folded_counts`, function names).
* The log: its lines in order, faults marked, aggregate blocks as links to
  their tables; log bytes shown as UTF-8 where they are.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ...log.aggr_info import ADDRESS, BUCKET, HEX, INTEGER
from ...log.parse import AggrBlock
from .. import tables
from ..stacks import folded_counts
from ..symbolize import Symbolizer
from ..tables import Column, KeyFormat
from .collect import LINE_STACKS, LOG_AGGR, ReportView

STATS = ("count", "avg", "min", "max", "latest")
VM_SEPARATOR = "@"  # a fleet's per-VM table is NAME@VM (fleet.render.log_block)
HISTOGRAM_WIDTH = 400  # px of the longest bar
MAX_TABLE_ROWS = 1000  # of one epoch's table (the largest counts; the rest counted), so the page stays light


@dataclass
class RunSummary:
    """What the report says about the run, besides the log."""

    title: str  # the script's name (or the log's)
    vm: str = ""  # the .vmx, or what machine it was
    started: str = ""  # when it started, UTC
    scripts: list[tuple[str, str]] = field(default_factory=list)  # (name, source) of the user's files
    duration_s: float | None = None  # -d, as asked
    guest_s: float | None = None  # the guest time the run took (a simulated machine)
    wall_s: float | None = None  # the host time it took
    probes: list[dict] = field(default_factory=list)  # probe_summary rows, with firings
    log_path: str = ""  # a saved log's path (vprobe-report)
    fleet: dict | None = None  # the fleet's summary


def shown_text(text: str) -> str:
    """Log text (bytes as Latin-1) as the characters it holds: UTF-8 where it is valid."""
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


def anchor(prefix: str, name: str) -> str:
    return prefix + "-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


# ---- tables and histograms --------------------------------------------------------------------------

def _sorts_as_number(column: Column, index: int, block: AggrBlock) -> bool:
    """Whether a key column sorts by value (numbers, addresses) rather than as shown (names, strings)."""
    if column.kind is None:
        return index < block.int_keys
    return column.kind in (INTEGER, HEX, BUCKET, ADDRESS)


def table(block: AggrBlock, keys: KeyFormat, epoch: int) -> dict:
    """One epoch of an aggregate as the -a table shows it (`views.tables.table`: its columns, their
    headers and formats, its statistics and order), with each cell's value to sort by."""
    t = tables.table(block, keys, epoch=epoch, top=MAX_TABLE_ROWS)
    numeric = [_sorts_as_number(c, i, block) for i, c in enumerate(t.columns)]
    stats = ("count",) if t.counted else STATS
    columns = [{"header": c.header, "numeric": n} for c, n in zip(t.columns, numeric)]
    columns += [{"header": s, "numeric": True} for s in stats] + [{"header": "%", "numeric": True}]
    biggest = max((r.entry.count for r in t.rows), default=0) or 1
    rows = []
    for r in t.rows:
        e = r.entry
        cells = [{"lines": [shown_text(line) for line in lines], "sort": str(v) if n else "\n".join(lines),
                  "numeric": n} for lines, v, n in zip(r.keys, e.keys, numeric)]
        cells += [{"lines": [str(getattr(e, s))], "sort": str(getattr(e, s)), "numeric": True} for s in stats]
        cells.append({"lines": [f"{100 * r.share:.1f}%" if r.share is not None else "-"], "sort": str(e.count),
                      "numeric": True, "bar": round(100 * e.count / biggest, 1)})
        rows.append(cells)
    if t.annotated:
        shape = f"of {t.value}" if t.value and not t.counted else "counted" if t.counted else ""
    else:
        shape = f"{t.int_keys} integer, {t.str_keys} string key{'' if t.int_keys + t.str_keys == 1 else 's'}"
    return {"epoch": epoch, "columns": columns, "rows": rows, "total": t.total_count, "shape": shape, "charts": [],
            "hidden": t.hidden, "hidden_count": t.hidden_count}


def range_label(low: int, high: int | None) -> str:
    return f"[{low}, {'2^64' if high is None else high})"


def histogram(obj: dict) -> dict:
    """A histogram object (`views.tables.Histogram.as_json`, as `-f json` writes it: its buckets with
    low, high and count, a run of empty buckets as one with `empty_buckets`, its count, mean and
    percentiles) as a bar chart: a bar per bucket, each percentile marked on the bucket it falls in."""
    buckets = obj.get("buckets", [])
    biggest = max((b["count"] for b in buckets), default=0) or 1
    bars = []
    for b in buckets:
        bars.append({"label": range_label(b["low"], b["high"]), "count": b["count"],
                     "gap": b.get("empty_buckets", 0), "width": round(HISTOGRAM_WIDTH * b["count"] / biggest, 1),
                     "percentiles": []})
    for p, bounds in obj.get("percentiles", {}).items():
        for bar, b in zip(bars, buckets):
            if b["low"] == bounds["low"] and not b.get("empty_buckets"):
                bar["percentiles"].append(p)
    return {"name": obj.get("name", ""), "group": ", ".join(shown_text(g) for g in obj.get("shown", [])),
            "headers": ", ".join(obj.get("headers", [])), "value": obj.get("value", ""),
            "unit": obj.get("unit", ""), "count": obj.get("count", 0), "mean": obj.get("mean"),
            "min": obj.get("min_value"), "max": obj.get("max_value"),
            "percentiles": {p: range_label(b["low"], b["high"]) for p, b in obj.get("percentiles", {}).items()},
            "bars": bars, "width": HISTOGRAM_WIDTH}


def epoch_section(block: AggrBlock, keys: KeyFormat, epoch: int) -> dict:
    """An epoch of an aggregate: its histograms as bar charts if it is a histogram, else its table."""
    if not tables.is_histogram(block):
        return table(block, keys, epoch)
    charts = [histogram(obj) for obj in tables.histograms(block, keys, epoch=epoch).as_json()]
    return {"epoch": epoch, "columns": [], "rows": [], "total": block.total_count, "charts": charts,
            "hidden": 0, "hidden_count": 0,
            "shape": f"{len(charts)} histogram{'' if len(charts) == 1 else 's'}"}


def aggregates(view: ReportView, keys: KeyFormat) -> tuple[list[dict], dict[str, list[dict]]]:
    """The aggregates' sections: the merged (or only) ones, and a fleet's per-VM ones by VM."""
    merged: list[dict] = []
    by_vm: dict[str, list[dict]] = {}
    for name, blocks in view.epochs.items():
        count = view.epoch_counts[name]
        first = count - len(blocks) + 1
        base, _, vm = name.partition(VM_SEPARATOR)
        section = {"name": base if vm else name, "anchor": anchor("aggr", name), "epochs": count,
                   "histogram": tables.is_histogram(blocks[-1]),
                   "tables": [epoch_section(b, keys, first + i) for i, b in reversed(list(enumerate(blocks)))]}
        (by_vm.setdefault(vm, []) if vm else merged).append(section)
    return merged, by_vm


# ---- flame graphs -----------------------------------------------------------------------------------

def flame_tree(folded: list[tuple[str, int]], root: str = "all") -> dict:
    """The folded stacks as a tree: {"n": frame, "v": count including callees, "c": [children]},
    children in the order the folded lines give (sorted by name)."""
    tree = {"n": root, "v": 0, "c": []}
    index: dict[int, dict[str, dict]] = {}
    for line, count in folded:
        node = tree
        node["v"] += count
        for frame in line.split(";"):
            children = index.setdefault(id(node), {})
            child = children.get(frame)
            if child is None:
                child = children[frame] = {"n": frame, "v": 0, "c": []}
                node["c"].append(child)
            child["v"] += count
            node = child
    return tree


def flame_graphs(view: ReportView, symbolizer: Symbolizer) -> list[dict]:
    graphs = []
    for name, counter in view.stacks.items():
        folded = folded_counts(counter.ranked(), symbolizer)
        if not folded:
            continue
        title = "stacks in the log's lines" if name == LINE_STACKS else f"stack keys of {name}"
        graphs.append({"title": title, "id": anchor("flame", name or "lines"), "tree": flame_tree(folded),
                       "stacks": len(folded), "total": sum(c for _, c in folded)})
    return graphs


# ---- the page -------------------------------------------------------------------------------------------

def log_lines(view: ReportView) -> list[dict]:
    lines = []
    for kind, text in view.lines:
        if kind == LOG_AGGR:
            lines.append({"kind": kind, "text": text, "anchor": anchor("aggr", text)})
        else:
            lines.append({"kind": kind, "text": shown_text(text.rstrip("\n"))})
    return lines


MAX_FAULT_VMS = 5  # a fault's VMs named in a fleet's report; the rest counted


def faults(view: ReportView) -> list[dict]:
    shown = []
    for kind, count in view.fault_kinds.most_common():
        probe, where, message = kind
        vms = view.fault_vms.get(kind, Counter())
        names = ", ".join(sorted(vms)[:MAX_FAULT_VMS])
        if len(vms) > MAX_FAULT_VMS:
            names += f" and {len(vms) - MAX_FAULT_VMS} more"
        shown.append({"probe": probe, "where": where, "message": shown_text(message), "count": count, "vms": names})
    return shown


def page(view: ReportView, run: RunSummary, keys: KeyFormat) -> dict:
    """Everything the template shows; keys are shown as `keys` says (its symbols symbolize the stacks)."""
    merged, by_vm = aggregates(view, keys)
    return {"run": run, "faults": faults(view), "fault_total": sum(view.fault_counts.values()),
            "fault_counts": dict(view.fault_counts), "aggregates": merged, "by_vm": by_vm,
            "flame_graphs": flame_graphs(view, keys.symbolizer or Symbolizer()),
            "log": log_lines(view), "dropped_lines": view.dropped_lines}
