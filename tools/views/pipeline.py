"""The pipeline from a log to the printers (views) that show it.

A view has three methods: `event(event)` for each parsed event
(`log.parse.LogText`, `Fault`, `AggrBlock`), `idle()` when the input pauses
(a live view redraws then), and `finish()` at the end of the log.

`Pipeline` takes log text as it is written (it is a log sink: `pipeline.sink`
receives each write of the script's log, and a write ends any aggregate block
in it) or ready-made events (from JSON input), and hands the events to every
view in order.  An aggregate block gets what the script says about its
aggregate (`log.aggr_info`) from the script's catalog, when it has one and
the block does not carry it already (JSON input does).
"""

from __future__ import annotations

from typing import Iterable, Protocol

from ..log.aggr_info import AggregateCatalog
from ..log.parse import AggrBlock, Event, LogParser


class View(Protocol):
    def event(self, event: Event) -> None: ...

    def idle(self) -> None: ...

    def finish(self) -> None: ...


class Pipeline:
    def __init__(self, views: Iterable[View], catalog: AggregateCatalog | None = None):
        self.views = list(views)
        self.catalog = catalog
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
            if isinstance(event, AggrBlock) and event.info is None and self.catalog is not None:
                event.info = self.catalog.info(event.name, event.int_keys, event.str_keys)
            for view in self.views:
                view.event(event)

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.events(self.parser.finish())
        for view in self.views:
            view.finish()
