"""Pacing simulated time to the wall clock, a slice at a time.

The machine runs as fast as the host allows; a VM that keeps running (or a
`vprobe` run without -d) runs it in slices of `SLICE_S` simulated seconds and
waits between slices so that simulated time keeps step with real time.  A
machine that falls behind by more than `MAX_LAG_S` does not race to catch up:
the pacer forgets the lag.
"""

from __future__ import annotations

import time

NS_PER_S = 1_000_000_000  # the machines' clocks count nanoseconds
SLICE_S = 0.01  # fine enough that output appears smoothly
MAX_LAG_S = 0.5


class Pacer:
    def __init__(self, slice_s: float = SLICE_S, clock=time.monotonic):
        self.slice_s = slice_s
        self.clock = clock
        self.start = clock()
        self.simulated = 0.0

    def wait(self) -> float:
        """Seconds of wall time until the next slice is due (0 when it is due now)."""
        behind = (self.clock() - self.start) - self.simulated
        if behind > MAX_LAG_S:
            self.start += behind  # fell behind: do not race to catch up
            behind = 0.0
        return max(0.0, -behind)

    def ran(self, seconds: float) -> None:
        """`seconds` of simulated time have run."""
        self.simulated += seconds
