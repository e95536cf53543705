"""A deterministic event queue on simulated time.

Events at the same instant run in the order they were scheduled, so a run is
a pure function of the configuration and seed.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable

NS_PER_US = 1_000
NS_PER_SEC = 1_000_000_000


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
        when = self.now_ns + period_ns if first_ns is None else first_ns
        live = True
        heap, seq, push = self._heap, self._seq, heapq.heappush

        def tick() -> None:
            nonlocal when
            if live:
                action()
                when += period_ns
                push(heap, (when, next(seq), tick, None))

        self.at(when, tick)

        def cancel() -> None:
            nonlocal live
            live = False
        return cancel

    def run_until(self, end_ns: int) -> None:
        """Run every event due at or before `end_ns`; time then stands at `end_ns`."""
        heap, pop = self._heap, heapq.heappop
        while heap and heap[0][0] <= end_ns:
            when, _, action, _ = pop(heap)
            self.now_ns = when
            action()
        self.now_ns = max(self.now_ns, end_ns)

    def run_until_or(self, end_ns: int, give_way: Callable[[], bool]) -> bool:
        """As `run_until`, but stop early, between two events, once `give_way()` is true (asked
        after every event: a caller that must answer someone in bounded time passes a clock
        test).  Returns whether time reached `end_ns`; stopped early, it stands at the last
        event run, and the same events follow as if it had not stopped."""
        heap, pop = self._heap, heapq.heappop
        while heap and heap[0][0] <= end_ns:
            when, _, action, _ = pop(heap)
            self.now_ns = when
            action()
            if give_way():
                if heap and heap[0][0] <= end_ns:
                    return False
                break
        self.now_ns = max(self.now_ns, end_ns)
        return True
