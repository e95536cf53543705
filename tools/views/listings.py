"""What `vprobe -p` / `-g` / `-l` and `vmrun vprobeListProbes` / `vprobeListGlobals` /
`vprobeListLoaded` print.

Rows come from a machine (`vm.machine_info`) or a loaded script
(`scripts.sources.cost_rows`), in process, or sent as JSON by a running VM's
daemon; the formatting is the same for both commands.  `vprobe -p` and `-g`
take shell globs over the names (`matching`), `-p -v` shows what each
probe's ARG0.. hold (`probe_arguments`, from the language's own table of
probes), and `-f json` gives one object per row:

    {"type": "probe", "name": "Guest_IRQ", "description": "...", "args": [{"name": "ARG0", "meaning": "IRQ vector"}]}
    {"type": "global", "name": "RIP", "value_type": "integer", "scope": "per-VCPU", "description": "..."}
"""

from __future__ import annotations

from fnmatch import fnmatchcase


def _kind_note(fires: str) -> str:
    """What a probe point written KIND:PARAMETER passes: nothing in ARGn; the guest's state is what it sees."""
    from vp_runtime import spec

    return {
        spec.EXECUTE: "no arguments: the guest's registers and memory as the instruction is about to run "
                      "(at a function's entry, its arguments are in RDI, RSI, RDX, RCX, R8, R9)",
        spec.READ: "no arguments: the guest's registers and memory at the instruction that reads",
        spec.WRITE: "no arguments: the guest's registers and memory at the instruction that writes",
    }.get(fires, "no arguments")


def matching(rows, patterns: list[str]) -> tuple[list, list[str]]:
    """The rows whose name (first field) matches one of the shell globs `patterns` (all rows when
    there are none), and the patterns that matched nothing."""
    if not patterns:
        return list(rows), []
    kept = [row for row in rows if any(fnmatchcase(row[0], p) for p in patterns)]
    unmatched = [p for p in patterns if not any(fnmatchcase(row[0], p) for row in rows)]
    return kept, unmatched


def probe_arguments(name: str) -> tuple[list[tuple[str, str]], str]:
    """What probe point `name` passes: [(ARGn, meaning)] and a note when it passes none."""
    from vp_runtime import spec

    static = spec.STATIC_PROBES.get(name)
    if static is not None:
        args = [(f"ARG{i}", meaning) for i, meaning in enumerate(static.args)]
        return args, "" if args else "no arguments"
    kind = spec.PROBE_KINDS.get(name.split(spec.PROBE_KIND_SEPARATOR, 1)[0])
    return [], _kind_note(kind.fires) if kind is not None else ""


def format_probes(rows, verbose: bool = False) -> str:
    lines = []
    for name, description in rows:
        lines.append(f"{name:<40} {description}\n")
        if verbose:
            args, note = probe_arguments(name)
            lines += [f"    {arg:<5} {meaning}\n" for arg, meaning in args]
            if note:
                lines.append(f"    {note}\n")
    return "".join(lines)


def probe_json(rows) -> list[dict]:
    out = []
    for name, description in rows:
        args, note = probe_arguments(name)
        record = {"type": "probe", "name": name, "description": description,
                  "args": [{"name": arg, "meaning": meaning} for arg, meaning in args]}
        if note:
            record["note"] = note
        out.append(record)
    return out


def format_globals(rows) -> str:
    return "".join(f"{name:<24} {type_:<8} {scope:<10} {description}\n" for name, type_, scope, description in rows)


def global_json(rows) -> list[dict]:
    return [{"type": "global", "name": name, "value_type": type_, "scope": scope, "description": description}
            for name, type_, scope, description in rows]


def format_version(version: str, enabled: bool) -> str:
    return f"VProbes version: {version} ({'enabled' if enabled else 'disabled'})\n"


COST_HEADER = ("PROBE", "AT", "VP OPERATIONS PER FIRING, AT MOST")


def format_costs(rows) -> str:
    """The probes of a loaded script with the bound of each (rows from `sources.cost_rows`)."""
    table = [COST_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(2)]
    return "".join(f"{probe:<{widths[0]}}  {at:<{widths[1]}}  {bound}\n" for probe, at, bound in table)
