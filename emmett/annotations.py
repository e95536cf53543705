"""The annotations compiled VP carries: its source map and what the printers need to know.

The VP text ends with a block of `;@` comment lines (the format is in
docs/architecture.md, "Annotations in compiled VP"; the VP runtime's
`vp_runtime/annotations.py` reads it):

    ;@emmett 1 lines=N
    ;@file 0 "div.emt"
    ;@map 8 3=0/5:4 26=5:10
    ;@aggr {"name": "syscalls", "keys": [...], "counted": true}

`Annotations` holds the same data for the compile result (`files`, the map's
`segments`, each aggregate's `aggregates` record) and writes the block.
"""

FORMAT_VERSION = 1


class Annotations:
    """The source map and the aggregate records of one compiled program.

    `segments`: (VP line, VP byte column, index into `files` or None, line, column),
    sorted; from that VP position on, the VP comes from that Emmett position (None: from
    no Emmett source).  `aggregates`: one record per aggregate, by VP name.
    """

    __slots__ = ("files", "segments", "aggregates")

    def __init__(self, files=(), segments=(), aggregates=None):
        self.files = list(files)
        self.segments = list(segments)
        self.aggregates = dict(aggregates or {})

    def text(self, vp_lines):
        """The `;@` block that ends VP text of `vp_lines` lines."""
        out = [f";@emmett {FORMAT_VERSION} lines={vp_lines}"]
        out += [f";@file {i} {json_string(name)}" for i, name in enumerate(self.files)]
        current_file = 0
        row_line, row = None, []
        for line, col, fid, eline, ecol in self.segments:
            if line != row_line:
                if row:
                    out.append(f";@map {row_line} {' '.join(row)}")
                row_line, row = line, []
            if fid is None:
                row.append(f"{col}=-")
                continue
            where = f"{eline}:{ecol}" if fid == current_file else f"{fid}/{eline}:{ecol}"
            current_file = fid
            row.append(f"{col}={where}")
        if row:
            out.append(f";@map {row_line} {' '.join(row)}")
        if self.aggregates:
            import json  # only programs with aggregates need it (its import is a part of a small compile)

            out += [f";@aggr {json.dumps(record)}" for record in self.aggregates.values()]
        return "\n".join(out) + "\n"


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def json_string(text):
    """`text` as `json.dumps(text)` writes it (ASCII, \\u escapes): every compile names its files."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:  # a surrogate pair, as JSON spells characters beyond the BMP
            code -= 0x10000
            out.append(f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}")
    return '"' + "".join(out) + '"'


def source_map(segments, files, text):
    """`Annotations`-style segments from the printer's: (line index, character column, position).

    `files` is the compilation's file table; `text` the VP text (columns become byte
    columns).  Returns (the names of the files used, the segments).
    """
    lines = text.split("\n")
    ids = {}
    names = []
    out = []
    for line, col, pos in segments:
        byte_col = col + 1
        vp_line = lines[line] if line < len(lines) else ""
        if not vp_line[:col].isascii():
            byte_col = len(vp_line[:col].encode("utf-8", "surrogateescape")) + 1
        if pos is None:
            out.append((line + 1, byte_col, None, 0, 0))
            continue
        fid, eline, ecol = pos
        index = ids.get(fid)
        if index is None:
            index = ids[fid] = len(names)
            names.append(files.names[fid] if 0 <= fid < len(files.names) else "<input>")
        out.append((line + 1, byte_col, index, eline, ecol))
    return names, out
