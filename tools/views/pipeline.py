"""The pipeline from a log to the printers (views) that show it.

A view has three methods: `event(event)` for each parsed event
(`log.parse.LogText`, `Fault`, `AggrBlock`), `idle()` when the input pauses
(a live view redraws then), and `finish()` at the end of the log.

`Pipeline` takes log text as it is written (it is a log sink: `pipeline.sink`
receives each write of the script's log, and a write ends any aggregate block
in it) or ready-made events (from JSON input), and hands the events to every
view in order.
"""

from __future__ import annotations

from typing import Iterable, Protocol

from ..log.parse import Event, LogParser


class View(Protocol):
    def event(self, event: Event) -> None: ...

    def idle(self) -> None: ...

    def finish(self) -> None: ...


class Pipeline:
    def __init__(self, views: Iterable[View]):
        self.views = list(views)
        self.parser = LogParser()
        self.finished = False

    def text(self, text: str) -> None:
        """Log text, in pieces of any size."""
        self.events(self.parser.feed(text))

    def sink(self, text: str) -> None:
        """One write of the log (`logaggr` writes a whole block at once)."""
        self.text(text)
        self.boundary()

    def boundary(self) -> None:
        """The input paused: complete any open block, let live views redraw."""
        self.events(self.parser.boundary())
        for view in self.views:
            view.idle()

    def events(self, events: Iterable[Event]) -> None:
        for event in events:
            for view in self.views:
                view.event(event)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.events(self.parser.finish())
        for view in self.views:
            view.finish()
