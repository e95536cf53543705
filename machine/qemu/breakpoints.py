"""Where a QEMU VM stops for a probe: breakpoints, call sites and watchpoints.

A probe on a kernel address becomes a call site where it can (the address is
a traceable function's ftrace site, call sites are on, and the KASLR slide is
known: `callsites.py` patches the site into a call to a trampoline that a
read watchpoint stops), else a gdbstub breakpoint.  Loaded before the kernel
has made the site its nop (at reset), a probe starts as a breakpoint and
becomes a call site at a later hit.  After a breakpoint's handlers run, the
VCPU gets past the instruction under it: a no-op (the 5-byte `nopl` of an
ftrace site, `endbr64`, any `nop`) is "executed" by moving RIP, which costs
QEMU no translation-cache flush; anything else is single-stepped.
`GUEST_READ:`/`GUEST_WRITE:` are one-byte watchpoints, which QEMU reports
after the access, so the VM simply continues.

A call site's stop is checked against the VCPU's registers before it fires.
QEMU 7.2 reports one watchpoint hit per stop: when two VCPUs hit watchpoints
at once, the other VCPU's hit stays recorded in QEMU and is reported at that
VCPU's next access to a watched page, wherever it is by then -- typically in
another call site's trampoline.  So the site is the one whose trampoline
leaves RIP where it is (for detours, which share their callee, the one whose
return address is on the stack); a stop that matches none fires nothing.
With a single call site there is nothing to confuse it with (the kept hit
is reported at that VCPU's next pass through the same trampoline), so its
stops fire without that check, and a counting probe costs no register read.
"""

from __future__ import annotations

import time
from typing import Callable

from vp_runtime import ProbeSpec, spec

from vp_runtime.spec import MASK64

from .callsites import NOP5, CallSites, call_target
from .guest_info import user_page_tables
from .kernel import KERNEL_SPACE
from .reads import Vcpu
from .rsp import StubError

Action = Callable[[Vcpu], None]
Handler = Callable[[], None]
READ_WATCH, WRITE_WATCH = 3, 2  # gdb Z types
# Watchpoint types (gdb's Z2 / Z3) of the guest-address probes that watch data.
_WATCH_TYPES = {spec.WRITE: WRITE_WATCH, spec.READ: READ_WATCH}
_STOPPED_BY = {"watch": WRITE_WATCH, "rwatch": READ_WATCH, "awatch": 4}  # a stop reply's watchpoint kinds
UPGRADE_RETRY_S = 1.0


class Breakpoint:
    __slots__ = ("address", "actions", "skip", "pending", "retry_at")

    def __init__(self, address: int):
        self.address = address
        self.actions: list[Action] = []
        self.skip = 0  # length of a no-op to move past instead of stepping; 0: step
        self.pending = False  # a breakpoint for now, a call site once the guest's ftrace site is ready
        self.retry_at = 0.0


class Breakpoints:
    """The stops `machine`'s probes are set on, and what a stop at one of them fires."""

    def __init__(self, machine):
        self.m = machine
        self.by_address: dict[int, Breakpoint] = {}
        self.called: dict[int, Breakpoint] = {}  # trampoline -> the patched site's probe
        self.stopped_at: dict[int, list[Breakpoint]] = {}  # RIP at a call site's stop -> its sites
        self.watched: dict[tuple[int, int], Handler] = {}  # (gdb Z type, address) -> handler
        self._call_sites: CallSites | None = None  # kept for the VM's life: trampolines stay bound

    def add(self, address: int, action: Action, *, call_site: bool = False) -> None:
        """Fire `action` when a VCPU reaches `address`: through a patched ftrace site when `call_site`
        allows and the site is one, else a gdbstub breakpoint."""
        m = self.m
        bp = self.by_address.get(address)
        if bp is None:
            bp = Breakpoint(address)
            patch = call_site and m.call_sites_enabled and m.slide_known
            trampoline = self._sites().install(address) if patch else None
            if trampoline is not None:
                self._watch_call_site(bp)
            else:
                # Loaded before the kernel has run (or patched its ftrace sites), a site can become one later.
                bp.pending = patch
                bp.skip = m.noop_at(address)
                m.stub.insert_breakpoint(address)
            self.by_address[address] = bp
        bp.actions.append(action)

    def remove(self, address: int, action: Action) -> None:
        """Stop firing `action` at `address`; a breakpoint with no action left goes (the VCPU that
        stopped at it still gets past its instruction)."""
        bp = self.by_address.get(address)
        if bp is None or action not in bp.actions:
            return
        bp.actions.remove(action)
        if not bp.actions and address in self.m.stub.breakpoints:
            self.m.stub.remove_breakpoint(address)
            del self.by_address[address]

    def always_step(self, address: int) -> None:
        """The instruction at `address` is never a no-op to move past (a `mov cr3`): step it."""
        self.by_address[address].skip = 0

    def watch(self, point: ProbeSpec, address: int, handler: Handler) -> None:
        ztype = _WATCH_TYPES[point.parametric.fires]
        self.m.stub.insert_watchpoint(ztype, address, 1)
        self.watched[(ztype, address)] = handler

    def trampoline(self, address: int) -> int | None:
        """The trampoline a probe at `address` calls, or None when it is a breakpoint (or not set)."""
        return self._call_sites.trampoline(address) if self._call_sites is not None else None

    def _sites(self) -> CallSites:
        """The VM's call sites, reading and writing guest memory through the VCPU that stopped last."""
        if self._call_sites is None:
            m = self.m
            kernel, stub = m.kernel, m.stub

            def read(addr: int, size: int) -> bytes:
                try:
                    return stub.read_memory(m.current.thread, addr, size)
                except StubError:
                    return b""

            def write(addr: int, data: bytes) -> None:
                stub.write_memory(m.current.thread, addr, data)

            symbols = kernel.symbols
            text = (symbols.get("_stext", KERNEL_SPACE), symbols.get("_etext", KERNEL_SPACE))
            entry_text = (symbols.get("__entry_text_start", 0), symbols.get("__entry_text_end", 0))
            unreachable = entry_text if user_page_tables(m) else None
            self._call_sites = CallSites(read, write, kernel.read_image, kernel.functions(),
                                         symbols.get("__fentry__"), text, unreachable)
        return self._call_sites

    def _upgrade(self, bp: Breakpoint) -> bool:
        """At a breakpoint hit (so in the guest's kernel): turn `bp` into a call site if its site is
        ready now; a site that is not is looked at again a second later."""
        now = time.monotonic()
        if now < bp.retry_at:
            return False
        bp.retry_at = now + UPGRADE_RETRY_S
        if self._sites().install(bp.address) is None:
            return False
        self.m.stub.remove_breakpoint(bp.address)
        self._watch_call_site(bp)
        bp.pending = False
        return True

    def _watch_call_site(self, bp: Breakpoint) -> None:
        watched = self._call_sites.watched(bp.address)
        self.m.stub.insert_watchpoint(READ_WATCH, watched, 1)
        self.called[watched] = bp
        self.stopped_at.setdefault(self._call_sites.stopped_rip(bp.address), []).append(bp)

    def _site_stopped(self, vcpu: Vcpu) -> Breakpoint | None:
        """The call site whose trampoline `vcpu` is really stopped in (see the module's docstring), or
        None: its RIP, and for a detour the return address its call pushed."""
        m = self.m
        stub = m.stub
        block = vcpu.block or m.reads.fetch_registers(vcpu)
        sites = self.stopped_at.get(stub.register(block, "rip"))
        if not sites:
            return None
        if not self._call_sites.is_detour(sites[0].address):
            return sites[0]  # RIP is just after that trampoline's push: one site has it
        try:
            pushed = stub.read_memory(vcpu.thread, stub.register(block, "rsp"), 8)
        except StubError:
            return None
        returns_to = int.from_bytes(pushed, "little")
        return next((bp for bp in sites if returns_to == bp.address + len(self._call_sites.original(bp.address))),
                    None)

    # ---- stops -------------------------------------------------------------------------------

    def watch_stop(self, vcpu: Vcpu, kind: str, address: int) -> None:
        """A watchpoint stopped the VM: a call site's trampoline, or a GUEST_READ/GUEST_WRITE probe."""
        ztype = _STOPPED_BY[kind]
        called = self.called.get(address) if ztype == READ_WATCH else None
        if called is not None:
            if len(self.called) > 1:  # one call site cannot be taken for another: no register read
                called = self._site_stopped(vcpu)
                if called is None:  # a hit QEMU kept from an earlier stop: the VCPU is at no trampoline now
                    return
            # Fire as at the site (RIP there, RSP as it was).  The VCPU is seen so until the VM
            # runs again (a timer served at this stop sees it there too).
            vcpu.over = {"RIP": called.address}
            vcpu.rsp_bias = self._call_sites.stack_bias(called.address)
            for action in called.actions:
                action(vcpu)
            return
        handler = self.watched.get((ztype, address))
        if handler is not None:
            self.m.fire(vcpu, handler)

    def breakpoint_stop(self, vcpu: Vcpu) -> bool:
        """A VCPU stopped on a breakpoint: fire what is there and get past the instruction.
        True if the VM was resumed already."""
        m = self.m
        stub = m.stub
        rip = stub.register(m.reads.fetch_registers(vcpu), "rip")
        bp = self.by_address.get(rip)
        if bp is None or rip not in stub.breakpoints:  # not ours, or a call site by now
            return False
        for action in list(bp.actions):  # an action may remove itself (a return probe's one-shot)
            action(vcpu)
        if bp.pending and bp.actions and self._upgrade(bp):
            # The site now calls its trampoline; this pass has fired already.  The nop the call
            # replaced does nothing: continue after it.  A detoured call is made as it was written:
            # its return address pushed, on to its callee.
            original = self._call_sites.original(rip)
            target = call_target(original, rip)
            if target is None:
                stub.write_register(vcpu.thread, "rip", rip + len(NOP5))
                return False
            rsp = (stub.register(m.reads.fetch_registers(vcpu), "rsp") - 8) & MASK64
            stub.write_memory(vcpu.thread, rsp, (rip + len(original)).to_bytes(8, "little"))
            stub.write_register(vcpu.thread, "rsp", rsp)
            stub.write_register(vcpu.thread, "rip", target)
            m.reads.invalidate()
            return False
        # Get past the instruction under the breakpoint: "execute" a no-op by moving RIP
        # (pipelined with the continue when no timer is due), else single-step it.
        if bp.skip:
            if m.dispatch.timer_due():
                stub.write_register(vcpu.thread, "rip", rip + bp.skip)
                return False
            m.reads.invalidate()
            stub.set_register_and_continue(vcpu.thread, "rip", rip + bp.skip)
            return True
        step = stub.step(vcpu.thread)
        m.reads.invalidate()
        m.check_exit(step)
        return False

    # ---- detaching ---------------------------------------------------------------------------

    def remove_all(self) -> None:
        """Give the guest its code back (call sites' nops) and remove every breakpoint and watchpoint."""
        try:
            if self._call_sites is not None:
                self._call_sites.restore()
        finally:
            self.m.stub.remove_all()

    def forget(self) -> None:
        self.by_address.clear()
        self.called.clear()
        self.stopped_at.clear()
        self.watched.clear()
