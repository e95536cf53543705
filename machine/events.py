"""A deterministic event queue on simulated time.

Events at the same instant run in the order they were scheduled, so a run is
a pure function of the configuration and seed.

A periodic series (`every`) is an entry of the heap that the loop itself
moves on, calling its action straight (no frame of its own); `run_until`
runs its ticks one after another, outside the heap, while each falls before
the heap's next event, and puts the series back when one does not.  A
periodic probe's firing then costs its own work and little else.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable

NS_PER_US = 1_000
NS_PER_SEC = 1_000_000_000


class Series:
    """A periodic series: the owner of its heap entry (which says the loop must reschedule it)."""

    __slots__ = ("period_ns", "live")

    def __init__(self, period_ns: int):
        self.period_ns = period_ns
        self.live = True

    def cancel(self) -> None:
        """No tick of the series runs any more (its pending entry is dropped when it falls due)."""
        self.live = False


class EventQueue:
    def __init__(self):
        self.now_ns = 0
        self._heap: list[tuple[int, int, Callable[[], None], object]] = []
        self._seq = itertools.count()

    def at(self, time_ns: int, action: Callable[[], None], owner: object = None) -> None:
        """Run `action` at `time_ns`; `owner` lets `cancel_owner` void it later."""
        heapq.heappush(self._heap, (time_ns, next(self._seq), action, owner))

    def cancel_owner(self, owner: object) -> None:
        """Void every pending event scheduled with `owner` (e.g. a guest that was reset)."""
        self._heap[:] = [e for e in self._heap if e[3] is not owner]  # in place: `run_until` holds it
        heapq.heapify(self._heap)

    def every(self, period_ns: int, action: Callable[[], None], first_ns: int | None = None) -> Callable[[], None]:
        """Run `action` every `period_ns` from `first_ns` (default: one period from now).

        Returns a function that cancels the series.  Each tick schedules the next once its
        action has run (so events the action schedules for that instant come first).
        """
        series = Series(period_ns)
        when = self.now_ns + period_ns if first_ns is None else first_ns
        heapq.heappush(self._heap, (when, next(self._seq), action, series))
        return series.cancel

    def run_until(self, end_ns: int) -> None:
        """Run every event due at or before `end_ns`; time then stands at `end_ns`."""
        heap, pop, push, seq = self._heap, heapq.heappop, heapq.heappush, self._seq
        while heap and heap[0][0] <= end_ns:
            when, _, action, owner = pop(heap)
            self.now_ns = when
            if owner.__class__ is not Series:
                action()
            elif owner.live:
                # The series' ticks run from here while each falls before every other event (a
                # tie goes to the heap, where the order of scheduling decides); then the next
                # goes back into the heap, scheduled as the last tick's action returned.
                period = owner.period_ns
                action()
                when += period
                while when <= end_ns and (not heap or when < heap[0][0]) and owner.live:
                    self.now_ns = when
                    action()
                    when += period
                push(heap, (when, next(seq), action, owner))
        self.now_ns = max(self.now_ns, end_ns)

    def run_until_or(self, end_ns: int, give_way: Callable[[], bool]) -> bool:
        """As `run_until`, but stop early, between two events, once `give_way()` is true (asked
        after every event: a caller that must answer someone in bounded time passes a clock
        test).  Returns whether time reached `end_ns`; stopped early, it stands at the last
        event run, and the same events follow as if it had not stopped."""
        heap, pop, push, seq = self._heap, heapq.heappop, heapq.heappush, self._seq
        while heap and heap[0][0] <= end_ns:
            when, _, action, owner = pop(heap)
            self.now_ns = when
            if owner.__class__ is not Series:
                action()
            elif owner.live:
                action()
                push(heap, (when + owner.period_ns, next(seq), action, owner))
            if give_way():
                if heap and heap[0][0] <= end_ns:
                    return False
                break
        self.now_ns = max(self.now_ns, end_ns)
        return True
