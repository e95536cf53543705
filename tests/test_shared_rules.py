"""The rules the compiler and the runtime share (package vprobes_shared): diagnostics, call-graph cycles."""

from __future__ import annotations

import emmett
from vp_runtime import Diagnostic as RuntimeDiagnostic
from vp_runtime import VPLoadError, load
from vprobes_shared.diagnostics import Diagnostic
from vprobes_shared.graphs import nodes_on_cycles, strongly_connected


# ---- one Diagnostic for both ---------------------------------------------------------------

def test_the_compiler_and_the_runtime_report_the_same_diagnostic_type():
    result = emmett.compile("VMM1Hz { x = ; }", "t.emt")
    try:
        load("(vprobe VMM1Hz (logint \"s\"))", filename="t.vp")
    except VPLoadError as e:
        runtime = e.diagnostics[0]
    assert type(result.diagnostics[0]) is Diagnostic is type(runtime) is RuntimeDiagnostic


def test_a_point_gets_one_caret_under_its_column_tabs_kept():
    d = Diagnostic("f.vp", 2, 4, "bad", "\tab(x)")
    assert d.format() == "f.vp:2:4: error: bad\n\tab(x)\n\t  ^"


def test_a_range_is_underlined_from_its_start_up_to_its_end():
    d = Diagnostic("f.emt", 1, 10, "wrong type", "VMM1Hz { x = a + b; }", end=(1, 15))
    assert d.format().splitlines()[1:] == ["VMM1Hz { x = a + b; }", "         ^~~~~"]


def test_a_range_that_runs_past_its_line_is_underlined_to_the_line_end():
    d = Diagnostic("f.emt", 3, 5, "m", "  if (a &&", severity="warning", end=(4, 3))
    assert d.format() == "f.emt:3:5: warning: m\n  if (a &&\n    ^~~~~~"


def test_an_empty_or_backward_range_is_one_caret():
    for end in ((1, 3), (1, 1)):
        assert Diagnostic("f", 1, 3, "m", "abcdef", end=end).format().endswith("\nabcdef\n  ^")


def test_without_a_source_line_only_the_head_prints():
    assert Diagnostic("f", 1, 1, "m", end=(1, 4)).format() == "f:1:1: error: m"


def test_diagnostics_compare_by_value():
    a = Diagnostic("f", 1, 2, "m", "src")
    assert a == Diagnostic("f", 1, 2, "m", "src") and hash(a) == hash(Diagnostic("f", 1, 2, "m", "src"))
    assert a != Diagnostic("f", 1, 2, "m", "src", end=(1, 3))
    assert a != Diagnostic("f", 1, 2, "m", "src", severity="warning")


# ---- cycles of a call graph ---------------------------------------------------------------------

def test_nodes_on_cycles_are_self_calls_and_mutual_recursion_only():
    graph = {"main": ["even", "log"], "even": ["odd"], "odd": ["even"], "log": [], "fact": ["fact"]}
    assert sorted(nodes_on_cycles(graph)) == ["even", "fact", "odd"]


def test_components_come_after_the_components_they_reach():
    graph = {"a": ["b"], "b": ["c"], "c": ["b", "d"], "d": []}
    order = strongly_connected(graph)
    assert [sorted(c) for c in order] == [["d"], ["b", "c"], ["a"]]


def test_a_long_call_chain_needs_no_python_recursion():
    n = 50_000
    graph = {i: [i + 1] for i in range(n)}
    graph[n] = [0]  # one cycle through every node
    assert len(nodes_on_cycles(graph)) == n + 1
    graph[n] = []
    assert nodes_on_cycles(graph) == []


def test_both_the_compiler_and_the_runtime_mark_mutual_recursion():
    vp = ("(defun even (n) (cond ((== n 0) 1) (1 (odd (- n 1)))))\n"
          "(defun odd (n) (cond ((== n 0) 0) (1 (even (- n 1)))))\n"
          "(defun twice (n) (* n 2))\n"
          "(vprobe VMXLoad (logint (even 10)))")
    script = load(vp)
    assert [f.recursive for f in script._program.functions] == [True, True, False]
    # The compiler gives each activation of a recursive function its own locals
    # (extra parameters); a function on no cycle keeps its locals as globals.
    result = emmett.compile("int even(int n) { int m; m = n - 1; return n == 0 ? 1 : odd(m); }\n"
                            "int odd(int n) { int k; k = n - 1; return n == 0 ? 0 : even(k); }\n"
                            "int twice(int n) { int t; t = n * 2; return t; }\n"
                            "VMXLoad { printf(\"%d %d\\n\", even(10), twice(2)); }", "t.emt")
    assert result.ok, result.format_diagnostics()
    assert "(defun even (n m)" in result.vp and "(defun odd (n k)" in result.vp
    assert "(definteger twice.t)" in result.vp and "(defun twice (n)" in result.vp
