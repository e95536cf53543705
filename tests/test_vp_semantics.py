"""What VP programs mean: forms, operators, built-in globals, probes, faults, the
machine's probe timing, and the translator's security boundary."""

from __future__ import annotations

import ast
import os
import re
import sys

import pytest

from vp_runtime import ALL_GLOBALS, LoadConfig, load
from vp_runtime.catalog import HARDWARE_GLOBALS, REGISTER_GLOBALS, VMCB_GLOBALS, VMCS_GLOBALS

from conftest import (FakeBackend, Loaded, fire, load_error, load_on_machine, machine_timer_hz, new_machine,
                      run_machine)

M = 1 << 64
U64 = M - 1


def ints(expr: str, *decls: str) -> int:
    """The value of the integer VP expression `expr` (printed with %u)."""
    return int(fire("\n".join(decls) + f'\n(vprobe VMXLoad (printf "%u" {expr}))'))


def signed(v: int) -> int:
    return v - M if v >= 1 << 63 else v


# ---- top-level forms ----------------------------------------------------------------------

def test_definteger_and_defstring_with_and_without_initial_values():
    out = fire('(definteger a)\n(definteger b 42)\n(definteger c -1)\n(defstring s)\n(defstring t "init")\n'
               '(vprobe VMXLoad (printf "%d %d %u [%s] [%s]\\n" a b c s t))')
    assert out == f"0 42 {U64} [] [init]\n"


def test_variables_keep_their_values_across_firings():
    loaded = Loaded('(definteger n 10)\n(defstring s "x")\n'
                    '(vprobe VMXLoad (setint n (+ n 1)) (sprintf s "%s%d" s n) (printf "%s\\n" s))')
    assert loaded.fire(times=3) == "x11\nx1112\nx111213\n"
    assert loaded.var("n") == 13 and loaded.var("s") == "x111213"


def test_definitions_may_follow_their_use():
    assert fire('(vprobe VMXLoad (setint x (f 2)) (logint x))\n(defun f (a) (* a g))\n'
                '(definteger x)\n(definteger g 21)') == "42"


def test_a_probe_body_is_one_or_more_expressions_run_in_order():
    assert fire('(vprobe VMXLoad (logstr "a") (logint 1) 7 "unused" (logstr "b"))') == "a1b"


def test_a_function_value_is_its_last_expression():
    out = fire('(defstring s)\n'
               '(defun f (x) (logstr "side ") (setint x (+ x 1)) (* x 10))\n'
               '(defun g () (setstr s "set") "last")\n'
               '(defun h () 5)\n'
               '(vprobe VMXLoad (printf "%d %s %s %d\\n" (f 1) (g) s (h)))')
    assert out == "side 20 last set 5\n"


def test_function_values_of_each_kind_of_last_expression():
    out = fire('(definteger x)\n(defstring s)\n(defaggr a 0 0)\n(defbag b 2)\n'
               '(defun set-i () (setint x 7))\n'
               '(defun set-s () (setstr s "str"))\n'
               '(defun agg () (aggr a () () 5))\n'
               '(defun ins () (baginsert b 1 99))\n'
               '(defun rem () (bagremove b 1))\n'
               '(defun lg () (logint 0))\n'
               '(defun cnd (n) (cond ((== n 1) 11) ((== n 2) 22)))\n'
               '(defun d () (do 1 2 3))\n'
               '(vprobe VMXLoad (printf "|%d %s %d %d %d %d %d %d %d %d\\n" (set-i) (set-s) (agg) (ins) (rem) '
               '(lg) (cnd 1) (cnd 2) (cnd 3) (d)))')
    assert out == "0|7 str 1 1 99 1 11 22 0 3\n"


def test_setint_and_setstr_yield_the_value_assigned():
    assert fire('(definteger x)\n(defstring s)\n'
                '(vprobe VMXLoad (printf "%d %s\\n" (+ 1 (setint x 41)) (setstr s "v")) (printf "%d %s\\n" x s))') \
        == "42 v\n41 v\n"


def test_string_variables_are_passed_to_functions_by_reference():
    text = ('(defstring s "old")\n(defstring t "other")\n'
            '(defun set (d v) (setstr d v))\n'
            '(defun pass-on (d) (set d "via two calls"))\n'
            '(defun fmt (d n) (sprintf d "n=%d" n))\n'
            '(defun read-only (d) (logstr d) d)\n'
            '(vprobe VMXLoad (set s "new") (printf "%s " s) (pass-on t) (printf "%s " t)'
            ' (fmt s 7) (printf "%s " s) (read-only s) (set "literal" "x") (printf " %s" s))')
    assert fire(text) == "new via two calls n=7 n=7 n=7"


def test_integer_arguments_are_passed_by_value():
    text = "(definteger x 5)\n(defun bump (n) (setint n (+ n 1)) n)\n(vprobe VMXLoad (logint (bump x)) (logint x))"
    assert fire(text) == "65"


# ---- cond and do ----------------------------------------------------------------------------------

def test_cond_runs_the_first_true_clause_only():
    assert fire('(vprobe VMXLoad (cond ((== 1 0) (logstr "A")) ((== 1 1) (logstr "B")) (1 (logstr "C"))))') == "B"
    assert fire('(vprobe VMXLoad (cond (0 (logstr "A")) (0 (logstr "B"))))') == ""
    assert fire('(vprobe VMXLoad (cond ((== 1 0) (logstr "A")) (1 (logstr "B"))))') == "B"


def test_cond_tests_are_evaluated_in_order_until_one_is_true():
    out = fire('(defun t (n v) (logint n) v)\n'
               '(vprobe VMXLoad (cond ((t 1 0) (logstr "a")) ((t 2 5) (logstr "b")) ((t 3 1) (logstr "c"))))')
    assert out == "12b"


def test_cond_value_is_the_value_of_the_clause_that_ran():
    assert ints("(cond (0 1) (7 (+ 2 3)) (1 9))") == 5
    assert fire('(vprobe VMXLoad (logstr (cond ((== 1 2) "no") (1 "yes"))))') == "yes"


def test_cond_with_no_true_clause_is_zero():
    assert ints("(cond (0 1) ((== 1 2) 2))") == 0
    assert ints("(+ 5 (cond (0 1)))") == 5
    assert fire('(defun f () (cond (0 "x")))\n(vprobe VMXLoad (printf "[%s]" (f)))') == "[]"


def test_constant_cond_conditions_leave_no_dead_branch_in_the_translation():
    # A constant condition is decided at load: its clause always runs (and none after it)
    # or never does.  The translation holds no test of a constant and no branch after it.
    text = ('(defstring s)\n'
            '(defun last-is-1 (n) (cond ((< n 10) 1) (1 2)))\n'
            '(defun first-is-1 (n) (cond (1 n) ((< n 3) 7)))\n'
            '(defun skips-0 (n) (cond (0 5) ((< n 3) 7)))\n'
            '(defun only-0 (n) (cond (0 5)))\n'
            '(defun str (n) (cond (0 "never") ((== n 0) "zero") (9 "other") ((== n 1) "unreached")))\n'
            '(vprobe VMXLoad\n'
            '  (cond (0 (logstr "A")) ((== VCPUID 7) (logstr "B")) (1 (logstr "C")) ((== VCPUID 0) (logstr "D")))\n'
            '  (cond (1 (logstr "E")) (1 (logstr "F")))\n'
            '  (cond (0 (logstr "G")))\n'
            '  (printf "|%d %d %d %d %d %d %d %s %s %d %d|"\n'
            '          (last-is-1 3) (last-is-1 30) (first-is-1 4) (skips-0 1) (skips-0 5) (only-0 1)\n'
            '          (+ 100 (cond (0 1) ((== VCPUID 3) 2) (5 3) ((== VCPUID 0) 4)))\n'
            '          (str 0) (str 1) (+ 1 (cond (0 1))) (+ 1 (cond (2 7)))))')
    script = load(text, backend=FakeBackend())
    constant_tests = [ast.unparse(node) for node in ast.walk(ast.parse(script.python_source))
                      if isinstance(node, (ast.If, ast.IfExp)) and isinstance(node.test, ast.Constant)]
    assert constant_tests == [], script.python_source
    assert fire(text) == "CE|1 2 4 7 0 0 103 zero other 1 8|"


def test_any_nonzero_value_is_true():
    assert ints("(cond (0xff00 1) (1 2))") == 1
    assert ints(f"(cond ({U64} 1) (1 2))") == 1
    assert ints("(cond ((- 1 1) 1) (1 2))") == 2


def test_do_evaluates_in_order_and_yields_the_last():
    assert fire("(vprobe VMXLoad (logint (do (+ 1 1) (* 3 3))))") == "9"
    assert fire('(vprobe VMXLoad (logint (do (logstr "a") (logstr "b") 4)))') == "ab4"
    assert fire('(vprobe VMXLoad (logstr (do 1 "s")))') == "s"
    assert fire('(vprobe VMXLoad (cond (1 (do (logstr "x") (logstr "y")))))') == "xy"


def test_cond_clause_mixing_types_is_fine_when_the_value_is_unused():
    out = fire('(defstring s)\n'
               '(defun f (n) (cond ((== n 0) (setstr s "zero")) (1 (setint n 5))))\n'
               '(vprobe VMXLoad (f 0) (logstr s) (f 1))')
    assert out == "zero"


# ---- operators -------------------------------------------------------------------------------------

A, B = 0xF0F0_1234_5678_9ABC, 0x0FF0_0000_0000_0013

BINARY_CASES = [
    ("+", "add", lambda a, b: (a + b) % M),
    ("-", "sub", lambda a, b: (a - b) % M),
    ("*", "mul", lambda a, b: (a * b) % M),
    ("/", "div", lambda a, b: a // b),
    ("%", "mod", lambda a, b: a % b),
    ("<<", "lshift", lambda a, b: (a << (b % 64)) % M if b < 64 else 0),
    (">>", "rshift", lambda a, b: a >> b),
    ("^", "xor", lambda a, b: a ^ b),
    ("|", None, lambda a, b: a | b),
    ("&", None, lambda a, b: a & b),
    ("&&", "and", lambda a, b: int(bool(a and b))),
    ("||", "or", lambda a, b: int(bool(a or b))),
    (">", None, lambda a, b: int(a > b)),
    ("<", None, lambda a, b: int(a < b)),
    (">=", None, lambda a, b: int(a >= b)),
    ("<=", None, lambda a, b: int(a <= b)),
    ("==", None, lambda a, b: int(a == b)),
    ("!=", None, lambda a, b: int(a != b)),
]
PAIRS = [(A, B), (B, A), (7, 3), (3, 7), (0, 5), (5, 0), (U64, 1), (1, U64), (1 << 63, 2), (U64, U64), (12, 12),
         (1, 63), (1, 64), (3, 65)]


@pytest.mark.parametrize("sym, alpha, fn", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_binary_operators_under_both_names(sym, alpha, fn):
    cases = [(a, b) for a, b in PAIRS if not (sym in "/%" and b == 0)]
    if sym in ("<<", ">>"):
        cases = [(a, b) for a, b in cases if b <= 200]
    names = [sym] + ([alpha] if alpha else [])
    exprs = [f"({name} {a} {b})" for name in names for a, b in cases]
    out = fire("(vprobe VMXLoad " + " ".join(f'(printf "%u\\n" {e})' for e in exprs) + ")")
    expected = [fn(a, b) for _ in names for a, b in cases]
    assert [int(v) for v in out.split()] == expected


@pytest.mark.parametrize("name, fn", [("~", lambda a: a ^ U64), ("!", lambda a: int(not a)),
                                      ("not", lambda a: int(not a))])
def test_unary_operators(name, fn):
    values = [0, 1, 0x5E5E, U64, 1 << 63]
    out = fire("(vprobe VMXLoad " + " ".join(f'(printf "%u\\n" ({name} {v}))' for v in values) + ")")
    assert [int(v) for v in out.split()] == [fn(v) for v in values]


def test_reference_operator_examples():
    assert ints("(/ 10 3)") == 3
    assert ints("(- 53 0xa)") == 43
    assert ints("(<< 1 3)") == 8
    assert ints("(~ 0x5e5e)") == U64 ^ 0x5E5E
    assert ints("(& 0xff (>> 0x1122334455667788 56))") == 0x11


@pytest.mark.parametrize("expr, expected", [
    ("(+ 1 2 3 4)", 10),
    ("(- 100 1 2 3)", 94),
    ("(* 2 3 4)", 24),
    ("(/ 100 3 2)", 16),
    ("(% 100 7 4)", 2),
    ("(<< 1 2 3)", 32),
    ("(>> 256 2 3)", 8),
    ("(^ 1 3 7)", 5),
    ("(| 1 2 4)", 7),
    ("(& 7 6 4)", 4),
    ("(< 1 2 3)", 1),   # (< (< 1 2) 3) = (< 1 3)
    ("(< 3 2 1)", 1),   # (< (< 3 2) 1) = (< 0 1)
    ("(> 3 2 1)", 0),   # (> (> 3 2) 1) = (> 1 1)
    ("(== 2 2 1)", 1),  # (== (== 2 2) 1)
    ("(== 2 2 2)", 0),
    ("(!= 1 2 0)", 1),
    ("(>= 5 5 2)", 0),
    ("(<= 9 1 0)", 1),
    ("(&& 1 2 3)", 1),
    ("(&& 1 0 3)", 0),
    ("(|| 0 0 9)", 1),
    ("(|| 0 0 0)", 0),
    ("(add 1 2 3)", 6),
    ("(sub 10 1 1)", 8),
    ("(xor 1 3 7)", 5),
    ("(lshift 1 1 1)", 4),
    ("(rshift 64 1 1)", 16),
    ("(div 100 2 5)", 10),
    ("(mod 100 30 7)", 3),
    ("(mul 2 2 2 2)", 16),
    ("(and 1 1 0)", 0),
    ("(or 0 0 4)", 1),
])
def test_operators_with_more_operands_fold_left(expr, expected):
    assert ints(expr) == expected


def test_logical_operators_yield_one_or_zero():
    assert ints("(&& 5 7)") == 1
    assert ints("(|| 0 9)") == 1
    assert ints("(! 0)") == 1
    assert ints("(! 42)") == 0
    assert ints("(+ (&& 2 3) (|| 4 0) (! 0) (== 3 3) (< 1 2))") == 5


def test_and_or_short_circuit():
    decl = "(definteger hits)\n(defun touch (v) (setint hits (+ hits 1)) v)"
    out = fire(decl + '\n(vprobe VMXLoad (printf "%d %d %d %d " (&& 0 (touch 1)) (|| 1 (touch 1)) '
                      '(and 0 (touch 1)) (or 7 (touch 0))) (logint hits))')
    assert out == "0 1 0 1 0"
    out = fire(decl + '\n(vprobe VMXLoad (printf "%d %d " (&& 1 (touch 5)) (|| 0 (touch 0))) (logint hits))')
    assert out == "1 0 2"
    # The operands that are evaluated run left to right, and stop at the first deciding one.
    out = fire('(defun t (n v) (logint n) v)\n'
               '(vprobe VMXLoad (logstr (cond ((&& (t 1 1) (t 2 0) (t 3 1)) "T") (1 "F"))) '
               '(logstr (cond ((|| (t 4 0) (t 5 2) (t 6 0)) "T") (1 "F"))))')
    assert out == "12F45T"


def test_short_circuit_protects_a_faulting_operand():
    assert fire('(definteger p)\n(vprobe VMXLoad (logint (&& p (getguest p))) (logint (|| 1 (/ 1 p))))') == "01"


def test_arithmetic_wraps_modulo_2_64():
    assert ints(f"(+ {U64} 1)") == 0
    assert ints("(- 0 1)") == U64
    assert ints("(* 0x100000000 0x100000000)") == 0
    assert ints("(* 0xffffffffffffffff 0xffffffffffffffff)") == 1
    assert ints("(<< 0xff 60)") == 0xF000000000000000
    assert ints("(- 5 10 -5)") == 0


@pytest.mark.parametrize("count", [64, 65, 100, 1 << 40, U64])
def test_shifts_by_64_or_more(count):
    assert ints(f"(<< 1 {count})") == 0
    assert ints(f"(>> {U64} {count})") == 0
    assert ints("(<< 1 x)", f"(definteger x {count})") == 0


def test_comparisons_division_modulo_and_shift_are_unsigned():
    assert ints("(< -1 1)") == 0
    assert ints("(> -1 1)") == 1
    assert ints("(>= -1 0)") == 1
    assert ints("(/ -1 2)") == U64 // 2
    assert ints("(/ -10 3)") == (M - 10) // 3
    assert ints("(% -1 10)") == U64 % 10
    assert ints("(>> -1 63)") == 1
    assert ints("(>> 0x8000000000000000 4)") == 0x0800000000000000


def test_percent_d_prints_signed_and_percent_u_unsigned():
    out = fire('(vprobe VMXLoad (printf "%d %u %i %d %x\\n" (- 0 5) (- 0 5) -1 0x8000000000000000 -1))')
    assert out == f"-5 {M - 5} -1 {-(1 << 63)} ffffffffffffffff\n"


def test_operands_are_values_of_any_integer_expression():
    out = fire('(definteger v 3)\n(defun two () 2)\n'
               '(vprobe VMXLoad (logint (+ v (two) (cond (1 4)) (do 0 5) (strcmp "a" "a") VCPUID)))')
    assert out == "14"


def test_operands_are_evaluated_right_to_left():
    # The reference's curprocname relies on it: in (+ _nameOffset (guestload (curthrptr))) the
    # call that sets _nameOffset runs before _nameOffset is read.
    decl = "(definteger x 1)\n(defun setx (v) (setint x v) 100)"
    assert ints("(+ x (setx 10))", decl) == 110
    assert ints("(< x (setx 200))", decl) == 0
    assert ints("(- (setx 3) x)", decl) == 100 - 1
    out = fire('(defun t (n) (logint n) n)\n(vprobe VMXLoad (logstr " ") (logint (+ (t 1) (t 2) (t 3))))')
    assert out == " 3216"


# ---- built-in globals -----------------------------------------------------------------------------

TABLE_2_1 = ("RIP RAX RBX RCX RDX RSI RDI RSP RBP R8 R9 R10 R11 R12 R13 R14 R15 RFLAGS CS SS DS ES FS GS "
             "CR0 CR2 CR3 CR4 CR8 DR6 DR7 EFER KERNELGSBASE FSBASE GSBASE APIC_BASEPA").split()
TABLE_2_2 = "TSC TSC_HZ PTSC VCPUID PCPUID THREADID NUMVCPUS".split()
TABLE_2_3 = ("VMCS_EXIT_REASON VMCS_INTR_INFO VMCS_INTR_ERR VMCS_IDTVEC_INFO VMCS_IDTVEC_ERR VMCS_INSTRLEN "
             "VMCS_VMENTRY_INTR_INFO VMCS_VMENTRYXCP_ERR VMCS_EXIT_QUAL").split()
TABLE_2_4 = "VMCB_EXITCODE VMCB_EXITINFO1 VMCB_EXITINFO2 VMCB_EXITINTINFO VMCB_EVENTINJ VMCB_TLBCTL VMCB_VAPIC".split()
ARGS = [f"ARG{i}" for i in range(10)]


def test_the_catalogue_has_every_global_of_tables_2_1_to_2_4():
    for name in TABLE_2_1 + TABLE_2_2 + TABLE_2_3 + TABLE_2_4 + ARGS:
        assert ALL_GLOBALS[name].type == "integer", name
    assert ALL_GLOBALS["PROBENAME"].type == "string"
    assert {g.name for g in REGISTER_GLOBALS} >= set(TABLE_2_1)
    assert {g.name for g in HARDWARE_GLOBALS} >= set(TABLE_2_2)
    assert {g.name for g in VMCS_GLOBALS} >= set(TABLE_2_3)
    assert {g.name for g in VMCB_GLOBALS} >= set(TABLE_2_4)


def test_every_integer_global_reads_the_machine():
    names = TABLE_2_1 + TABLE_2_2 + TABLE_2_3 + TABLE_2_4
    b = FakeBackend()
    for i, name in enumerate(names):
        b.regs[name] = 0x1000 * (i + 1) + 7
    body = " ".join(f'(printf "%x\\n" {n})' for n in names)
    out = Loaded(f"(vprobe VMXLoad {body})", b).fire()
    assert out.split() == [f"{0x1000 * (i + 1) + 7:x}" for i in range(len(names))]


def test_globals_are_read_at_each_use():
    b = FakeBackend()
    loaded = Loaded('(vprobe VMXLoad (printf "%d " RAX))', b)
    for v in (1, 2, 3):
        b.regs["RAX"] = v
        loaded.fire()
    assert loaded.log() == "1 2 3 "


def test_arg0_to_arg9():
    body = " ".join(f'(printf "%d " ARG{i})' for i in range(10))
    loaded = Loaded(f"(vprobe In {body})")
    assert loaded.fire("In", **{f"ARG{i}": i * 11 for i in range(10)}) == "0 11 22 33 44 55 66 77 88 99 "


@pytest.mark.parametrize("name", TABLE_2_1 + TABLE_2_2 + ARGS + ["PROBENAME"])
def test_builtin_globals_are_read_only(name):
    form = "setstr" if name == "PROBENAME" else "setint"
    value = '"x"' if name == "PROBENAME" else "1"
    diag = load_error(f"(vprobe VMXLoad ({form} {name} {value}))")
    assert "read-only" in diag.message and (diag.line, diag.col) == (1, 19 + len(form))


def test_simulated_machine_offers_the_tables():
    offered = new_machine().globals()
    for name in TABLE_2_1 + TABLE_2_2 + TABLE_2_3 + ARGS + ["PROBENAME"]:
        assert name in offered, name
    out = run_machine('(vprobe VMMLoad (printf "%d/%d " VCPUID NUMVCPUS))', 0, numvcpus=3)
    assert out == "0/3 \n1/3 \n2/3 \n"


# ---- probes, PROBENAME, duplicates ---------------------------------------------------------------------

def test_duplicate_probes_run_one_after_the_other():
    text = ('(vprobe VMM1Hz (logstr "a"))\n(vprobe VMXLoad (logstr "L"))\n(vprobe VMM1Hz (logstr "b"))\n'
            '(vprobe VMM1Hz (logstr "c\\n"))')
    loaded = Loaded(text)
    assert loaded.fire("VMM1Hz") == "abc\n"
    assert [s.text for s in loaded.script.probe_specs()] == ["VMM1Hz", "VMXLoad"]
    assert run_machine(text, 2) == "L\n" + "abc\n" * 4


def test_probename_names_the_firing_probe_also_inside_functions():
    text = ('(defun who () PROBENAME)\n(defun deeper () (who))\n'
            '(vprobe VMMLoad (printf "%s/%s/%s\\n" PROBENAME (who) (deeper)))\n'
            '(vprobe USEC:500000 (printf "%s/%s\\n" PROBENAME (deeper)))\n'
            '(vprobe VMXUnload (printf "%s\\n" (who)))')
    out = run_machine(text, 0.5, numvcpus=1)
    assert out == "VMMLoad/VMMLoad/VMMLoad\nUSEC:500000/USEC:500000\nVMXUnload\n"


def test_probename_of_dynamic_and_data_probes():
    b = FakeBackend(symbols={"do_fork": 0x1000})
    loaded = Loaded('(vprobe GUEST:do_fork (logstr PROBENAME))\n(vprobe GUEST_READ:0x2000 (logstr PROBENAME))', b)
    loaded.fire("GUEST:do_fork")
    loaded.fire("GUEST_READ:0x2000")
    assert loaded.log() == "GUEST:do_forkGUEST_READ:0x2000"


def test_probename_is_restored_per_probe_when_duplicates_run():
    text = ('(defun who () PROBENAME)\n(vprobe VMM10Hz (logstr (who)))\n(vprobe VMXLoad (logstr (who)))\n'
            '(vprobe VMM10Hz (logstr (who)) (logstr "\\n"))')
    loaded = Loaded(text)
    loaded.fire("VMXLoad")
    assert loaded.fire("VMM10Hz") == "VMXLoadVMM10HzVMM10Hz\n"


# ---- faults ----------------------------------------------------------------------------------------

FAULT_LINE = re.compile(r"vprobe error: probe (\S+) aborted at (\S+):(\d+):(\d+): (.+)")


def fault_lines(out: str) -> list[re.Match]:
    return [FAULT_LINE.fullmatch(line) for line in out.splitlines() if line.startswith("vprobe error")]


@pytest.mark.parametrize("expr, fragment", [
    ("(getguest 0xdead0000)", "0xdead0000"),
    ("(getguest \"no_such_symbol\")", "no_such_symbol"),
    ("(/ 1 zero)", "division by zero"),
    ("(% 1 zero)", "modulo by zero"),
    ("(/ 1 0)", "division by zero"),
    ("(getguestphys 0x1000)", "0x1000"),
    ("(do (getgueststr s 0xdead0000) 1)", "0xdead0000"),
    ("(do (getgueststr s \"no_such_symbol\") 1)", "no_such_symbol"),
    ("(offatret \"no_such_symbol\")", "no_such_symbol"),
])
def test_a_fault_aborts_the_firing_with_one_log_line(expr, fragment):
    text = ("(definteger zero)\n(defstring s)\n(definteger after)\n"
            "(vprobe VMM1Hz\n  (logstr \"before \")\n  (logint " + expr + ")\n  (setint after 1)\n"
            "  (logstr \"not reached\"))\n(vprobe VMM1Hz (logstr \"other\\n\"))\n")
    loaded = Loaded(text)
    out = loaded.fire("VMM1Hz")
    assert "not reached" not in out
    lines = out.splitlines()
    assert lines[0] == "before "  # the partial line is ended before the error line
    (m,) = fault_lines(out)
    assert m.group(1) == "VMM1Hz"
    assert (m.group(2), int(m.group(3))) == ("t.vp", 6)
    assert int(m.group(4)) >= 11  # at the faulting expression, inside (logint ...)
    assert fragment in m.group(5)
    assert lines[-1] == "other"  # the duplicate probe still runs
    assert loaded.var("after") == 0
    # The next firing faults again, just as cleanly.
    out2 = loaded.fire("VMM1Hz")[len(out):]
    assert len(fault_lines(out2)) == 1 and out2.endswith("other\n")


def test_fault_locations_point_at_the_faulting_expression():
    text = "(definteger z)\n(vprobe VMXLoad\n  (logint (+ 1\n            (/ 10 z))))"
    (m,) = fault_lines(fire(text))
    assert m.group(2, 3, 4) == ("t.vp", "4", "19")  # the divisor
    text = '(vprobe VMXLoad\n   (logint (getguest "nope")))'
    (m,) = fault_lines(fire(text))
    assert m.group(3, 4) == ("2", "12")  # the (getguest ...) call


def test_fault_inside_a_function_aborts_the_calling_probe():
    text = "(defun rd (a) (getguest a))\n(defun f () (logstr \"f \") (rd 8) (logstr \"no\"))\n" \
           "(vprobe VMXLoad (f) (logstr \"no\"))\n(vprobe VMXUnload (logstr \"unload\"))"
    loaded = Loaded(text)
    out = loaded.fire("VMXLoad")
    (m,) = fault_lines(out)
    assert m.group(1) == "VMXLoad" and m.group(3, 4) == ("1", "15")
    assert "no" not in out.replace(m.group(0), "")
    assert loaded.fire("VMXUnload").endswith("unload")


def test_effects_before_a_fault_stay():
    loaded = Loaded("(definteger n)\n(vprobe VMXLoad (setint n (+ n 1)) (getguest 0) (setint n 100))")
    loaded.fire(times=3)
    assert loaded.var("n") == 3
    assert len(fault_lines(loaded.log())) == 3


RECURSE = "(defun down (n) (cond ((== n 0) 0) (1 (+ 1 (down (- n 1))))))\n"


def test_recursion_within_the_limit_runs():
    assert fire(RECURSE + "(vprobe VMXLoad (logint (down 9)))", config=LoadConfig(max_call_depth=10)) == "9"


def test_recursion_past_the_call_depth_faults_only_that_firing():
    text = RECURSE + ("(definteger depth 10)\n"
                      "(vprobe VMXLoad (logint (down depth)) (logstr \"|\"))\n"
                      "(vprobe VMXLoad (logstr \"next\\n\"))")
    loaded = Loaded(text, config=LoadConfig(max_call_depth=10))
    out = loaded.fire()
    (m,) = fault_lines(out)
    assert m.group(1) == "VMXLoad" and m.group(2, 3) == ("t.vp", "1")
    assert "recursion" in m.group(5) and "10" in m.group(5)
    assert out.endswith("next\n") and "|" not in out
    # After the fault the depth is back to zero: a call 10 deep works again.
    loaded2 = Loaded(RECURSE + "(vprobe VMXLoad (logint (down 50)))\n(vprobe VMXUnload (logint (down 9)))",
                     config=LoadConfig(max_call_depth=10))
    for _ in range(3):
        loaded2.fire("VMXLoad")
    assert len(fault_lines(loaded2.log())) == 3
    assert loaded2.fire("VMXUnload").endswith("\n9")


def test_mutual_recursion_is_limited_too():
    text = ("(defun ping (n) (cond (n (pong (- n 1))) (1 0)))\n"
            "(defun pong (n) (cond (n (ping (- n 1))) (1 0)))\n"
            "(vprobe VMXLoad (logint (ping 1000)))")
    (m,) = fault_lines(fire(text, config=LoadConfig(max_call_depth=64)))
    assert "recursion" in m.group(5)
    assert fire(text.replace("1000", "60"), config=LoadConfig(max_call_depth=64)) == "0"


def test_unbounded_recursion_with_a_huge_limit_is_still_a_clean_fault():
    text = "(defun forever (n) (+ 1 (forever n)))\n(vprobe VMXLoad (logint (forever 1)))\n" \
           "(vprobe VMXLoad (logstr \"alive\"))"
    out = fire(text, config=LoadConfig(max_call_depth=10 ** 9))
    (m,) = fault_lines(out)
    assert m.group(1) == "VMXLoad" and m.group(2, 3, 4) == ("t.vp", "1", "8") and "stack" in m.group(5)
    assert out.endswith("alive")


def test_a_long_chain_of_calls_past_the_host_stack_is_a_clean_fault():
    n = sys.getrecursionlimit() + 200  # one VP call is one host frame
    if n > 1400:
        pytest.skip("the host stack is deeper than a script that fits the translation cache can reach")
    text = "\n".join(f"(defun f{i} () (+ 1 (f{i + 1})))" for i in range(n)) + (
        f"\n(defun f{n} () 0)\n(vprobe VMXLoad (logint (f0)))\n(vprobe VMXLoad (logstr \"alive\"))")
    out = fire(text, config=LoadConfig(max_code_bytes=65536))
    (m,) = fault_lines(out)
    assert m.group(1) == "VMXLoad" and m.group(2, 3, 4) == ("t.vp", str(n + 2), "9") and "stack" in m.group(5)
    assert out.endswith("alive")


def test_faults_on_the_machine_leave_other_probes_running():
    text = ("(definteger zero)\n(vprobe VMM1Hz (logint (/ 1 zero)))\n"
            "(vprobe VMM10Hz (logstr \".\"))\n(vprobe VMXUnload (logstr \"\\nbye\\n\"))")
    out = run_machine(text, 2)
    lines = out.splitlines()
    faults = fault_lines(out)
    assert len(faults) == 4  # VMM1Hz on 2 VCPUs, 2 seconds
    assert all(m.group(1) == "VMM1Hz" and m.group(3, 4) == ("2", "29") for m in faults)  # at the divisor
    assert "".join(line for line in lines if not line.startswith("vprobe error")).count(".") == 40
    assert lines[-1] == "bye"


# ---- the simulated machine's probe points --------------------------------------------------------------

def test_load_and_unload_probes():
    text = ('(vprobe VMMLoad (printf "mload%d " VCPUID))\n(vprobe VMXLoad (printf "xload%d " VCPUID))\n'
            '(vprobe VMMUnload (printf "munload%d " VCPUID))\n(vprobe VMXUnload (printf "xunload "))')
    assert run_machine(text, 1) == "xload0 \nmload0 \nmload1 \nmunload0 \nmunload1 \nxunload \n"
    out = run_machine(text, 0.5, numvcpus=4)
    assert out == "xload0 \nmload0 \nmload1 \nmload2 \nmload3 \nmunload0 \nmunload1 \nmunload2 \nmunload3 \nxunload \n"


def times_ms(text: str, seconds: float, numvcpus: int | None = None) -> list[tuple[int, int]]:
    """(VCPU, simulated millisecond) of each firing of the script's `(stamp)`.

    The machine runs in 1 ms steps and a firing is stamped with the end of its step, so
    the times come from the machine's event clock, not from the TSC (which may be
    charged with the host time probes take).
    """
    m = new_machine(numvcpus)
    out: list[str] = []
    script = load_on_machine('(defun stamp () (printf "%d\\n" VCPUID))\n' + text, m, log_sink=out.append)
    m.attach(script)
    stamps = []
    for ms in range(1, round(seconds * 1000) + 1):
        m.run(0.001)
        stamps += [(int(line), ms) for line in "".join(out).splitlines()]
        out.clear()
    m.detach()
    return stamps


def test_vmm1hz_fires_on_each_vcpu_once_a_second():
    assert times_ms("(vprobe VMM1Hz (stamp))", 3.5) == [(0, 1000), (1, 1000), (0, 2000), (1, 2000),
                                                       (0, 3000), (1, 3000)]


def test_vmm10hz_fires_on_each_vcpu_ten_times_a_second():
    got = times_ms("(vprobe VMM10Hz (stamp))", 1, numvcpus=3)
    assert got == [(cpu, 100 * k) for k in range(1, 11) for cpu in range(3)]


@pytest.mark.parametrize("usec", [1000, 250000, 333333])
def test_usec_fires_on_each_vcpu_every_n_microseconds(usec):
    got = times_ms(f"(vprobe USEC:{usec} (stamp))", 1)
    n = 1_000_000 // usec
    assert got == [(cpu, -(-k * usec // 1000)) for k in range(1, n + 1) for cpu in range(2)]


def test_vmx1hz_fires_once_a_second_once_per_vm():
    assert times_ms("(vprobe VMX1Hz (stamp))", 3, numvcpus=4) == [(0, 1000), (0, 2000), (0, 3000)]


def test_guest_irq_from_the_apic_timer():
    text = ("(defaggr irq 2 0)\n(vprobe Guest_IRQ (cond ((== ARG0 0xef) (aggr irq (VCPUID ARG0) () 1))))\n"
            "(vprobe VMXUnload (logaggr irq))")
    m = new_machine()
    m.run(1)  # let the guest boot and program its local APIC timers
    out = run_machine(text, 1, machine=m)
    hz = machine_timer_hz(m)
    lines = out.splitlines()
    assert lines[0] == "aggr: irq (2 integer keys) (0 string keys)"
    assert sorted(lines[1:]) == [f"irq[0x0, 0xef] == avg 1 count {hz} min 1 max 1 latest 1",
                                 f"irq[0x1, 0xef] == avg 1 count {hz} min 1 max 1 latest 1"]


def test_periodic_probes_stop_after_unload():
    m = new_machine()
    out: list[str] = []
    script = load_on_machine("(vprobe VMM10Hz (logstr \"t\"))", m, log_sink=out.append)
    m.attach(script)
    m.run(0.5)
    m.detach()
    m.run(2)
    assert "".join(out) == "t\n" * 10


def test_runs_are_deterministic():
    # Event order and guest state are a function of the configuration alone.  (TSC and PTSC
    # are left out: the machine may charge the host time probes take to the guest's clocks.)
    text = ('(vprobe USEC:7001 (printf "%d %x %x\\n" VCPUID RIP RSP))\n'
            "(defaggr i 2 0)\n(vprobe Guest_IRQ (aggr i (VCPUID ARG0) () 1))\n(vprobe VMM1Hz (logaggr i))")
    assert run_machine(text, 1.5) == run_machine(text, 1.5)


# ---- security: VP names and strings are data, never Python --------------------------------------------

HOSTILE_STRINGS = [
    "\"); __import__('os').system('touch PWNED'); (\"",
    "'''; import os; os.system('touch PWNED') #",
    "\\\\n\\\\\\\" + __import__('os').getcwd() + \\\"",
    "{0.__class__.__mro__}{__import__}",
    "%(x)s %%s",
    "line1\nline2\r\n\ttab",
    "\\x41\\u0041\\0",
]
HOSTILE_NAMES = [
    "__import__'os'.system'touch_PWNED'",
    "x'__import__'os'.system'touch_PWNED'#",
    "a\"b'c\\d",
    "__builtins__", "__class__", "g0", "g1", "f0", "p0", "_c0", "_t0", "r0", "a0", "Aa0", "b0", "probe0",
    "_logstr", "_fault", "_depth", "_set", "_Cell", "_probename_box", "exec", "eval", "import", "lambda",
    "def", "None", "True", "e5", "x.y.z", "x[0]", "x:=1", "x=1", "print#",
]


def vp_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.parametrize("text", HOSTILE_STRINGS)
def test_hostile_strings_round_trip_as_data(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lit = vp_quote(text)
    script = (f"(defstring s {lit})\n(defstring t)\n(defaggr a 0 1)\n"
              f"(defun id (x) x)\n(defun put (d v) (setstr d v))\n"
              f"(vprobe VMXLoad (logstr s) (logstr \"|\") (logstr (id {lit})) (logstr \"|\")"
              f" (put t s) (logstr t) (logstr \"|\") (sprintf t \"%s\" s) (logstr t)"
              f" (logstr \"|\") (printf \"%d\" (strcmp s {lit})) (aggr a () (s) 1) (logaggr a))")
    out = fire(script)
    assert out.startswith(f"{text}|{text}|{text}|{text}|0\naggr: a (0 integer keys) (1 string key)\n")
    assert out.endswith(f'a["{text}"] == avg 1 count 1 min 1 max 1 latest 1\n')
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_names_are_ordinary_names(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = name
    script = (f"(definteger {n} 5)\n(defstring {n}-s \"v\")\n(defaggr {n}-a 1 0)\n(defbag {n}-b 2)\n"
              f"(defun {n}-f ({n}) (+ {n} 1))\n"
              f"(vprobe VMXLoad (setint {n} ({n}-f {n})) (logint {n}) (logstr {n}-s)"
              f" (baginsert {n}-b 1 {n}) (logint (bagremove {n}-b 1))"
              f" (aggr {n}-a ({n}) () {n}) (logaggr {n}-a))")
    out = fire(script)
    assert out == (f"6v6\naggr: {n}-a (1 integer key) (0 string keys)\n"
                   f"{n}-a[0x6] == avg 6 count 1 min 6 max 6 latest 6\n")
    assert os.listdir(tmp_path) == []


def test_generated_python_never_contains_vp_text():
    marker = "zzMARKERzz"
    text = (f"(definteger {marker}-int)\n(defstring {marker}-str \"{marker} literal\")\n"
            f"(defun {marker}-fn ({marker}-p) {marker}-p)\n"
            f"(vprobe VMXLoad (printf \"{marker} %d\\n\" ({marker}-fn 1)) (logstr {marker}-str))")
    script = load(text, filename=f"{marker}.vp")
    assert marker not in script.python_source
    assert "import" not in script.python_source


def test_hostile_file_name_is_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "x\"); __import__('os').system('touch PWNED'); (\".vp"
    out: list[str] = []
    script = load("(vprobe VMXLoad (getguest 0))", backend=FakeBackend(), filename=name, log_sink=out.append)
    script.handler("VMXLoad")()
    script.flush()
    assert "".join(out).startswith(f"vprobe error: probe VMXLoad aborted at {name}:1:17: ")
    assert os.listdir(tmp_path) == []


def test_hostile_probe_parameters_are_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sym = "__import__('os').system('touch_PWNED')"
    assert "(" in sym  # cannot even be a name; the nearest thing that is:
    sym = "__import__'os'.system'touch_PWNED'"
    b = FakeBackend(symbols={sym: 0x1000})
    loaded = Loaded(f"(vprobe GUEST:{sym} (logstr PROBENAME))", b)
    assert loaded.fire(f"GUEST:{sym}") == f"GUEST:{sym}"
    assert os.listdir(tmp_path) == []


def test_translated_code_has_no_python_builtins():
    script = load("(vprobe VMXLoad (logint 1))")
    assert script._namespace_ref["__builtins__"] == {}


def test_each_firing_is_a_record_of_the_log():
    # Output within a firing joins; a line a firing leaves open ends with it;
    # a firing that ends its own line, or prints nothing, adds nothing.
    text = ('(vprobe VMXLoad (logstr "a") (logint 1) (logstr "b"))\n'
            '(vprobe VMXUnload (logstr "done\\n"))\n(vprobe VMMLoad 0)')
    assert run_machine(text, 0.1) == "a1b\ndone\n"
