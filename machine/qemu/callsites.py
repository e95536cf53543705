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
VCPU interrupted inside it must be able to finish it -- and serves the same
site's next probe.  A site that a lost connection left patched is recognised
by the trampoline its call reaches, and taken over with a new trampoline.

The same trick serves a direct 5-byte `call target` anywhere in kernel text
(the `call error_entry` of the kernel's exception and interrupt entry stubs,
say): the site becomes `call TRAMPOLINE`, which pushes the same return
address the original call did, and the trampoline (a "detour", 14 bytes)
jumps on to the original target through a pointer stored right after it::

    jmp  qword [rip + 0]
    dq   target

The read watchpoint is on that pointer, so the VM stops once the jump is
made: RIP is the target, RSP the site's RSP minus 8 (the return address),
every other register the site's; the callee sees exactly the stack it would
have seen.  Only one instruction is replaced, as at an ftrace site, so no
VCPU can be caught half-way through the patched bytes.  Code that runs on
the user's page tables under PTI (the entry text, before the switch to the
kernel's CR3) cannot reach trampolines in ordinary kernel text; such sites
stay breakpoints (`unreachable`).

While a site is patched, the guest's own ftrace cannot trace that function
(it finds our call where it expects its nop and gives up, with a warning).
Any other read of a trampoline's first byte by the guest would look like a
firing; nothing in the kernel reads its own padding.
"""

from __future__ import annotations

from typing import Callable, Iterator

import capstone

__all__ = ["CallSites", "DETOUR_BIAS", "DETOUR_SIZE", "NOP5", "STACK_BIAS", "TRAMPOLINE", "call_target",
           "call_to", "detour", "is_ftrace_call", "padding_slot"]

NOP5 = bytes.fromhex("0f1f440000")  # what the kernel leaves at an untraced ftrace site
TRAMPOLINE = bytes.fromhex("ff35faffffff" "488d642408" "c3")  # push [rip-6]; lea rsp,[rsp+8]; ret
TRAMPOLINE_PUSH = 6  # the length of its `push`, after which the watchpoint stops the VM
STACK_BIAS = 16  # the site's RSP minus RSP at the stop
DETOUR_JUMP = bytes.fromhex("ff2500000000")  # jmp qword ptr [rip + 0]: through the 8 bytes after it
DETOUR_SIZE = len(DETOUR_JUMP) + 8
DETOUR_BIAS = 8  # a detour stops after its jump: only the return address is pushed

_TERMINATORS = frozenset({"ret", "jmp", "ud2", "int3", "ljmp", "iretq", "sysretq"})
_PADDING = frozenset({"nop", "int3"})
_DECODER = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
_MAX_FUNCTION = 65536  # longer "functions" are gaps between sections, not code to decode

ReadMemory = Callable[[int, int], bytes]
WriteMemory = Callable[[int, bytes], None]


def call_to(site: int, target: int) -> bytes:
    """The 5-byte `call target` placed at `site`."""
    return b"\xe8" + ((target - (site + 5)) & 0xFFFFFFFF).to_bytes(4, "little")


def detour(target: int) -> bytes:
    """The trampoline a patched `call target` calls: a jump to `target` through the pointer after it
    (whose read stops the VM), with the original return address on the stack."""
    return DETOUR_JUMP + target.to_bytes(8, "little")


def call_target(code: bytes, site: int) -> int | None:
    """Where the 5-byte `call rel32` in `code` (the bytes at `site`) goes; None if it is not one."""
    if len(code) < 5 or code[0] != 0xE8:
        return None
    return site + 5 + int.from_bytes(code[1:5], "little", signed=True)


def is_ftrace_call(code: bytes, site: int, fentry: int) -> bool:
    """Whether `code` (the kernel image's bytes at `site`) is the build's `call __fentry__`."""
    return call_target(code, site) == fentry


def padding_slot(code: bytes, start: int, size: int = len(TRAMPOLINE)) -> int | None:
    """Where a trampoline fits in one function's bytes (its symbol to the next one's), or None.

    The slot is the run of nops and int3s after the function's last real
    instruction, which must be one that never falls through (ret, jmp, ud2...);
    the bytes must decode to the very end, or the function is not plain code.
    """
    end = start + len(code)
    last = None
    pad = None
    reached = start
    for address, length, mnemonic, _ in _DECODER.disasm_lite(code, start):
        if mnemonic in _PADDING and last is not None and (pad is not None or last in _TERMINATORS):
            if pad is None:
                pad = address
        else:
            last, pad = mnemonic, None
        reached = address + length
    if reached != end or pad is None or end - pad < size:
        return None
    return pad


class CallSites:
    """One VM's patched sites (ftrace nops and detoured calls) and the trampolines in its kernel's padding.

    `read(addr, size)` and `write(addr, data)` reach guest memory (the VM
    stopped; `read` returns fewer bytes, or none, where memory is not
    mapped); `image_read(addr, size)` reads the kernel image at a guest
    address (None without an image); `functions` lists (name, start) of the
    kernel's text in address order; `fentry` is `__fentry__`'s address;
    `text` the kernel text's bounds; `unreachable` a range (start, end) whose
    code cannot reach a trampoline (the entry text under PTI), or None.

    A trampoline, once written, belongs to one site for the VM's life: a task
    preempted between the site's call and the trampoline's push may resume
    there much later, and must still be counted as a firing of that site.
    """

    def __init__(self, read: ReadMemory, write: WriteMemory, image_read: Callable[[int, int], bytes | None],
                 functions: list[tuple[str, int]], fentry: int | None, text: tuple[int, int],
                 unreachable: tuple[int, int] | None = None):
        self._read = read
        self._write = write
        self._image_read = image_read
        self._functions = functions
        self._starts = {start for _, start in functions}
        self._fentry = fentry
        self._text = text
        self._unreachable = unreachable
        self._trampolines: dict[int, int] = {}  # site -> its trampoline (written, kept)
        self._originals: dict[int, bytes] = {}  # site -> the bytes it had before it was patched
        self.patched: set[int] = set()  # sites that call their trampoline now
        self._slots: Iterator[tuple[int, int]] | None = None
        self._spare: list[tuple[int, int]] = []  # slots passed over as too small for a detour

    def trampoline(self, site: int) -> int | None:
        """The trampoline `site` calls now, or None."""
        return self._trampolines[site] if site in self.patched else None

    def watched(self, site: int) -> int:
        """The byte of patched `site`'s trampoline whose read stops the VM."""
        return self._trampolines[site] + (len(DETOUR_JUMP) if self._is_detour(site) else 0)

    def stopped_rip(self, site: int) -> int:
        """RIP of a VCPU that patched `site`'s trampoline has stopped: just after the trampoline's push, or
        (a detour) the original call's target."""
        if self._is_detour(site):
            return call_target(self._originals[site], site)
        return self._trampolines[site] + TRAMPOLINE_PUSH

    def is_detour(self, site: int) -> bool:
        return self._is_detour(site)

    def stack_bias(self, site: int) -> int:
        """The site's RSP minus RSP when its trampoline stops the VM."""
        return DETOUR_BIAS if self._is_detour(site) else STACK_BIAS

    def _is_detour(self, site: int) -> bool:
        return self._originals[site] != NOP5

    def original(self, site: int) -> bytes:
        """The bytes a patched `site` had before: an ftrace site's nop, or a detoured call."""
        return self._originals[site]

    def eligible(self, site: int) -> bool:
        """Whether `site` can be patched (see `_plan`)."""
        return self._plan(site) is not None

    def _plan(self, site: int) -> tuple[bytes, bytes] | None:
        """(the site's bytes to put back, its trampoline's code at address 0 for now) -- or None.

        An untraced ftrace site: a call to __fentry__ in the image, a nop in the guest.  A direct call
        to the start of a kernel function, the same in the image and the guest.  Either may instead
        be a call into one of our trampolines that a lost connection left behind."""
        low, high = self._text
        if not low <= site < high:
            return None
        if self._unreachable is not None and self._unreachable[0] <= site < self._unreachable[1]:
            return None
        built = self._image_read(site, 5)
        if built is None or len(built) < 5:
            return None
        current = self._read(site, 5)
        if self._fentry is not None and is_ftrace_call(built, site, self._fentry):
            original, code = NOP5, TRAMPOLINE
        else:
            target = call_target(built, site)
            if target is None or target not in self._starts:
                return None
            original, code = built, None
        if current == original:
            return original, code
        left = call_target(current, site)
        if left is None:
            return None
        expected = code if code is not None else detour(call_target(built, site))
        return (original, code) if self._read(left, len(expected)) == expected else None

    def install(self, site: int) -> int | None:
        """Make `site` call its trampoline; the trampoline's address (watch it), or None if `site`
        cannot be patched (the caller sets a breakpoint instead)."""
        if site in self.patched:
            return self._trampolines[site]
        plan = self._plan(site)
        if plan is None:
            return None
        original, code = plan
        trampoline = self._trampolines.get(site)
        if trampoline is None:
            trampoline = self._take_slot(len(code) if code is not None else DETOUR_SIZE)
            if trampoline is None:
                return None
            self._write(trampoline, code if code is not None else detour(call_target(original, site)))
            self._trampolines[site] = trampoline
        self._originals[site] = original
        self._write(site, call_to(site, trampoline))
        self.patched.add(site)
        return trampoline

    def release(self, site: int) -> None:
        """Put `site`'s own bytes back, unless the guest has rewritten the site since (its ftrace, say)."""
        if self._read(site, 5) == call_to(site, self._trampolines[site]):
            self._write(site, self._originals[site])
        self.patched.discard(site)

    def restore(self) -> None:
        """Put every patched site back, as far as the guest can be reached (the first failure is raised
        after trying the others)."""
        failure: BaseException | None = None
        for site in sorted(self.patched):
            try:
                self.release(site)
            except Exception as e:
                failure = failure or e
        if failure is not None:
            raise failure

    def _take_slot(self, size: int) -> int | None:
        """The next free padding slot of at least `size` bytes (smaller ones are kept for later)."""
        for i, (slot, room) in enumerate(self._spare):
            if room >= size:
                del self._spare[i]
                return slot
        if self._slots is None:
            self._slots = self._find_slots()
        for slot, room in self._slots:
            if room >= size:
                return slot
            self._spare.append((slot, room))
        return None

    def _find_slots(self) -> Iterator[tuple[int, int]]:
        """(address, size) of padding after compiler-built functions (they start with `call __fentry__`)
        whose guest bytes, from the padding to the next symbol, are still the image's."""
        functions = self._functions
        low, high = self._text
        for (_, start), (_, end) in zip(functions, functions[1:]):
            if not low <= start < end <= high or end - start > _MAX_FUNCTION:
                continue
            code = self._image_read(start, end - start)
            if not code or not is_ftrace_call(code, start, self._fentry):
                continue
            slot = padding_slot(code, start, len(TRAMPOLINE))
            if slot is not None and self._read(slot, end - slot) == code[slot - start:]:
                yield slot, end - slot
