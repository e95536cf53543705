"""The guest helper library (curpid, curprocname, curtid, curppid) for VP scripts.

The reference leaves these functions to "user-defined, guest-specific"
code.  `vprobe` adds the VM's own library (`machine.guest_library_vp()`:
the simulated guest's linux64.vp, or one generated from a real kernel's BTF
for a QEMU VM; see `sources.machine_library`) to a VP script that calls them
without defining them, so the reference's samples (vptop, the IRQ samples)
run as printed.  The library goes after the script, so the script's line
numbers are unchanged.
"""

from __future__ import annotations

from vp_runtime.errors import VPLoadError
from vp_runtime.reader import List, Source, Sym, read

HELPERS = frozenset({"curpid", "curprocname", "curtid", "curppid"})


def defined_and_called(text: bytes | str) -> tuple[set[str], set[str]]:
    """The functions `text` defines, and every name in it that heads a form (calls, keywords)."""
    defined: set[str] = set()
    called: set[str] = set()
    try:
        forms = read(Source(text))
    except VPLoadError:
        return defined, called  # the load itself will report it
    stack = list(forms)
    while stack:
        node = stack.pop()
        if isinstance(node, List) and node.items:
            head = node.items[0]
            if isinstance(head, Sym):
                if head.name == "defun" and len(node.items) > 1 and isinstance(node.items[1], Sym):
                    defined.add(node.items[1].name)
                called.add(head.name)
            stack.extend(node.items)
    return defined, called


def library_needed(text: bytes) -> bool:
    """Whether `text` calls a helper it does not define (and defines none of them itself)."""
    defined, called = defined_and_called(text)
    return bool((called & HELPERS) - defined) and not defined & HELPERS


def with_guest_library(text: bytes, library: bytes) -> bytes:
    """`text`, followed by `library` (a VM's guest library) if it calls a helper it does not define."""
    if not library_needed(text):
        return text
    return text + b"\n" + library
