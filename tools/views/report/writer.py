"""A report being made: its view of the log, and the file the page is written to when the log ends.

`vprobe --html` tees the script's log into a pipeline of the view beside the
other views, and `vprobe-report` reads a saved log into it; either way the
page is written once, when the log ends, with the run's summary as it stands
then (`complete` fills in what only the end of the run knows: firings, times).
"""

from __future__ import annotations

import os
from typing import Callable

from ...errors import ToolError
from ..tables import KeyFormat
from .collect import ReportView
from .model import RunSummary, page


def check_writable(path: str) -> None:
    """Refuse at once a report that could not be written at the end of a long run."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ToolError(f"cannot write the report {path}: it is a directory")
    if not os.path.isdir(folder):
        raise ToolError(f"cannot write the report {path}: no folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ToolError(f"cannot write the report {path}: the folder {folder} is not writable")


class ReportWriter:
    """`keys()` says how keys are shown (symbols, system call names), made when the page is written."""

    def __init__(self, path: str, run: RunSummary, keys: Callable[[], KeyFormat], *,
                 cumulative: bool = False, complete: Callable[[RunSummary], None] | None = None):
        check_writable(path)
        self.path = path
        self.run = run
        self.keys = keys
        self.complete = complete
        self.view = ReportView(self._write, cumulative=cumulative)  # writes the page when the log ends

    def _write(self, view: ReportView) -> None:
        from .render import render_html, write_report  # jinja2: only once there is a page to write

        if self.complete is not None:
            self.complete(self.run)
        write_report(self.path, render_html(page(view, self.run, self.keys())))
