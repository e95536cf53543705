"""The simulated VCPU's performance counters and the branch count, from the time it ran.

The guest model does not execute instructions one by one; it knows how long
each VCPU ran something other than its idle loop's halt (`CpuState.unhalted_ns`).
The counters follow from that time at the TSC rate, as a core retiring one
instruction per cycle, one in six of them a branch:

* `BRCNT`, the branches retired since power-on;
* RDPMC's fixed counters (`0x40000000 | n`): instructions retired, core
  cycles, reference cycles (the same: the core runs at its nominal rate);
* general-purpose counter 0, which the guest kernel's NMI watchdog programs
  to count unhalted core cycles; counters 1 to 3, which no one programs, read 0.

Counters are 48 bits wide.  A counter that does not exist is a fault, as a
guest's RDPMC would take #GP.
"""

from __future__ import annotations

from .events import NS_PER_SEC
from .x86 import FIXED_PMCS, GENERAL_PMCS, PMC_FIXED, PMC_WIDTH_MASK

INSTRUCTIONS_PER_CYCLE = 1
INSTRUCTIONS_PER_BRANCH = 6
WATCHDOG_PMC = 0  # the counter the NMI watchdog counts unhalted cycles with


class NoSuchCounter(Exception):
    """RDPMC (or RDMSR) of a counter the VCPU does not have."""


def unhalted_cycles(unhalted_ns: int, tsc_hz: int) -> int:
    return unhalted_ns * tsc_hz // NS_PER_SEC


def branches(cycles: int) -> int:
    return cycles * INSTRUCTIONS_PER_CYCLE // INSTRUCTIONS_PER_BRANCH


def read_pmc(number: int, cycles: int) -> int:
    """RDPMC `number` for a VCPU that has run `cycles` unhalted cycles."""
    if number & PMC_FIXED:
        fixed = number & ~PMC_FIXED
        if fixed >= FIXED_PMCS:
            raise NoSuchCounter(f"there is no fixed performance counter {fixed} (0-{FIXED_PMCS - 1})")
        value = cycles * INSTRUCTIONS_PER_CYCLE if fixed == 0 else cycles
        return value & PMC_WIDTH_MASK
    if number >= GENERAL_PMCS:
        raise NoSuchCounter(f"there is no performance counter {number} (0-{GENERAL_PMCS - 1}, "
                            f"or {PMC_FIXED:#x} + 0-{FIXED_PMCS - 1} for the fixed ones)")
    return cycles & PMC_WIDTH_MASK if number == WATCHDOG_PMC else 0
