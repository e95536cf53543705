"""The directive grammar of `printf` and `sprintf` formats.

A directive is `%[FLAGS][WIDTH][.PRECISION][LENGTH]CONVERSION`, as in C:
WIDTH and PRECISION are decimal digits or `*` (taken from an integer
argument before the value); a `.` with no digits is precision 0.  Every VP
integer is 64 bits wide, so length modifiers are accepted and change
nothing.  `%%` is a literal percent sign, whatever flags, width or
precision come with it (`%5%` prints one '%', as glibc does), but not with a
`*`: whether an argument would be consumed is unclear.  `DIRECTIVE` matches
one directive from its `%` (compile it with re.DOTALL); its `conversion`
group is missing when the format ends first.

`directives(fmt)` reads a format by this grammar: the compiler (the
arguments a format takes) and the runtime (how it formats them) both read
formats through it, so they accept the same formats with the same messages.
"""

import re

from .limits import MAX_STRING_BYTES
from .values import INT, STR

FLAGS = "-+ #0"
STAR = "*"
LENGTH_MODIFIERS = ("hh", "ll", "h", "l", "q", "j", "z", "t", "L")
LITERAL_PERCENT = "%"

# Conversion -> the type of the argument it formats.
CONVERSIONS = {
    "d": INT, "i": INT, "u": INT, "x": INT, "X": INT, "o": INT, "c": INT, "p": INT,
    "s": STR,
}

# Conversions C has and VP refuses, and why.
REFUSED_CONVERSIONS = {
    "$": "positional arguments are not supported",
    **dict.fromkeys("eEfFgGaA", "VP has no floating point"),
    "n": "'%n' would write to memory",
}

# A larger width or precision is clamped to this (no VP string is longer).
MAX_FIELD = MAX_STRING_BYTES

# Length modifiers are tried in LENGTH_MODIFIERS' order: "hh" before "h".
DIRECTIVE = (
    "%"
    f"(?P<flags>[{re.escape(FLAGS)}]*)"
    f"(?P<width>{re.escape(STAR)}|[0-9]+)?"
    f"(?:(?P<dot>\\.)(?P<precision>{re.escape(STAR)}|[0-9]*))?"
    f"(?P<length>{'|'.join(map(re.escape, LENGTH_MODIFIERS))})?"
    "(?P<conversion>.)?"
)


class BadDirective(Exception):
    """A format breaks the grammar; `offset` is the index of the offending ``%``."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return self.message


_DIRECTIVE_AT = re.compile(DIRECTIVE, re.DOTALL).match


def directives(fmt: str):
    """Each directive of `fmt` in order, `%%` too, as (the offset of its '%', its DIRECTIVE match).

    Raises BadDirective at the first '%' that does not start a directive of the grammar."""
    pos = 0
    while True:
        start = fmt.find("%", pos)
        if start < 0:
            return
        if start + 1 >= len(fmt):
            raise BadDirective("'%' at the end of the format string (write %% for a percent sign)", start)
        m = _DIRECTIVE_AT(fmt, start)
        conv = m.group("conversion")
        if conv is None:
            raise BadDirective(f"incomplete directive '{shown(fmt[start:])}' at the end of the format string", start)
        if conv == LITERAL_PERCENT:
            if STAR in (m.group("width"), m.group("precision")):
                raise BadDirective(f"malformed directive '{shown(m.group())}': '%%' takes no '*'", start)
        elif conv not in CONVERSIONS:
            why = REFUSED_CONVERSIONS.get(conv)
            raise BadDirective(f"unknown conversion '{shown(m.group())}' in format string"
                              + (f" ({why})" if why else ""), start)
        yield start, m
        pos = m.end()


def shown(text: str) -> str:
    """A piece of a format made safe to quote in a message (other bytes as \\xNN)."""
    return "".join(c if " " <= c <= "~" else "\\x%02x" % ord(c) for c in text)
