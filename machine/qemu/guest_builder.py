"""`vmrun createGuest`: a bootable QEMU guest from this host's kernel and busybox, with a workload.

A guest is two files beside each other: `NAME.vmx` (the QEMU keys of
config.py) and `NAME.initramfs.gz` (initramfs.py: busybox-static, an
`/init` that says `vprobes-guest: init running` on the serial console, and
`/loop.sh`, the workload).  The kernel is the host's own (`/boot/vmlinuz-*`,
the newest unless one is named), booted directly by QEMU with `nokaslr`, so
the symbols read from its image are the running kernel's.

Workloads (`WORKLOADS`), each printing a progress line on the console:

* `idle` -- nothing runs; the kernel's timers and housekeeping only.
* `files` -- opens, reads and lists a few files over and over (system calls,
  page faults, process creation), resting 0.2 s between rounds.
* `compile` -- compiles a small C file with tcc (Debian's `tcc`, copied in
  with its shared libraries) over and over: a CPU- and fault-heavy process.
* `server` -- busybox httpd answering on the guest's loopback
  (127.0.0.1:8080), and a client that fetches a page from it in a loop.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import MachineError
from .initramfs import DEFAULT_LOOP, build_initramfs, find_busybox

__all__ = ["GuestBuildError", "WORKLOADS", "Workload", "create_guest", "host_kernel"]

_IDLE = """#!/bin/sh
# idle: nothing runs but the kernel.
echo "vprobes-guest: idle"
while true; do
  sleep 3600
done
"""

_COMPILE = """#!/bin/sh
# compile: build a small C program with tcc, over and over.
n=0
while true; do
  n=$((n+1))
  tcc -c /src/work.c -o /tmp/work.o && echo "vprobes-guest: compiled $n"
done
"""

_WORK_C = """/* What the compile workload builds: self-contained, no headers. */
static unsigned long fib(unsigned long n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
static unsigned long table[256];
unsigned long checksum(const unsigned char *p, unsigned long n)
{
    unsigned long sum = 0;
    for (unsigned long i = 0; i < n; i++) {
        sum = (sum << 5) + sum + p[i] + table[p[i]];
        if (sum & 1) sum ^= fib(i & 7);
    }
    return sum;
}
"""

_SERVER = """#!/bin/sh
# server: busybox httpd on the loopback, and a client fetching from it in a loop.
ifconfig lo 127.0.0.1 up
httpd -p 127.0.0.1:8080 -h /www
n=0
while true; do
  n=$((n+1))
  wget -q -O /tmp/page http://127.0.0.1:8080/index.html && echo "vprobes-guest: served $n"
  sleep 0.1
done
"""


@dataclass(frozen=True)
class Workload:
    description: str
    loop: str
    files: tuple[tuple[str, str], ...] = ()
    programs: tuple[str, ...] = ()  # host programs copied in (with their shared libraries)
    package: str = ""  # the Debian package that has them


WORKLOADS = {
    "idle": Workload("nothing runs but the kernel", _IDLE),
    "files": Workload("opens, reads and lists files in a loop (system calls, page faults, new processes)",
                      DEFAULT_LOOP),
    "compile": Workload("compiles a C file with tcc over and over", _COMPILE, (("src/work.c", _WORK_C),),
                        ("tcc",), "tcc"),
    "server": Workload("busybox httpd on 127.0.0.1:8080 in the guest, and a client fetching from it",
                       _SERVER, (("www/index.html", "<html><body>vprobes guest</body></html>\n"),)),
}


class GuestBuildError(MachineError):
    pass


def host_kernel() -> Path | None:
    """The newest /boot/vmlinuz-* of this host, or None."""
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    return Path(kernels[-1]) if kernels else None


def create_guest(vmx: Path | str, *, workload: str = "files", kernel: Path | str | None = None, vcpus: int = 2,
                 memory_mb: int = 512, force: bool = False) -> tuple[Path, Path]:
    """Write `vmx` and its initramfs beside it; (the .vmx, the initramfs).  GuestBuildError says what
    is missing or in the way."""
    vmx = Path(vmx)
    if vmx.suffix != ".vmx":
        raise GuestBuildError(f"{vmx}: a guest's file name ends in .vmx")
    if workload not in WORKLOADS:
        raise GuestBuildError(f"unknown workload '{workload}' (expected one of: {', '.join(WORKLOADS)})")
    if not 1 <= vcpus <= 255:
        raise GuestBuildError(f"{vcpus} VCPUs is out of range (1..255)")
    if not 32 <= memory_mb <= 1_048_576:
        raise GuestBuildError(f"{memory_mb} MB of memory is out of range (32..1048576)")
    chosen = WORKLOADS[workload]
    kernel = Path(kernel) if kernel else host_kernel()
    if kernel is None:
        raise GuestBuildError("no kernel in /boot (Debian: apt-get install linux-image-amd64), and none given")
    if not kernel.is_file():
        raise GuestBuildError(f"no kernel at {kernel}")
    busybox = find_busybox()
    if busybox is None:
        raise GuestBuildError("no static busybox on this host (Debian: apt-get install busybox-static)")
    programs = []
    for name in chosen.programs:
        found = shutil.which(name)
        if found is None:
            raise GuestBuildError(f"the {workload} workload needs {name} on this host "
                                  f"(Debian: apt-get install {chosen.package})")
        programs.append(Path(found))
    initrd = vmx.with_name(f"{vmx.stem}.initramfs.gz")
    for path in (vmx, initrd):
        if path.exists() and not force:
            raise GuestBuildError(f"{path} exists (--force replaces it)")
    vmx.parent.mkdir(parents=True, exist_ok=True)
    try:
        build_initramfs(initrd, busybox=busybox, loop=chosen.loop, files=dict(chosen.files),
                        programs=tuple(programs))
        vmx.write_text(_vmx_text(vmx.stem, workload, kernel, initrd.name, vcpus, memory_mb))
    except OSError as e:
        raise GuestBuildError(f"cannot write the guest: {e.strerror or e}: {e.filename or vmx}") from None
    return vmx, initrd


def _vmx_text(name: str, workload: str, kernel: Path, initrd: str, vcpus: int, memory_mb: int) -> str:
    return f"""# A QEMU guest made by `vmrun createGuest` (docs/real-guests.md explains every key).
# Workload "{workload}": {WORKLOADS[workload].description}.
displayName = "{name}"
numvcpus = "{vcpus}"
memsize = "{memory_mb}"
qemu.kernel = "{kernel.resolve()}"
qemu.initrd = "{initrd}"
qemu.append = "console=ttyS0 quiet"
qemu.accel = "tcg"
qemu.loadAt = "running"
vprobe.enable = "TRUE"
"""
