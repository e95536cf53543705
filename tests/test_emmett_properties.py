"""Properties of the compiler over generated inputs (hypothesis):

* no input text makes `emmett.compile` raise, or fail with anything but its own
  located diagnostics (never an internal error);
* every program it accepts is VP that the runtime loads;
* the classes that once found internal errors or quadratic time: every kind of
  name used as a value in every kind of place, literals of any length, long
  flat expressions (which must also mean what they say when run).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emmett
from conftest import FakeBackend, fire
from emmett.language import MAX_ARGS
from emmett.vp import HexInt, OpChain, op
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


# ---- names used as values ----------------------------------------------------------------------

# Every kind of name a program can use, declared by DECLARATIONS, and whether it is a function.
NAMES = {
    "curpid": True, "curprocname": True, "nullary": True, "unary": True, "printf": True, "getsystemtime": True,
    "logaggr": True, "exit": True, "assert": True,
    "counts": False, "pending": False, "RED": False, "RIP": False, "PROBENAME": False, "g": False, "gs": False,
    "task": False, "nosuch": False,
}
DECLARATIONS = ("int nullary() { return 1; }\nint unary(int a) { return a; }\naggr counts[1][0];\n"
                "bag pending[8];\nenum color { RED };\nint g;\nstring gs;\n"
                "struct t { int f; };\nextern struct t task;\n")
# The places a name can stand: {n} is the name.
PLACES = [
    "x = {n};", "x = {n} + 1;", "x = 1 + {n};", "if ({n} == 0) x = 1;", "if ({n}) x = 1;", "logint({n});",
    "unary({n});", "{n} = 1;", "{n}++;", "--{n};", "{n} += 2;", "{n}[1]++;", "{n}[1] <- 2;", "x = {n}[1];",
    "x = &{n};", "x = *{n};", "x = sizeof {n};", "x = sizeof({n});", "x = {n}.f;", "x = {n}->f;",
    "x = (int){n};", "x = {n} ? 1 : 2;", "x = 1 ? {n} : 2;", "x = -{n};", "x = !{n};", "x = ~{n};",
    "s = {n};", "s = {n} + \"a\";", 'sprintf({n}, "a");', 'sprintf(s, "%d", {n});', "logaggr({n});",
    "clearaggr({n});", "baginsert({n}, 1, 2);", "x = bagremove({n}, 1);", "getsystemtime({n});",
    "x = counts[{n}];", "counts[{n}]++;", "x = {n}();", "x = {n}(1);",
]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(NAMES)), st.sampled_from(PLACES), st.sampled_from(["VMM1Hz", "GUEST:0x1000"]),
       st.booleans())
def test_any_name_used_as_a_value_anywhere_is_a_located_error_or_compiles(name, place, probe, preload):
    statement = place.format(n=name)
    source = DECLARATIONS + f"string s;\n{probe} {{\n    {statement}\n}}\n"
    result = emmett.compile(source, "names.emt", emmett.CompileOptions(preload=preload))
    assert not result.internal_error, result.format_diagnostics()
    if result.ok:
        return
    line = source.count("\n", 0, source.index(statement)) + 1
    assert any(d.line == line for d in result.errors), result.format_diagnostics()
    # A function's name where a value is read: the message says it is a function and how to call it.
    value_place = place in ("x = {n};", "x = {n} + 1;", "if ({n} == 0) x = 1;", "logint({n});", "x = -{n};")
    if NAMES[name] and value_place:
        first = result.errors[0]
        assert first.line == line and f"'{name}'" in first.message and "call it" in first.message, \
            result.format_diagnostics()


# ---- literals of any length --------------------------------------------------------------------

@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["", "0x", "0"]), st.integers(1, 6000), st.sampled_from("0123456789"),
       st.sampled_from(["", "u", "UL", "usec", "msec", "sec", "x", "_1"]),
       st.sampled_from(["VMM1Hz {{ x = {lit}; logint(x); }}", "USEC:{lit} {{ }}", "TIMER:{lit} {{ }}",
                        "#if {lit}\n#endif\nVMM1Hz {{ }}", "int a[{lit}];\nVMM1Hz {{ }}",
                        "enum e {{ E = {lit} }};\nVMM1Hz {{ logint(E); }}"]))
def test_a_literal_of_any_length_compiles_or_is_one_short_located_error(prefix, length, digit, suffix, shape):
    literal = prefix + digit * length + suffix
    source = shape.format(lit=literal)
    result = emmett.compile(source, "lit.emt")
    assert not result.internal_error, result.format_diagnostics()[:500]
    assert all(len(d.message) < 300 and d.line >= 1 for d in result.diagnostics)
    significant = (digit * length).lstrip("0")
    if prefix == "" and len(significant) > 20 and suffix in ("", "u", "UL"):
        assert any("does not fit in 64 bits" in d.message for d in result.errors), result.format_diagnostics()


# ---- long flat expressions ---------------------------------------------------------------------

M64 = (1 << 64) - 1
# One precedence level each, so that the chain folds from the left.
LEVELS = [
    {"+": lambda a, b: (a + b) & M64, "-": lambda a, b: (a - b) & M64},
    {"*": lambda a, b: (a * b) & M64},
    {"&": lambda a, b: a & b}, {"|": lambda a, b: a | b}, {"^": lambda a, b: a ^ b},
    {"&&": lambda a, b: int(bool(a and b))}, {"||": lambda a, b: int(bool(a or b))},
]
REGISTERS = {"RAX": 7, "RBX": 1 << 63, "RCX": 0}


@st.composite
def flat_chain(draw, max_terms):
    """(EXPRESSION, its value): up to `max_terms` terms (a drawn pattern repeated) of one precedence level."""
    level = draw(st.sampled_from(LEVELS))
    count = draw(st.integers(2, max_terms))
    pattern = draw(st.lists(st.one_of(st.sampled_from(sorted(REGISTERS)), st.integers(0, M64).map(str),
                                      st.integers(0, 40).map(str)), min_size=1, max_size=60))
    op_pattern = draw(st.lists(st.sampled_from(sorted(level)), min_size=1, max_size=60))
    terms = [pattern[i % len(pattern)] for i in range(count)]
    ops = [op_pattern[i % len(op_pattern)] for i in range(count - 1)]
    text = terms[0] + "".join(f" {o} {t}" for o, t in zip(ops, terms[1:]))
    value = lambda t: REGISTERS[t] if t in REGISTERS else int(t)  # noqa: E731
    expected = value(terms[0])
    for o, t in zip(ops, terms[1:]):
        expected = level[o](expected, value(t))
    return text, expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(flat_chain(max_terms=600))
def test_a_long_flat_expression_compiles_within_vps_limits_and_means_what_it_says(chain):
    text, expected = chain
    result = emmett.compile(f'VMXLoad {{ printf("%u\\n", {text}); }}', "flat.emt",
                            emmett.CompileOptions(preload=False))
    assert result.ok, result.format_diagnostics()[:500]
    assert max(len(line.split()) for line in result.vp.splitlines()) <= MAX_ARGS + 1
    backend = FakeBackend()
    backend.regs.update(REGISTERS)
    assert fire(result.vp, backend=backend) == f"{expected}\n"


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(flat_chain(max_terms=10000))
def test_a_flat_expression_of_thousands_of_terms_compiles(chain):
    text, _ = chain
    result = emmett.compile(f"VMM1Hz {{ x = {text}; logint(x); }}", "flat.emt")
    assert result.ok and not result.internal_error, result.format_diagnostics()[:500]


# The chain lowering builds a long expression in must give what op() gives step by step.
_OPERAND = st.recursive(
    st.one_of(st.sampled_from([0, 1, 2, 5, M64, M64 - 1]), st.sampled_from([0, 1, 0xFF]).map(HexInt),
              st.sampled_from(["RAX", "RBX", "ARG0"])),
    lambda inner: st.tuples(st.sampled_from(["+", "-", "*", "&"]), st.lists(inner, min_size=2, max_size=3))
    .map(lambda t: [t[0]] + t[1]),
    max_leaves=6)


def _copy(form):
    return [_copy(x) for x in form] if type(form) is list else form


def _same(a, b):
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=300, deadline=None)
@given(_OPERAND, st.lists(st.tuples(st.sampled_from(["+", "+", "-", "*", "&", "|", "^", "&&", "<", "/"]), _OPERAND),
                          min_size=1, max_size=20))
def test_an_op_chain_gives_what_op_gives_step_by_step(start, steps):
    expected = _copy(start)
    for o, b in steps:
        expected = op(o, expected, _copy(b))
    chain = OpChain(_copy(start))
    kept = [_copy(b) for _, b in steps]
    for (o, b), original in zip(steps, kept):
        chain.apply(o, b)
        assert _same(b, original)  # an operand is never changed
    assert _same(chain.form, expected), (chain.form, expected)


@pytest.mark.parametrize("o, args, folded", [
    ("+", (["+", 0, 0], 0), 0),  # constants that add up to 0: the sum is 0, not a bare (+)
    ("+", (["+", M64, 1], 0), 0),
    ("+", (0, ["+", 2, M64, M64]), 0),
    ("+", (["+", 2, M64], M64), 0),
    ("+", (["+", 1, 2], 3), 6),
    ("+", (["+", "RAX", 5], M64 - 4), "RAX"),
])
def test_a_sum_of_constants_is_folded_to_one(o, args, folded):
    assert op(o, *map(_copy, args)) == folded


def test_an_op_chain_gathers_the_constants_of_a_sum_op_returns_whole():
    # (+ 1 (+ 2 (+ 0 RAX M64) M64-2)) is (+ 0 RAX M64) as op() gives it (its outer constants add up to 0);
    # the next + gathers all three constants, in the chain as in op().
    start, steps = 1, [("+", ["+", 2, ["+", 0, "RAX", M64], M64 - 2]), ("+", M64 - 2)]
    expected = start
    for o, b in steps:
        expected = op(o, expected, _copy(b))
    assert expected == ["+", "RAX", M64 - 3]
    chain = OpChain(start)
    for o, b in steps:
        chain.apply(o, _copy(b))
    assert _same(chain.form, expected), chain.form
