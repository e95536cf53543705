"""Properties of the compiler over generated inputs (hypothesis):

* no input text makes `emmett.compile` raise, or fail with anything but its own
  located diagnostics (never an internal error);
* every program it accepts is VP that the runtime loads.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emmett
from vp_runtime import CatalogBackend, VPLoadError, load

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "int", "long", "char", "string", "void", "aggr", "bag", "struct", "union", "enum", "typedef", "extern",
    "static", "sizeof", "if", "else", "return", "for", "while", "memmodel", "guest32", "perthread",
    "s", "t", "x", "y", "f", "g", "a", "b", "n", "VMM1Hz", "Guest_IRQ", "USEC", "GUEST", "TIMER", "ENTER",
    "VMCS_EXIT_REASON", "RIP", "ARG0", "PROBENAME", "curpid", "curprocname", "printf", "sprintf", "getguest",
    "getgueststr", "logaggr", "strcmp", "assert", "exit",
    "{", "}", "(", ")", "[", "]", ";", ",", ":", "?", ".", "->", "@",
    "=", "+=", "<-", "++", "--", "+", "-", "*", "/", "%", "&", "|", "^", "~", "!", "<<", ">>",
    "==", "!=", "<", ">", "<=", ">=", "&&", "||",
    "0", "1", "42", "0x10", "0777", "18446744073709551615", "10msec", '"str"', '"%d\\n"', '"%s"', "'c'",
    "\n", "#define M 1\n", "#ifdef M\n", "#endif\n", "# comment\n", "/* c */", "// c\n",
]


@SETTINGS
@given(st.text(max_size=300))
def test_compile_never_raises_on_any_text(source):
    result = emmett.compile(source, "fuzz.emt")
    assert not result.internal_error, result.format_diagnostics()
    assert result.ok or (result.vp is None and result.errors), result  # a failure says why
    assert all(d.line >= 1 and d.col >= 1 for d in result.diagnostics)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_compile_never_raises_on_token_soup(tokens):
    result = emmett.compile(" ".join(tokens), "fuzz.emt")
    assert not result.internal_error, result.format_diagnostics()


# ---- well-typed programs: whatever compiles must load ----------------------------------------------

@st.composite
def int_expr(draw, depth=0):
    leaves = st.sampled_from(["0", "1", "7", "0xff", "RIP", "ARG0", "VCPUID", "TSC", "a", "b", "curpid()",
                              "sizeof(struct t)", "18446744073709551615"])
    if depth > 2:
        return draw(leaves)
    kind = draw(st.integers(0, 9))
    sub = int_expr(depth + 1)
    if kind == 0:
        op = draw(st.sampled_from(["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", ">=",
                                   "&&", "||"]))
        return f"({draw(sub)} {op} {draw(sub)})"
    if kind == 1:
        return f"{draw(st.sampled_from(['-', '!', '~']))}({draw(sub)})"
    if kind == 2:
        return f"({draw(sub)} ? {draw(sub)} : {draw(sub)})"
    if kind == 3:
        field = draw(st.sampled_from(["x", "y", "next->x", "arr[1]", "inner.z"]))
        return f"((struct t *){draw(sub)})->{field}"
    if kind == 4:
        return f"({draw(str_expr(depth + 1))} == {draw(str_expr(depth + 1))})"
    if kind == 5:
        return f"getguest({draw(sub)})"
    if kind == 6:
        return f"twice({draw(sub)})"
    if kind == 7:
        return f"(a = {draw(sub)})"
    return draw(leaves)


@st.composite
def str_expr(draw, depth=0):
    leaves = st.sampled_from(['"x"', '"100%"', '""', "s", "PROBENAME", "curprocname()"])
    if depth > 2:
        return draw(leaves)
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return f"({draw(str_expr(depth + 1))} + {draw(str_expr(depth + 1))})"
    if kind == 1:
        return f"({draw(int_expr(depth + 1))} ? {draw(str_expr(depth + 1))} : {draw(str_expr(depth + 1))})"
    if kind == 2:
        return f"(string)((struct t *){draw(int_expr(depth + 1))})->name"
    return draw(leaves)


@st.composite
def statement(draw, depth=0):
    kind = draw(st.integers(0, 8 if depth < 2 else 4))
    if kind == 0:
        return f"a = {draw(int_expr())};"
    if kind == 1:
        return f"s = {draw(str_expr())};"
    if kind == 2:
        return f"agg[{draw(int_expr())}, {draw(str_expr())}]++;"
    if kind == 3:
        return f'printf("%d %s\\n", {draw(int_expr())}, {draw(str_expr())});'
    if kind == 4:
        return f"bg[{draw(int_expr())}] <- {draw(int_expr())};"
    if kind == 5:
        return f"if ({draw(int_expr())}) {{ {draw(statement(depth + 1))} }} else {draw(statement(depth + 1))}"
    if kind == 6:
        return f"{{ int q = {draw(int_expr())}; {draw(statement(depth + 1))} q++; }}"
    if kind == 7:
        return f"s += {draw(str_expr())};"
    return f"b = rec({draw(int_expr())} & 7);"


@st.composite
def program(draw):
    probes = draw(st.lists(st.tuples(st.sampled_from(["VMM1Hz", "USEC:100", "Guest_IRQ", "GUEST:0x1000"]),
                                     st.lists(statement(), min_size=1, max_size=4)), min_size=1, max_size=3))
    parts = [
        "struct t { int x; long y; char name[16]; struct t *next; short arr[4]; struct { int z; } inner; };",
        "bag bg[16]; string s; int a, b;",
        "int twice(int v) { return v * 2; }",
        "int rec(int n) { int here = n; if (n == 0) return 0; return rec(n - 1) + here; }",
    ]
    for name, body in probes:
        parts.append(f"{name} {{ {' '.join(body)} }}")
    return "\n".join(parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program())
def test_well_typed_programs_compile_to_vp_that_loads(source):
    result = emmett.compile(source, "gen.emt")
    assert not result.internal_error, result.format_diagnostics()
    if not result.ok:
        # Constant division by zero is the only error these programs can contain.
        assert all("by zero" in d.message for d in result.errors), result.format_diagnostics()
        return
    try:
        load(result.vp, backend=CatalogBackend(), filename="gen.vp")
    except VPLoadError as e:  # pragma: no cover - a failure prints the program
        raise AssertionError(f"{source}\n---\n{result.vp}\n---\n{e}") from None
