"""What `vprobe -p` / `-g` / `-l` and `vmrun vprobeListProbes` / `vprobeListGlobals` /
`vprobeListLoaded` print.

Rows come from a machine (`vm.machine_info`) or a loaded script
(`scripts.sources.cost_rows`), in process, or sent as JSON by a running VM's
daemon; the formatting is the same for both commands.
"""

from __future__ import annotations


def format_probes(rows) -> str:
    return "".join(f"{name:<40} {description}\n" for name, description in rows)


def format_globals(rows) -> str:
    return "".join(f"{name:<24} {type_:<8} {scope:<10} {description}\n" for name, type_, scope, description in rows)


def format_version(version: str, enabled: bool) -> str:
    return f"VProbes version: {version} ({'enabled' if enabled else 'disabled'})\n"


COST_HEADER = ("PROBE", "AT", "VP OPERATIONS PER FIRING, AT MOST")


def format_costs(rows) -> str:
    """The probes of a loaded script with the bound of each (rows from `sources.cost_rows`)."""
    table = [COST_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    return "".join(f"{probe:<{widths[0]}}  {at:<{widths[1]}}  {bound}\n" for probe, at, bound in table)
