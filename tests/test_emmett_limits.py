"""Programs at the edges the compiler must hold: names used as values, literals of any length,
long flat expressions (compiled in linear time into VP within VP's limits of 32 operands and 64
levels of nesting, and meaning what the Emmett means)."""

from __future__ import annotations

import pytest

import emmett
from conftest import FakeBackend, fire, position_of
from emmett.language import MAX_ARGS, MAX_NESTING
from emmett.vp import nesting
from test_emmett_cli import emmettc, text

M = (1 << 64) - 1


def errors(source: str, **options):
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(**options))
    assert not result.internal_error, result.format_diagnostics()
    assert not result.ok and result.vp is None
    return result.errors


def vp_lists(vp: str):
    """The operand counts of every parenthesized form of `vp` text (strings skipped)."""
    counts, stack, i = [], [], 0
    while i < len(vp):
        c = vp[i]
        if c == '"':
            i += 1
            while vp[i] != '"':
                i += 2 if vp[i] == "\\" else 1
        elif c == "(":
            stack.append(0)
        elif c == ")":
            counts.append(stack.pop())
        elif not c.isspace() and (i == 0 or vp[i - 1] in " \n(") and stack:
            stack[-1] += 1
        i += 1
    return counts


def run(source: str, **regs: int) -> str:
    result = emmett.compile(source, "t.emt", emmett.CompileOptions(preload=False))
    assert result.ok, result.format_diagnostics()
    backend = FakeBackend()
    backend.regs.update(regs)
    return fire(result.vp, backend=backend)


# ---- names used as values --------------------------------------------------------------------------

@pytest.mark.parametrize("source, needle, message", [
    ('VMM1Hz { if (curpid == 0) printf("x\\n"); }', "curpid ==", "'curpid' is a function; call it: curpid()"),
    ("VMM1Hz { x = curpid + 1; }", "curpid", "'curpid' is a function; call it: curpid()"),
    ("int f(int a) { return a; }\nVMM1Hz { logint(f); }", "f);", "'f' is a function; call it: f(...)"),
    ("VMM1Hz { x = curprocname; }", "curprocname", "'curprocname' is a function; call it: curprocname()"),
    ("VMM1Hz { x = sizeof curpid; }", "curpid", "'curpid' is a function"),
    ("VMM1Hz { x = curpid.a; }", "curpid", "'curpid' is a function"),
    ("VMM1Hz { x = curpid->a; }", "curpid", "'curpid' is a function"),
    ("VMM1Hz { x = (int)curpid; }", "curpid", "'curpid' is a function"),
    ("VMM1Hz { x = curpid ? 1 : 2; }", "curpid", "'curpid' is a function"),
    ("VMM1Hz { curpid = 1; }", "curpid", "'curpid' is a function, not a variable"),
    ("VMM1Hz { curpid++; }", "curpid", "'curpid' is a function, not a variable"),
    ("VMM1Hz { x = &curpid; }", "curpid", "cannot take the address of function 'curpid'"),
    ("VMM1Hz { logaggr(curpid); }", "curpid", "logaggr takes an aggregate"),
    ('VMM1Hz { sprintf(curpid, "a"); }', "curpid", "the destination of sprintf must be a string variable"),
    ("VMM1Hz { x = printf; }", "printf", "'printf' is a built-in function; call it: printf(...)"),
    ("VMM1Hz { x = getsystemtime + 1; }", "getsystemtime", "'getsystemtime' is a built-in function; "
                                                           "call it: getsystemtime()"),
    ("VMM1Hz { if (exit) logint(1); }", "exit", "'exit' is a built-in function; call it: exit()"),
])
def test_a_function_name_used_as_a_value_is_a_located_error(source, needle, message):
    first = errors(source)[0]
    assert message in first.message
    assert (first.line, first.col) == position_of(source, needle)


def test_a_preload_function_without_the_preload_says_so():
    (e,) = errors("VMM1Hz { x = curpid; }", preload=False)
    assert e.message == ("'curpid' is a function of the guest preload library, which --no-preload turned off; "
                         "call it: curpid()")


def test_emmettc_reports_a_function_used_as_a_value_with_exit_status_1():
    r = emmettc("-c", 'VMM1Hz { if (curpid == 0) printf("x\\n"); }')
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert text(r.stderr).splitlines()[0] == "<command line>:1:14: error: 'curpid' is a function; call it: curpid()"


# ---- literals of any length -------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("9" * 4301 + "USEC", "the time 99999999999999999999...999999USEC (4305 characters) does not fit in 64 bits"),
    ("USEC:" + "9" * 4301 + " { }", "the number 99999999999999999999...9999999999 (4301 characters) does not fit"),
    ("VMM1Hz { x = " + "9" * 4301 + "; }", "(4301 characters) does not fit in 64 bits"),
    ("VMM1Hz { x = " + "9" * 100000 + "; }", "(100000 characters) does not fit in 64 bits"),
    ("VMM1Hz { x = 0x" + "f" * 5000 + "; }", "(5002 characters) does not fit in 64 bits"),
    ("VMM1Hz { x = 0" + "7" * 5000 + "; }", "(5001 characters) does not fit in 64 bits"),
    ("VMM1Hz { x = " + "9" * 5000 + "z; }", "bad number '99999999999999999999...999999999z (5001 characters)'"),
    ("VMM1Hz { x = 18446744073709551616; }", "the number 18446744073709551616 does not fit in 64 bits"),
    ("TIMER:18446744073709551615sec { }", "the time 18446744073709551615sec does not fit in 64 bits"),
    ("#if " + "9" * 5000 + "\n#endif\nVMM1Hz { }", "#if: the number 99999999999999999999...9999999999 "
                                                  "(5000 characters) does not fit in 64 bits"),
    ("#if 09\n#endif\nVMM1Hz { }", "#if: bad number '09'"),
    ("#if 0\n#elif 0x1ffffffffffffffff\n#endif\nVMM1Hz { }", "#elif: the number 0x1ffffffffffffffff does not fit"),
])
def test_a_literal_of_any_length_is_a_located_error_of_bounded_length(source, message):
    first = errors(source)[0]
    assert message in first.message, first.message
    assert first.line >= 1 and len(first.message) < 200


def test_literals_that_fit_keep_their_values():
    out = run("VMXLoad { printf(\"%u %u %u %u\\n\", 18446744073709551615, 000000000000000000000000052, "
              "0x00000000000000000000000000ff, 1_000); }")
    assert out == f"{M} 42 255 1000\n"


def test_emmettc_reports_a_long_literal_in_one_short_line_with_exit_status_1():
    r = emmettc("-c", "VMM1Hz { x = " + "9" * 4301 + "; }")
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    head = text(r.stderr).splitlines()[0]
    assert head.endswith("does not fit in 64 bits") and len(head) < 120


# ---- long flat expressions -------------------------------------------------------------------------

@pytest.mark.parametrize("term", ["1", "RAX", "RAX + 1", "x", "x * y"])
def test_a_flat_expression_of_ten_thousand_terms_compiles_within_vps_limits(term):
    source = "VMM1Hz { y = 2; x = " + " + ".join([term] * 10000) + "; logint(x); }"
    result = emmett.compile(source, "t.emt")
    assert result.ok, result.format_diagnostics()
    counts = vp_lists(result.vp)
    assert max(counts) <= MAX_ARGS + 1  # the head and at most 32 operands
    assert result.vp.count("(") == len(counts)


@pytest.mark.parametrize("op, fold", [
    ("+", lambda a, b: (a + b) & M), ("-", lambda a, b: (a - b) & M), ("*", lambda a, b: (a * b) & M),
    ("&", lambda a, b: a & b), ("|", lambda a, b: a | b), ("^", lambda a, b: a ^ b),
    ("&&", lambda a, b: int(bool(a and b))), ("||", lambda a, b: int(bool(a or b))),
    ("/", lambda a, b: a // b), ("<", lambda a, b: int(a < b)), ("==", lambda a, b: int(a == b)),
])
@pytest.mark.parametrize("count", [33, 100, 500])
def test_a_long_chain_means_what_it_says(op, fold, count):
    if op in ("/", "<", "==") and count > 100:
        pytest.skip("left-folding operators nest one level per 31 operands")
    terms = ["RAX", "RBX", "5", "RCX"]
    values = {"RAX": 7, "RBX": 3, "RCX": 1 << 40, "5": 5}
    chain = [terms[i % len(terms)] for i in range(count)]
    expected = values[chain[0]]
    for t in chain[1:]:
        expected = fold(expected, values[t])
    out = run(f'VMXLoad {{ printf("%u\\n", {f" {op} ".join(chain)}); }}', RAX=7, RBX=3, RCX=1 << 40)
    assert out == f"{expected}\n"


def test_a_long_left_folding_chain_beyond_vps_nesting_is_a_clear_error():
    (e,) = errors("VMM1Hz { logint(" + " / ".join(["RAX"] * 3000) + "); }")
    assert f"nests more than {MAX_NESTING} levels deep" in e.message


def test_long_else_if_chains_and_blocks_load_and_run():
    chain = " else ".join(f"if (RAX == {i}) x = {i};" for i in range(100)) + " else x = 999;"
    assert run(f"VMXLoad {{ {chain} logint(x); }}", RAX=57) == "57"
    assert run(f"VMXLoad {{ {chain} logint(x); }}", RAX=1000) == "999"
    block = " ".join(f"logint({i});" for i in range(100))
    assert run(f"VMXLoad {{ if (RAX) {{ {block} }} }}", RAX=1) == "".join(map(str, range(100)))


def test_vp_nesting_counts_the_regrouped_forms():
    result = emmett.compile("VMM1Hz { logint(" + " + ".join(["RAX"] * 5000) + "); }", "t.emt")
    body = result.vp.split("(vprobe VMM1Hz", 1)[1]
    depth = max_depth = 0
    for c in body:
        depth += c == "("
        depth -= c == ")"
        max_depth = max(max_depth, depth)
    assert 3 <= max_depth <= 5  # logint, then two levels of groups of 32 under the sum
    assert nesting(["+", ["+", 1]]) == 2
