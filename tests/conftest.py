"""Shared helpers for the VP runtime conformance suite.

* `FakeBackend`: a small machine implementing the runtime's `Backend`
  protocol (vp_runtime/backend.py) with a symbol table, sparse page-granular
  linear and physical memory, registers, probe arguments, configurable guest
  stack frames and host time.  Tests fire probes on it by hand.
* `fire(...)`: load a script on a FakeBackend and fire one probe point.
* `run_machine(...)`: load a script on the SimulatedMachine and run it.
* `load_error(...)`: the diagnostics of a script that must not load.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from vp_runtime import ALL_GLOBALS, GuestMemoryFault, LoadConfig, ProbeSpec, VPLoadError, load
from vp_runtime.errors import Diagnostic

M64 = (1 << 64) - 1
PAGE = 4096
SAMPLES = Path(__file__).parent / "samples"
VPROBE = Path(sys.executable).parent / "vprobe"

# ---------------------------------------------------------------------------
# Real x86-64 code for the guest functions the offat* builtins decode.

# sys_getpid of a 64-bit Linux 2.6 kernel:
#   push rbp; mov rbp,rsp; mov rax, gs:[0xb580]; mov eax,[rax+0x2a4]; leave; ret
SYS_GETPID = bytes.fromhex("55 48 89 e5 65 48 8b 04 25 80 b5 00 00 8b 80 a4 02 00 00 c9 c3")
PID_OFFSET = 0x2A4
CURRENT_TASK_SEG_OFFSET = 0xB580

# get_task_comm(buf, tsk):
#   push rbp; mov rbp,rsp; push rbx; mov rbx,rdi; lea rsi,[rsi+0x3b8];
#   mov edx,0x10; call strncpy; mov rax,rbx; pop rbx; leave; ret
GET_TASK_COMM = bytes.fromhex(
    "55 48 89 e5 53 48 89 fb 48 8d b6 b8 03 00 00 ba 10 00 00 00 e8 2f 12 00 00 48 89 d8 5b c9 c3")
COMM_OFFSET = 0x3B8

# A function with no load of the return register and no call: offatret,
# offatstrcpy and offatseg all fail on it.  push rbp; mov rbp,rsp; xor eax,eax; leave; ret
NO_PATTERN = bytes.fromhex("55 48 89 e5 31 c0 c9 c3")


class FakeBackend:
    """A guest in a dict: everything the runtime may ask a machine, under test control."""

    def __init__(self, *, symbols: dict[str, int] | None = None, frames: list[int] | None = None,
                 host_time_us: int = 1_000_000, offered: dict | None = None):
        self.symbols: dict[str, int] = dict(symbols or {})
        self.pages: dict[int, bytearray] = {}
        self.phys_pages: dict[int, bytearray] = {}
        self.frames: list[int] = list(frames or [])
        self.time_us = host_time_us
        self.regs: dict[str, int] = {}
        self.strings: dict[str, str] = {}
        self.args = [0] * 10
        self.offered = offered if offered is not None else ALL_GLOBALS
        self.linear_reads: list[tuple[int, int]] = []
        self.frame_requests: list[int] = []

    # ---- test set-up -----------------------------------------------------

    @staticmethod
    def _poke(pages: dict[int, bytearray], addr: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            a = (addr + i) & M64
            page = pages.setdefault(a // PAGE, bytearray(PAGE))
            page[a % PAGE] = byte

    def poke(self, addr: int, data: bytes) -> "FakeBackend":
        """Write `data` at linear `addr`, mapping (zero-filled) the pages it touches."""
        self._poke(self.pages, addr, data)
        return self

    def poke_u64(self, addr: int, value: int) -> "FakeBackend":
        return self.poke(addr, (value & M64).to_bytes(8, "little"))

    def poke_str(self, addr: int, text: bytes | str) -> "FakeBackend":
        data = text.encode("latin-1") if isinstance(text, str) else text
        return self.poke(addr, data + b"\0")

    def poke_phys(self, addr: int, data: bytes) -> "FakeBackend":
        self._poke(self.phys_pages, addr, data)
        return self

    def define(self, name: str, addr: int, data: bytes | None = None) -> "FakeBackend":
        """A guest symbol, optionally with the bytes it points at."""
        self.symbols[name] = addr
        if data is not None:
            self.poke(addr, data)
        return self

    # ---- the Backend protocol ----------------------------------------------

    def globals(self):
        return self.offered

    def check_probe(self, spec: ProbeSpec) -> str | None:
        return None

    def global_reader(self, name: str):
        if name.startswith("ARG") and name[3:].isdigit():
            index = int(name[3:])
            return lambda: self.args[index]
        if self.offered[name].type == "string":
            return lambda: self.strings.get(name, "")
        return lambda: self.regs.get(name, 0)

    def _read(self, pages, addr: int, size: int, kind: str) -> bytes:
        out = bytearray()
        for i in range(size):
            a = (addr + i) & M64
            page = pages.get(a // PAGE)
            if page is None:
                raise GuestMemoryFault(f"{kind} address {a:#x} is not mapped")
            out.append(page[a % PAGE])
        return bytes(out)

    def read_linear(self, addr: int, size: int) -> bytes:
        self.linear_reads.append((addr, size))
        return self._read(self.pages, addr, size, "guest linear")

    def read_physical(self, addr: int, size: int) -> bytes:
        return self._read(self.phys_pages, addr, size, "guest physical")

    def lookup_symbol(self, name: str) -> int | None:
        return self.symbols.get(name)

    def stack_frames(self, max_frames: int) -> list[int]:
        self.frame_requests.append(max_frames)
        return self.frames[:max_frames]

    def host_time_us(self) -> int:
        return self.time_us


# ---------------------------------------------------------------------------
# Loading and firing.

class TextSink:
    """A stream that keeps what is written to it in `text` (and is not a terminal: no isatty)."""

    def __init__(self):
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


class Loaded:
    """A script loaded on a FakeBackend, with its log."""

    def __init__(self, text: str | bytes, backend: FakeBackend | None = None, config: LoadConfig | None = None,
                 filename: str = "t.vp"):
        self.backend = backend or FakeBackend()
        self.out: list[str] = []
        self.script = load(text, config or LoadConfig(), backend=self.backend, filename=filename,
                           log_sink=self.out.append)

    def fire(self, probe: str = "VMXLoad", times: int = 1, **args: int) -> str:
        """Fire `probe` (setting ARGn from `ARG0=...` keywords); return the log written so far."""
        for key, value in args.items():
            self.backend.args[int(key[3:])] = value
        handler = self.script.handler(probe)
        for _ in range(times):
            handler()
        return self.log()

    def log(self) -> str:
        """Everything logged so far, including a partial last line still buffered (not flushed:
        flushing here would change where later lines break)."""
        return "".join(self.out) + self.script.log.partial

    def var(self, name: str):
        return self.script.variable(name)


def fire(text: str | bytes, probe: str = "VMXLoad", backend: FakeBackend | None = None,
         config: LoadConfig | None = None, times: int = 1, **args: int) -> str:
    """Load `text` on a FakeBackend, fire `probe` `times` times, return the log."""
    return Loaded(text, backend, config).fire(probe, times, **args)


# The SimulatedMachine is used only through these helpers (imported lazily, so
# that the FakeBackend tests run whatever state the machine package is in).

def new_machine(numvcpus: int | None = None):
    """The embedded default machine, optionally with another number of VCPUs."""
    import dataclasses

    from machine import SimulatedMachine, default_config
    config = default_config()
    return SimulatedMachine(config if numvcpus is None else dataclasses.replace(config, numvcpus=numvcpus))


def machine_load_config(m) -> LoadConfig:
    return m.load_config


def machine_timer_hz(m) -> int:
    """Local APIC timer interrupts per second per VCPU (the guest kernel's HZ)."""
    return m.config.timer_hz


def load_on_machine(text: str | bytes, m, filename: str = "t.vp", log_sink=None):
    return load(text, machine_load_config(m), backend=m, filename=filename, log_sink=log_sink)


def run_machine(text: str | bytes, seconds: float, *, numvcpus: int | None = None,
                filename: str = "t.vp", machine=None) -> str:
    """Load `text` on a SimulatedMachine, run it `seconds` of simulated time, unload; return the log."""
    m = machine or new_machine(numvcpus)
    out: list[str] = []
    script = load_on_machine(text, m, filename, out.append)
    m.attach(script)
    m.run(seconds)
    m.detach()
    return "".join(out)


def load_error(text: str | bytes, *, backend=None, config: LoadConfig | None = None,
               filename: str = "t.vp") -> Diagnostic:
    """The first diagnostic of a script that must fail to load (checked for shape)."""
    with pytest.raises(VPLoadError) as info:
        load(text, config or LoadConfig(), backend=backend or FakeBackend(), filename=filename)
    err = info.value
    assert err.diagnostics, "VPLoadError without diagnostics"
    first = err.diagnostics[0]
    assert first.severity == "error"
    assert first.file == filename
    assert first.line >= 1 and first.col >= 1
    return first


# A small kallsyms text for the printers' symbolization tests.
TOY_KALLSYMS = ("0000000000000000 D per_cpu__current_task\n"
                "ffffffff81000000 T _text\n"
                "ffffffff81001100 T schedule\n"
                "ffffffff81001200 T sys_read\n"
                "ffffffff81001300 t system_call\n"
                "ffffffff81001400 T _etext\n"
                "ffffffff81400000 D jiffies\n")


def position_of(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """(line, col), 1-based, of the `occurrence`-th `needle` in `text`."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def at(diag: Diagnostic, text: str, needle: str, occurrence: int = 1) -> bool:
    return (diag.line, diag.col) == position_of(text, needle, occurrence)


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def run_vprobe(*argv: str, stdin: bytes | None = None, cwd: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the installed `vprobe` command."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([str(VPROBE), *argv], input=stdin, capture_output=True, timeout=timeout,
                          cwd=cwd, env=env)


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def linux_guest() -> Callable[..., FakeBackend]:
    """A fake 64-bit Linux 2.6 guest: per-CPU area at GSBASE pointing at a task
    with a pid and a name, and real code for sys_getpid and get_task_comm."""

    def make(name: bytes = b"bash", pid: int = 1978, gsbase: int = 0xFFFF88003FC80000,
             kernel_gsbase: int = 0) -> FakeBackend:
        b = FakeBackend()
        task = 0xFFFF88001F000000
        b.define("sys_getpid", 0xFFFFFFFF81050000, SYS_GETPID)
        b.define("get_task_comm", 0xFFFFFFFF81060000, GET_TASK_COMM)
        b.define("no_pattern", 0xFFFFFFFF81070000, NO_PATTERN)
        # The PDA's first field (gs:0) and the per-CPU current_task slot both point at the task.
        per_cpu = gsbase if gsbase >= 0x100000000 else kernel_gsbase
        b.poke_u64(per_cpu, task)
        b.poke_u64(per_cpu + CURRENT_TASK_SEG_OFFSET, task)
        b.poke(task + PID_OFFSET, pid.to_bytes(4, "little") + b"\xee\xee\xee\xee")
        b.poke_str(task + COMM_OFFSET, name)
        b.regs.update(GSBASE=gsbase, KERNELGSBASE=kernel_gsbase)
        b.task = task
        return b

    return make
