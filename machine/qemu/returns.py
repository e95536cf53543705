"""Return probes (`GUEST:EXIT:function`) on a QEMU VM.

At the function's first instruction (a call site or a breakpoint, as any
`GUEST:` probe) the return address is the word at RSP.  A breakpoint there,
waiting for the stack pointer the return leaves (RSP + 8), fires the probe
when this call returns -- not when a deeper or an older activation returns
through the same address -- with ARG0 (and RAX) the return value.  The
breakpoint goes when no call is waiting at it any more.  A call that never
returns (a task that exits) is forgotten after `MAX_WAITING` newer ones.
"""

from __future__ import annotations

from vp_runtime import GuestMemoryFault, spec

from .breakpoints import Action, Handler
from .reads import Vcpu

MAX_WAITING = 4096  # calls waiting at one return address (older ones are forgotten)


class Returns:
    def __init__(self, machine):
        self.m = machine
        # return address -> (the RSP its return leaves, the probe to fire) of each call waiting there
        self.waiting: dict[int, list[tuple[int, Handler]]] = {}
        self._actions: dict[int, Action] = {}

    def attach(self, entry: int, handler: Handler) -> None:
        """Fire `handler` each time the function at `entry` returns."""
        m = self.m
        read_rsp = m.reads.global_reader("RSP")

        def at_entry(vcpu: Vcpu) -> None:
            m.current = vcpu
            rsp = read_rsp()
            try:
                back = int.from_bytes(m.read_linear(rsp, 8), "little")
            except GuestMemoryFault:
                return
            self._wait(back, (rsp + 8) & spec.MASK64, handler)
        m.breakpoints.add(entry, at_entry, call_site=True)

    def _wait(self, address: int, rsp: int, handler: Handler) -> None:
        calls = self.waiting.setdefault(address, [])
        if not calls:
            action = self._actions[address] = self._at_return(address)
            self.m.breakpoints.add(address, action)
        calls.append((rsp, handler))
        del calls[:-MAX_WAITING]

    def _at_return(self, address: int) -> Action:
        m = self.m
        read_rsp = m.reads.global_reader("RSP")
        read_rax = m.reads.global_reader("RAX")

        def at_return(vcpu: Vcpu) -> None:
            m.current = vcpu
            rsp = read_rsp()
            calls = self.waiting.get(address, [])
            returned = [c for c in calls if c[0] == rsp]
            if not returned:
                return  # another activation, or an unrelated pass through this address
            for call in returned:
                calls.remove(call)
            value = read_rax()
            for _, handler in returned:
                m.args[:] = [value] + [0] * (spec.PROBE_ARGS - 1)
                m.fire(vcpu, handler)
            if not calls:
                del self.waiting[address]
                m.breakpoints.remove(address, self._actions.pop(address))
        return at_return

    def forget(self) -> None:
        self.waiting.clear()
        self._actions.clear()
