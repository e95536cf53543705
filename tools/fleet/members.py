"""Which VMs make up a fleet: N seeds of one machine, or the `.vmx` files of a folder or glob.

`vprobe --fleet N [VM.vmx]` runs the machine VM.vmx describes (the embedded
default machine without one) N times, with `sim.seed` 0 .. N-1; the VMs are
named `STEM-SEED` (STEM the .vmx's name, `vm` for the default machine).
`vprobe --fleet DIR_OR_GLOB` runs each `.vmx` file of the folder, or each
file the glob matches, in sorted order, named after the file (its path where
two files share a name).  A member's `order` is its place in that list: the
fleet's results are merged and shown in that order.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

MAX_FLEET = 1_000_000  # far beyond what a cluster runs; a typo of a count is caught below it


@dataclass(frozen=True)
class Member:
    order: int
    name: str
    vmx: str | None  # the .vmx file, None for the embedded default machine
    seed: int | None  # sim.seed to run with, None for the .vmx's own


def parse_count(text: str) -> int | None:
    """The fleet size `text` gives, None if it is not a number (then it names files)."""
    if not text.isdigit():
        return None
    count = int(text)
    if not 1 <= count <= MAX_FLEET:
        raise ToolError(f"--fleet {text}: give from 1 to {MAX_FLEET} VMs")
    return count


def seeded(count: int, vmx: str | None) -> list[Member]:
    stem = Path(vmx).stem if vmx is not None else "vm"
    return [Member(i, f"{stem}-{i}", vmx, i) for i in range(count)]


def from_files(spec: str) -> list[Member]:
    """The `.vmx` files of folder `spec`, or those the glob `spec` matches."""
    if os.path.isdir(spec):
        paths = sorted(str(p) for p in Path(spec).glob("*.vmx"))
        if not paths:
            raise ToolError(f"--fleet {spec}: the folder holds no .vmx file")
    else:
        paths = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
        if not paths:
            what = "no such folder, and no file matches it" if glob.has_magic(spec) or not os.path.exists(spec) \
                else "not a folder or a glob of .vmx files"
            raise ToolError(f"--fleet {spec}: {what}")
        others = [p for p in paths if not p.endswith(".vmx")]
        if others:
            raise ToolError(f"--fleet {spec}: {others[0]} is not a .vmx file")
    stems = [Path(p).stem for p in paths]
    names = [stem if stems.count(stem) == 1 else str(Path(p).with_suffix("")) for p, stem in zip(paths, stems)]
    return [Member(i, name, path, None) for i, (name, path) in enumerate(zip(names, paths))]


def members(spec: str, vmx: str | None) -> list[Member]:
    """The fleet `--fleet SPEC [VM.vmx]` names."""
    count = parse_count(spec)
    if count is not None:
        return seeded(count, vmx)
    if vmx is not None:
        raise ToolError(f"--fleet {spec} names the VMs: give no VM.vmx besides (--fleet N VM.vmx runs N of one VM)")
    return from_files(spec)
