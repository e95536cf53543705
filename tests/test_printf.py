"""Tests for vp_runtime.printf: C printf formatting for VP's printf/sprintf."""

from __future__ import annotations

import re
import traceback

import pytest
from hypothesis import given, settings, strategies as st

import emmett
from conftest import run_machine
from emmett.lower_calls import format_kinds
from vp_runtime.printf import FormatError, compile_format

M = 2**64
U64 = st.integers(min_value=0, max_value=M - 1)
LATIN1 = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)


def fmt(f: str, *args) -> str:
    return compile_format(f)(args)


def signed(v: int) -> int:
    return v - M if v >= 2**63 else v


# ---------------------------------------------------------------------------
# Expected outputs verified against glibc.
#
# Every expectation below was produced by glibc 2.36's snprintf (Debian 12,
# gcc 12.2) on this machine, through a throw-away C program, and hard-coded
# here.  The C calls were the VP format with each integer conversion given
# the `ll` length modifier and an `unsigned long long` argument (VP integers
# are 64 bits), `%c` given an int, `%p` a `void *`, and `*` an int.

GCC_VERIFIED = [
    # signed %d / %i
    ('%d', (0,), '0'),
    ('%d', (42,), '42'),
    ('%i', (42,), '42'),
    ('%d', (M - 1,), '-1'),
    ('%d', (0x7fffffffffffffff,), '9223372036854775807'),
    ('%d', (2**63,), '-9223372036854775808'),
    ('%i', (M - 9223372036854775807,), '-9223372036854775807'),
    ('%d', (M - 12345,), '-12345'),
    ('%d', (0x100000000,), '4294967296'),
    ('%d', (0x80000000,), '2147483648'),
    # unsigned %u %x %X %o
    ('%u', (0,), '0'),
    ('%u', (M - 1,), '18446744073709551615'),
    ('%u', (2**63,), '9223372036854775808'),
    ('%x', (0,), '0'),
    ('%x', (0xdeadbeef,), 'deadbeef'),
    ('%x', (M - 1,), 'ffffffffffffffff'),
    ('%X', (0xdeadbeef,), 'DEADBEEF'),
    ('%X', (M - 1,), 'FFFFFFFFFFFFFFFF'),
    ('%o', (0,), '0'),
    ('%o', (8,), '10'),
    ('%o', (M - 1,), '1777777777777777777777'),
    ('%x', (2**63,), '8000000000000000'),
    # %c
    ('%c', (65,), 'A'),
    ('%c', (0,), '\x00'),
    ('[%c]', (511,), '[\xff]'),
    ('%c', (233,), '\xe9'),
    ('%c', (M - 1,), '\xff'),
    ('%3c|', (66,), '  B|'),
    ('%-3c|', (66,), 'B  |'),
    ('%03c|', (66,), '  B|'),
    ('%.0c|', (66,), 'B|'),
    ('%+c', (66,), 'B'),
    ('% c', (66,), 'B'),
    ('%#c', (66,), 'B'),
    ('%3c|', (0,), '  \x00|'),
    # %s
    ('%s', ('hello',), 'hello'),
    ('%s', ('',), ''),
    ('[%10s]', ('hello',), '[     hello]'),
    ('[%-10s]', ('hello',), '[hello     ]'),
    ('[%.3s]', ('hello',), '[hel]'),
    ('[%.0s]', ('hello',), '[]'),
    ('[%.s]', ('hello',), '[]'),
    ('[%10.3s]', ('hello',), '[       hel]'),
    ('[%-10.3s]', ('hello',), '[hel       ]'),
    ('[%.10s]', ('hello',), '[hello]'),
    ('[%2s]', ('hello',), '[hello]'),
    ('[%010s]', ('hello',), '[     hello]'),
    ('[%+s]', ('hello',), '[hello]'),
    ('[% s]', ('hello',), '[hello]'),
    ('[%#s]', ('hello',), '[hello]'),
    ('[%s]', ('caf\xe9\xff\x01',), '[caf\xe9\xff\x01]'),
    # %p
    ('%p', (0,), '(nil)'),
    ('%p', (1,), '0x1'),
    ('%p', (0x7fff1234,), '0x7fff1234'),
    ('%p', (M - 1,), '0xffffffffffffffff'),
    ('[%10p]', (0,), '[     (nil)]'),
    ('[%-10p]', (0,), '[(nil)     ]'),
    ('[%010p]', (0,), '[     (nil)]'),
    ('[%.2p]', (0,), '[(nil)]'),
    ('[%.10p]', (0,), '[(nil)]'),
    ('[%+p]', (0,), '[(nil)]'),
    ('[%#p]', (0,), '[(nil)]'),
    ('[%20p]', (255,), '[                0xff]'),
    ('[%-20p]', (255,), '[0xff                ]'),
    ('[%020p]', (255,), '[0x0000000000000000ff]'),
    ('[%.8p]', (255,), '[0x000000ff]'),
    ('[%020.8p]', (255,), '[          0x000000ff]'),
    ('[%.0p]', (1,), '[0x1]'),
    ('[%+p]', (255,), '[+0xff]'),
    ('[% p]', (255,), '[ 0xff]'),
    ('[%#p]', (255,), '[0xff]'),
    ('[%3p]', (0,), '[(nil)]'),
    # %%
    ('%%', (), '%'),
    ('100%%', (), '100%'),
    ('%%d', (), '%d'),
    ('%%%d%%', (7,), '%7%'),
    ('a%%b%%c', (), 'a%b%c'),
    ('[%5%]', (), '[%]'),
    ('[%-5%]', (), '[%]'),
    ('[%.3%]', (), '[%]'),
    ('[%05%]', (), '[%]'),
    # flag -
    ('[%-5d]', (42,), '[42   ]'),
    ('[%-5d]', (M - 42,), '[-42  ]'),
    ('[%-5x]', (255,), '[ff   ]'),
    ('[%-5o]', (8,), '[10   ]'),
    ('[%-5u]', (7,), '[7    ]'),
    ('[%-1d]', (12345,), '[12345]'),
    ('[%-5.3d]', (7,), '[007  ]'),
    # flag +
    ('%+d', (42,), '+42'),
    ('%+d', (0,), '+0'),
    ('%+d', (M - 42,), '-42'),
    ('%+i', (1,), '+1'),
    ('%+u', (42,), '42'),
    ('%+x', (42,), '2a'),
    ('%+X', (42,), '2A'),
    ('%+o', (42,), '52'),
    ('[%+5d]', (42,), '[  +42]'),
    ('[%+-5d]', (42,), '[+42  ]'),
    # flag space
    ('% d', (42,), ' 42'),
    ('% d', (0,), ' 0'),
    ('% d', (M - 42,), '-42'),
    ('% i', (1,), ' 1'),
    ('% u', (42,), '42'),
    ('% x', (42,), '2a'),
    ('%+ d', (42,), '+42'),
    ('% +d', (42,), '+42'),
    ('[% 5d]', (42,), '[   42]'),
    ('[% -5d]', (42,), '[ 42  ]'),
    ('[% 05d]', (42,), '[ 0042]'),
    # flag #
    ('%#x', (255,), '0xff'),
    ('%#X', (255,), '0XFF'),
    ('%#x', (0,), '0'),
    ('%#X', (0,), '0'),
    ('%#o', (8,), '010'),
    ('%#o', (0,), '0'),
    ('%#o', (M - 1,), '01777777777777777777777'),
    ('%#d', (42,), '42'),
    ('%#u', (42,), '42'),
    ('[%#10x]', (255,), '[      0xff]'),
    ('[%#-10x]', (255,), '[0xff      ]'),
    ('[%#010x]', (255,), '[0x000000ff]'),
    ('[%#010x]', (0,), '[0000000000]'),
    ('[%#010X]', (255,), '[0X000000FF]'),
    ('[%#06o]', (8,), '[000010]'),
    ('%#.0x', (0,), ''),
    ('%#.0X', (0,), ''),
    ('%#.0o', (0,), '0'),
    ('%#.0o', (8,), '010'),
    ('%#.3x', (1,), '0x001'),
    ('%#.3o', (8,), '010'),
    ('%#.3o', (511,), '0777'),
    ('%#.5o', (8,), '00010'),
    ('[%#8.3x]', (1,), '[   0x001]'),
    ('[%#08.3x]', (1,), '[   0x001]'),
    ('[%#5o]', (8,), '[  010]'),
    ('%#.1o', (0,), '0'),
    ('%#x', (M - 1,), '0xffffffffffffffff'),
    # flag 0
    ('%05d', (42,), '00042'),
    ('%05d', (M - 42,), '-0042'),
    ('%+05d', (42,), '+0042'),
    ('% 05d', (42,), ' 0042'),
    ('%05u', (42,), '00042'),
    ('%05x', (255,), '000ff'),
    ('%05X', (255,), '000FF'),
    ('%05o', (8,), '00010'),
    ('%016x', (0xdeadbeef,), '00000000deadbeef'),
    ('%016X', (0xdeadbeef,), '00000000DEADBEEF'),
    ('%016x', (M - 1,), 'ffffffffffffffff'),
    ('%02x', (2748,), 'abc'),
    ('[%-05d]', (42,), '[42   ]'),
    ('[%0-5d]', (42,), '[42   ]'),
    ('[%05.3d]', (42,), '[  042]'),
    ('[%05.3d]', (M - 42,), '[ -042]'),
    ('[%08.3x]', (255,), '[     0ff]'),
    ('[%05.0d]', (0,), '[     ]'),
    ('[%05.1d]', (0,), '[    0]'),
    ('%00005d', (42,), '00042'),
    ('%0+0+5d', (42,), '+0042'),
    # width
    ('[%1d]', (42,), '[42]'),
    ('[%2d]', (42,), '[42]'),
    ('[%3d]', (42,), '[ 42]'),
    ('[%10d]', (M - 42,), '[       -42]'),
    ('[%20u]', (M - 1,), '[18446744073709551615]'),
    ('[%21d]', (2**63,), '[ -9223372036854775808]'),
    ('[%8x]', (255,), '[      ff]'),
    ('[%8X]', (255,), '[      FF]'),
    ('[%8o]', (8,), '[      10]'),
    ('[%5d]', (0,), '[    0]'),
    # precision on integers
    ('[%.0d]', (0,), '[]'),
    ('[%.d]', (0,), '[]'),
    ('[%.0d]', (1,), '[1]'),
    ('[%.0u]', (0,), '[]'),
    ('[%.0x]', (0,), '[]'),
    ('[%.0X]', (0,), '[]'),
    ('[%.0o]', (0,), '[]'),
    ('[%5.0d]', (0,), '[     ]'),
    ('[%-5.0d]', (0,), '[     ]'),
    ('[%+.0d]', (0,), '[+]'),
    ('[% .0d]', (0,), '[ ]'),
    ('[%.1d]', (0,), '[0]'),
    ('[%.3d]', (7,), '[007]'),
    ('[%.3d]', (M - 7,), '[-007]'),
    ('[%+.3d]', (7,), '[+007]'),
    ('[% .3d]', (7,), '[ 007]'),
    ('[%.3x]', (255,), '[0ff]'),
    ('[%.3X]', (171,), '[0AB]'),
    ('[%.3o]', (8,), '[010]'),
    ('[%.2d]', (12345,), '[12345]'),
    ('[%8.3d]', (7,), '[     007]'),
    ('[%-8.3d]', (M - 7,), '[-007    ]'),
    ('[%.20u]', (M - 1,), '[18446744073709551615]'),
    ('[%.25d]', (2**63,), '[-0000009223372036854775808]'),
    ('[%.0000003d]', (7,), '[007]'),
    # star width and precision
    ('[%*d]', (5, 42), '[   42]'),
    ('[%*d]', (M - 5, 42), '[42   ]'),
    ('[%-*d]', (M - 5, 42), '[42   ]'),
    ('[%0*d]', (5, 42), '[00042]'),
    ('[%0*d]', (M - 5, 42), '[42   ]'),
    ('[%*d]', (0, 42), '[42]'),
    ('[%.*d]', (5, 42), '[00042]'),
    ('[%.*d]', (M - 1, 42), '[42]'),
    ('[%.*d]', (M - 1, 0), '[0]'),
    ('[%.*d]', (0, 0), '[]'),
    ('[%05.*d]', (M - 1, 42), '[00042]'),
    ('[%05.*d]', (3, 42), '[  042]'),
    ('[%*.*d]', (8, 4, 42), '[    0042]'),
    ('[%*.*s]', (8, 2, 'hello'), '[      he]'),
    ('[%-*.*s]', (8, 2, 'hello'), '[he      ]'),
    ('[%*.*s]', (M - 8, 2, 'hello'), '[he      ]'),
    ('[%.*s]', (M - 1, 'hello'), '[hello]'),
    ('[%.*s]', (0, 'hello'), '[]'),
    ('[%*s]', (M - 7, 'ab'), '[ab     ]'),
    ('[%*c]', (4, 65), '[   A]'),
    ('[%*x]', (6, 255), '[    ff]'),
    ('[%#*x]', (8, 255), '[    0xff]'),
    ('[%#.*o]', (0, 0), '[0]'),
    ('[%*p]', (8, 0), '[   (nil)]'),
    ('[%.*p]', (6, 255), '[0x0000ff]'),
    ('[%*u]', (3, 5), '[  5]'),
    # several directives
    ('pid %d name %s addr %#x\n', (1234, 'bash', 0x7f001000), 'pid 1234 name bash addr 0x7f001000\n'),
    ('%s=%d (%x)', ('rax', M - 1, M - 1), 'rax=-1 (ffffffffffffffff)'),
    ('%c%c%c', (72, 105, 33), 'Hi!'),
    ('%d%%|%-4s|%04x', (50, 'ok', 10), '50%|ok  |000a'),
    ('%*d|%-*s|%.*x', (4, 1, 4, 'a', 3, 10), '   1|a   |00a'),
    ('%p %p', (0, 4096), '(nil) 0x1000'),
]


@pytest.mark.parametrize("f, args, expected", GCC_VERIFIED, ids=[repr(c[0]) for c in GCC_VERIFIED])
def test_matches_glibc(f, args, expected):
    assert compile_format(f)(args) == expected


@pytest.mark.parametrize("f, args, expected", GCC_VERIFIED[:40], ids=[repr(c[0]) for c in GCC_VERIFIED[:40]])
def test_accepts_list_arguments(f, args, expected):
    assert compile_format(f)(list(args)) == expected


# ---------------------------------------------------------------------------
# Project rules that differ from (or go beyond) C.

LENGTH_MODIFIERS = ["hh", "h", "l", "ll", "q", "j", "z", "t", "L"]


@pytest.mark.parametrize("mod", LENGTH_MODIFIERS)
@pytest.mark.parametrize("conv, value", [
    ("d", M - 1), ("i", 2**63), ("u", M - 1), ("x", 0x1234_5678_9abc), ("X", 0xABCDEF),
    ("o", 0o777), ("c", 65), ("p", 0x1000), ("p", 0), ("s", "str"),
])
def test_length_modifiers_are_ignored(mod, conv, value):
    plain = fmt("%" + conv, value)
    assert fmt("%" + mod + conv, value) == plain
    assert fmt("[%-#20" + mod + conv + "]", value) == fmt("[%-#20" + conv + "]", value)
    assert compile_format("%" + mod + conv).kinds == compile_format("%" + conv).kinds


def test_length_modifiers_do_not_narrow():
    # In C these would convert to char / short / int; every VP integer is 64 bits.
    assert fmt("%hhd", 300) == "300"
    assert fmt("%hd", 70000) == "70000"
    assert fmt("%hhu", M - 1) == "18446744073709551615"
    assert fmt("%hx", 0x123456789) == "123456789"
    assert fmt("%ld %lld %zd", M - 1, M - 2, M - 3) == "-1 -2 -3"
    assert fmt("%lu", M - 1) == "18446744073709551615"
    assert fmt("%ll%") == "%"


def test_signed_conversion_boundaries():
    assert fmt("%d", 2**63 - 1) == "9223372036854775807"
    assert fmt("%d", 2**63) == "-9223372036854775808"
    assert fmt("%d", M - 1) == "-1"
    assert fmt("%u", M - 1) == str(M - 1)
    assert fmt("%+d|% d|%05d", M - 1, M - 1, M - 1) == "-1|-1|-0001"


def test_char_uses_low_byte():
    assert fmt("%c", 0x141) == "A"
    assert fmt("%c", M - 256 + 66) == "B"
    assert fmt("%c", 0) == "\x00"
    assert len(fmt("%c", 0)) == 1
    assert fmt("%c", 0xFF) == "\xff"


def test_pointer():
    assert fmt("%p", 0) == "(nil)"
    assert fmt("%p", 0xFFFF_8000_0000_1000) == "0xffff800000001000"
    assert fmt("%5p", 0) == "(nil)"
    assert fmt("%8p|%-8p|", 0, 0) == "   (nil)|(nil)   |"


def test_width_is_clamped_to_255():
    out = fmt("%300d", 7)
    assert len(out) == 255 and out == " " * 254 + "7"
    assert fmt("%-1000s|", "ab") == "ab" + " " * 253 + "|"
    assert fmt("%0999x", 255) == "0" * 253 + "ff"
    assert fmt("%256c", 65) == " " * 254 + "A"
    assert fmt("%255d", 7) == fmt("%256d", 7) == fmt("%9999d", 7)


def test_precision_is_clamped_to_255():
    assert fmt("%.300d", 1) == "0" * 254 + "1"
    assert fmt("%.1000x", M - 1) == "0" * (255 - 16) + "f" * 16
    assert fmt("%.300s", "abc") == "abc"
    assert fmt("%.300s", "a" * 300) == "a" * 255
    assert fmt("%#.300o", 8) == "0" * 253 + "10"


def test_star_values_are_clamped():
    assert fmt("%*d", 1000, 7) == " " * 254 + "7"
    assert fmt("%*d|", M - 1000, 7) == "7" + " " * 254 + "|"
    assert fmt("%*d|", 2**63, 7) == "7" + " " * 254 + "|"  # most negative width
    assert fmt("%*d|", 2**63 - 1, 7) == " " * 254 + "7|"
    assert fmt("%.*d", 1000, 1) == "0" * 254 + "1"
    assert fmt("%.*s", 1000, "a" * 300) == "a" * 255
    assert fmt("%.*s", 2**63, "abc") == "abc"  # negative: as if omitted


def test_huge_digit_runs_do_not_fail():
    # Longer than Python's int-from-string digit limit: must still clamp.
    assert len(fmt("%" + "9" * 5000 + "d", 1)) == 255
    assert len(fmt("%." + "9" * 5000 + "d", 1)) == 255
    # Leading zeros of a precision don't count.
    assert fmt("%." + "0" * 5000 + "5d", 1) == "00001"


def test_output_is_not_truncated():
    out = fmt("%s%s%s", "a" * 200, "b" * 200, "c" * 200)
    assert len(out) == 600
    out = fmt("%255d%255d", 1, 2)
    assert len(out) == 510


def test_percent_literals():
    assert fmt("%%") == "%"
    assert fmt("%%%%") == "%%"
    assert fmt("%%s %s", "x") == "%s x"
    assert fmt("%d%%", 50) == "50%"
    assert compile_format("100%%").kinds == ()
    assert compile_format("%5%").kinds == ()


def test_no_directives():
    assert fmt("") == ""
    assert fmt("hello\n") == "hello\n"
    assert fmt("caf\xe9 \x00 \xff") == "caf\xe9 \x00 \xff"


def test_literal_text_is_kept_exactly():
    # Characters Python's % operator treats specially must not leak into output.
    assert fmt("{0} %d {} %%(name)s", 5) == "{0} 5 {} %(name)s"
    assert fmt("a%sb%sc", "%d", "%s") == "a%db%sc"
    assert fmt("%s", "100%") == "100%"


# ---------------------------------------------------------------------------
# Errors.

@pytest.mark.parametrize("f, offset, words", [
    ("%", 0, "end"),
    ("abc%", 3, "end"),
    ("%d%", 2, "end"),
    ("%k", 0, "unknown conversion '%k'"),
    ("x %k", 2, "'%k'"),
    ("%d and %k", 7, "'%k'"),
    ("%f", 0, "floating"),
    ("%e", 0, "floating"),
    ("%g", 0, "floating"),
    ("%a", 0, "floating"),
    ("%n", 0, "'%n'"),
    ("%1$d", 0, "positional"),
    ("%5", 0, "incomplete"),
    ("%-", 0, "incomplete"),
    ("%.", 0, "incomplete"),
    ("%l", 0, "incomplete"),
    ("%hh", 0, "incomplete"),
    ("%5.3", 0, "incomplete"),
    ("ok %%%", 5, "end"),
    ("%lll", 0, "unknown conversion"),
    ("%hhhd", 0, "unknown conversion"),
    ("%llld", 0, "unknown conversion"),
    ("%lq", 0, "unknown conversion"),
    ("%.-3d", 0, "unknown conversion"),
    ("%5*d", 0, "unknown conversion"),
    ("%**d", 0, "unknown conversion"),
    ("%.**d", 0, "unknown conversion"),
    ("%'d", 0, "unknown conversion"),
    ("%Id", 0, "unknown conversion"),
    ("%S", 0, "unknown conversion"),
    ("%C", 0, "unknown conversion"),
    ("%D", 0, "unknown conversion"),
    ("%m", 0, "unknown conversion"),
    ("% ", 0, "incomplete"),
    ("%\n", 0, "'%\\x0a'"),
    ("%\xb2d", 0, "unknown conversion"),  # a Latin-1 digit is not a width
    ("%*%", 0, "malformed"),
    ("%.*%", 0, "malformed"),
    ("%s %d %*%", 6, "malformed"),
])
def test_errors(f, offset, words):
    with pytest.raises(FormatError) as info:
        compile_format(f)
    err = info.value
    assert err.offset == offset
    assert f[err.offset] == "%"
    assert words in err.message
    assert str(err) == err.message


def test_format_error_shape():
    err = FormatError("bad", 3)
    assert (err.message, err.offset) == ("bad", 3)
    assert str(err) == "bad"
    assert traceback.format_exception_only(err) == ["vp_runtime.printf.FormatError: bad\n"]


def test_errors_are_not_cached_as_results():
    for _ in range(2):
        with pytest.raises(FormatError):
            compile_format("%z")


# ---------------------------------------------------------------------------
# kinds, caching, the result type.

@pytest.mark.parametrize("f, kinds, out", [
    ("", (), ""),
    ("hello %%", (), "hello %"),
    ("%d", ("int",), "10"),
    ("%i%u%x%X%o%c%p", ("int",) * 7, "1011cD16\x0f0x10"),
    ("%s", ("str",), "ab"),
    ("%s=%d", ("str", "int"), "ab=11"),
    ("%*d", ("int", "int"), " " * 8 + "11"),
    ("%.*d", ("int", "int"), "0000000011"),
    ("%*.*d", ("int", "int", "int"), "00000000012"),
    ("%*s", ("int", "str"), " " * 8 + "ab"),
    ("%.*s", ("int", "str"), "ab"),
    ("%-*.*s|%*c|%.*x", ("int", "int", "str", "int", "int", "int", "int"),
     "ab" + " " * 8 + "|" + " " * 12 + "\x0e|" + "0" * 13 + "10"),
    ("%s%%%*.3s", ("str", "int", "str"), "ab%" + " " * 9 + "ab"),
    ("%lu %hhs %zp", ("int", "str", "int"), "10 ab 0xc"),
])
def test_kinds(f, kinds, out):
    c = compile_format(f)
    assert c.fmt == f
    assert c.kinds == kinds
    # Each argument in its place: integers 10, 11, ... by position, strings "ab".
    args = tuple("ab" if k == "str" else 10 + i for i, k in enumerate(kinds))
    assert c(args) == out


def test_compile_is_cached():
    f = "cached %d %s %#x"
    assert compile_format(f) is compile_format(f)
    info = compile_format.cache_info()
    assert 0 < info.maxsize <= 1024


def test_compiled_format_is_reusable():
    c = compile_format("%s:%5d:%-4x|")
    assert c(("a", 1, 2)) == "a:    1:2   |"
    assert c(("bb", M - 1, 255)) == "bb:   -1:ff  |"
    assert c(("a", 1, 2)) == "a:    1:2   |"


# ---------------------------------------------------------------------------
# Property tests.

def _python_reference(flags: str, width: str, conv: str, value):
    """The same directive via Python's % operator, where it agrees with C."""
    if conv in "di":
        return ("%" + flags + width + conv) % signed(value)
    if conv in "uxXo":
        # C ignores '+' and ' ' on unsigned conversions; Python would not.
        pyflags = flags.replace("+", "").replace(" ", "")
        return ("%" + pyflags + width + ("d" if conv == "u" else conv)) % value
    raise AssertionError(conv)


@given(
    flags=st.lists(st.sampled_from("-0+ "), max_size=5).map("".join),
    width=st.one_of(st.just(""), st.integers(1, 60).map(str)),
    conv=st.sampled_from("diuxXo"),
    value=U64,
)
def test_integers_agree_with_python_percent(flags, width, conv, value):
    f = "%" + flags + width + conv
    assert fmt(f, value) == _python_reference(flags, width, conv, value)


@given(
    left=st.booleans(),
    width=st.one_of(st.just(""), st.integers(1, 60).map(str)),
    prec=st.one_of(st.just(""), st.integers(0, 60).map(lambda p: "." + str(p))),
    s=LATIN1,
)
def test_strings_agree_with_python_percent(left, width, prec, s):
    f = "%" + ("-" if left else "") + width + prec + "s"
    assert fmt(f, s) == f % s


@given(left=st.booleans(), width=st.one_of(st.just(""), st.integers(1, 60).map(str)), value=U64)
def test_chars_agree_with_python_percent(left, width, value):
    f = "%" + ("-" if left else "") + width + "c"
    assert fmt(f, value) == f % (value & 0xFF)


@given(value=U64)
def test_plain_conversions_of_any_value(value):
    assert fmt("%d", value) == str(signed(value))
    assert fmt("%i", value) == str(signed(value))
    assert fmt("%u", value) == str(value)
    assert fmt("%x", value) == format(value, "x")
    assert fmt("%X", value) == format(value, "X")
    assert fmt("%o", value) == format(value, "o")
    assert fmt("%#x", value) == (hex(value) if value else "0")
    assert fmt("%#o", value) == ("0" + format(value, "o") if value else "0")
    assert fmt("%p", value) == (hex(value) if value else "(nil)")
    assert fmt("%016x", value) == format(value, "016x")
    assert fmt("%.0d", value) == (str(signed(value)) if value else "")


FLAGS = st.lists(st.sampled_from("-+ #0"), max_size=5).map("".join)
CONVS = st.sampled_from("diuxXocsp")


def _value_for(conv):
    return LATIN1 if conv == "s" else U64


@st.composite
def directives(draw):
    """A random directive without '*', and a matching argument."""
    flags = draw(FLAGS)
    width = draw(st.integers(0, 40))
    prec = draw(st.one_of(st.none(), st.integers(0, 40)))
    conv = draw(CONVS)
    value = draw(_value_for(conv))
    return flags, width, prec, conv, value


def _literal(flags, width, prec, conv):
    return "%" + flags + (str(width) if width else "") + ("" if prec is None else "." + str(prec)) + conv


@given(directives())
def test_star_forms_match_literal_forms(d):
    # '*' directives take the general path; literal ones mostly the fast
    # path.  Both must agree.
    flags, width, prec, conv, value = d
    literal = fmt(_literal(flags, width, prec, conv), value)
    star_f = "%" + flags + "*" + ("" if prec is None else ".*") + conv
    star_args = (width,) + (() if prec is None else (prec,)) + (value,)
    assert fmt(star_f, *star_args) == literal
    if prec is not None:
        width_text = str(width) if width else ""
        assert fmt("%" + flags + width_text + ".*" + conv, prec, value) == literal
        assert fmt("%" + flags + "*." + str(prec) + conv, width, value) == literal
    # A negative '*' width is the '-' flag with the absolute value.
    if width:
        assert fmt("%" + flags + "*" + conv, M - width, value) == \
            fmt(_literal(flags + "-", width, None, conv), value)
    # A negative '*' precision is as if none was given.
    negative = M - 1 - (prec or 0)
    assert fmt("%" + flags + (str(width) if width else "") + ".*" + conv, negative, value) == \
        fmt(_literal(flags, width, None, conv), value)


@given(
    st.lists(st.tuples(directives(), st.text(alphabet="ab {}()\n\\", max_size=3)), min_size=1, max_size=5),
    st.text(alphabet="xy ", max_size=3),
)
def test_whole_format_is_concatenation_of_pieces(pieces, head):
    whole = head
    expected = head
    args = []
    for (flags, width, prec, conv, value), text in pieces:
        f = _literal(flags, width, prec, conv)
        whole += f + text + "%%"
        expected += fmt(f, value) + text + "%"
        args.append(value)
    assert compile_format(whole)(tuple(args)) == expected


@given(directives())
def test_flag_order_and_repetition_do_not_matter(d):
    flags, width, prec, conv, value = d
    base = fmt(_literal(flags, width, prec, conv), value)
    assert fmt(_literal(flags[::-1], width, prec, conv), value) == base
    assert fmt(_literal(flags + flags, width, prec, conv), value) == base


@given(directives())
def test_results_are_bytes(d):
    flags, width, prec, conv, value = d
    out = fmt(_literal(flags, width, prec, conv), value)
    assert all(ord(ch) < 256 for ch in out)
    assert len(out) >= width


FORMAT_ERROR = re.compile(r"'%' at the end of the format string|incomplete directive '%|unknown conversion '%"
                          r"|malformed directive '%")
DIRECTIVE_SOUP = st.text(alphabet="%-+ #0123456789.*hlqjztLdiuxXocsp$knfa\x00\xe9\xb2", max_size=20)


@settings(max_examples=300)
@given(st.one_of(DIRECTIVE_SOUP, st.text(alphabet=st.characters(max_codepoint=255), max_size=30)))
def test_compile_arbitrary_text_raises_only_format_error(text):
    try:
        c = compile_format(text)
    except FormatError as err:
        assert 0 <= err.offset < len(text)
        assert text[err.offset] == "%"
        assert FORMAT_ERROR.match(err.message), err.message  # names the directive it refuses
        return
    assert all(k in ("int", "str") for k in c.kinds)
    literal = text.partition("%")[0]
    for value in (0, 1, M - 1):
        args = tuple("s\xff" if k == "str" else value for k in c.kinds)
        out = c(args)
        assert out.startswith(literal), (text, out)  # the text before the first directive, as written
        if literal == text:
            assert out == text
        assert all(ord(ch) < 256 for ch in out)


@settings(max_examples=300)
@given(st.one_of(DIRECTIVE_SOUP, st.sampled_from(["%5%", "[%-08.3%]", "%*%", "%.*%", "%%%", "%5", "%y", "%f"])))
def test_the_compiler_reads_a_format_as_the_runtime_does(text):
    kinds = format_kinds(text)  # what emmettc checks a printf's arguments against
    try:
        compiled = compile_format(text)
    except FormatError as err:
        assert kinds == err.message
    else:
        assert kinds == list(compiled.kinds)


def test_a_percent_with_a_width_is_one_percent_sign_in_emmett_as_in_vp():
    result = emmett.compile('VMMLoad { if (VCPUID == 0) printf("[%5d%5%]\\n", 3); }', "p.emt")
    assert result.ok, result.format_diagnostics()
    assert run_machine(result.vp, 0.1) == "[    3%]\n"
    refused = emmett.compile('VMMLoad { printf("%*%\\n", 3); }', "p.emt")
    assert [d.message for d in refused.diagnostics] == ["bad printf format: malformed directive '%*%': '%%' takes no '*'"]
