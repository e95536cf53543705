"""`.vmx` files for real VMs under QEMU.

The same `key = "value"` syntax as the simulated machine's `.vmx`
(machine/vmx.py scans it; its helpers are reused read-only), with these keys::

    displayName      = "linux-under-qemu"
    numvcpus         = "2"
    memsize          = "512"                      # MB
    qemu.kernel      = "/boot/vmlinuz-6.1.0-56-amd64"
    qemu.initrd      = "initramfs.gz"
    qemu.append      = "console=ttyS0 nokaslr"    # the kernel command line ("nokaslr" is added unless
                                                  # it says kaslr or nokaslr: probes need the symbols' addresses)
    qemu.gdbPort     = "0"                        # 0: a private Unix socket; N: TCP port N on 127.0.0.1
    qemu.accel       = "tcg"                      # tcg, kvm, or auto (kvm when /dev/kvm is usable and the
                                                  # guest makes progress under it, else tcg with a warning)
    qemu.loadAt      = "running"                  # running: scripts load once the guest's init has started;
                                                  # reset: at power-on, to trace the boot
    qemu.bootTimeout = "300"                      # seconds the guest may take to start its init
    qemu.console     = "console.log"              # the guest's serial console (default <name>.console.log)
    qemu.binary      = "qemu-system-x86_64"
    qemu.extraArgs   = "-device virtio-rng-pci"   # more QEMU arguments (shell words)
    qemu.attach      = "127.0.0.1:1234"           # instead of booting: a running QEMU's gdbstub
    qemu.image       = "/boot/vmlinuz-..."        # the kernel image (symbols, BTF) when attaching
    qemu.timeout     = "10"                       # seconds to wait for the gdbstub's answers
    qemu.tbSize      = "64"                       # TCG translation buffer in MB (0: QEMU's default)
    qemu.callSites   = "TRUE"                     # GUEST: probes on ftrace sites patch a call (callsites.py);
                                                  # FALSE: breakpoints only, guest memory never written
    vprobe.enable    = "TRUE"
    vprobe.guestSyms = "System.map"               # optional: otherwise read from the kernel image
    vprobe.outFile   = "vprobe.out"
    vprobe.maxOpsPerFiring = "1000000"            # and vprobe.maxCallsPerFiring, maxCodeBytes, bagBytes:
                                                  # the script limits of machine/vmx.py

A `.vmx` that sets any `qemu.` key describes a QEMU VM (`is_qemu_vmx`).
Relative paths are the VM directory's.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ..vmx import KNOWN_KEYS as _VMX_KEYS
from ..vmx import VMSettings, VmxError, build_config, read_settings
from ..vmx import (_choice, _existing_file, _flag, _integer, _output_file, _Parser, _Problem, _ranged,
                   _read_text, _text)

__all__ = ["QEMU_KEYS", "QemuConfig", "is_qemu_vmx", "parse_qemu_vmx", "read_qemu_vmx"]

ACCELS = ("tcg", "kvm", "auto")
LOAD_AT = ("running", "reset")


@dataclass(frozen=True, kw_only=True)
class QemuConfig(VMSettings):
    """A QEMU VM's settings; the fields the tools use have VMConfig's names."""

    numvcpus: int = 2
    memsize_mb: int = 512
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = "console=ttyS0 nokaslr"
    gdb_port: int = 0
    accel: str = "tcg"
    console: Path | None = None
    binary: str = "qemu-system-x86_64"
    extra_args: tuple[str, ...] = ()
    attach: tuple[str, int] | None = None
    image: Path | None = None
    timeout_s: float = 10.0
    tb_size_mb: int = 0  # TCG translation buffer (MB); 0: QEMU's default
    call_sites: bool = True
    load_at: str = "running"  # when a booted VM's scripts load: once its init has started, or at reset
    boot_timeout_s: float = 300.0  # how long its init may take to start

    def __post_init__(self):
        super().__post_init__()
        if self.console is None and self.attach is None:
            object.__setattr__(self, "console", self.directory / f"{self.display_name}.console.log")

    @property
    def command_line(self) -> str:
        """The booted kernel's command line: `append`, with `nokaslr` unless it chooses either way."""
        words = self.append.split()
        return self.append if "kaslr" in words or "nokaslr" in words else f"{self.append} nokaslr".strip()

    @property
    def kernel_image(self) -> Path | None:
        """The file symbols and BTF are read from."""
        return self.image or self.kernel


def _port(value: str, key: str, ctx) -> int:
    number = _integer(value, key)
    if not 0 <= number <= 65535:
        raise _Problem(f"{key} {number} is not a TCP port (0..65535; 0 picks a free one)")
    return number


def _attach(value: str, key: str, ctx) -> tuple[str, int] | None:
    text = value.strip()
    if not text:
        return None
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise _Problem(f"{key} must be HOST:PORT of a running QEMU's gdbstub (e.g. 127.0.0.1:1234), not '{text}'")
    return host.strip("[]"), int(port)


def _load_at(value: str, key: str, ctx) -> str:
    word = value.strip().lower()
    if word not in LOAD_AT:
        raise _Problem(f"unknown {key} '{value}' (expected running, to load scripts once the guest's init "
                       f"has started, or reset, to trace the boot)")
    return word


def _words(value: str, key: str, ctx) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError as e:
        raise _Problem(f"{key}: {e}") from None


def _seconds(value: str, key: str, ctx) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise _Problem(f"invalid number of seconds '{value}' for {key}") from None
    if not 0.1 <= number <= 3600:
        raise _Problem(f"{key} {number:g} is out of range (0.1..3600 seconds)")
    return number


# lower-cased key -> (spelling, QemuConfig field, converter)
QEMU_KEYS = {
    key.lower(): (key, name, convert)
    for key, name, convert in (
        ("qemu.kernel", "kernel", _existing_file),
        ("qemu.initrd", "initrd", _existing_file),
        ("qemu.append", "append", _text),
        ("qemu.gdbPort", "gdb_port", _port),
        ("qemu.accel", "accel", _choice(ACCELS)),
        ("qemu.console", "console", _output_file),
        ("qemu.binary", "binary", _text),
        ("qemu.extraArgs", "extra_args", _words),
        ("qemu.attach", "attach", _attach),
        ("qemu.image", "image", _existing_file),
        ("qemu.timeout", "timeout_s", _seconds),
        ("qemu.tbSize", "tb_size_mb", _ranged(0, 4096, " MB")),
        ("qemu.callSites", "call_sites", _flag),
        ("qemu.loadAt", "load_at", _load_at),
        ("qemu.bootTimeout", "boot_timeout_s", _seconds),
        ("numvcpus", "numvcpus", _ranged(1, 255)),
        ("memsize", "memsize_mb", _ranged(32, 1_048_576, " MB")),
    )
}
# Keys of the simulated machine's .vmx that mean the same here.
_SHARED = ("displayname", "vprobe.enable", "vprobe.vpfile", "vprobe.outfile", "vprobe.guestsyms",
           "vprobe.syscalls", "vprobe.maxcodebytes", "vprobe.bagbytes", "vprobe.maxopsperfiring",
           "vprobe.maxcallsperfiring")
# Keys of the simulated machine that a real VM ignores silently.
_SIMULATION_ONLY = ("guestos", "sim.workload", "sim.seed", "sim.tschz", "sim.timerhz", "sim.hvvendor",
                    "vprobe.chargeprobetime")


def is_qemu_vmx(path: Path | str) -> bool:
    """Whether the .vmx at `path` describes a QEMU VM (it sets a `qemu.` key)."""
    try:
        text = _read_text(path)
    except VmxError:
        return False
    parser = _Parser(text, str(path))
    return any(entry.key.lower().startswith("qemu.") for entry in parser.entries)


def parse_qemu_vmx(text: str, path: Path | str) -> QemuConfig:
    keys = {**{key: _VMX_KEYS[key] for key in _SHARED}, **QEMU_KEYS}
    parser, values, path = read_settings(text, path, keys, quiet=frozenset(_SIMULATION_ONLY))
    if not parser.errors and values.get("attach") is None and values.get("kernel") is None:
        parser.error(1, 1, "a QEMU VM needs qemu.kernel (a kernel to boot) or qemu.attach (a running "
                           "QEMU's gdbstub, HOST:PORT)", text.split("\n", 1)[0])
    return build_config(QemuConfig, parser, values, path)


def read_qemu_vmx(path: Path | str) -> QemuConfig:
    return parse_qemu_vmx(_read_text(path), path)
