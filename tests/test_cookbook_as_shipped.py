"""The cookbook works as shipped: each program prints something meaningful within `vprobe -d 3`
on the default machine (or its header says why it needs more, and how), and the README's
example VM runs as the README writes it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_tools_vprobe import vprobe

ROOT = Path(__file__).resolve().parent.parent
COOKBOOK = ROOT / "cookbook"
BIN = Path(sys.executable).parent
NEEDS_MORE = "Needs more:"
AGGR_HEADER = re.compile(r"aggr: \S+ \(\d+ integer keys?\) \(\d+ string keys?\)\Z")


def header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("//"):
            break
        lines.append(line[2:].strip())
    return " ".join(lines)


def empty_blocks(lines: list[str]) -> int:
    """Aggregate blocks with no entry (a block's entries follow its header), past each aggregate's
    first: the first second is the guest's boot, which may have nothing to count."""
    seen, empty = set(), 0
    for i, line in enumerate(lines):
        if AGGR_HEADER.match(line):
            name = line.split()[1]
            if name in seen and (i + 1 == len(lines) or not lines[i + 1].startswith(name + "[")):
                empty += 1
            seen.add(name)
    return empty


def blocks_by_name(lines: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in lines:
        if AGGR_HEADER.match(line):
            counts[line.split()[1]] = counts.get(line.split()[1], 0) + 1
    return counts


@pytest.mark.parametrize("name", sorted(p.name for p in COOKBOOK.glob("*.emt")))
def test_each_program_prints_something_meaningful_within_three_seconds(name):
    path = COOKBOOK / name
    result = vprobe("-d", "3", path)
    assert result.status == 0, result.err
    if NEEDS_MORE in header(path):
        return  # its header says why it needs more and how (checked below for the one that does)
    lines = result.text.splitlines()
    assert not [line for line in lines if line.startswith("vprobe error:")], f"{name} faults"
    assert [line for line in lines if not AGGR_HEADER.match(line)], f"{name} prints nothing within vprobe -d 3"
    # An aggregate logged and cleared once a second on each VCPU would show every second block empty.
    assert empty_blocks(lines) == 0, f"{name} logs empty aggregate blocks"


def test_a_program_that_needs_more_says_how():
    explained = {p.name: header(p) for p in COOKBOOK.glob("*.emt") if NEEDS_MORE in header(p)}
    assert set(explained) == {"user-probe.emt"}
    text = explained["user-probe.emt"]
    command = re.search(r"`(vprobe -d 3 -c '.*')`", text).group(1)
    result = vprobe(*shlex.split(command)[1:])
    assert result.status == 0 and result.text.splitlines() == ["read in bash"] * 3


@pytest.mark.parametrize("name", ["irqs.emt", "page-faults.emt", "vptop.emt", "disk-latency.emt"])
def test_aggregates_logged_once_a_second_are_logged_once_a_second(name):
    lines = vprobe("-d", "3", COOKBOOK / name).text.splitlines()
    counts = blocks_by_name(lines)
    assert counts and set(counts.values()) == {3}, counts
    assert empty_blocks(lines) == 0


def test_the_command_line_is_read_through_the_whole_pointer():
    lines = vprobe("-d", "3", COOKBOOK / "command-line.emt").text.splitlines()
    assert lines[1].startswith("BOOT_IMAGE=") and len(lines) == 6


def readme_vm_commands() -> list[str]:
    """The commands of the README's examples that use the example VM, in order (and the compile
    whose output one of them runs)."""
    block = (ROOT / "README.md").read_text().split("## Using it", 1)[1].split("```")[1]
    commands = []
    for line in block.splitlines():
        for part in line.split("#", 1)[0].split(";"):
            part = part.strip()
            if "cookbook/web01" in part or part.startswith("emmettc cookbook/vptop.emt"):
                commands.append(part)
    return commands


def test_the_readme_example_vm_runs_as_written(tmp_path):
    """The README's lines for cookbook/web01/web01.vmx, run in a copy of the cookbook (a VM writes
    its log and its files beside its .vmx)."""
    shutil.copytree(COOKBOOK, tmp_path / "cookbook")
    env = dict(os.environ, VMRUN_STATE_DIR=str(tmp_path / "state"))
    commands = readme_vm_commands()
    assert commands[:2] == ["emmettc cookbook/vptop.emt -o vptop.vp", "vprobe -d 10 cookbook/web01/web01.vmx vptop.vp"]
    assert any(c.startswith("vmrun start") for c in commands) and any(c.startswith("vmrun stop") for c in commands)
    outputs = {}
    try:
        for command in commands:
            argv = shlex.split(command)
            done = subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=tmp_path, env=env, capture_output=True,
                                  timeout=300)
            assert done.returncode == 0, (command, done.stderr.decode())
            outputs[command] = done.stdout.decode("latin-1")
    finally:
        subprocess.run([str(BIN / "vmrun"), "stop", "cookbook/web01/web01.vmx"], cwd=tmp_path, env=env,
                       capture_output=True, timeout=120)
    run = outputs["vprobe -d 10 cookbook/web01/web01.vmx vptop.vp"]
    assert run.count("aggr: running (1 integer key) (1 string key)") >= 10
    log = (tmp_path / "cookbook" / "web01" / "vprobe.out").read_text(encoding="latin-1")
    assert log.startswith(run)  # the VM's log, beside its .vmx
    assert "aggr: running  " in outputs["vprobe-aggr cookbook/web01/vprobe.out"]
