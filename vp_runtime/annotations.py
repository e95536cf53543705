"""Annotations: what compiled VP says about the Emmett program it came from.

`emmettc` ends the VP it writes with comment lines that start with `;@` in
column 1 (VP's `;` starts a comment, so any VP reader ignores them): a
*block* describing the VP lines above it.  The format is documented in
docs/architecture.md ("Annotations in compiled VP"); in short::

    ;@emmett 1 lines=N                 the block's header: the N lines above it are its VP
    ;@file 0 "div.emt"                 a file of the program (a JSON string)
    ;@map 8 3=0/5:4 26=5:10            from VP line 8 column 3 on: file 0 line 5 column 4 ...
    ;@aggr {"name": "syscalls", ...}   what the printers are told about one aggregate (JSON)

The reader (the VP reader collects the `;@` lines as it skips comments)
keeps three things: the source map (`locate`: a VP position to an Emmett
`file:line:col`), the files, and each aggregate's record, by VP name.
Several blocks may be present (VP files concatenated): each describes the N
lines above its own header.  Annotations are hints: a block of an unknown
version, an unknown or malformed record is ignored, never an error, and VP
without annotations loads exactly as before.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field

PREFIX = ";@"
VERSION = 1

_HEADER = re.compile(r";@emmett (\d+) lines=(\d+)\s*\Z")
_RECORD = re.compile(r";@([a-z]+) ?(.*)\Z", re.S)
_SEGMENT = re.compile(r"(\d+)=(?:-|(?:(\d+)/)?(\d+):(\d+))\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Position:
    """A place in the Emmett program: a file as the compiler named it, line, column (characters)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class _Block:
    first: int  # the first VP line (of the whole text) the block describes
    last: int
    keys: list = field(default_factory=list)  # sorted (line, col) of the text
    values: list = field(default_factory=list)  # Position or None (no Emmett source from there on)


@dataclass
class Annotations:
    """What the annotations of one VP text say: its source map, its files, its aggregates."""

    files: list[str] = field(default_factory=list)
    aggregates: dict[str, dict] = field(default_factory=dict)
    _blocks: list[_Block] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self._blocks)

    def locate(self, line: int, col: int) -> Position | None:
        """The Emmett position of VP `line`:`col` (byte column), or None where no source is known."""
        for block in self._blocks:
            if block.first <= line <= block.last:
                i = bisect.bisect_right(block.keys, (line, col)) - 1
                return block.values[i] if i >= 0 else None
        return None


def read_annotations(lines: list[tuple[int, str]]) -> Annotations:
    """The annotations in `lines`: (line number, text) of each `;@` comment line, in order.

    Text is the reader's (one character per byte); names are decoded as UTF-8.
    """
    result = Annotations()
    i = 0
    while i < len(lines):
        number, text = lines[i]
        i += 1
        header = _HEADER.match(text)
        if header is None or int(header.group(1)) != VERSION:
            continue
        count = int(header.group(2))
        block = _Block(max(1, number - count), number - 1)
        files: dict[int, str] = {}
        map_lines: list[tuple[int, str]] = []
        expected = number + 1
        while i < len(lines) and lines[i][0] == expected and not _HEADER.match(lines[i][1]):
            record = _RECORD.match(_as_text(lines[i][1]))
            i += 1
            expected += 1
            if record is None:
                continue
            kind, rest = record.groups()
            if kind == "file":
                _read_file(rest, files)
            elif kind == "map":
                map_lines.append((expected - 1, rest))
            elif kind == "aggr":
                _read_aggregate(rest, result.aggregates)
        _read_map(map_lines, block, files)
        result.files.extend(name for _, name in sorted(files.items()) if name not in result.files)
        if block.keys:
            result._blocks.append(block)
    return result


def _as_text(reader_text: str) -> str:
    """A comment as the reader holds it (a byte per character) as the UTF-8 text it is."""
    try:
        return reader_text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return reader_text


def _read_file(rest: str, files: dict[int, str]) -> None:
    number, _, name = rest.partition(" ")
    try:
        value = json.loads(name)
    except ValueError:
        return
    if number.isdigit() and isinstance(value, str):
        # A file name goes into fault lines: no character may break a log line.
        files[int(number)] = _CONTROL.sub("?", value)


def _read_map(map_lines: list[tuple[int, str]], block: _Block, files: dict[int, str]) -> None:
    """`;@map LINE SEG...` records into the block's sorted segments (malformed ones skipped)."""
    base = block.first - 1
    file_id = 0
    for _, rest in map_lines:
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            continue
        line = int(fields[0]) + base
        if not block.first <= line <= block.last:
            continue
        for segment in fields[1:]:
            m = _SEGMENT.match(segment)
            if m is None:
                continue
            col = int(m.group(1))
            if m.group(3) is None:
                value = None
            else:
                if m.group(2) is not None:
                    file_id = int(m.group(2))
                name = files.get(file_id)
                value = Position(name, int(m.group(3)), int(m.group(4))) if name is not None else None
            key = (line, col)
            if block.keys and key <= block.keys[-1]:
                continue  # out of order: not the compiler's output
            block.keys.append(key)
            block.values.append(value)


def _read_aggregate(rest: str, aggregates: dict[str, dict]) -> None:
    try:
        record = json.loads(rest)
    except ValueError:
        return
    if isinstance(record, dict) and isinstance(record.get("name"), str):
        aggregates[record["name"]] = record


def annotations_of(vp_text: str | bytes) -> Annotations:
    """The annotations of a VP text on its own (for tools given a saved .vp without loading it).

    Empty for a text that does not read as VP.
    """
    from .errors import VPLoadError
    from .reader import Source, read

    source = Source(vp_text)
    try:
        read(source)
    except VPLoadError:
        return Annotations()
    return source.annotations
