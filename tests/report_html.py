"""Reading a report's HTML back in tests: its tables (by class) as rows of cell texts, its flame data."""

from __future__ import annotations

import json
from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str, list[list[str]]]] = []  # (class, rows: header row first)
        self.flame_data: list[str] = []
        self._cell: list[str] | None = None
        self._in_flame_data = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append((attrs.get("class", ""), []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")
        elif tag == "script" and "flame-data" in attrs.get("class", ""):
            self._in_flame_data = True
            self.flame_data.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "script":
            self._in_flame_data = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_flame_data:
            self.flame_data[-1] += data


def parse(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


def tables(html: str, cls: str) -> list[list[list[str]]]:
    """Every table whose class includes `cls`: its rows (the header first), each a list of cell texts."""
    return [rows for classes, rows in parse(html).tables if cls in classes.split()]


def flame_trees(html: str) -> list[dict]:
    return [json.loads(text) for text in parse(html).flame_data]


def leaves(tree: dict, prefix: str = "") -> dict[str, int]:
    """The folded stacks a flame tree holds: `a;b;c` -> the samples that end there."""
    found: dict[str, int] = {}
    for child in tree["c"]:
        path = f"{prefix};{child['n']}" if prefix else child["n"]
        own = child["v"] - sum(c["v"] for c in child["c"])
        if own:
            found[path] = own
        found.update(leaves(child, path))
    return found
