"""System call numbers and their names, for the tools that show a key holding one.

A VM's names are those of its `vprobe.syscalls` file (Table 3-2: "a list
equating syscall numbers with names"), or else its guest kernel's own: the
entries of the kernel's `sys_call_table`, each resolved through the kernel's
symbols to the handler it points at (`sys_read` is `read`; x86-64 Linux's
`__x64_sys_read` too).  Entries that point at `sys_ni_syscall` have no name.
A 64-bit Windows kernel's are its service table's (`service_table_syscalls`):
`nt!KeServiceDescriptorTable` gives the table and its length, each entry the
handler's offset from the table shifted left by 4 (`nt!NtReadFile` is
`NtReadFile`).

The file holds one system call a line, either `NUMBER NAME` (the number
decimal or 0x hexadecimal, as `ausyscall --dump` prints them) or a kernel
header's `#define __NR_NAME NUMBER`; blank lines and other lines starting
with `#` are comments.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Callable

from vp_runtime.spec import MASK64

from .errors import MachineError

TABLE_SYMBOL = "sys_call_table"
SERVICE_DESCRIPTOR_SYMBOL = "nt!KeServiceDescriptorTable"
MAX_SYSCALLS = 1024  # entries read from a kernel's table at most
# The prefixes a system-call handler's name has, longest first.
_HANDLER = re.compile(r"(?:__x64_sys_|__ia32_sys_|__se_sys_|__do_sys_|compat_sys_|sys_)(\w+)\Z")
_NO_CALL = "ni_syscall"
_PAIR = re.compile(r"(0[xX][0-9a-fA-F]+|\d+)\s+([A-Za-z_]\w*)\Z")
_DEFINE = re.compile(r"#\s*define\s+__NR_([A-Za-z_]\w*)\s+(0[xX][0-9a-fA-F]+|\d+)\Z")


class SyscallsFileError(MachineError):
    """A vprobe.syscalls file that cannot be read as one."""


def parse_syscalls(text: str, name: str = "<syscalls>") -> dict[int, str]:
    """The names a vprobe.syscalls text gives (see the module's description).

    Raises SyscallsFileError naming the file and line of the first line that is neither.
    """
    names: dict[int, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        define = _DEFINE.match(line)
        if define is not None:
            names[int(define.group(2), 0)] = define.group(1)
            continue
        if line.startswith("#"):
            continue
        pair = _PAIR.match(line)
        if pair is None:
            raise SyscallsFileError(f"{name}:{number}: expected NUMBER NAME (or #define __NR_NAME NUMBER), "
                                    f"not {line[:60]!r}")
        names[int(pair.group(1), 0)] = pair.group(2)
    return names


def read_syscalls_file(path: Path | str) -> dict[int, str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise SyscallsFileError(f"cannot read the system call names {path}: {e.strerror or e}") from None
    return parse_syscalls(text, str(path))


def handler_name(symbol: str | None) -> str | None:
    """The system call a handler's symbol names (`__x64_sys_read` -> `read`); None for another symbol."""
    if symbol is None:
        return None
    m = _HANDLER.match(symbol)
    return m.group(1) if m is not None else None


def kernel_syscalls(read: Callable[[int, int], bytes | None], symbols: dict[str, int], *,
                    relocation: int = 0) -> dict[int, str]:
    """A kernel's own names: its `sys_call_table` read an entry at a time with `read(address, 8)`
    (None where memory cannot be read), each entry the address of a handler named in `symbols`
    once `relocation` is added (a table read from the kernel's image holds the addresses it was
    linked at, the symbols are where the booted kernel put them).  The table ends at the first
    entry that is no system call's handler (its length is written nowhere the tools can read).
    Empty without the table."""
    table_at = symbols.get(TABLE_SYMBOL)
    if table_at is None:
        return {}
    handlers: dict[int, str] = {}
    for symbol, address in symbols.items():
        name = handler_name(symbol)
        if name is not None:
            handlers.setdefault(address, name)
    names: dict[int, str] = {}
    for number in range(MAX_SYSCALLS):
        word = read(table_at + 8 * number, 8)
        if word is None or len(word) != 8:
            break
        name = handlers.get((struct.unpack("<Q", word)[0] + relocation) & MASK64)
        if name is None:
            break
        if name != _NO_CALL:
            names[number] = name
    return names


def service_table_syscalls(read: Callable[[int, int], bytes | None], symbols: dict[str, int]) -> dict[int, str]:
    """A 64-bit Windows kernel's own names: the service table `nt!KeServiceDescriptorTable` describes
    (its base, then its counter table, then its number of services), each entry the offset of its
    handler from the table shifted left by 4 (the low bits count arguments on the stack), resolved
    through `symbols` (`nt!NtReadFile` -> `NtReadFile`).  Entries pointing at no symbol have no
    name.  Empty without the descriptor."""
    descriptor_at = symbols.get(SERVICE_DESCRIPTOR_SYMBOL)
    descriptor = read(descriptor_at, 24) if descriptor_at is not None else None
    if descriptor is None or len(descriptor) != 24:
        return {}
    table, _counters, count = struct.unpack("<QQQ", descriptor)
    entries = read(table, 4 * min(count, MAX_SYSCALLS)) if count else b""
    if not entries:
        return {}
    by_address = {address: symbol.partition("!")[2] or symbol for symbol, address in symbols.items()}
    names: dict[int, str] = {}
    for number, (entry,) in enumerate(struct.iter_unpack("<i", entries)):
        name = by_address.get((table + (entry >> 4)) & MASK64) if entry else None
        if name is not None:
            names[number] = name
    return names
