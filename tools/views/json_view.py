"""`vprobe -f json` without -a or -s: every event of the log as one JSON line (format in `log.json_lines`)."""

from __future__ import annotations

from ..log.json_lines import dumps, to_json
from ..log.parse import Event


class JsonView:
    """Every event as a JSON line (`vprobe -f json`)."""

    def __init__(self, out):
        self.out = out

    def event(self, event: Event) -> None:
        self.out.write(dumps(to_json(event)))

    def idle(self) -> None:
        pass

    def finish(self) -> None:
        pass
