"""The directive grammar of `printf` and `sprintf` formats.

A directive is `%[FLAGS][WIDTH][.PRECISION][LENGTH]CONVERSION`, as in C:
WIDTH and PRECISION are decimal digits or `*` (taken from an integer
argument before the value); a `.` with no digits is precision 0.  Every VP
integer is 64 bits wide, so length modifiers are accepted and change
nothing.  `%%` is a literal percent sign.  `DIRECTIVE` matches one directive
from its `%` (compile it with re.DOTALL); its `conversion` group is missing when
the format ends first.
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
