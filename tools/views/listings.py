"""What `vprobe -p` / `-g` and `vmrun vprobeListProbes` / `vprobeListGlobals` print.

Rows come from a machine (`vm.machine_info`: in process, or a running VM's
daemon sends them as JSON); the formatting is the same for both commands.
"""

from __future__ import annotations


def format_probes(rows) -> str:
    return "".join(f"{name:<40} {description}\n" for name, description in rows)


def format_globals(rows) -> str:
    return "".join(f"{name:<24} {type_:<8} {scope:<10} {description}\n" for name, type_, scope, description in rows)


def format_version(version: str, enabled: bool) -> str:
    return f"VProbes version: {version} ({'enabled' if enabled else 'disabled'})\n"
