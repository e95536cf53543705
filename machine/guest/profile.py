"""The guest-profile interface: what the simulated machine asks of a guest operating system.

The machine (`machine/simulated.py`) boots one profile, chosen by name
(`GUEST_PROFILES` there; "linux" is the default, "windows" the other).  It
gives the profile its hardware and services:

* `machine.events` (simulated time), `machine.vcpus`, `machine.memory` and
  `machine.mmu`, `machine.config` (`timer_hz`, `tsc_hz`, `hv_vendor`...);
* `machine.probes`, the dispatcher the profile raises every probe-visible
  event through (`fire_static`, `execute`, `guest_read`/`guest_write`,
  `hv_exit`, and the `breakpoints`/`watch_*` tables to test for emptiness);
* `machine.start_timer(index)` once the kernel has programmed a VCPU's local
  APIC timer, and `machine.reset()` for a hardware reset;
* `machine.current`, the VCPU whose access is being served (the APIC page).

In return the profile provides the `GuestProfile` methods below.  A profile
built from the shared mechanics (`guest_os.GuestOS`) also describes its
kernel's code paths in a `KernelPaths`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from .state import CpuState
from .structs import Layouts

# The guests the simulated machine can boot, by the name `sim.guest` gives them (the first is the
# default); `machine.simulated.GUEST_PROFILES` has each one's profile.
GUEST_NAMES = ("linux", "windows")


class GuestProfile(ABC):
    """A guest OS: boots, runs its workload, and keeps its memory true to what scripts read."""

    name: ClassVar[str]  # what `sim.guest` calls it
    library_name: ClassVar[str]  # its VP helper library (curpid, curtid, curppid, curprocname)
    structures: ClassVar[Layouts]  # its kernel's structures, as its debug information would give them
    cpus: list[CpuState]  # one per VCPU, in VCPU order
    timer_period_ns: int  # the period the kernel programs into each local APIC timer

    @abstractmethod
    def __init__(self, machine, workload: str, seed: int):
        """Build the guest's memory image on `machine` (fresh memory); every decision it makes later
        comes from a generator seeded with `seed`, never from which probes are enabled."""

    @abstractmethod
    def power_on(self) -> None:
        """Start the boot sequence at the current simulated time (the VCPUs are in their reset state)."""

    @abstractmethod
    def timer_tick(self, cpu: CpuState) -> None:
        """The local APIC timer of `cpu` fired (every `timer_period_ns` once started)."""

    @abstractmethod
    def materialize_all(self) -> None:
        """Write into guest memory whatever was deferred until a probe looks (kernel stack frames)."""

    @abstractmethod
    def symbol_table(self) -> str:
        """The kernel's symbols in the guest's own format (Linux: /proc/kallsyms)."""

    @abstractmethod
    def is_function_entry(self, address: int) -> bool:
        """Whether `address` is the first instruction of a kernel function (a stack walk starts there
        before the frame pointer is pushed; `GUEST:` probes are listed there)."""

    @abstractmethod
    def data_addresses(self) -> set[int]:
        """Addresses of the kernel's data symbols (listed as `GUEST_READ:`/`GUEST_WRITE:` points)."""

    @abstractmethod
    def system_calls(self) -> dict[int, str]:
        """The kernel's own system-call table: each number's name (for the tools that show one)."""

    @abstractmethod
    def library_vp(self) -> str:
        """The VP text of the guest's helper library."""

    @abstractmethod
    def preload_emmett(self) -> str | None:
        """The Emmett preload for this guest (None: the compiler's default preload is this guest's)."""


@dataclass(frozen=True)
class KernelPaths:
    """The kernel functions each kind of guest activity runs through, outermost first.

    The shared mechanics walk these paths (firing `GUEST:` probes on the way)
    and leave the CPU's registers and kernel stack as the last function of
    each would; every name must be a function of the kernel image, and each
    path must follow its calls.
    """

    syscall_entry: str  # the system-call instruction's target (before swapgs at its first instruction)
    syscall_handler: str  # the handler of system call NAME, as a format: "sys_{}"
    idle: tuple[str, ...]  # the idle loop, ending in the function that halts
    switch: tuple[str, ...]  # the scheduler down to the context switch (the first calls the second)
    preempted: tuple[str, ...]  # where a task preempted on its way back from an interrupt calls the scheduler
    reschedule_vector: int
    reschedule_ipi: tuple[str, ...]
    device_irq: tuple[str, ...]  # an external interrupt's way down to its driver's handler
    timer_vector: int  # the local APIC timer's
    timer: tuple[str, ...]  # the timer interrupt down to the tick handler
    timekeeping: tuple[str, ...]  # what the tick handler calls on CPU 0 to advance the tick count
    tick_accounting: tuple[str, ...]  # what it calls on every CPU to charge the tick to the running task
    page_fault: tuple[str, ...]  # a user page fault resolved by a fresh anonymous page
    exception_handlers: dict[str, str]  # Guest_<X> probe -> the kernel's entry point for that exception
    disk_vector: int
    disk_driver: str  # the disk controller's interrupt handler
    disk_submit: tuple[str, ...]  # from a request's submission to the controller
    disk_read_miss: str  # the read path's last step before it submits I/O (a page-cache miss)
    disk_wait: tuple[str, ...]  # where a task waits for its disk I/O, below the request's path (may be empty)
    disk_done: tuple[str, ...]  # completion after the interrupt, down to waking the waiter
    net_vector: int
    net_driver: str  # the NIC's interrupt handler
    net_receive: tuple[str, ...]  # a received packet's way up to waking a reader
