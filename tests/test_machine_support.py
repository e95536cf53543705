"""Helpers for the simulated-machine tests (tests/test_machine_*.py); this module holds no tests.

`run_script` loads a VP script on a fresh SimulatedMachine, runs it for some
simulated seconds and unloads it.  Every firing of the script's probes is
recorded as a `Firing`: which probe, on which VCPU, at what simulated time,
what the firing logged, and a snapshot of the guest model's truth at that
moment (taken right after the handler ran, before the machine moved on), so
that tests can check what a script *read* against what the machine *is*.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from machine import SimulatedMachine, default_config
from machine.guest import layout as L
from vp_runtime import GuestMemoryFault, load
from vprobe_tools.scripts.guest_library import with_guest_library

SAMPLES = Path(__file__).parent / "samples"
USER_TOP = 0x0000_8000_0000_0000  # user addresses are below, kernel addresses from 0xffff8000...
KERNEL_MIN = 0xFFFF_8000_0000_0000
ERROR_LINE = re.compile(r"vprobe error: probe (\S+) aborted at (\S+?):(\d+):(\d+): (.*)\Z")


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


@dataclass
class Firing:
    probe: str
    vcpu: int
    time_ns: int
    log: str  # what this firing wrote to the log (complete lines)
    state: dict = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.log.splitlines()


def snapshot(m: SimulatedMachine) -> dict:
    """The truth of the guest model on the firing VCPU."""
    vcpu = m.current
    state: dict = {"regs": dict(vcpu.regs), "hv": dict(vcpu.hv), "args": list(m.args)}
    guest = m.guest
    if guest is not None and vcpu.index < len(guest.cpus):
        cpu = guest.cpus[vcpu.index]
        task = cpu.current
        state.update(mode=cpu.mode, online=cpu.online, idle=task is cpu.idle, pid=task.pid, tgid=task.tgid,
                     comm=task.comm, image=guest.image_name(task), ppid=task.parent.tgid if task.parent else 0,
                     percpu=cpu.percpu, task_addr=task.addr)
    return state


@dataclass
class Run:
    machine: SimulatedMachine
    log: str
    firings: list[Firing]
    script: object

    def of(self, probe: str) -> list[Firing]:
        return [f for f in self.firings if f.probe == probe]

    @property
    def lines(self) -> list[str]:
        return self.log.splitlines()


def machine_for(**config) -> SimulatedMachine:
    """A default machine with `config` changes (probe time is not charged unless asked)."""
    config.setdefault("charge_probe_time", "off")
    return SimulatedMachine(dataclasses.replace(default_config(), **config))


def run_script(text: str, seconds: float, *, hook: Callable[[SimulatedMachine], dict] | None = snapshot,
               machine: SimulatedMachine | None = None, filename: str = "t.vp", library: bool = True,
               **config) -> Run:
    """Load `text` (with the guest library if it calls curpid & co.), run, unload; record every firing."""
    m = machine or machine_for(**config)
    out: list[str] = []
    data = text.encode()
    if library:
        data = with_guest_library(data, m.guest_library_vp().encode())
    script = load(data, m.load_config, backend=m, filename=filename,
                  log_sink=out.append)
    firings: list[Firing] = []
    original = script.handler

    def handler(spec_text: str):
        inner = original(spec_text)

        def fire() -> None:
            before = len(out)
            inner()
            state = hook(m) if hook else {}
            firings.append(Firing(spec_text, m.current.index, m.now_ns, "".join(out[before:]), state))
        return fire

    script.handler = handler  # the machine asks for handlers at attach: record through them
    m.attach(script)
    m.run(seconds)
    m.detach()
    return Run(m, "".join(out), firings, script)


class Symbols:
    """The machine's /proc/kallsyms, to name addresses the way a symbolizer would."""

    def __init__(self, kallsyms_text: str):
        rows = []
        for line in kallsyms_text.splitlines():
            address, kind, name = line.split()[:3]
            rows.append((int(address, 16), kind, name))
        rows.sort()
        self.rows = rows
        self.addresses = [r[0] for r in rows]
        self.by_name = {}
        for address, _, name in rows:
            self.by_name.setdefault(name, address)
        self.text_end = self.by_name["_etext"]

    def function_at(self, address: int) -> str | None:
        """The text symbol containing `address` (None outside the kernel's text)."""
        if not self.by_name["_text"] <= address < self.text_end:
            return None
        i = bisect.bisect_right(self.addresses, address) - 1
        while i >= 0 and self.rows[i][1] not in "Tt":
            i -= 1
        return self.rows[i][2] if i >= 0 else None


def read_u64(m: SimulatedMachine, addr: int) -> int:
    return int.from_bytes(m.read_linear(addr, 8), "little")


def kernel_read(m: SimulatedMachine, addr: int, size: int) -> bytes:
    """Read kernel memory through the kernel's own page tables, whatever VCPU state is current."""
    return m.mmu.read(m.guest.kernel_tables.cr3, addr, size)


def faults(m: SimulatedMachine, addr: int) -> bool:
    try:
        m.read_linear(addr, 1)
    except GuestMemoryFault:
        return True
    return False


def per_cpu_area(m: SimulatedMachine, index: int) -> int:
    """__per_cpu_offset[index], read from guest memory."""
    base = m.guest.kernel.symbols["__per_cpu_offset"]
    return int.from_bytes(kernel_read(m, base + 8 * index, 8), "little")


__all__ = ["ERROR_LINE", "Firing", "KERNEL_MIN", "L", "Run", "SAMPLES", "Symbols", "USER_TOP", "faults",
           "kernel_read", "machine_for", "per_cpu_area", "read_u64", "run_script", "sample", "snapshot"]
