"""A line of status on a terminal's stderr (progress), redrawn in place and cleared when done.

Only for people watching: on a pipe or a file nothing is written, so what a
script logs and what a program reads stay exactly as they are.
"""

from __future__ import annotations

import time
from typing import Callable


class StatusLine:
    """`show(text)` redraws the line (if `enabled`: stderr is a terminal); `clear()` erases it."""

    def __init__(self, err, enabled: bool):
        self.err, self.enabled = err, enabled
        self.shown = False

    def show(self, text: str) -> None:
        if self.enabled:
            self.err.write(f"\r{text}\x1b[K")
            self.shown = True

    def clear(self) -> None:
        if self.enabled:
            self.err.write("\r\x1b[K")
            self.shown = False


class RunProgress(StatusLine):
    """`vprobe -d` on a terminal: the seconds of -d reached and the wall time taken, once the run has
    taken `SHOW_AFTER_S`, redrawn at most every `EVERY_S`.  `around(sink)` clears the line before the
    script's output is written, so the two never share a line of the terminal."""

    SHOW_AFTER_S = 1.0
    EVERY_S = 0.2

    def __init__(self, err, duration: float, simulated: bool, enabled: bool, clock=time.monotonic):
        super().__init__(err, enabled)
        self.duration, self.unit = duration, "simulated s" if simulated else "s"
        self.clock = clock
        self.started = self.drawn = clock()

    def __call__(self, reached: float) -> None:
        now = self.clock()
        if now - self.started < self.SHOW_AFTER_S or now - self.drawn < self.EVERY_S:
            return
        self.drawn = now
        self.show(f"vprobe: {reached:.1f} of {self.duration:g} {self.unit}, {now - self.started:.1f} s elapsed")

    def around(self, sink: Callable[[str], None]) -> Callable[[str], None]:
        def write(text: str) -> None:
            if self.shown:
                self.clear()
            sink(text)
        return write
