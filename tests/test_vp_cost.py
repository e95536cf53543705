"""The work of one firing: the cost bound computed at load, its limit, and the call budget
that bounds what the loader cannot (calls of functions on a call-graph cycle)."""

from __future__ import annotations

import re

import pytest

from vp_runtime import LoadConfig, load
from vp_runtime.cost import ProbeCost, operation_cost
from vp_runtime.spec.builtins import BUILTINS
from vp_runtime.limits import DEFAULT_MAX_CALLS_PER_FIRING, DEFAULT_MAX_OPS_PER_FIRING

from conftest import Loaded, fire, load_error

FIB = "(defun fib (n) (cond ((< n 2) n) (1 (+ (fib (- n 1)) (fib (- n 2))))))\n"
FAULT = re.compile(r"vprobe error: probe (\S+) aborted at t\.vp:(\d+):(\d+): (.*)")


def costs(text: str, config: LoadConfig | None = None) -> list[ProbeCost]:
    return load(text, config, filename="t.vp").costs


def bound(text: str) -> int:
    (cost,) = costs(text)
    assert cost.bounded
    return cost.operations


def faults(out: str) -> list[re.Match]:
    return [FAULT.fullmatch(line) for line in out.splitlines() if line.startswith("vprobe error")]


# ---- the cost model -----------------------------------------------------------------------------

def test_the_defaults():
    assert LoadConfig().max_ops_per_firing == DEFAULT_MAX_OPS_PER_FIRING == 1_000_000
    assert LoadConfig().max_calls_per_firing == DEFAULT_MAX_CALLS_PER_FIRING == 10_000


@pytest.mark.parametrize("body, operations", [
    ("1", 1),                                   # a constant
    ("(logint 1)", 2),                          # a builtin and its argument
    ("(logint (+ 1 2 3))", 6),                  # two additions, three constants, logint
    ("(logint (~ RIP))", 3),                    # a unary operator is one step
    ("(setint x (+ x 1))", 4),                  # setint, +, x, 1
    ("(do 1 2 3)", 4),
    ("(logint x) (logint x)", 4),               # a body is a sequence
    ("(getguest RSP)", 1 + BUILTINS["getguest"].guest_words + 1),
    ("(gueststack s)", 2 + 64),                 # 32 frames, two words each
    ("(getgueststr s RSP)", 3 + 32),            # 256 bytes: 32 words
    ('(offatret "sys_getpid")', 2 + 64),        # 512 bytes of code decoded
    ("(aggr a (1) () 1)", 3),
    ("(logaggr a)", 1),                         # the entries it prints are data, not code
])
def test_operations_of_straight_line_code(body, operations):
    decls = "(definteger x)\n(defstring s)\n(defaggr a 1 0)\n"
    assert bound(f"{decls}(vprobe VMXLoad {body})") == operations


def test_a_cond_costs_its_costliest_way_through():
    # cond, then: test 1 (1) + body (logint (+ 1 2 3): 6) = 7; tests 1 and 2 (2) + body 1 (1) = 3;
    # no clause true: both tests (2).  The costliest is 1 + 7.
    assert bound("(vprobe VMXLoad (cond (1 (logint (+ 1 2 3))) (0 1)))") == 8
    # A costly test that every later clause pays for: (+ 1 2 3 4 5) is 9, then 0 and 1.
    assert bound("(vprobe VMXLoad (cond ((+ 1 2 3 4 5) 1) (0 1)))") == 1 + 9 + 1 + 1


def test_and_or_count_every_operand():
    assert bound("(vprobe VMXLoad (&& 1 2 3))") == 2 + 3
    assert bound("(vprobe VMXLoad (|| 0 (logint 7)))") == 1 + 1 + 2


def test_a_call_costs_its_arguments_and_the_callee_body():
    text = "(defun f (a b) (+ a b))\n(vprobe VMXLoad (f 1 2))"
    assert bound(text) == 1 + 2 + 3  # the call, two arguments, the body (+ a b)


def test_calls_multiply_through_a_tree_of_functions():
    levels = 12
    text = "(definteger x)\n(defun f0 () (setint x (+ x 1)))\n" + "".join(
        f"(defun f{i} () (f{i - 1}) (f{i - 1}))\n" for i in range(1, levels + 1)) + f"(vprobe VMXLoad (f{levels}))"
    # f0 is 4 + its call 1 = 5; each level doubles and adds its own call: c(i) = 1 + 2 c(i-1).
    c = 5
    for _ in range(levels):
        c = 1 + 2 * c
    loaded = Loaded(text, config=LoadConfig(max_ops_per_firing=10 ** 9))
    assert loaded.script.costs[0].operations == c
    loaded.fire()
    assert loaded.var("x") == 2 ** levels


def test_a_call_chain_longer_than_the_host_stack_is_bounded():
    n = 1200
    text = "\n".join(f"(defun f{i} () (f{i + 1}))" for i in range(n)) + f"\n(defun f{n} () 0)\n(vprobe VMXLoad (f0))"
    (cost,) = costs(text, LoadConfig(max_code_bytes=65536))
    assert cost.operations == n + 1 + 1  # n+1 calls and the constant


def test_operation_cost_is_one_definition_per_node():
    script = load("(vprobe VMXLoad (logint (+ 1 2 3)))")
    (probe,) = script._program.probes
    (logint,) = probe.body
    assert operation_cost(logint) == 1 and operation_cost(logint.args[0]) == 2


# ---- the limit at load ------------------------------------------------------------------------------

def doubling(levels: int) -> str:
    return "(definteger x)\n(defun f0 () (setint x (+ x 1)))\n" + "".join(
        f"(defun f{i} () (f{i - 1}) (f{i - 1}))\n" for i in range(1, levels + 1)) + \
        f"(vprobe VMM1Hz (logint 1))\n(vprobe VMXLoad (f{levels}))"


def test_a_probe_over_the_limit_is_refused_at_its_location():
    d = load_error(doubling(20))  # about 6 million operations
    assert (d.line, d.col) == (24, 9)
    assert re.fullmatch(r"probe VMXLoad may execute up to [\d,]+ VP operations in one firing, more than this VM "
                        r"allows \(1,000,000, vprobe\.maxOpsPerFiring\)", d.message)


def test_the_limit_is_the_configured_one_exactly():
    text = "(vprobe VMXLoad (logint (+ 1 2 3)))"
    load(text, LoadConfig(max_ops_per_firing=6))
    d = load_error(text, config=LoadConfig(max_ops_per_firing=5))
    assert "up to 6 VP operations" in d.message and "(5, vprobe.maxOpsPerFiring)" in d.message


def test_every_probe_over_the_limit_is_reported():
    text = "(vprobe VMXLoad (logint (+ 1 2 3)))\n(vprobe VMM1Hz 1)\n(vprobe VMXUnload (logint (+ 1 2 3)))"
    from vp_runtime import VPLoadError
    with pytest.raises(VPLoadError) as info:
        load(text, LoadConfig(max_ops_per_firing=5), filename="t.vp")
    assert [(d.line, d.col) for d in info.value.diagnostics] == [(1, 9), (3, 9)]


def test_recursion_is_bounded_by_the_budget_and_that_bound_by_the_limit():
    (cost,) = costs(FIB + "(vprobe VMXLoad (logint (fib 40)))")
    assert not cost.bounded and cost.recursion == ("fib",)
    # fib's body: cond 1; both tests, (< n 2) 3 and 1; the second body (+ (fib ..) (fib ..)), 1 + 2 x (1 + 3).
    assert cost.per_call == 1 + 3 + 1 + 1 + 2 * (1 + 3)
    assert cost.operations == 3  # logint, the call of fib, its argument
    assert cost.worst_case == 3 + DEFAULT_MAX_CALLS_PER_FIRING * cost.per_call
    assert cost.describe() == "unbounded recursion (fib): budget 10,000 calls of at most 14 operations, so at most 140,003"
    d = load_error(FIB + "(vprobe VMXLoad (logint (fib 40)))",
                   config=LoadConfig(max_ops_per_firing=100_000))
    assert "calls recursive functions (fib), one call of which may execute up to 14 VP operations: with the " \
           "budget of 10,000 calls (vprobe.maxCallsPerFiring) a firing may execute up to 140,003" in d.message
    load(FIB + "(vprobe VMXLoad (logint (fib 40)))", LoadConfig(max_ops_per_firing=100_000, max_calls_per_firing=1000))


def test_a_recursive_function_calling_costly_code_cannot_hide_it():
    # Each activation of r runs f12 (thousands of operations): the budget alone would not bound it.
    text = doubling(12).replace("(vprobe VMXLoad (f12))",
                                "(defun r (n) (cond ((== n 0) 0) (1 (do (f12) (r (- n 1))))))\n(vprobe VMXLoad (r 5))")
    (_, cost) = costs(text, LoadConfig(max_ops_per_firing=10 ** 12))
    assert cost.per_call > 2 ** 12 and cost.recursion == ("r",)
    d = load_error(text)
    assert "calls recursive functions (r)" in d.message


def test_reachable_recursion_is_found_through_plain_functions():
    text = FIB + "(defun wrap (n) (fib n))\n(vprobe VMXLoad (logint (wrap 3)))\n(vprobe VMM1Hz (logint 1))"
    rec, plain = costs(text)
    assert rec.recursion == ("fib",) and plain.bounded and plain.operations == 2


# ---- the budget at run time -----------------------------------------------------------------------------

def test_fib_40_aborts_promptly_with_one_fault_line():
    loaded = Loaded(FIB + '(vprobe VMXLoad (logint (fib 40)))\n(vprobe VMXLoad (logstr "next"))')
    out = loaded.fire()
    (m,) = faults(out)
    assert m.group(1, 2, 3) == ("VMXLoad", "1", "8")  # where fib is defined
    assert m.group(4) == ("work budget exhausted: more than 10000 calls of recursive functions in one firing "
                          "(vprobe.maxCallsPerFiring)")
    assert out.endswith("next")  # the next probe on the point runs


def down(config: LoadConfig, n: int) -> str:
    text = "(defun down (n) (cond ((== n 0) 0) (1 (+ 1 (down (- n 1))))))\n(definteger k)\n" \
           "(vprobe VMXLoad (logint (down k)) (logstr \";\"))"
    loaded = Loaded(text, config=config)
    loaded.script._namespace_ref["g0"] = n  # k
    return loaded.fire()


def test_the_budget_counts_calls_exactly():
    config = LoadConfig(max_calls_per_firing=10, max_call_depth=100)
    assert down(config, 9) == "9;"  # down(9) .. down(0): ten calls
    (m,) = faults(down(config, 10))
    assert "more than 10 calls" in m.group(4)


def test_each_firing_has_a_fresh_budget():
    text = FIB + "(definteger n 40)\n(vprobe VMXLoad (logint (fib n)))\n(vprobe VMXLoad (setint n 10) (logstr \";\"))"
    loaded = Loaded(text)
    out = loaded.fire(times=3)
    assert len(faults(out)) == 1 and out.endswith("\n;55;55;")


def test_code_without_recursion_carries_no_budget_check():
    script = load(FIB + "(vprobe VMXLoad (logint (fib 3)))\n(vprobe VMM1Hz (logint 1))")
    recursive_probe, plain_probe = script.python_source.split("def probe")[1:]
    assert "_calls_left = _max_calls" in recursive_probe
    assert "_calls" not in plain_probe and "_depth" not in plain_probe
    plain = load("(defun f (a) (+ a 1))\n(vprobe VMM1Hz (logint (f 1)))").python_source
    assert "_calls" not in plain and "_depth" not in plain


def test_mutual_recursion_counts_against_one_budget():
    text = ("(defun ping (n) (cond (n (pong (- n 1))) (1 0)))\n"
            "(defun pong (n) (cond (n (ping (- n 1))) (1 0)))\n"
            "(vprobe VMXLoad (logint (ping 30)) (logint (ping 30)))")
    config = LoadConfig(max_calls_per_firing=61, max_call_depth=100)
    assert fire(text, config=config).count("vprobe error") == 1  # 31 calls, then 31 more: over 61
    assert fire(text, config=LoadConfig(max_calls_per_firing=62, max_call_depth=100)) == "00"


def test_every_operand_of_every_node_is_costed():
    """A node kind added to ir.py with operands the cost model does not visit would make bounds
    too low: every Expr field of every kind must be among the node's children."""
    import dataclasses

    from vp_runtime import ir
    from vp_runtime.cost import _children

    kinds = [k for k in vars(ir).values() if isinstance(k, type) and issubclass(k, ir.Expr) and k is not ir.Expr]
    assert len(kinds) >= 15
    for kind in kinds:
        operands, values = [], {}
        for f in dataclasses.fields(kind):
            annotation = str(f.type)
            if "Expr" not in annotation:
                values[f.name] = None
                continue
            fresh = [ir.Const((1, 1), None, i) for i in range(len(operands), len(operands) + 2)]
            operands += fresh
            values[f.name] = [tuple(fresh)] if "tuple" in annotation else fresh if "list" in annotation else fresh[0]
            if "list" not in annotation and "tuple" not in annotation:
                operands.pop()
        node = kind(**values)
        assert {id(o) for o in operands} <= {id(c) for c in _children(node)}, kind.__name__
