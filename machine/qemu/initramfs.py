"""A tiny initramfs (cpio "newc", gzip-compressed) built from busybox-static.

The kernel unpacks it into its root file system and runs `/init`, which
mounts /proc, /sys and /dev, says `vprobes-guest: init running` on the
console and runs `/loop.sh`, the guest's workload.  `vmrun createGuest`
(guest_builder.py), the tests and the benchmarks build guests with it;
nothing here is needed to attach to a guest someone else booted.  Host
programs that are not static (the compile workload's tcc) come with the
shared libraries `ldd` names for them.
"""

from __future__ import annotations

import gzip
import io
import shutil
import stat
from pathlib import Path

BUSYBOX_PATHS = ("/bin/busybox", "/usr/bin/busybox")
BASE_DIRECTORIES = ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root")

# Applets the guest scripts use; each becomes a symlink to /bin/busybox.
APPLETS = (
    "sh", "ash", "cat", "ls", "echo", "mount", "sleep", "true", "false", "dd", "head", "uname",
    "mkdir", "ps", "date", "poweroff", "reboot", "halt", "sync", "wc", "grep", "sed", "seq", "expr",
    "printf", "test", "[", "md5sum", "sha1sum", "sort", "find", "touch", "rm", "cp", "stat", "hostname",
    "httpd", "wget", "ifconfig", "ip", "nc", "gzip", "sha256sum", "cut", "mv", "tr",
)

DEFAULT_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "vprobes-guest: init running"
exec /bin/sh /loop.sh
"""

DEFAULT_LOOP = """#!/bin/sh
# The guest's workload: open a few files over and over, then rest a little.
n=0
while true; do
  n=$((n+1))
  cat /etc/hostname > /dev/null
  cat /etc/vprobes-motd > /dev/null
  ls / > /dev/null
  echo "vprobes-guest: loop $n"
  sleep 0.2
done
"""


def find_busybox() -> Path | None:
    """A statically linked busybox on this host (Debian's busybox-static), or None."""
    for candidate in BUSYBOX_PATHS:
        path = Path(candidate)
        if path.is_file():
            return path
    found = shutil.which("busybox")
    return Path(found) if found else None


class CpioWriter:
    """Writes a cpio archive in the SVR4 "newc" format the kernel's initramfs unpacker reads."""

    def __init__(self):
        self._out = io.BytesIO()
        self._ino = 1

    def _header(self, name: str, mode: int, size: int, nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(encoded), 0)
        self._ino += 1
        head = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        self._out.write(head + encoded)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))

    def directory(self, name: str, mode: int = 0o755) -> None:
        self._header(name, stat.S_IFDIR | mode, 0, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._header(name, stat.S_IFREG | mode, len(data))
        self._out.write(data)
        self._pad()

    def symlink(self, name: str, target: str) -> None:
        data = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(data))
        self._out.write(data)
        self._pad()

    def finish(self) -> bytes:
        self._header("TRAILER!!!", 0, 0)
        return self._out.getvalue()


def shared_libraries(program: Path) -> list[Path]:
    """The shared libraries (and the dynamic loader) `ldd` says `program` needs; [] for a static one."""
    import subprocess

    try:
        text = subprocess.run(["ldd", str(program)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = []
    for line in text.splitlines():
        words = line.split()
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0] if words else ""
        if path.startswith("/") and Path(path).is_file():
            found.append(Path(path))
    return found


def build_initramfs(path: Path | str, *, busybox: Path | str | None = None, init: str = DEFAULT_INIT,
                    loop: str = DEFAULT_LOOP, files: dict[str, str] | None = None,
                    programs: tuple[Path, ...] = ()) -> Path:
    """Write a gzip-compressed initramfs to `path`: busybox, its applets, `/init` and `/loop.sh`, and
    each of `programs` under /bin with its shared libraries at their host paths."""
    busybox = Path(busybox) if busybox else find_busybox()
    if busybox is None:
        raise FileNotFoundError("no busybox binary found (install Debian's busybox-static)")
    cpio = CpioWriter()
    for d in BASE_DIRECTORIES:
        cpio.directory(d)
    cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    for applet in APPLETS:
        cpio.symlink(f"bin/{applet}", "busybox")
    cpio.file("init", init.encode(), 0o755)
    cpio.file("loop.sh", loop.encode(), 0o755)
    cpio.file("etc/hostname", b"vprobes-guest\n")
    cpio.file("etc/vprobes-motd", b"probed by VProbes through the gdbstub\n")
    made = set(BASE_DIRECTORIES)

    def add(name: str, data: bytes) -> None:
        """A file at `name`, with the directories above it (the kernel's unpacker makes none)."""
        parts = name.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                cpio.directory(directory)
                made.add(directory)
        cpio.file("/".join(parts), data, 0o755)
    for name, text in (files or {}).items():
        add(name, text.encode())
    for program in programs:
        add(f"bin/{Path(program).name}", Path(program).read_bytes())
        for library in shared_libraries(Path(program)):
            add(str(library), library.read_bytes())
    path = Path(path)
    path.write_bytes(gzip.compress(cpio.finish(), compresslevel=1))
    return path
