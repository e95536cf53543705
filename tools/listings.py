"""What `vprobe -p` / `-g` and `vmrun vprobeListProbes` / `vprobeListGlobals` print.

Rows come from a machine (in process, or a running VM's daemon sends them as
JSON); the formatting is the same for both commands.
"""

from __future__ import annotations



def vp_version() -> str:
    """The VP language version this runtime implements (Table 3-1 of the reference)."""
    from vp_runtime.limits import CURRENT_VERSION

    return "{}.{}".format(*CURRENT_VERSION)


def probe_rows(machine) -> list[list[str]]:
    return [[name, description] for name, description in machine.probe_points()]


def global_rows(machine) -> list[list[str]]:
    return [[g.name, g.type, g.scope, g.description] for g in machine.globals().values()]


def format_probes(rows) -> str:
    return "".join(f"{name:<40} {description}\n" for name, description in rows)


def format_globals(rows) -> str:
    return "".join(f"{name:<24} {type_:<8} {scope:<10} {description}\n" for name, type_, scope, description in rows)


def format_version(version: str, enabled: bool) -> str:
    return f"VProbes version: {version} ({'enabled' if enabled else 'disabled'})\n"
