"""Load-time errors: each one located (`file:line:col: error: message`, source line, caret)
at the offending place, and the `vprobe` command's behaviour on them."""

from __future__ import annotations

import pytest

from vp_runtime import LoadConfig, VPLoadError, load
from vp_runtime.limits import MAX_CODE_BYTES_LIMIT

from conftest import FakeBackend, fire, load_error, new_machine, position_of, run_vprobe

OK_PROBE = "(vprobe VMXLoad (logint 1))"


def check(text: str, needle: str, *fragments: str, occurrence: int = 1, **kw):
    """`text` fails to load; the first error is at `needle` and mentions each fragment."""
    diag = load_error(text, **kw)
    shift = needle.find("|")  # `(+ |a 1`: the error is at `a`, found by its context
    line, col = position_of(text, needle.replace("|", ""), occurrence)
    assert (diag.line, diag.col) == (line, col + max(shift, 0)), diag.format()
    for fragment in fragments:
        assert fragment in diag.message, diag.format()
    return diag


# ---- the diagnostic's shape --------------------------------------------------------------

def test_diagnostic_format_has_location_source_line_and_caret():
    text = "(definteger x)\n(vprobe VMM1Hz\n    (setint x (+ x \"one\")))\n"
    diag = load_error(text, filename="scripts/count.vp")
    lines = diag.format().split("\n")
    assert lines[0] == ("scripts/count.vp:3:20: error: an operand of '+' must be an integer, "
                        "but this is a string")
    assert lines[1] == '    (setint x (+ x "one")))'
    assert lines[2] == " " * 19 + "^"
    assert len(lines) == 3


def test_every_error_of_a_script_is_reported_in_source_order():
    text = "(vprobe VMXLoad (logint x))\n(definteger FOO)\n(vprobe VMXLoad (logint y))\n"
    with pytest.raises(VPLoadError) as info:
        load(text, filename="t.vp")
    where = [(d.line, d.col) for d in info.value.diagnostics]
    assert where == [(1, 25), (2, 13), (3, 25)]
    assert all(d.severity == "error" for d in info.value.diagnostics)
    assert info.value.format().count(": error: ") == 3


def test_error_message_is_the_exception_text():
    with pytest.raises(VPLoadError) as info:
        load("(vprobe VMXLoad (logint zork))", filename="z.vp")
    assert str(info.value).startswith("z.vp:1:25: error: unknown name 'zork'")


# ---- lexical errors through load -------------------------------------------------------------

@pytest.mark.parametrize("text, needle, occurrence, fragment", [
    ("(vprobe VMXLoad\n  (logint 1)", "(vprobe", 1, "unbalanced"),
    ("(vprobe VMXLoad (logint 1)))", ")", 3, "unbalanced"),
    ('(vprobe VMXLoad (logstr "abc))', '"abc', 1, "unterminated string"),
    ("(vprobe VMXLoad (logint 0x1z))", "0x1z", 1, "bad number"),
    ("(vprobe VMXLoad (logint 18446744073709551616))", "1844", 1, "64 bits"),
])
def test_lexical_errors(text, needle, occurrence, fragment):
    check(text, needle, fragment, occurrence=occurrence)


# ---- top-level forms ------------------------------------------------------------------------

@pytest.mark.parametrize("text, needle, fragment", [
    ("(foo 1)\n" + OK_PROBE, "foo", "unknown top-level form 'foo'"),
    ("(setint x 1)\n" + OK_PROBE, "setint", "unknown top-level form"),
    ("(printf \"hi\")\n" + OK_PROBE, "printf", "unknown top-level form"),
    ("42\n" + OK_PROBE, "42", "top-level form"),
    ("()\n" + OK_PROBE, "()", "top-level form"),
    ("(vprobe VMXLoad (defun f () 1))", "defun f", "only allowed at the top level"),
    ("(vprobe VMXLoad (version \"1.0\"))", "version", "only allowed at the top level"),
])
def test_unknown_or_misplaced_top_level_forms(text, needle, fragment):
    check(text, needle, fragment)


@pytest.mark.parametrize("text", ["", "; only a comment\n", "(definteger x)\n(defun f () 1)\n"])
def test_a_file_with_no_probe(text):
    diag = load_error(text)
    assert "no probe" in diag.message
    assert (diag.line, diag.col) == (1, 1)


@pytest.mark.parametrize("text, needle, fragment", [
    ("(definteger x 1 2)\n" + OK_PROBE, "(definteger", "definteger"),
    ("(definteger x \"s\")\n" + OK_PROBE, '"s"', "integer literal"),
    ("(definteger x (+ 1 2))\n" + OK_PROBE, "(+", "integer literal"),
    ("(definteger 5)\n" + OK_PROBE, "5", "name"),
    ("(defstring s 5)\n" + OK_PROBE, "5", "string literal"),
    ("(defaggr a 1)\n" + OK_PROBE, "(defaggr", "defaggr"),
    ("(defaggr a \"1\" 0)\n" + OK_PROBE, '"1"', "integer keys"),
    ("(defbag b)\n" + OK_PROBE, "(defbag", "defbag"),
    ("(defbag b 0)\n" + OK_PROBE, "0", "at least one"),
    ("(defun f ())\n" + OK_PROBE, "(defun", "at least one expression"),
    ("(defun f x 1)\n" + OK_PROBE, "x", "must be a list"),
    ("(defun f (1) 1)\n" + OK_PROBE, "1)", "parameter"),
    ("(vprobe VMXLoad)", "(vprobe", "at least one expression"),
    ("(vprobe (VMXLoad) 1)", "(VMXLoad)", "probe point"),
    ("(vprobe NoSuchProbe 1)", "NoSuchProbe", "unknown probe point"),
    ("(vprobe USEC:0 1)", "USEC:0", "positive"),
    ("(vprobe USEC:fast 1)", "USEC:fast", "microseconds"),
    ("(vprobe USEC: 1)", "USEC:", "interval"),
    ("(vprobe BOGUS:1 1)", "BOGUS:1", "unknown probe point"),
    ("(vprobe GUEST: 1)", "GUEST:", "address or symbol"),
])
def test_malformed_definitions(text, needle, fragment):
    check(text, needle, fragment)


def test_unknown_guest_symbol_in_a_probe_point_is_refused_by_the_machine():
    m = new_machine()
    text = "(vprobe GUEST:no_such_function (logint 1))"
    check(text, "GUEST:", "no_such_function", backend=m)


# ---- names --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, needle, fragment", [
    ("(vprobe VMXLoad (logint zork))", "zork", "unknown name 'zork'"),
    ("(vprobe VMXLoad (setint zork 1))", "zork", "unknown variable 'zork'"),
    ("(vprobe VMXLoad (logaggr nope))", "nope", "unknown aggregate 'nope'"),
    ("(vprobe VMXLoad (clearaggr nope))", "nope", "unknown aggregate"),
    ("(vprobe VMXLoad (aggr nope () () 1))", "nope", "unknown aggregate"),
    ("(vprobe VMXLoad (baginsert nope 1 2))", "nope", "unknown bag"),
    ("(vprobe VMXLoad (bagremove nope 1))", "nope", "unknown bag"),
    ("(vprobe VMXLoad (logint RAX2))", "RAX2", "unknown name"),
    ("(defun f (a) b)\n" + OK_PROBE, "b)", "unknown name 'b'"),
    ("(defun f (a) a)\n(vprobe VMXLoad (logint a))", "a))", "unknown name 'a'"),  # parameters are local
    ("(vprobe VMXLoad (logint printf))", "printf)", "call it as (printf"),
    ("(defun f () 1)\n(vprobe VMXLoad (logint f))", "f)", "is a function"),
    ("(definteger x)\n(vprobe VMXLoad (x))", "(|x)", "is a variable, not a function"),
    ("(vprobe VMXLoad (RIP))", "RIP", "is a variable, not a function"),
    ("(defun f (x) (x))\n" + OK_PROBE, "x))", "is a parameter, not a function"),
    ("(vprobe VMXLoad ())", "()", "empty expression"),
    ("(vprobe VMXLoad ((f) 1))", "(f)", "operator or function name"),
    ("(vprobe VMXLoad (5 1))", "5 1", "operator or function name"),
])
def test_unknown_names(text, needle, fragment):
    check(text, needle, fragment)


def test_globals_the_machine_does_not_offer_are_unknown():
    m = new_machine()  # an Intel machine: VMCS fields, no VMCB fields
    check("(vprobe VMXLoad (logint VMCB_EXITCODE))", "VMCB_EXITCODE", "unknown name", backend=m)
    load("(vprobe VMXLoad (logint VMCS_EXIT_REASON))", backend=m)


# ---- calls to undefined functions ------------------------------------------------------------

def test_call_to_undefined_function_names_it_and_its_line():
    text = "(defun f (n)\n  (cond (n (g (- n 1)))))\n(vprobe VMXLoad (f 3))"
    check(text, "g (", "undefined function 'g'")


def test_recursion_into_a_function_defined_later_is_fine():
    text = ("(defun even (n) (cond ((== n 0) 1) (1 (odd (- n 1)))))\n"
            "(defun odd (n) (cond ((== n 0) 0) (1 (even (- n 1)))))\n"
            '(vprobe VMXLoad (printf "%d %d %d %d\\n" (even 10) (even 7) (odd 7) (odd 0)))')
    assert fire(text) == "1 0 1 0\n"


# ---- arity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, needle, fragment", [
    ("(vprobe VMXLoad (logint 1 2))", "(logint", "wrong number of arguments"),
    ("(vprobe VMXLoad (logint))", "(logint", "wrong number of arguments"),
    ("(vprobe VMXLoad (logstr))", "(logstr", "wrong number of arguments"),
    ("(vprobe VMXLoad (printf))", "(printf", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (sprintf s))", "(sprintf", "wrong number of arguments"),
    ("(vprobe VMXLoad (strcmp \"a\"))", "(strcmp", "wrong number of arguments"),
    ("(vprobe VMXLoad (getguest))", "(getguest", "wrong number of arguments"),
    ("(vprobe VMXLoad (getguest 1 2))", "(getguest", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (getgueststr s))", "(getgueststr", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (getgueststr s 1 2 3))", "(getgueststr", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (gueststack s s))", "(gueststack", "wrong number of arguments"),
    ("(vprobe VMXLoad (getguestphys))", "(getguestphys", "wrong number of arguments"),
    ("(definteger t)\n(vprobe VMXLoad (getsystemtime t t))", "(getsystemtime", "wrong number of arguments"),
    ("(vprobe VMXLoad (offatret))", "(offatret", "wrong number of arguments"),
    ("(vprobe VMXLoad (offatstrcpy \"a\" \"b\" \"c\"))", "(offatstrcpy", "wrong number of arguments"),
    ("(vprobe VMXLoad (offatseg))", "(offatseg", "wrong number of arguments"),
    ("(vprobe VMXLoad (+ 1))", "(+", "at least two operands"),
    ("(vprobe VMXLoad (add 1))", "(add", "at least two operands"),
    ("(vprobe VMXLoad (< 1))", "(<", "at least two operands"),
    ("(vprobe VMXLoad (&& 1))", "(&&", "at least two operands"),
    ("(vprobe VMXLoad (! 1 2))", "(!", "one operand"),
    ("(vprobe VMXLoad (not))", "(not", "one operand"),
    ("(vprobe VMXLoad (~ 1 2))", "(~", "one operand"),
    ("(definteger x)\n(vprobe VMXLoad (setint x))", "(setint", "wrong number of arguments"),
    ("(definteger x)\n(vprobe VMXLoad (setint x 1 2))", "(setint", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (setstr s))", "(setstr", "wrong number of arguments"),
    ("(vprobe VMXLoad (cond))", "(cond", "at least one clause"),
    ("(vprobe VMXLoad (cond (1 2 3)))", "(1 2 3)", "cond clause"),
    ("(vprobe VMXLoad (cond (1)))", "(1)", "cond clause"),
    ("(vprobe VMXLoad (cond 1))", "1))", "cond clause"),
    ("(vprobe VMXLoad (do))", "(do", "at least one expression"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a (1) ()))", "(aggr", "wrong number of arguments"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (logaggr a 1))", "1))", "expected the name of an aggregate"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (clearaggr))", "(clearaggr", "wrong number of arguments"),
    ("(defbag b 2)\n(vprobe VMXLoad (baginsert b 1))", "(baginsert", "wrong number of arguments"),
    ("(defbag b 2)\n(vprobe VMXLoad (bagremove b))", "(bagremove", "wrong number of arguments"),
    ("(defun f (x) 1)\n(vprobe VMXLoad (f))", "(f)", "'f' takes 1 argument, but 0 are given"),
    ("(defun f (x) 1)\n(vprobe VMXLoad (f 1 2))", "(f 1", "takes 1 argument, but 2 are given"),
    ("(defun f () 1)\n(vprobe VMXLoad (f 1))", "(f 1", "takes 0 arguments, but 1 is given"),
    ("(vprobe VMXLoad (printf \"%d %d\\n\" 1))", '"%d', "wants 2 arguments, but 1 is given"),
    ("(vprobe VMXLoad (printf \"%d\\n\" 1 2))", '"%d', "wants 1 argument, but 2 are given"),
])
def test_wrong_arity(text, needle, fragment):
    check(text, needle, fragment)


def test_too_many_arguments_and_parameters():
    args = " ".join(["1"] * 33)
    check(f"(vprobe VMXLoad (+ {args}))", "(+", "at most 32")
    params = " ".join(f"p{i}" for i in range(33))
    check(f"(defun f ({params}) 1)\n{OK_PROBE}", f"({params}", "at most 32")
    load(f"(vprobe VMXLoad (logint (+ {' '.join(['1'] * 32)})))")


# ---- types --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, needle, fragment", [
    ("(vprobe VMXLoad (logint \"s\"))", '"s"', "must be an integer, but this is a string"),
    ("(vprobe VMXLoad (logstr 5))", "5", "must be a string, but this is an integer"),
    ("(vprobe VMXLoad (logstr RIP))", "RIP", "must be a string"),
    ("(vprobe VMXLoad (logint PROBENAME))", "PROBENAME", "must be an integer"),
    ("(vprobe VMXLoad (+ 1 \"2\"))", '"2"', "an operand of '+' must be an integer"),
    ("(vprobe VMXLoad (== \"a\" \"a\"))", '"a"', "an operand of '=='"),
    ("(vprobe VMXLoad (! \"a\"))", '"a"', "an operand of '!'"),
    ("(vprobe VMXLoad (cond (\"a\" 1)))", '"a"', "a cond condition must be an integer"),
    ("(vprobe VMXLoad (strcmp 1 \"a\"))", "1 ", "an argument of strcmp must be a string"),
    ("(defstring s)\n(vprobe VMXLoad (setint s 1))", "s 1", "must be an integer variable"),
    ("(definteger i)\n(vprobe VMXLoad (setstr i \"a\"))", "i \"", "must be a string variable"),
    ("(definteger i)\n(vprobe VMXLoad (setint i \"a\"))", '"a"', "value assigned by setint must be an integer"),
    ("(defstring s)\n(vprobe VMXLoad (setstr s 1))", "1))", "value assigned by setstr must be a string"),
    ("(definteger i)\n(vprobe VMXLoad (sprintf i \"x\"))", "i \"", "destination of sprintf"),
    ("(definteger i)\n(vprobe VMXLoad (gueststack i))", "stack |i", "destination of gueststack"),
    ("(definteger i)\n(vprobe VMXLoad (getgueststr i 4096))", "i 4", "destination of getgueststr"),
    ("(defstring s)\n(vprobe VMXLoad (getsystemtime s))", "time |s", "destination of getsystemtime"),
    ("(vprobe VMXLoad (getsystemtime 5))", "5)", "destination of getsystemtime"),
    ("(vprobe VMXLoad (sprintf \"lit\" \"x\"))", '"lit"', "destination of sprintf"),
    ("(vprobe VMXLoad (printf 5))", "5)", "format of printf must be a string"),
    ("(vprobe VMXLoad (printf \"%d\" \"s\"))", '"s"', "printf argument 1"),
    ("(vprobe VMXLoad (printf \"%s\" 1))", "1)", "printf argument 1"),
    ("(vprobe VMXLoad (printf \"%f\" 1))", '"%f"', "bad printf format"),
    ("(vprobe VMXLoad (printf \"%n\"))", '"%n"', "bad printf format"),
    ("(vprobe VMXLoad (getguestphys \"sym\"))", '"sym"', "must be an integer"),
    ("(vprobe VMXLoad (offatret (printf \"x\") \"y\"))", "(offatret", "wrong number of arguments"),
    ("(defstring s)\n(vprobe VMXLoad (getgueststr s \"sym\" \"x\"))", '"x"', "must be an integer"),
    ("(defun f () \"s\")\n(vprobe VMXLoad (logint (f)))", "(f)", "must be an integer, but this is a string"),
    ("(defun f (a) (+ a 1))\n(vprobe VMXLoad (f \"s\"))", '"s"', "argument 'a' of 'f' must be an integer"),
    ("(defun f (a) (logint a) (logstr a))\n" + OK_PROBE, "a))", "must be a string, but this is an integer"),
    ("(defun f (a) (logint a))\n(defun g (b) (logstr b) (f b))\n" + OK_PROBE, "b))",
     "argument 'a' of 'f' must be an integer"),
    ("(vprobe VMXLoad (logint (cond (1 2) (0 \"s\"))))", '"s"', "cond clause yields a string"),
    ("(vprobe VMXLoad (logstr (do \"a\" 1)))", "(do", "must be a string"),
    ("(defun f (x) (setint x \"s\"))\n" + OK_PROBE, '"s"', "must be an integer"),
    ("(defun f (x) (setstr x \"s\") (logint x))\n" + OK_PROBE, "x))", "must be an integer"),
])
def test_type_errors(text, needle, fragment):
    check(text, needle, fragment)


@pytest.mark.parametrize("text, needle, fragment", [
    # aggregates are write-only and are not integers or strings
    ("(defaggr a 1 0)\n(vprobe VMXLoad (logint a))", "a))", "aggregate 'a' cannot be read"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (+ a 1))", "+ |a 1", "cannot be read"),
    ("(defaggr a 1 0)\n(defun f (x) x)\n(vprobe VMXLoad (f a))", "a))", "cannot be read"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (setint a 1))", "setint |a", "not a variable"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (baginsert a 1 2))", "insert |a", "'a' is not a bag"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (a))", "a)", "is a variable, not a function"),
    # bags are not values either
    ("(defbag b 4)\n(vprobe VMXLoad (logint b))", "b))", "bag 'b' cannot be read"),
    ("(defbag b 4)\n(vprobe VMXLoad (logaggr b))", "b))", "'b' is not an aggregate"),
    ("(defbag b 4)\n(vprobe VMXLoad (setint b 1))", "b 1", "not a variable"),
    ("(defbag b 4)\n(vprobe VMXLoad (baginsert b \"k\" 1))", '"k"', "a bag key must be an integer"),
    ("(defbag b 4)\n(vprobe VMXLoad (baginsert b 1 \"v\"))", '"v"', "a bag value must be an integer"),
    # integer and string variables are not aggregates or bags
    ("(definteger i)\n(vprobe VMXLoad (logaggr i))", "aggr |i", "'i' is not an aggregate"),
    ("(defstring s)\n(vprobe VMXLoad (clearaggr s))", "aggr |s", "'s' is not an aggregate"),
    ("(definteger i)\n(vprobe VMXLoad (bagremove i 1))", "i 1", "'i' is not a bag"),
    ("(defun f () 1)\n(vprobe VMXLoad (logaggr f))", "f)", "'f' is not an aggregate"),
])
def test_aggregate_and_bag_type_errors(text, needle, fragment):
    check(text, needle, fragment)


@pytest.mark.parametrize("text, needle, fragment", [
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a () () 1))", "() ()", "has 1 integer key, but 0 are given"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a (1 2) () 1))", "(1 2)", "has 1 integer key, but 2 are given"),
    ("(defaggr a 0 2)\n(vprobe VMXLoad (aggr a () (\"x\") 1))", '("x")', "has 2 string keys, but 1 is given"),
    ("(defaggr a 0 0)\n(vprobe VMXLoad (aggr a () (\"x\") 1))", '("x")', "has 0 string keys"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a (\"s\") () 1))", '"s"', "an integer key of 'a' must be an integer"),
    ("(defaggr a 0 1)\n(vprobe VMXLoad (aggr a () (1) 1))", "1) 1", "a string key of 'a' must be a string"),
    ("(defaggr a 0 1)\n(vprobe VMXLoad (aggr a () (RIP) 1))", "RIP", "must be a string"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a (1) () \"v\"))", '"v"', "value added to an aggregate"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a 1 () 1))", "1 ()", "must be a list"),
    ("(defaggr a 1 0)\n(vprobe VMXLoad (aggr a (1) \"s\" 1))", '"s"', "must be a list"),
    ("(defaggr a 10 7)\n" + OK_PROBE, "(defaggr", "at most 16 keys"),
])
def test_aggregate_keys_must_match_defaggr(text, needle, fragment):
    check(text, needle, fragment)


# ---- built-ins are read-only and reserved -------------------------------------------------------

@pytest.mark.parametrize("text, needle", [
    ("(vprobe VMXLoad (setint RAX 1))", "RAX"),
    ("(vprobe VMXLoad (setint ARG0 1))", "ARG0"),
    ("(vprobe VMXLoad (setint TSC 1))", "TSC"),
    ("(vprobe VMXLoad (setint VCPUID 1))", "VCPUID"),
    ("(vprobe VMXLoad (setint VMCS_EXIT_REASON 1))", "VMCS_EXIT_REASON"),
    ("(vprobe VMXLoad (setstr PROBENAME \"x\"))", "PROBENAME"),
    ("(vprobe VMXLoad (sprintf PROBENAME \"x\"))", "PROBENAME"),
    ("(vprobe VMXLoad (getgueststr PROBENAME 4096))", "PROBENAME"),
    ("(vprobe VMXLoad (gueststack PROBENAME))", "PROBENAME"),
    ("(vprobe VMXLoad (getsystemtime PTSC))", "PTSC"),
])
def test_assignment_to_a_builtin_global_is_an_error(text, needle):
    check(text, needle, "read-only", f"'{needle}'")


@pytest.mark.parametrize("form", ["(definteger {n})", "(defstring {n})", "(defaggr {n} 1 0)", "(defbag {n} 4)",
                                  "(defun {n} () 1)", "(defun f ({n}) 1)"])
@pytest.mark.parametrize("name", ["RIP", "PROBENAME", "ARG3", "TSC_HZ", "FOO", "X", "MYVAR"])
def test_builtin_and_upper_case_names_cannot_be_defined(form, name):
    text = form.format(n=name) + "\n" + OK_PROBE
    check(text, name, f"'{name}'")


@pytest.mark.parametrize("name", ["printf", "cond", "setint", "+", "add", "vprobe", "defun", "aggr", "getguest"])
def test_builtin_function_names_cannot_be_defined(name):
    check(f"(definteger {name})\n{OK_PROBE}", name, "built-in")


@pytest.mark.parametrize("name", ["Foo", "fOO", "x", "a-B", "my_var", "tsc-start", "_procName", "aBC",
                                  "MAX_COUNT", "R2D2", "ARG10"])
def test_names_with_lower_case_letters_are_user_names(name):
    assert fire(f"(definteger {name} 3)\n(vprobe VMXLoad (logint {name}))") == "3"


def test_upper_case_error_message():
    diag = check("(definteger FOO)\n" + OK_PROBE, "FOO", "upper-case", "reserved")
    assert diag.line == 1


# ---- duplicate definitions -----------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [
    ("(definteger x)", "(definteger x)"),
    ("(definteger x)", "(defstring x)"),
    ("(defstring x)", "(defaggr x 1 0)"),
    ("(defaggr x 1 0)", "(defbag x 2)"),
    ("(defbag x 2)", "(defun x () 1)"),
    ("(defun x () 1)", "(defun x () 2)"),
    ("(defun x () 1)", "(definteger x)"),
])
def test_duplicate_definitions(first, second):
    text = f"{first}\n{second}\n{OK_PROBE}"
    diag = check(text, "x", "already defined at line 1", occurrence=2)
    assert diag.line == 2


def test_duplicate_parameter():
    check("(defun f (a b a) 1)\n" + OK_PROBE, "a)", "appears twice")


def test_parameter_may_shadow_a_global():
    from conftest import fire
    assert fire("(definteger x 5)\n(defun f (x) (+ x 1))\n(vprobe VMXLoad (logint (f 10)) (logint x))") == "115"


# ---- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["(definteger {n})", "(defstring {n})", "(defaggr {n} 1 0)", "(defbag {n} 2)",
                                  "(defun {n} () 1)", "(defun f ({n}) 1)"])
def test_names_of_64_bytes_or_more_are_errors(form):
    name = "n" * 64
    check(form.format(n=name) + "\n" + OK_PROBE, name, "64 bytes", "63")
    load(form.format(n="n" * 63) + "\n" + OK_PROBE)


def test_name_length_counts_bytes():
    name = "\u00e9" * 32  # 64 bytes of UTF-8
    diag = load_error(f"(definteger {name})\n{OK_PROBE}")
    assert "64 bytes" in diag.message
    load(f"(definteger {'é' * 31}x)\n{OK_PROBE}")


def test_probe_names_of_64_bytes_or_more_are_errors():
    sym = "s" * (64 - len("GUEST:"))
    backend = FakeBackend(symbols={sym: 0x1000, sym[:-1]: 0x2000})
    check(f"(vprobe GUEST:{sym} (logint 1))", "GUEST:", "64 bytes", backend=backend)
    load(f"(vprobe GUEST:{sym[:-1]} (logint 1))", backend=backend)


def test_string_literals_over_255_bytes_are_errors():
    long = "a" * 256
    check(f'(vprobe VMXLoad (logstr "{long}"))', '"aaa', "256 bytes", "255")
    check(f'(defstring s "{long}")\n{OK_PROBE}', '"aaa', "256 bytes")
    check(f'(vprobe VMXLoad (printf "{long}"))', '"aaa', "256 bytes")
    load(f'(vprobe VMXLoad (logstr "{"a" * 255}"))')
    load('(vprobe VMXLoad (logstr "' + "\\n" * 255 + '"))')  # an escape is one byte
    load_error('(vprobe VMXLoad (logstr "' + "\\t" * 256 + '"))')
    load_error('(vprobe VMXLoad (logstr "' + "\u00e9" * 128 + '"))')  # 256 bytes of UTF-8


def test_at_most_32_probes():
    probes = [f"(vprobe VMM1Hz (logint {i}))" for i in range(33)]
    load("\n".join(probes[:32]))
    diag = load_error("\n".join(probes))
    assert "too many probes" in diag.message and "32" in diag.message
    assert (diag.line, diag.col) == (33, 9)


def test_translated_code_over_the_translation_cache():
    text = "(definteger x)\n" + "\n".join(
        f"(vprobe VMM1Hz (setint x (+ x {i} (* x {i}))) (printf \"%d %d\\n\" x {i}))" for i in range(30))
    script = load(text)
    assert 0 < script.code_bytes <= LoadConfig().max_code_bytes
    diag = load_error(text, config=LoadConfig(max_code_bytes=script.code_bytes - 1))
    assert "translation cache" in diag.message and str(script.code_bytes - 1) in diag.message
    load(text, LoadConfig(max_code_bytes=script.code_bytes))


def test_translation_cache_is_at_most_64k():
    LoadConfig(max_code_bytes=MAX_CODE_BYTES_LIMIT)
    with pytest.raises(ValueError):
        LoadConfig(max_code_bytes=MAX_CODE_BYTES_LIMIT + 1)
    with pytest.raises(ValueError):
        LoadConfig(max_code_bytes=0)


def test_a_script_too_big_for_64k_is_refused():
    body = " ".join(f"(printf \"%d %d %d\\n\" (+ x {i}) (* x {i}) (- x {i}))" for i in range(30))
    text = "(definteger x)\n" + "\n".join(f"(vprobe VMM1Hz {body})" for _ in range(32))
    diag = load_error(text, config=LoadConfig(max_code_bytes=MAX_CODE_BYTES_LIMIT))
    assert "translation cache" in diag.message


# ---- version directive (Table 3-1) ----------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.0", "1000.0", "2.5"])
def test_higher_major_version_refuses_to_run(version):
    text = f'(version "{version}")\n{OK_PROBE}'
    check(text, f'"{version}"', version)


@pytest.mark.parametrize("version, fragment", [("0.2", "mismatch"), ("0.0", "mismatch"), ("1.1", "newer"),
                                               ("1.99", "newer")])
def test_lower_major_or_higher_minor_warns_and_runs(version, fragment):
    from conftest import Loaded
    text = f'(version "{version}")\n{OK_PROBE}'
    loaded = Loaded(text)
    (warning,) = loaded.script.warnings
    assert warning.severity == "warning"
    assert fragment in warning.message and version in warning.message
    assert (warning.line, warning.col) == (1, 10)
    assert warning.format().startswith("t.vp:1:10: warning: ")
    assert loaded.fire() == "1"


@pytest.mark.parametrize("version", ["1.0", "01.00"])
def test_current_version_runs_without_warning(version):
    assert load(f'(version "{version}")\n{OK_PROBE}').warnings == []


@pytest.mark.parametrize("text, needle", [
    ('(version "1")\n' + OK_PROBE, '"1"'),
    ('(version "one.two")\n' + OK_PROBE, '"one'),
    ('(version "1.0.0")\n' + OK_PROBE, '"1.0.0"'),
    ("(version 1)\n" + OK_PROBE, "(version"),
    ('(version "1.0" "2.0")\n' + OK_PROBE, "(version"),
])
def test_malformed_version(text, needle):
    check(text, needle, "version")


def test_warnings_accompany_errors():
    with pytest.raises(VPLoadError) as info:
        load('(version "0.5")\n(vprobe VMXLoad (logint zork))', filename="t.vp")
    assert [d.severity for d in info.value.diagnostics] == ["error", "warning"]


# ---- the vprobe command --------------------------------------------------------------------------

def test_cli_load_error_exits_1_with_diagnostic_on_stderr(tmp_path):
    script = tmp_path / "bad.vp"
    script.write_text("(vprobe VMM1Hz\n  (printf \"%d\\n\" zork))\n")
    result = run_vprobe("-d", "1", str(script))
    assert result.returncode == 1
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.startswith(f"{script}:2:18: error: unknown name 'zork'\n")
    assert "  (printf \"%d\\n\" zork))\n" + " " * 17 + "^" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", [
    b"(vprobe VMM1Hz (printf \"x))",
    b"(vprobe VMM1Hz (printf \"x\")",
    b"(vprobe VMM1Hz (printf \"x\")))",
    b"(vprobe VMM1Hz (logint 99999999999999999999))",
    b"(foo)",
    b"",
    b"\xff\xfe\x00(vprobe",
    b'(version "9.0")(vprobe VMM1Hz (logint 1))',
])
def test_cli_stdin_load_errors(text):
    result = run_vprobe("-i", "-d", "1", stdin=text)
    assert result.returncode == 1
    assert result.stdout == b""
    err = result.stderr.decode("utf-8", "replace")
    assert err.startswith("<stdin>:")
    assert ": error: " in err.splitlines()[0]
    assert "Traceback" not in err


def test_cli_runs_a_script_for_d_seconds(tmp_path):
    script = tmp_path / "hello.vp"
    script.write_text('(vprobe VMM1Hz (printf "hello!\\n"))')
    result = run_vprobe("-d", "3", str(script))
    assert result.returncode == 0
    assert result.stdout == b"hello!\n" * 6
    assert b"Traceback" not in result.stderr


def test_cli_reads_stdin_and_flushes_partial_lines_at_unload():
    result = run_vprobe("-i", "-d", "0.5", stdin=b"(vprobe VMXLoad (logint 42)) (vprobe VMXUnload (logstr \"!\"))")
    assert result.returncode == 0
    assert result.stdout == b"42\n!\n"  # each firing's output ends its line


def test_cli_version_warning_goes_to_stderr_and_script_runs():
    result = run_vprobe("-i", "-d", "1", stdin=b'(version "0.2")\n(vprobe VMXLoad (logint 7))')
    assert result.returncode == 0
    assert result.stdout == b"7\n"
    assert result.stderr.decode().startswith("<stdin>:1:10: warning: ")


def test_cli_runtime_fault_is_logged_not_raised():
    result = run_vprobe("-i", "-d", "1", stdin=b"(vprobe VMM1Hz (logint (getguest 0)) (logstr \"x\"))")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("vprobe error: probe VMM1Hz aborted at <stdin>:1:24:")
                                   for line in lines)
    assert b"Traceback" not in result.stderr


def test_cli_log_bytes_are_passed_through():
    result = run_vprobe("-i", "-d", "0", stdin='(vprobe VMXLoad (logstr "caf\u00e9 \\\\ \\x\n"))'.encode())
    assert result.returncode == 0
    assert result.stdout == "caf\u00e9 \\ x\n".encode()


# ---- non-ASCII source and file names ------------------------------------------------------------

def test_diagnostics_show_the_source_as_utf8_with_character_columns():
    text = '(definteger café)\n(vprobe VMXLoad (logstr "café") (logint cafés))'
    diag = load_error(text)
    assert diag.message == "unknown name 'cafés'"
    assert diag.source_line == '(vprobe VMXLoad (logstr "café") (logint cafés))'
    assert (diag.line, diag.col) == (2, 41)  # characters, not bytes
    assert diag.format().splitlines()[2] == " " * 40 + "^"


def test_diagnostics_of_invalid_utf8_use_replacement_characters():
    diag = load_error(b'(vprobe VMXLoad (logstr "caf\xe9") (logint zork))')
    assert diag.source_line == '(vprobe VMXLoad (logstr "caf\ufffd") (logint zork))'
    assert diag.col == 41


def test_fault_columns_count_characters_too():
    from conftest import fire
    out = fire('(vprobe VMXLoad (logstr "café ") (logint (getguest "nope")))')
    assert out.startswith("café ".encode().decode("latin-1"))  # the log holds the bytes
    assert "aborted at t.vp:1:42: unknown guest symbol 'nope'" in out


def test_cli_non_ascii_names_and_file_names(tmp_path):
    script = tmp_path / "日本-café.vp"
    script.write_bytes('(vprobe VMXLoad (logstr "é\\n") (logint (getguest "nope")))'.encode())
    result = run_vprobe("-d", "0", str(script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"é\nvprobe error: probe VMXLoad aborted at {script}:1:40: unknown guest symbol 'nope'\n"
    script.write_bytes('(vprobe VMXLoad (logstr "é") (logint zörk))'.encode())
    result = run_vprobe("-d", "0", str(script))
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode().startswith(f"{script}:1:38: error: unknown name 'zörk'\n"
                                             '(vprobe VMXLoad (logstr "é") (logint zörk))\n')


def test_cli_pagefault_sample_as_printed(tmp_path):
    from conftest import SAMPLES
    result = run_vprobe("-d", "1", str(SAMPLES / "pagefault_stack.vp"))
    assert result.returncode == 1 and result.stdout == b""
    first = result.stderr.decode().splitlines()[0]
    assert first == f"{SAMPLES / 'pagefault_stack.vp'}:12:15: error: call to undefined function 'print-stack-32'"
    result = run_vprobe("-d", "1", str(SAMPLES / "pagefault_stack_fixed.vp"))
    assert result.returncode == 0 and b"Traceback" not in result.stderr


def test_duplicate_definition_names_the_first_in_character_columns():
    diag = load_error("(defstring é \"é\") (definteger x)\n(defaggr x 1 0)\n(vprobe VMXLoad (logint 1))")
    assert diag.message == "'x' is already defined at line 1, column 31"  # 33 in bytes
