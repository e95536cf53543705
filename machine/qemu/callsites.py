"""`GUEST:` probes at ftrace sites: a call into a trampoline that a read watchpoint stops.

Why not a breakpoint: QEMU's gdbstub (7.2, as Debian 12 ships it) flushes
the whole TCG translation cache on every breakpoint stop, so after each hit
the guest re-translates all the code it runs and a busy breakpoint probe is
served only a few hundred times a second.  Watchpoint stops skip that flush.

Every traceable kernel function starts with a 5-byte `call __fentry__` that
the kernel turns into a 5-byte nop at boot, and that ftrace itself turns back
into a call when it traces the function.  For a probe on such a site the
backend does what ftrace does: it writes `call TRAMPOLINE` over the nop.  The
trampoline lives in the alignment padding after a kernel function whose last
instruction never falls through (so the padding is never executed), and is
12 bytes that change no register and no flag::

    push qword [rip - 6]     ; reads the trampoline's own first 8 bytes
    lea  rsp, [rsp + 8]
    ret

A read watchpoint on its first byte stops the VM right after the `push`
(QEMU reports watchpoints after the access): RIP is TRAMPOLINE + 6, RSP is
the site's RSP minus 16 (the return address and the pushed word), and every
other register is what it was at the site.  Continuing runs `lea` and `ret`
back to the instruction after the site.

Unloading writes the nop back.  The trampoline stays in the padding -- a
VCPU interrupted inside it must be able to finish it -- and serves the next
probe.  A site that a lost connection left patched is recognised by the
trampoline its call reaches, and taken over; such trampolines are not reused.
"""

from __future__ import annotations

from typing import Callable, Iterator

import capstone

__all__ = ["CallSites", "NOP5", "STACK_BIAS", "TRAMPOLINE", "call_to", "is_ftrace_call",
           "padding_slot"]

NOP5 = bytes.fromhex("0f1f440000")  # what the kernel leaves at an untraced ftrace site
TRAMPOLINE = bytes.fromhex("ff35faffffff" "488d642408" "c3")  # push [rip-6]; lea rsp,[rsp+8]; ret
STACK_BIAS = 16  # the site's RSP minus RSP at the stop

_TERMINATORS = frozenset({"ret", "jmp", "ud2", "int3", "ljmp", "iretq", "sysretq"})
_PADDING = frozenset({"nop", "int3"})
_DECODER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_MAX_FUNCTION = 65536  # longer "functions" are gaps between sections, not code to decode

ReadMemory = Callable[[int, int], bytes]
WriteMemory = Callable[[int, bytes], None]


def call_to(site: int, target: int) -> bytes:
    """The 5-byte `call target` placed at `site`."""
    return b"\xe8" + ((target - (site + 5)) & 0xFFFFFFFF).to_bytes(4, "little")


def is_ftrace_call(code: bytes, site: int, fentry: int) -> bool:
    """Whether `code` (the kernel image's bytes at `site`) is the build's `call __fentry__`."""
    if len(code) < 5 or code[0] != 0xE8:
        return False
    return site + 5 + int.from_bytes(code[1:5], "little", signed=True) == fentry


def padding_slot(code: bytes, start: int) -> int | None:
    """Where a trampoline fits in one function's bytes (its symbol to the next one's), or None.

    The slot is the run of nops and int3s after the function's last real
    instruction, which must be one that never falls through (ret, jmp, ud2...);
    the bytes must decode to the very end, or the function is not plain code.
    """
    end = start + len(code)
    last = None
    pad = None
    reached = start
    for address, size, mnemonic, _ in _DECODER.disasm_lite(code, start):
        if mnemonic in _PADDING and last is not None and (pad is not None or last in _TERMINATORS):
            if pad is None:
                pad = address
        else:
            last, pad = mnemonic, None
        reached = address + size
    if reached != end or pad is None or end - pad < len(TRAMPOLINE):
        return None
    return pad


class CallSites:
    """One VM's patched ftrace sites and the trampolines in its kernel's padding.

    `read(addr, size)` and `write(addr, data)` reach guest memory (the VM
    stopped); `image_read(addr, size)` reads the kernel image at a guest
    address (None without an image); `functions` lists (name, start) of the
    kernel's text in address order; `fentry` is `__fentry__`'s address.
    """

    def __init__(self, read: ReadMemory, write: WriteMemory, image_read: Callable[[int, int], bytes | None],
                 functions: list[tuple[str, int]], fentry: int | None, text: tuple[int, int]):
        self._read = read
        self._write = write
        self._image_read = image_read
        self._functions = functions
        self._fentry = fentry
        self._text = text
        self.patched: dict[int, tuple[int, bytes]] = {}  # site -> (trampoline, the site's own bytes)
        self._free: list[int] = []  # trampolines written and not in use
        self._slots: Iterator[int] | None = None

    def eligible(self, site: int) -> bool:
        """Whether `site` is an untraced ftrace site: a call to __fentry__ in the image, a nop in the guest."""
        if self._fentry is None or not self._text[0] <= site < self._text[1]:
            return False
        built = self._image_read(site, 5)
        if built is None or not is_ftrace_call(built, site, self._fentry):
            return False
        current = self._read(site, 5)
        if current == NOP5:
            return True
        # Left patched by an earlier connection: a call into one of our trampolines.
        return current[0] == 0xE8 and self._read(site + 5 + int.from_bytes(current[1:5], "little", signed=True),
                                                 len(TRAMPOLINE)) == TRAMPOLINE

    def install(self, site: int) -> int | None:
        """Make `site` call a trampoline; its address (watch it), or None if `site` cannot be patched."""
        if site in self.patched:
            return self.patched[site][0]
        if not self.eligible(site):
            return None
        trampoline = self._free.pop() if self._free else self._new_trampoline()
        if trampoline is None:
            return None
        self._write(site, call_to(site, trampoline))
        self.patched[site] = (trampoline, NOP5)
        return trampoline

    def release(self, site: int) -> None:
        """Put `site` back as it was; its trampoline stays for the next probe."""
        trampoline, original = self.patched.pop(site)
        self._write(site, original)
        self._free.append(trampoline)

    def restore(self) -> None:
        """Put every patched site back."""
        for site in list(self.patched):
            self.release(site)

    def _new_trampoline(self) -> int | None:
        if self._slots is None:
            self._slots = self._find_slots()
        for slot in self._slots:
            self._write(slot, TRAMPOLINE)
            return slot
        return None

    def _find_slots(self) -> Iterator[int]:
        """Padding slots in kernel text whose guest bytes are still the image's."""
        functions = self._functions
        low, high = self._text
        for (_, start), (_, end) in zip(functions, functions[1:]):
            if not low <= start < end <= high or end - start > _MAX_FUNCTION:
                continue
            code = self._image_read(start, end - start)
            if not code:
                continue
            slot = padding_slot(code, start)
            if slot is None:
                continue
            if self._read(slot, len(TRAMPOLINE)) == code[slot - start:slot - start + len(TRAMPOLINE)]:
                yield slot
