"""What a machine tells the commands about itself: its probe points and globals, its guest's symbols.

The rows are what `vprobe -p` / `-g` and `vmrun vprobeListProbes` /
`vprobeListGlobals` print (`views.listings` formats them); a VM running in
the background sends them as JSON, so both commands print the same.  The
guest's symbols are its `vprobe.guestSyms` file, or the kernel's own table
(/proc/kallsyms; WinDbg `x` output for a Windows guest).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ToolError


def vp_version() -> str:
    """The VP language version this runtime implements (Table 3-1 of the reference)."""
    from vp_runtime.limits import CURRENT_VERSION

    return "{}.{}".format(*CURRENT_VERSION)


def probe_rows(machine) -> list[list[str]]:
    return [[name, description] for name, description in machine.probe_points()]


def global_rows(machine) -> list[list[str]]:
    return [[g.name, g.type, g.scope, g.description] for g in machine.globals().values()]


def read_symbol_file(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ToolError(f"cannot read the guest symbol file {path}: {e.strerror or e}") from None


def vm_symbol_text(machine) -> str:
    """A machine's guest symbols: its vprobe.guestSyms file, or its kernel's own table; then the old
    names it also answers to (a real kernel: the reference's Linux 2.6 names, at today's symbols)."""
    path = machine.config.guest_syms
    text = read_symbol_file(path) if path else machine.symbol_text
    aliases = getattr(machine, "legacy_symbols_text", None)
    return text + aliases() if aliases is not None else text
