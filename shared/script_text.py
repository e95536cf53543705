"""Scripts as text: what a script file must be to be read, and how many of its diagnostics are shown.

A file that is not text (an executable, a compressed file, UTF-16, random
bytes) would make the VP reader or the Emmett compiler report error after
error, each echoing binary data to the terminal.  Both refuse it in one line
instead (`not_text`): a file is not text if it starts with a UTF-16 byte order
mark, holds a NUL byte (an Emmett file; a VP string literal may hold any byte,
NULs too), or if more than a tenth of its first 64 KiB (and at least
MIN_BAD_BYTES bytes) is invalid UTF-8 or control characters other than tab,
newline, carriage return, form feed and vertical tab.  A text file with a few
stray bytes (a Latin-1 comment, a NUL in a VP string) still reads as before.

The tools, `emmettc` and the runtime's load errors show at most
MAX_SHOWN_DIAGNOSTICS diagnostics of one script, then how many more there are
(`format_diagnostics`): the first errors are the ones to fix.
"""

import re

MAX_SHOWN_DIAGNOSTICS = 20
SAMPLE_BYTES = 64 * 1024
MAX_BAD_SHARE = 0.10
MIN_BAD_BYTES = 8
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")


def not_text(data: bytes, *, nul_is_binary: bool = True) -> tuple[int, int, str] | None:
    """(line, column, why) if `data` is not the text of a script, else None.

    The line and column (of bytes) are those of the first byte that is not text.
    With `nul_is_binary` false (VP), a NUL byte is only one more control character.
    """
    if data.startswith(_UTF16_MARKS):
        return 1, 1, "not a text file (UTF-16: it starts with a byte order mark); save it as UTF-8"
    nul = data.find(b"\x00") if nul_is_binary else -1
    if nul >= 0:
        line, col = _position(data, nul)
        return line, col, "not a text file (a NUL byte here)"
    sample = data[:SAMPLE_BYTES]
    decoded = sample.decode("utf-8", "replace")
    invalid = decoded.count("\ufffd") - sample.count("\ufffd".encode("utf-8"))
    control = _CONTROL.findall(sample)
    bad = invalid + len(control)
    if bad < MIN_BAD_BYTES or bad <= MAX_BAD_SHARE * len(sample):
        return None
    first = _first_bad(sample)
    line, col = _position(data, first)
    share = 100 * bad // len(sample)
    return line, col, (f"not a text file ({share}% of its first {len(sample):,} bytes are invalid UTF-8 or "
                       f"control characters; the first is here)")


def _first_bad(sample: bytes) -> int:
    """The offset of the first byte of `sample` that is invalid UTF-8 or a control character."""
    control = _CONTROL.search(sample)
    first = control.start() if control else len(sample)
    try:
        sample[:first].decode("utf-8")
    except UnicodeDecodeError as e:
        first = e.start
    return first


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def format_diagnostics(diagnostics) -> str:
    """The first MAX_SHOWN_DIAGNOSTICS of `diagnostics` (each with `format()` and `severity`), one
    after another, then a line that says how many more errors and warnings there are."""
    shown = [d.format() for d in diagnostics[:MAX_SHOWN_DIAGNOSTICS]]
    rest = diagnostics[MAX_SHOWN_DIAGNOSTICS:]
    if rest:
        errors = sum(1 for d in rest if d.severity == "error")
        warnings = len(rest) - errors
        counts = [f"{n} more {word}{'s' if n != 1 else ''}"
                  for n, word in ((errors, "error"), (warnings, "warning")) if n]
        shown.append(" and ".join(counts))
    return "\n".join(shown)
