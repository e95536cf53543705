"""The VP reader: text to s-expression forms, every node located.

VP text is handled as bytes: the reader decodes it as Latin-1 so that every
character stands for exactly one byte, which keeps the 256-byte string limit
and guest-memory strings byte-exact.  The reader is iterative (no Python
recursion), so no input can exhaust the host stack; nesting deeper than
`MAX_NESTING` is rejected with a located error instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vprobes_shared.script_text import not_text

from .annotations import PREFIX as ANNOTATION_PREFIX, Annotations, read_annotations
from .errors import Diagnostic, VPLoadError
from .spec.limits import MASK64, MAX_NESTING

_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+\Z")  # only (version 1.0) takes one
_LOOKS_NUMERIC = re.compile(r"[+-]?[0-9]")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}
_DELIMITERS = frozenset(" \t\r\n\f\v();")


@dataclass(slots=True)
class Node:
    line: int
    col: int


@dataclass(slots=True)
class Sym(Node):
    name: str


@dataclass(slots=True)
class Int(Node):
    value: int


@dataclass(slots=True)
class Str(Node):
    value: str


@dataclass(slots=True)
class Decimal(Node):
    """A number with a fraction, e.g. the toolkit's `(version 1.0)`; kept as written."""

    text: str


@dataclass(slots=True)
class TargetLine(Node):
    """A line starting with '@' between top-level forms: a multi-domain script's target
    (`@VMK`, `@VM1 = NAME`), as the toolkit's compiler writes for ESX."""

    text: str


@dataclass(slots=True)
class List(Node):
    items: list = field(default_factory=list)


class Source:
    """The text of one script and its name, for locating diagnostics.

    Once read, `annotations` holds what compiled VP says about its Emmett
    source (`annotations.py`): diagnostics and fault locations of VP that came
    from Emmett name the Emmett position instead of the VP one.
    """

    def __init__(self, text: str | bytes, filename: str = "<script>"):
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        else:
            # A str may hold any code point; VP strings are bytes, so map it to
            # its UTF-8 bytes, one character per byte.
            text = text.encode("utf-8", "surrogateescape").decode("latin-1")
        self.text = text
        self.filename = filename
        self.lines = text.split("\n")
        self.annotations = Annotations()

    def line_text(self, line: int) -> str:
        """Line `line` as the reader sees it: one character per byte."""
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1].rstrip("\r")
        return ""

    def diagnostic(self, line: int, col: int, message: str, severity: str = "error") -> Diagnostic:
        """A diagnostic for people: the source line, the column and any source text quoted in
        `message` are shown as the UTF-8 the file holds (invalid bytes as U+FFFD), not as
        the reader's one-character-per-byte text; the column counts characters.  At VP
        compiled from Emmett, the diagnostic is at the Emmett position, without a source
        line (the runtime does not have the Emmett text)."""
        emmett = self.annotations.locate(line, col)
        if emmett is not None:
            return Diagnostic(emmett.file, emmett.line, emmett.col, for_display(message), "", severity)
        text = self.line_text(line).encode("latin-1").decode("utf-8", "replace")
        return Diagnostic(self.filename, line, self.display_col(line, col), for_display(message), text, severity)

    def location(self, line: int, col: int) -> str:
        """`file:line:col` of a VP position for a fault line, as log text (a byte per character):
        the Emmett position where the annotations know it."""
        emmett = self.annotations.locate(line, col)
        if emmett is not None:
            return as_log_text(str(emmett))
        return f"{as_log_text(self.filename)}:{line}:{self.display_col(line, col)}"

    def display_col(self, line: int, col: int) -> int:
        """The reader's (byte) column `col` of `line` as a column of UTF-8 characters."""
        raw = self.line_text(line).encode("latin-1")
        if col <= 1 or raw[: col - 1].isascii():
            return col
        return len(raw[: col - 1].decode("utf-8", "replace")) + 1

    def error(self, node_or_pos, message: str) -> VPLoadError:
        line, col = _position(node_or_pos)
        return VPLoadError([self.diagnostic(line, col, message)])


def for_display(text: str) -> str:
    """Text holding source bytes one per character, as the UTF-8 they are."""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # already real text
        return text


def as_log_text(text: str) -> str:
    """Real text (a file name) as the log holds text: its UTF-8 bytes, one per character."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _position(node_or_pos) -> tuple[int, int]:
    if isinstance(node_or_pos, Node):
        return node_or_pos.line, node_or_pos.col
    return node_or_pos


def parse_integer(token: str) -> int | None:
    """The value of a VP integer literal (wrapped to 64 bits), or None if `token` is not one.

    Raises ValueError for a literal whose magnitude does not fit in 64 bits.
    """
    if not _NUMBER.match(token):
        return None
    sign = -1 if token[0] == "-" else 1
    digits = token.lstrip("+-")
    hexadecimal = digits[:2].lower() == "0x"
    # Leading zeros aside, a 64-bit value has at most 16 hex or 20 decimal digits: longer
    # literals are refused before any conversion (Python limits decimal ones to 4,300 digits).
    significant = (digits[2:] if hexadecimal else digits).lstrip("0") or "0"
    if len(significant) > (16 if hexadecimal else 20):
        raise ValueError(token)
    magnitude = int(significant, 16 if hexadecimal else 10)
    if magnitude > MASK64:
        raise ValueError(token)
    return (sign * magnitude) & MASK64


_QUOTE_CHARS = 40


def _quoted(token: str) -> str:
    """`token` in quotes for a message; a long one is cut, and its length said."""
    if len(token) <= _QUOTE_CHARS:
        return f"'{token}'"
    return f"'{token[:_QUOTE_CHARS]}...' ({len(token):,} characters)"


def read(source: Source) -> list[List]:
    """Read every top-level form of `source`; raise VPLoadError on the first lexical error.

    A file that is not text is refused in one diagnostic, without its source line
    (a string literal may hold any byte: a NUL alone does not make a file binary).
    """
    text = source.text
    refused = not_text(text.encode("latin-1"), nul_is_binary=False)
    if refused is not None:
        line, col, why = refused
        raise VPLoadError([Diagnostic(source.filename, line, col, why)])
    n = len(text)
    i = 0
    line, line_start = 1, 0
    stack: list[List] = []
    top: list = []
    annotation_lines: list[tuple[int, str]] = []

    def here(pos: int) -> tuple[int, int]:
        return line, pos - line_start + 1

    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            line_start = i + 1
            i += 1
        elif ch in " \t\r\f\v":
            i += 1
        elif ch == ";":
            end = text.find("\n", i)
            end = n if end < 0 else end
            if i == line_start and text.startswith(ANNOTATION_PREFIX, i):
                annotation_lines.append((line, text[i:end].rstrip("\r")))
            i = end
        elif ch == "@" and not stack:
            end = text.find("\n", i)
            end = n if end < 0 else end
            top.append(TargetLine(*here(i), text[i:end].rstrip("\r")))
            i = end
        elif ch == "(":
            if len(stack) >= MAX_NESTING:
                raise source.error(here(i), f"expression nested more than {MAX_NESTING} levels deep")
            stack.append(List(*here(i), []))
            i += 1
        elif ch == ")":
            if not stack:
                raise source.error(here(i), "unbalanced ')' with no matching '('")
            done = stack.pop()
            (stack[-1].items if stack else top).append(done)
            i += 1
        elif ch == '"':
            start_line, start_col = here(i)
            chars: list[str] = []
            i += 1
            while True:
                if i >= n:
                    raise source.error((start_line, start_col), "unterminated string literal")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    chars.append(_ESCAPES.get(nxt, nxt))
                    if nxt == "\n":
                        line += 1
                        line_start = i + 2
                    i += 2
                    continue
                if c == "\n":
                    line += 1
                    line_start = i + 1
                chars.append(c)
                i += 1
            node = Str(start_line, start_col, "".join(chars))
            (stack[-1].items if stack else top).append(node)
        else:
            start = i
            while i < n and text[i] not in _DELIMITERS:
                i += 1
            token = text[start:i]
            pos = here(start)
            try:
                value = parse_integer(token)
            except ValueError:
                raise source.error(pos, f"integer literal {_quoted(token)} does not fit in 64 bits") from None
            if value is not None:
                node = Int(*pos, value)
            elif _DECIMAL.match(token):
                node = Decimal(*pos, token)
            elif _LOOKS_NUMERIC.match(token):
                raise source.error(pos, f"bad number {_quoted(token)}")
            else:
                node = Sym(*pos, token)
            (stack[-1].items if stack else top).append(node)
    if stack:
        raise source.error(stack[-1], "unbalanced '(' is never closed")
    if annotation_lines:
        source.annotations = read_annotations(annotation_lines)
    return top
