"""The only view of a machine the runtime has: the `Backend` protocol.

A backend is whatever produces events: the simulated machine, or a real VM
reached through a debugger stub.  The runtime asks it, at load time, what it
offers (probe points and globals) and for fast accessor callables; while a
probe fires it reads registers, memory and symbols through it.  How events
are produced is the backend's business alone.

A backend may also define `symbol_refusal(name) -> str | None` (not part of
the protocol: most have no use for it): why a script may not name guest
symbol `name` at all, asked at load for every constant symbol name a builtin
takes; a refused name is a load error at its place in the script.

`CatalogBackend` offers every global of the language but cannot run anything;
it lets a script be checked without a machine.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from .probe_points import ProbeSpec
from .spec import GLOBALS, STR, GlobalInfo
from .errors import GuestMemoryFault, UnknownSymbolFault

Value = int | str
# Where a machine keeps a built-in global's value: attribute names from an object, then a key
# of the last one (or None): `(("current", "regs"), "RIP")` is `obj.current.regs["RIP"]`.
GlobalPath = tuple[tuple[str, ...], str | int | None]


@runtime_checkable
class Backend(Protocol):
    def globals(self) -> dict[str, GlobalInfo]:
        """The built-in globals this machine offers, by name."""

    def check_probe(self, spec: ProbeSpec) -> str | None:
        """None if this machine can fire `spec`, else why not (a sentence)."""

    def global_reader(self, name: str) -> Callable[[], Value]:
        """A zero-argument callable that reads `name` for the firing VCPU.

        Called once per global per load; the callable runs on the hot path.
        """

    def read_linear(self, addr: int, size: int) -> bytes:
        """`size` bytes at guest linear `addr` through the firing VCPU's page
        tables; raises GuestMemoryFault if any byte is unmapped."""

    def read_physical(self, addr: int, size: int) -> bytes:
        """`size` bytes of guest physical memory; raises GuestMemoryFault."""

    def lookup_symbol(self, name: str) -> int | None:
        """The address of guest symbol `name`, or None."""

    def stack_frames(self, max_frames: int) -> list[int]:
        """Return addresses of the firing VCPU's guest stack, innermost first,
        from a frame-pointer walk (the current RIP first)."""

    def host_time_us(self) -> int:
        """Host time in microseconds (the simulated host's, on a simulated machine)."""

    # A machine may also offer (the builtins that use them fault without):
    #   read_msr(number) -> int, read_pmc(number) -> int: the firing VCPU's MSR or performance
    #     counter, raising VPFault for one it does not have (readmsr, readpmc);
    #   memory_mb() -> int: the VM's memory size (getmeminfo);
    #   check_builtin(name) -> str | None: why a builtin cannot run on it at all (refused at load);
    #   global_refusal(name) -> str | None: why it does not offer a built-in global of the spec;
    #   global_path(name) -> (obj, attributes, key) | None: where the firing VCPU's value of
    #     `name` always is (a `GlobalPath` from `obj`), for the translated code to read it there
    #     with no call; asked at load for each global a script reads, before `global_reader`.


class CatalogBackend:
    """Offers every built-in global of the language; reading machine state faults."""

    def globals(self) -> dict[str, GlobalInfo]:
        return GLOBALS

    def check_probe(self, spec: ProbeSpec) -> str | None:
        return None

    def global_reader(self, name: str) -> Callable[[], Value]:
        value: Value = "" if GLOBALS[name].type == STR else 0
        return lambda: value

    def read_linear(self, addr: int, size: int) -> bytes:
        raise GuestMemoryFault(f"no guest: linear address {addr:#x} is not mapped")

    def read_physical(self, addr: int, size: int) -> bytes:
        raise GuestMemoryFault(f"no guest: physical address {addr:#x} is not mapped")

    def lookup_symbol(self, name: str) -> int | None:
        return None

    def stack_frames(self, max_frames: int) -> list[int]:
        return []

    def host_time_us(self) -> int:
        return 0


def require_symbol(backend: Backend, name: str) -> int:
    """The address of `name`, or an UnknownSymbolFault that names it."""
    addr = backend.lookup_symbol(name)
    if addr is None:
        raise UnknownSymbolFault(f"unknown guest symbol '{name}'")
    return addr
