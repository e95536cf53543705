"""The VP reader: s-expressions, literals, names, comments, and located lexical errors."""

from __future__ import annotations

import pytest

from vp_runtime import VPLoadError
from vp_runtime.reader import Int, List, Node, Source, Str, Sym, read

from conftest import Loaded, load_error, position_of

U64 = (1 << 64) - 1


def forms(text: str | bytes) -> list:
    return read(Source(text, "r.vp"))


def one(text: str):
    """The single item of the single top-level list in `text`."""
    (top,) = forms(text)
    assert isinstance(top, List)
    (item,) = top.items
    return item


def walk(node):
    yield node
    if isinstance(node, List):
        for item in node.items:
            yield from walk(item)


def reader_error(text: str | bytes):
    with pytest.raises(VPLoadError) as info:
        forms(text)
    (diag,) = info.value.diagnostics
    assert diag.file == "r.vp"
    return diag


# ---- forms and positions -------------------------------------------------------------

def test_every_node_has_its_line_and_column():
    text = '(vprobe VMM1Hz\n  (printf "x %d\\n"\n\t  (+ 0x10 -3)))\n(definteger a)'
    top = forms(text)
    assert len(top) == 2
    nodes = [n for f in top for n in walk(f)]
    assert all(isinstance(n, Node) and n.line >= 1 and n.col >= 1 for n in nodes)
    where = {(type(n).__name__, getattr(n, "name", getattr(n, "value", None))): (n.line, n.col)
             for n in nodes if not isinstance(n, List)}
    assert where[("Sym", "vprobe")] == (1, 2)
    assert where[("Sym", "VMM1Hz")] == (1, 9)
    assert where[("Sym", "printf")] == (2, 4)
    assert where[("Str", "x %d\n")] == (2, 11)
    assert where[("Sym", "+")] == (3, 5)  # a tab is one column
    assert where[("Int", 16)] == (3, 7)
    assert where[("Int", U64 - 2)] == (3, 12)
    assert where[("Sym", "a")] == (4, 13)
    lists = [(n.line, n.col) for n in nodes if isinstance(n, List)]
    assert lists == [(1, 1), (2, 3), (3, 4), (4, 1)]


def test_nested_structure():
    (top,) = forms("(a (b c) () ((d)))")
    assert [type(i).__name__ for i in top.items] == ["Sym", "List", "List", "List"]
    assert top.items[2].items == []
    assert top.items[3].items[0].items[0].name == "d"


def test_top_level_atoms_are_kept_for_the_checker():
    assert [type(f).__name__ for f in forms('a 1 "s" (b)')] == ["Sym", "Int", "Str", "List"]


def test_crlf_line_endings():
    top = forms("(a\r\n b)\r\n(c)")
    assert (top[0].items[1].line, top[0].items[1].col) == (2, 2)
    assert (top[1].line, top[1].col) == (3, 1)


# ---- comments ------------------------------------------------------------------------

def test_semicolon_comments_run_to_end_of_line():
    text = "; This is a comment\n(setint a 42) ; So is this\n(b ;c d)\n e)"
    top = forms(text)
    assert [i.name if isinstance(i, Sym) else i.value for i in top[0].items] == ["setint", "a", 42]
    assert [i.name for i in top[1].items] == ["b", "e"]
    assert (top[1].items[1].line, top[1].items[1].col) == (4, 2)


def test_semicolon_ends_a_name_and_is_literal_inside_strings():
    top = forms('(abc;comment\n "a;b")')
    assert top[0].items[0].name == "abc"
    assert top[0].items[1].value == "a;b"


def test_comment_at_end_of_file_without_newline():
    assert len(forms("(a) ; trailing")) == 1


def test_only_comments_is_no_forms():
    assert forms("; nothing\n;; at all\n") == []


# ---- strings -------------------------------------------------------------------------

@pytest.mark.parametrize("literal, value", [
    (r'"This is a \"string\""', 'This is a "string"'),
    (r'"So\'s this\tover here\n"', "So's this\tover here\n"),
    (r'"A newline in VP is \"\\n\""', 'A newline in VP is "\\n"'),
    (r'"This will be a backslash: \\. This will not: \."', "This will be a backslash: \\. This will not: ."),
    (r'"\q\a\0\x41\(\)"', "qa0x41()"),
    ('"two\nlines"', "two\nlines"),
    ('""', ""),
    ('"(not a list) ; nor a comment"', "(not a list) ; nor a comment"),
])
def test_string_literals_and_escapes(literal, value):
    node = one(f"({literal})")
    assert isinstance(node, Str)
    assert node.value == value


def test_backslash_newline_keeps_the_newline_and_counts_lines():
    top = forms('("a\\\nb" x)')
    assert top[0].items[0].value == "a\nb"
    assert (top[0].items[1].line, top[0].items[1].col) == (2, 4)


def test_string_bytes_are_kept_exactly():
    node = one(b'("caf\xc3\xa9 \xff")')
    assert node.value == "caf\xc3\xa9 \xff"  # one character per byte
    assert one('("café")').value == "caf\xc3\xa9"  # str input is UTF-8 bytes


def test_escapes_print_through_the_log():
    loaded = Loaded(r'(vprobe VMXLoad (logstr "a\tb\\c\"d\.e\n"))')
    assert loaded.fire() == 'a\tb\\c"d.e\n'


def test_string_next_to_names():
    (top,) = forms('(abc"def" "x"yz)')
    assert [type(i).__name__ for i in top.items] == ["Sym", "Str", "Sym"]
    assert top.items[0].name == 'abc"def"'
    assert top.items[1].value == "x"
    assert top.items[2].name == "yz"


# ---- integers --------------------------------------------------------------------------

@pytest.mark.parametrize("token, value", [
    ("0", 0), ("63", 63), ("+54", 54), ("-65536", (1 << 64) - 65536), ("-1", U64), ("-0", 0),
    ("0xFFFFFFC0", 0xFFFFFFC0), ("0xff", 0xFF), ("0XfF", 0xFF), ("0x0", 0), ("007", 7),
    ("18446744073709551615", U64), ("0xffffffffffffffff", U64), ("-18446744073709551615", 1),
    ("9223372036854775808", 1 << 63), ("-9223372036854775808", 1 << 63),
])
def test_integer_literals(token, value):
    node = one(f"({token})")
    assert isinstance(node, Int)
    assert node.value == value


@pytest.mark.parametrize("token", ["18446744073709551616", "0x10000000000000000", "-18446744073709551616",
                                   "99999999999999999999999"])
def test_integer_over_64_bits_is_an_error(token):
    text = f"(vprobe VMXLoad\n   (logint {token}))"
    diag = reader_error(text)
    assert (diag.line, diag.col) == position_of(text, token)
    assert token in diag.message and "64 bits" in diag.message


def test_integers_mix_hex_and_decimal_and_negatives_wrap():
    loaded = Loaded("(vprobe VMXLoad (printf \"%d %u %x\\n\" (+ 0x10 10 -1) -1 -65536))")
    assert loaded.fire() == "25 18446744073709551615 ffffffffffff0000\n"


def test_literals_of_any_length():
    # Leading zeros do not count: thousands of them still spell a 64-bit value.
    loaded = Loaded(f"(vprobe VMXLoad (printf \"%u %u\" {'0' * 5000}42 -0x{'0' * 5000}1))")
    assert loaded.fire() == "42 18446744073709551615"
    # Past Python's 4,300-digit limit for decimal strings: a located error that quotes a part.
    for token in ("9" * 4301, "9" * 4301 + "USEC", "0x" + "f" * 5000):
        text = f"(vprobe VMXLoad\n   (logint {token}))"
        diag = reader_error(text)
        assert (diag.line, diag.col) == (2, 12)
        assert token[:40] in diag.message and f"({len(token):,} characters)" in diag.message
        assert len(diag.message) < 120


@pytest.mark.parametrize("token", ["12abc", "0x", "0xg1", "1.5.2", "-1.5", "-5x", "+0x1q", "0x1.0"])
def test_malformed_numbers_are_errors(token):
    text = f"(vprobe VMXLoad (logint {token}))"
    diag = reader_error(text)
    assert (diag.line, diag.col) == position_of(text, token)
    assert "bad number" in diag.message and token in diag.message


def test_a_number_with_a_fraction_is_read_for_the_version_and_refused_anywhere_else():
    # The toolkit's compiler writes (version 1.0); VP numbers themselves are integers.
    assert Loaded("(version 1.0)\n(vprobe VMXLoad (logint 1))").fire() == "1"
    text = "(vprobe VMXLoad (logint 1.5))"
    diag = load_error(text)
    assert (diag.line, diag.col) == position_of(text, "1.5")
    assert "'1.5': VP numbers are integers" in diag.message


# ---- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    "a'b\"c.d", "tsc-start", "my-rip", "_procName", "a.b", "x!", "+", "-", "<=", "!=", "&&", "-x", "+x",
    "0", "GUEST:0xc0106ae0", "USEC:333333", "\u00e9t\u00e9", "a{b}[c]", "a#b", "a,b", "a`b", "x\\y",
])
def test_names_are_any_run_of_other_characters(token):
    (top,) = forms(f"({token} end)")
    first = top.items[0]
    if token == "0":
        assert isinstance(first, Int)
        return
    assert isinstance(first, Sym)
    assert first.name == token.encode("utf-8").decode("latin-1")
    assert top.items[1].name == "end"


def test_name_with_quote_inside_is_one_name_that_works_as_a_variable():
    loaded = Loaded("(definteger a'b\"c.d 5)\n(vprobe VMXLoad (setint a'b\"c.d (+ a'b\"c.d 1)) (logint a'b\"c.d))")
    assert loaded.fire() == "6"


@pytest.mark.parametrize("sep", [" ", "\t", "\n", "\r", "\f", "\v", "(", ")", ";"])
def test_name_delimiters(sep):
    text = f"(ab{sep}cd\n)" if sep not in "()" else ("(ab(cd))" if sep == "(" else "((ab)cd)")
    syms = [n.name for n in walk(forms(text)[0]) if isinstance(n, Sym)]
    assert syms == (["ab"] if sep == ";" else ["ab", "cd"])


# ---- lexical errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, where, message", [
    # an unclosed paren: the innermost one open at the end
    ("(vprobe VMM1Hz\n  (printf \"x\")\n  (logint (+ 1 2)", (3, 3), "unbalanced '(' is never closed"),
    ("(vprobe VMM1Hz (printf \"x\"))\n(defun f ()\n  (+ 1 2)", (2, 1), "unbalanced '(' is never closed"),
    # an extra close paren: that one
    ("(vprobe VMM1Hz\n  (printf \"x\")))\n", (2, 16), "unbalanced ')' with no matching '('"),
    (") (a)", (1, 1), "unbalanced ')' with no matching '('"),
    # an unterminated string: its opening quote
    ('(vprobe VMM1Hz\n  (printf "hello!\\n))\n\n', (2, 11), "unterminated string literal"),
    ('(a "abc\\', (1, 4), "unterminated string literal"),
], ids=["unclosed-innermost", "unclosed-inner", "extra-close", "close-before-open", "unterminated-string",
        "unterminated-string-ending-in-backslash"])
def test_an_unbalanced_paren_or_string_points_at_its_start(text, where, message):
    diag = reader_error(text)
    assert (diag.line, diag.col) == where
    assert diag.message == message


def test_nesting_limit_is_a_located_error():
    depth = 200
    text = "(vprobe VMXLoad " + "(+ 1 " * depth + "1" + ")" * depth + ")"
    diag = reader_error(text)
    assert diag.line == 1 and diag.col > 1
    assert "nested" in diag.message


def test_diagnostic_shows_source_line_and_caret():
    text = "(definteger x)\n(vprobe VMXLoad\n\t(logint 12abc))\n"
    diag = reader_error(text)
    lines = diag.format().split("\n")
    assert lines[0] == "r.vp:3:10: error: bad number '12abc'"
    assert lines[1] == "\t(logint 12abc))"
    assert lines[2] == "\t" + " " * 8 + "^"


def test_load_reports_reader_errors_with_the_file_name():
    diag = load_error("(vprobe VMXLoad (logint 1)", filename="dir/my script.vp")
    assert diag.format().startswith("dir/my script.vp:1:1: error: ")
