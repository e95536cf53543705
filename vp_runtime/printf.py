"""C-style `printf` formatting for VP's `printf` and `sprintf` builtins.

VP values are unsigned 64-bit integers (Python ints in ``0 .. 2**64-1``) or
strings whose characters are all in ``0 .. 255`` (one character per byte).
The builtins "work in the same manner as the C library's printf"; this module
follows glibc's output exactly, with the project's rules on top:

* every integer is 64 bits wide, so length modifiers (``hh h l ll q j z t L``)
  are accepted and ignored; ``%d``/``%i`` print the value as a signed 64-bit
  number, ``%u %x %X %o`` as unsigned;
* ``%c`` prints the character of the value's low byte, ``%p`` prints ``0x``
  and lower-case hex, or ``(nil)`` for 0, as glibc does;
* a width or precision above 255 is clamped to 255, so a hostile format can't
  make huge strings (VP strings hold at most 256 bytes anyway);
* anything glibc would reject or that has no meaning in VP (``%f``, ``%n``,
  positional ``%1$d``, a lone ``%`` at the end) is a `FormatError` at compile
  time, located at the offending ``%``.

The output is not truncated here; `sprintf`'s caller truncates to 255.

A format is parsed once by `compile_format` (cached, since formats built at run
time are reused) into a `CompiledFormat`, whose ``__call__`` is the probe hot
path.  Compilation turns the whole format into one Python ``%`` template
wherever Python's ``%`` operator agrees with C (``%d``, ``%x``, ``%s``,
``%016x``, ``%-8s``...), so a call is usually a single ``%`` operation plus,
for ``%d``, a signed reinterpretation of the argument.  Directives where
Python and C differ (``#`` forms, precision 0, ``%p``, ``*`` widths) become
``%s`` slots filled by small precomputed formatter closures.
"""

from __future__ import annotations

import functools
from typing import Callable

from .spec import MASK64, STR
from .spec import printf as grammar

__all__ = ["FormatError", "CompiledFormat", "compile_format"]

_MOD = MASK64 + 1
_SIGN = 1 << 63
_MAX_FIELD = grammar.MAX_FIELD  # widths and precisions are clamped to this
# Python format code producing the digits of each integer conversion.
_DIGIT_CODE = {"d": "d", "i": "d", "u": "d", "x": "x", "X": "X", "o": "o", "p": "x"}


class FormatError(grammar.BadDirective):
    """A bad printf format; `offset` is the index of the offending ``%``."""


# ---------------------------------------------------------------------------
# Field formatting with full C semantics (the general path).


def _signed(v: int) -> int:
    """Reinterpret an unsigned 64-bit value as signed."""
    return v - _MOD if v >= _SIGN else v


def _low_byte(v: int) -> int:
    return v & 0xFF


def _int_field(conv: str, left: bool, plus: bool, space: bool, alt: bool,
               zero: bool, width: int, prec: int | None, v: int) -> str:
    """One integer directive (d i u x X o p) formatted as glibc does.

    `width` is non-negative and `prec` is None when no precision was given.
    """
    sign = ""
    if conv == "d" or conv == "i":
        if v >= _SIGN:
            v = _MOD - v
            sign = "-"
        elif plus:
            sign = "+"
        elif space:
            sign = " "
    elif conv == "p":
        if not v:
            # glibc prints "(nil)" as a string: padded with spaces, never
            # truncated by the precision, the 0 flag ignored.
            return "(nil)".ljust(width) if left else "(nil)".rjust(width)
        # Otherwise glibc prints it like %#lx, but honours '+' and ' '.
        alt = True
        sign = "+" if plus else " " if space else ""
    if prec == 0 and not v:
        digits = ""
    else:
        digits = format(v, _DIGIT_CODE[conv])
        if prec is not None and len(digits) < prec:
            digits = "0" * (prec - len(digits)) + digits
    if alt:
        if conv == "o":
            if not digits.startswith("0"):
                digits = "0" + digits
        elif v and conv != "d" and conv != "i" and conv != "u":
            sign += "0X" if conv == "X" else "0x"
    if left:
        return (sign + digits).ljust(width)
    if zero and prec is None:
        return sign + digits.rjust(width - len(sign), "0")
    return (sign + digits).rjust(width)


def _str_field(left: bool, width: int, prec: int | None, s: str) -> str:
    if prec is not None:
        s = s[:prec]
    return s.ljust(width) if left else s.rjust(width)


def _char_field(left: bool, width: int, v: int) -> str:
    c = chr(v & 0xFF)
    return c.ljust(width) if left else c.rjust(width)


# ---------------------------------------------------------------------------
# Parsing.


class _Directive:
    """One parsed conversion (not ``%%``)."""

    __slots__ = ("offset", "conv", "left", "plus", "space", "alt", "zero", "width", "prec")

    def __init__(self, offset: int, conv: str, flags: str,
                 width: int | str, prec: int | str | None):
        self.offset = offset
        self.conv = conv
        self.left = "-" in flags
        self.plus = "+" in flags
        self.space = (" " in flags) and not self.plus  # '+' overrides ' '
        self.alt = "#" in flags
        self.zero = "0" in flags
        self.width = width  # int (0 = none) or "*"
        self.prec = prec    # None, int, or "*"

    @property
    def kinds(self) -> tuple[str, ...]:
        stars = ("int",) * ((self.width == grammar.STAR) + (self.prec == grammar.STAR))
        return stars + (("str",) if grammar.CONVERSIONS[self.conv] == STR else ("int",))


def _clamp_digits(digits: str) -> int:
    """A run of decimal digits as an int, clamped to 255 (never parses huge runs)."""
    digits = digits.lstrip("0")
    if len(digits) > 3:
        return _MAX_FIELD
    return min(int(digits or "0"), _MAX_FIELD)


def _field(text: str | None, default):
    """A width or precision as written: '*', its digits clamped to 255, or `default` if absent."""
    if text is None:
        return default
    return text if text == grammar.STAR else _clamp_digits(text)


def _parse(fmt: str) -> list[str | _Directive]:
    """Split `fmt` into literal strings and directives (``%%`` folds into literals)."""
    parts: list[str | _Directive] = []
    literal: list[str] = []
    pos = 0
    try:
        for start, m in grammar.directives(fmt):
            literal.append(fmt[pos:start])
            pos = m.end()
            conv = m.group("conversion")
            if conv == grammar.LITERAL_PERCENT:
                literal.append("%")  # one '%', whatever flags, width or precision come with it
                continue
            parts.append("".join(literal))
            literal = []
            width = _field(m.group("width"), 0)
            prec = _field(m.group("precision"), None) if m.group("dot") else None  # '.' alone means 0
            parts.append(_Directive(start, conv, m.group("flags"), width, prec))
    except grammar.BadDirective as e:
        raise FormatError(e.message, e.offset) from None
    literal.append(fmt[pos:])
    parts.append("".join(literal))
    return parts


# ---------------------------------------------------------------------------
# Compiling directives.

_Native = tuple[str, "Callable[[object], object] | None"]


def _native(d: _Directive) -> _Native:
    """A directive without '*' as (Python %-spec, argument transform or None).

    The spec is used in the whole-format Python template; the transform maps
    the VP value to what that spec must receive.  Where Python's ``%``
    doesn't agree with C, the spec is ``%s`` and the transform formats the
    whole field.
    """
    conv, width, prec = d.conv, d.width, d.prec
    assert isinstance(width, int) and not isinstance(prec, str)
    w = str(width) if width else ""
    if conv == "s":
        return "%" + ("-" if d.left else "") + w + ("" if prec is None else ".%d" % prec) + "s", None
    if conv == "c":
        return "%" + ("-" if d.left else "") + w + "c", _low_byte
    if conv != "p" and prec != 0 and not (d.alt and conv in "oxX" and prec is not None):
        # Python agrees with C here, except that its '0' flag still pads when
        # a precision is given (C ignores it then) and it has no 0-precision
        # special case (excluded above).
        if conv == "d" or conv == "i":
            flags = "+" if d.plus else " " if d.space else ""
            code, fn = "d", _signed
        else:
            flags = ""
            code, fn = ("d" if conv == "u" else conv), None
        if d.left:
            flags = "-" + flags
        elif d.zero and prec is None:
            flags += "0"
        tail = w + ("" if prec is None else ".%d" % prec) + code
        if d.alt and conv in "xX":
            # C prints no "0x" for zero; Python would.
            alt_spec = "%#" + flags + tail
            plain_spec = "%" + flags + tail
            return "%s", lambda v: alt_spec % v if v else plain_spec % v
        if d.alt and conv == "o":
            return "%s", functools.partial(_int_field, conv, d.left, False, False, True,
                                           d.zero, width, prec)
        return "%" + flags + tail, fn
    return "%s", functools.partial(_int_field, conv, d.left, d.plus, d.space, d.alt,
                                   d.zero, width, prec)


def _star(d: _Directive, k: int) -> Callable[[tuple | list], str]:
    """A directive with '*' width and/or precision, reading args from index k."""
    conv, left, plus, space, alt, zero = d.conv, d.left, d.plus, d.space, d.alt, d.zero
    width, prec = d.width, d.prec
    star_w = width == "*"
    star_p = prec == "*"

    def field(args: tuple | list) -> str:
        i = k
        w = width
        lft = left
        if star_w:
            w = args[i]
            i += 1
            if w >= _SIGN:  # negative: '-' flag and the absolute value
                lft = True
                w = _MOD - w
            if w > _MAX_FIELD:
                w = _MAX_FIELD
        p = prec
        if star_p:
            p = args[i]
            i += 1
            if p >= _SIGN:  # negative: as if omitted
                p = None
            elif p > _MAX_FIELD:
                p = _MAX_FIELD
        v = args[i]
        if conv == "s":
            return _str_field(lft, w, p, v)
        if conv == "c":
            return _char_field(lft, w, v)
        return _int_field(conv, lft, plus, space, alt, zero, w, p, v)

    return field


# ---------------------------------------------------------------------------
# Compiled formats.  Each shape of format gets its own subclass so that
# __call__ does no dispatching of its own.


class CompiledFormat:
    """A parsed printf format; call it with the argument values to format them.

    `kinds` lists the arguments it consumes, in order, as ``'int'`` or
    ``'str'`` (a ``*`` width or precision consumes an ``'int'`` before its
    value).  The caller has checked `args` against `kinds`.
    """

    __slots__ = ("fmt", "kinds", "_py", "_fns")

    fmt: str
    kinds: tuple[str, ...]

    def __init__(self, fmt: str, kinds: tuple[str, ...], py: str, fns: tuple = ()):
        self.fmt = fmt
        self.kinds = kinds
        self._py = py      # the whole format as a Python %-template
        self._fns = fns    # per-slot value producers (shape depends on subclass)

    def __call__(self, args: tuple | list) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return "<%s %r kinds=%r>" % (type(self).__name__, self.fmt, self.kinds)


class _ConstFormat(CompiledFormat):
    """No arguments: the text is fixed."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        return self._py


class _PlainFormat(CompiledFormat):
    """Every argument goes straight into the Python template."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        return self._py % tuple(args)


class _SingleFormat(CompiledFormat):
    """One argument that needs a transform (e.g. a lone ``%d``)."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        return self._py % (self._fns[0](args[0]),)


class _SignedFormat(CompiledFormat):
    """One signed integer argument (a lone ``%d`` with its flags and width)."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        v = args[0]
        return self._py % (v - _MOD if v >= _SIGN else v,)


class _MappedFormat(CompiledFormat):
    """One slot per argument; `_fns` pairs (index, transform) for the slots
    whose argument must be transformed, the others go in as they are."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        vals = list(args)
        for i, f in self._fns:
            vals[i] = f(vals[i])
        return self._py % tuple(vals)


class _StarFormat(CompiledFormat):
    """Some directive takes a '*': each slot reads its own arguments."""

    __slots__ = ()

    def __call__(self, args: tuple | list) -> str:
        return self._py % tuple([g(args) for g in self._fns])


def _item_transform(k: int, fn: Callable) -> Callable[[tuple | list], object]:
    return lambda args: fn(args[k])


@functools.lru_cache(maxsize=256)
def compile_format(fmt: str) -> CompiledFormat:
    """Parse `fmt` once into a `CompiledFormat`; raises `FormatError`."""
    parts = _parse(fmt)
    template: list[str] = []
    kinds: list[str] = []
    natives: list[_Native] = []
    getters: list[Callable] = []
    has_star = False
    for part in parts:
        if isinstance(part, str):
            template.append(part.replace("%", "%%"))
            continue
        k = len(kinds)
        kinds.extend(part.kinds)
        if part.width == "*" or part.prec == "*":
            has_star = True
            template.append("%s")
            getters.append(_star(part, k))
        else:
            spec, fn = _native(part)
            template.append(spec)
            natives.append((spec, fn))
            getters.append(_item_transform(k, fn) if fn is not None
                           else (lambda args, k=k: args[k]))
    py = "".join(template)
    kinds_t = tuple(kinds)
    if not kinds_t:
        return _ConstFormat(fmt, kinds_t, py % ())
    if has_star:
        return _StarFormat(fmt, kinds_t, py, tuple(getters))
    fns = tuple(fn for _, fn in natives)
    if all(fn is None for fn in fns):
        return _PlainFormat(fmt, kinds_t, py)
    if len(fns) == 1:
        if fns[0] is _signed:
            return _SignedFormat(fmt, kinds_t, py)
        return _SingleFormat(fmt, kinds_t, py, fns)
    return _MappedFormat(fmt, kinds_t, py,
                         tuple((i, fn) for i, fn in enumerate(fns) if fn is not None))
