"""Property tests (hypothesis): no VP text makes `load` raise anything but VPLoadError,
and no script that loads can make the machine raise while its probes fire.

Inputs: random bytes; token soups and random trees built from VP's own
vocabulary; mutations of the reference samples; and well-typed random
programs (which load, so their firing is exercised too).
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings, strategies as st

from vp_runtime import LoadConfig, VPLoadError, load

from conftest import SAMPLES, FakeBackend, load_on_machine, new_machine

PROPERTY = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])

KEYWORDS = ("version definteger defstring defaggr defbag defun vprobe cond do setint setstr aggr logaggr "
            "clearaggr baginsert bagremove logstr logint printf sprintf strcmp getguest getgueststr "
            "gueststack getguestphys getsystemtime offatret offatstrcpy offatseg").split()
OPERATORS = ("+ - * / % << >> ^ ~ | & && || ! > < >= <= == != add sub mul div mod lshift rshift xor and "
             "or not").split()
PROBES = ("VMM1Hz VMM10Hz VMX1Hz VMMLoad VMXLoad VMMUnload VMXUnload Guest_IRQ Guest_PF Guest_CR3Write "
          "Guest_TripleFault Disk_IOStart Disk_IOFinish In Out HV_Exit USEC:1000 USEC:0 USEC:x "
          "GUEST:do_fork GUEST:0x7c00 GUEST_WRITE:jiffies GUEST_READ:0x1000 GUEST:nope").split()
GLOBALS = "RIP RSP RBP CR3 GSBASE KERNELGSBASE TSC TSC_HZ PTSC VCPUID NUMVCPUS ARG0 ARG9 PROBENAME".split()
ATOMS = ["x", "s", "a", "b", "f", "g", "n", "FOO", "0", "1", "-1", "7", "4096", "0xffffffffffffffff",
         "18446744073709551616", "12abc", '"%d"', '"%s %d\\n"', '"hi\\n"', '"1.0"', '"9.0"', '"sys_getpid"',
         '"get_task_comm"', '"jiffies"', '""', '"\\q"', "(", ")", "()", "; comment\n", "\n", '"unterminated']
VOCABULARY = KEYWORDS + OPERATORS + PROBES + GLOBALS + ATOMS


def valid_samples() -> list[str]:
    library = (SAMPLES / "curprocname.vp").read_text()
    texts = []
    for path in sorted(SAMPLES.glob("*.vp")):
        if path.name in ("curprocname.vp", "pagefault_stack.vp"):
            continue
        text = path.read_text()
        texts.append(library + text if "curp" in text or "curprocname" in text else text)
    return texts


SAMPLE_TEXTS = valid_samples()


# ---- strategies -------------------------------------------------------------------------------

token_soup = st.lists(st.sampled_from(VOCABULARY), max_size=60).map(" ".join)

sexp_trees = st.recursive(
    st.sampled_from(VOCABULARY[:-4]),
    lambda children: st.lists(children, max_size=5).map(lambda items: "(" + " ".join(items) + ")"),
    max_leaves=40,
)


@st.composite
def soup_programs(draw) -> str:
    """Top-level forms of VP's shape with random insides."""
    forms = draw(st.lists(st.tuples(st.sampled_from(["vprobe", "defun", "definteger", "defstring", "defaggr",
                                                     "defbag", "version"]),
                                    st.lists(sexp_trees, max_size=4)), max_size=5))
    text = " ".join(f"({head} {' '.join(rest)})" for head, rest in forms)
    return text + draw(st.sampled_from(["", " (vprobe VMXLoad 1)", ")", "("]))


@st.composite
def mutated_samples(draw) -> str:
    text = draw(st.sampled_from(SAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "replace", "byte"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "insert":
            text = text[:i] + " " + draw(st.sampled_from(VOCABULARY)) + " " + text[i:]
        elif op == "replace":
            text = text[:i] + draw(st.sampled_from(VOCABULARY)) + text[j:]
        else:
            text = text[:i] + chr(draw(st.integers(0, 255))) + text[i:]
    return text


# Well-typed programs over a fixed set of declarations: they load, and their probes run.
PRELUDE = """
(definteger x 1)
(definteger y -1)
(definteger zero 0)
(defstring s "str")
(defaggr a 1 1)
(defaggr k 0 0)
(defbag b 3)
(defun f (p q) (+ p q))
(defun g (t) (setstr t "g") t)
(defun down (n) (cond ((== n 0) 0) (1 (+ 1 (down (- n 1))))))
(defun rd (addr) (cond ((< addr 4096) 0) (1 (getguest addr))))
"""
INT_LEAVES = st.sampled_from(["x", "y", "zero", "0", "1", "-1", "7", "64", "0xffffffffffffffff", "RIP", "RSP",
                              "GSBASE", "CR3", "ARG0", "VCPUID", "TSC", "PTSC", "NUMVCPUS", "4096"])
STR_LEAVES = st.sampled_from(["s", "PROBENAME", '"lit"', '""', '"a\\"b\\\\c"', '"jiffies"', '"sys_getpid"',
                              '"get_task_comm"', '"no_such_symbol"'])
BINARY = ["+", "-", "*", "/", "%", "<<", ">>", "^", "|", "&", "&&", "||", ">", "<", ">=", "<=", "==", "!=",
          "add", "sub", "mul", "div", "mod", "lshift", "rshift", "xor", "and", "or"]

int_expr = st.deferred(lambda: st.one_of(INT_LEAVES, INT_LEAVES, int_compound))
str_expr = st.deferred(lambda: st.one_of(STR_LEAVES, STR_LEAVES, str_compound))


def _join(parts) -> str:
    return " ".join(parts)


int_compound = st.one_of(
    st.tuples(st.sampled_from(BINARY), st.lists(int_expr, min_size=2, max_size=4)).map(
        lambda t: f"({t[0]} {_join(t[1])})"),
    st.tuples(st.sampled_from(["~", "!", "not"]), int_expr).map(lambda t: f"({t[0]} {t[1]})"),
    st.tuples(int_expr, int_expr, int_expr).map(lambda t: f"(cond ({t[0]} {t[1]}) (1 {t[2]}))"),
    st.tuples(str_expr, int_expr).map(lambda t: f"(do (logstr {t[0]}) {t[1]})"),
    int_expr.map(lambda e: f"(setint x {e})"),
    st.tuples(int_expr, int_expr).map(lambda t: f"(f {t[0]} {t[1]})"),
    int_expr.map(lambda e: f"(down (& {e} 0x3ff))"),
    int_expr.map(lambda e: f"(rd {e})"),
    int_expr.map(lambda e: f"(getguest {e})"),
    str_expr.map(lambda e: f"(getguest {e})"),
    int_expr.map(lambda e: f"(getguestphys {e})"),
    st.tuples(str_expr, str_expr).map(lambda t: f"(strcmp {t[0]} {t[1]})"),
    st.tuples(int_expr, str_expr).map(lambda t: f'(printf "%d %s|" {t[0]} {t[1]})'),
    st.tuples(int_expr, int_expr).map(lambda t: f"(baginsert b {t[0]} {t[1]})"),
    int_expr.map(lambda e: f"(bagremove b {e})"),
    st.tuples(int_expr, str_expr, int_expr).map(lambda t: f"(aggr a ({t[0]}) ({t[1]}) {t[2]})"),
    st.just("(logaggr a)"), st.just("(clearaggr a)"), st.just("(aggr k () () 1)"),
    st.sampled_from(['(offatret "sys_getpid")', '(offatstrcpy "get_task_comm")', '(offatseg "sys_getpid")',
                     '(offatret "jiffies")', '(offatseg "nope")', "(getsystemtime)", "(getsystemtime x)",
                     "(gueststack s)"]),
    st.tuples(st.sampled_from(["s"]), int_expr).map(lambda t: f"(getgueststr {t[0]} {t[1]})"),
    st.tuples(int_expr, int_expr).map(lambda t: f"(getgueststr s {t[0]} {t[1]})"),
    st.tuples(str_expr, int_expr).map(lambda t: f"(getgueststr s {t[0]} {t[1]})"),
    st.tuples(int_expr, str_expr).map(lambda t: f'(sprintf s "%x-%s" {t[0]} {t[1]})'),
    st.tuples(str_expr, int_expr).map(lambda t: f"(printf {t[0]} {t[1]})"),  # run-time checked format
)
str_compound = st.one_of(
    str_expr.map(lambda e: f"(setstr s {e})"),
    st.tuples(int_expr, str_expr, str_expr).map(lambda t: f"(cond ({t[0]} {t[1]}) (1 {t[2]}))"),
    st.tuples(int_expr, str_expr).map(lambda t: f"(do {t[0]} {t[1]})"),
    st.just("(g s)"),
)
typed_programs = st.tuples(
    st.lists(st.tuples(st.sampled_from(["VMXLoad", "VMMLoad", "VMM10Hz", "USEC:20000", "Guest_IRQ", "Guest_PF",
                                        "Guest_CR3Write", "VMXUnload", "GUEST:do_fork", "Disk_IOFinish"]),
                       st.lists(st.one_of(int_expr, str_expr), min_size=1, max_size=3)),
             min_size=1, max_size=4),
).map(lambda t: PRELUDE + "\n".join(f"(vprobe {point} {_join(body)})" for point, body in t[0]))


# ---- the properties ------------------------------------------------------------------------------

def check_load(text: str | bytes, backend=None, config: LoadConfig | None = None):
    """Load `text`; only VPLoadError may come out, and its diagnostics are well formed."""
    try:
        return load(text, config, backend=backend, filename="fuzz.vp")
    except VPLoadError as e:
        assert e.diagnostics
        for d in e.diagnostics:
            assert d.file == "fuzz.vp" and d.line >= 1 and d.col >= 1 and d.message
            assert d.severity in ("error", "warning")
        assert e.diagnostics[0].severity == "error"
        e.format()
        return None


_MACHINE: list = []


def booted_machine():
    """The default machine, booted once and shared: each example's script is loaded into
    the running VM and unloaded again, as a user would with one VM and many scripts.
    A fresh machine replaces it every 25 scripts."""
    if not _MACHINE or _MACHINE[0][1] >= 25 or _MACHINE[0][0].script is not None:
        m = new_machine()
        m.run(1.2)  # let the guest boot: processes, page faults, disk and timer IRQs
        _MACHINE[:] = [[m, 0]]
    _MACHINE[0][1] += 1
    return _MACHINE[0][0]


def run_on_machine(text: str | bytes, seconds: float = 0.2):
    """Load on a booted machine; if it loads, fire it for `seconds`: nothing may escape."""
    m = booted_machine()
    out: list[str] = []
    try:
        script = load_on_machine(text, m, "fuzz.vp", out.append)
    except VPLoadError:
        return None
    m.attach(script)
    m.run(seconds)
    m.detach()
    log = "".join(out)
    assert_clean_log(log)
    return log


def assert_clean_log(log: str) -> None:
    """A log of whole records (each firing's output ends its line), no internal error, and
    every fault line names its probe and the place in the script that faulted."""
    assert log == "" or log.endswith("\n"), log[-500:]
    assert "internal error" not in log, log[-500:]
    for line in log.splitlines():
        if line.startswith("vprobe error:"):
            assert re.match(r"vprobe error: probe \S+ aborted at fuzz\.vp:\d+:\d+: ", line), line


@PROPERTY
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_load_errors(data):
    check_load(data)
    check_load(data, backend=FakeBackend())


@PROPERTY
@given(st.text(max_size=300))
def test_random_text_only_raises_load_errors(text):
    check_load(text)


@PROPERTY
@given(st.one_of(token_soup, sexp_trees, soup_programs()))
def test_vocabulary_soups_only_raise_load_errors(text):
    check_load(text)
    run_on_machine(text, 0.05)


@PROPERTY
@given(mutated_samples())
def test_mutated_samples_only_raise_load_errors_and_run_cleanly(text):
    check_load(text)
    run_on_machine(text)


@PROPERTY
@given(typed_programs)
def test_well_typed_programs_load_and_never_raise_out_of_the_machine(text):
    script = check_load(text, config=LoadConfig(max_code_bytes=65536))
    if script is None:
        return  # e.g. nested past the limit
    m = booted_machine()
    out: list[str] = []
    script = load_on_machine(text, m, "fuzz.vp", out.append)
    m.attach(script)
    m.run(0.1)
    m.detach()
    assert_clean_log("".join(out))


@PROPERTY
@given(typed_programs)
def test_well_typed_programs_fire_cleanly_on_the_fake_backend(text):
    b = FakeBackend(symbols={"jiffies": 0x5000, "sys_getpid": 0x6000}, frames=[0xFFFFFFFF81000000, 0x400000])
    b.poke(0x5000, bytes(range(64)))
    b.poke(0x6000, bytes.fromhex("55 48 89 e5 65 48 8b 04 25 80 b5 00 00 8b 80 a4 02 00 00 c9 c3"))
    out: list[str] = []
    try:
        script = load(text, LoadConfig(max_code_bytes=65536, max_call_depth=64), backend=b, filename="fuzz.vp",
                      log_sink=out.append)
    except VPLoadError:
        return
    for spec in script.probe_specs():
        b.args[0] = 0xEF
        script.handler(spec.text)()
    script.flush()
    assert "internal error" not in "".join(out)


# ---- operators against a reference evaluator ------------------------------------------------------

U64 = (1 << 64) - 1
FOLD_OPS = ["+", "-", "*", "/", "%", "<<", ">>", "^", "|", "&", "&&", "||", ">", "<", ">=", "<=", "==", "!=",
            "add", "sub", "mul", "div", "mod", "lshift", "rshift", "xor", "and", "or"]
ALIAS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "lshift": "<<", "rshift": ">>",
         "xor": "^", "and": "&&", "or": "||", "not": "!"}


class _Fault(Exception):
    pass


def _step(op: str, a: int, b: int) -> int:
    if op == "+":
        return (a + b) & U64
    if op == "-":
        return (a - b) & U64
    if op == "*":
        return (a * b) & U64
    if op in ("/", "%"):
        if b == 0:
            raise _Fault("division by zero" if op == "/" else "modulo by zero")
        return a // b if op == "/" else a % b
    if op == "<<":
        return (a << b) & U64 if b < 64 else 0
    if op == ">>":
        return a >> b
    if op == "^":
        return a ^ b
    if op == "|":
        return a | b
    if op == "&":
        return a & b
    return int({">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b}[op])


def reference_eval(tree, env: dict) -> int:
    """VP semantics: an operator's operands right to left, folded left; && and || left to
    right, short-circuit; cond and do in order.  `env` holds the variable x."""
    if isinstance(tree, int):
        return tree
    if tree == "x":
        return env["x"]
    op, args = tree[0], tree[1:]
    op = ALIAS.get(op, op)
    if op == "~":
        return reference_eval(args[0], env) ^ U64
    if op == "!":
        return int(not reference_eval(args[0], env))
    if op == "setint":
        env["x"] = reference_eval(args[0], env)
        return env["x"]
    if op == "do":
        return [reference_eval(a, env) for a in args][-1]
    if op == "cond":
        for test, body in args:
            if reference_eval(test, env):
                return reference_eval(body, env)
        return 0
    if op in ("&&", "||"):
        for a in args:
            truth = bool(reference_eval(a, env))
            if truth == (op == "||"):
                return int(truth)
        return int(op == "&&")
    values = [reference_eval(a, env) for a in reversed(args)][::-1]
    acc = values[0]
    for v in values[1:]:
        acc = _step(op, acc, v)
    return acc


def render(tree) -> str:
    if isinstance(tree, (int, str)):
        return str(tree)
    if tree[0] == "cond":
        return "(cond " + " ".join(f"({render(t)} {render(b)})" for t, b in tree[1:]) + ")"
    if tree[0] == "setint":
        return f"(setint x {render(tree[1])})"
    return "(" + " ".join([tree[0]] + [render(a) for a in tree[1:]]) + ")"


int_literals = st.one_of(st.integers(0, 3), st.sampled_from([63, 64, 65, 255, 1 << 63, U64, U64 - 1, "x"]),
                         st.integers(0, U64))
expr_trees = st.recursive(
    int_literals,
    lambda ch: st.one_of(
        st.tuples(st.sampled_from(FOLD_OPS), st.lists(ch, min_size=2, max_size=4)).map(lambda t: (t[0], *t[1])),
        st.tuples(st.sampled_from(["~", "!", "not"]), ch),
        st.lists(st.tuples(ch, ch), min_size=1, max_size=3).map(lambda cl: ("cond", *cl)),
        ch.map(lambda e: ("setint", e)),
        st.lists(ch, min_size=1, max_size=3).map(lambda body: ("do", *body)),
    ),
    max_leaves=25,
)


@settings(PROPERTY, max_examples=300)
@given(st.lists(expr_trees, min_size=1, max_size=4))
def test_operators_match_a_reference_evaluator(trees):
    text = "(definteger x 5)\n" + "\n".join(f'(vprobe VMXLoad (printf "%u\\n" {render(t)}))' for t in trees)
    out: list[str] = []
    try:
        script = load(text, backend=FakeBackend(), filename="e.vp", log_sink=out.append)
    except VPLoadError as e:
        assert "nested" in e.diagnostics[0].message  # the only way a well-formed tree can fail
        return
    script.handler("VMXLoad")()
    script.flush()
    got = "".join(out).splitlines()
    assert len(got) == len(trees)
    env = {"x": 5}
    for tree, line in zip(trees, got):
        try:
            expected = str(reference_eval(tree, env))
        except _Fault as fault:
            assert line.startswith("vprobe error: probe VMXLoad aborted at e.vp:") and line.endswith(str(fault)), \
                (render(tree), line)
        else:
            assert line == expected, render(tree)


# ---- the cost bound against the operations a firing executes --------------------------------------------

def executed_operations(tree, env: dict, count: list) -> int:
    """`reference_eval`, counting VP operations as vp_runtime.cost defines them (one per node, one per
    operator step), along the path the evaluation takes."""
    if isinstance(tree, int) or tree == "x":
        count[0] += 1
        return reference_eval(tree, env)
    op, args = tree[0], tree[1:]
    op = ALIAS.get(op, op)
    if op == "cond":
        count[0] += 1
        for test, body in args:
            if executed_operations(test, env, count):
                return executed_operations(body, env, count)
        return 0
    if op in ("&&", "||"):
        count[0] += len(args) - 1
        for a in args:
            truth = bool(executed_operations(a, env, count))
            if truth == (op == "||"):
                return int(truth)
        return int(op == "&&")
    count[0] += max(1, len(args) - 1) if op not in ("setint", "do") else 1
    if op in ("~", "!", "setint"):
        value = executed_operations(args[0], env, count)
        if op == "setint":
            env["x"] = value
            return value
        return value ^ U64 if op == "~" else int(not value)
    if op == "do":
        return [executed_operations(a, env, count) for a in args][-1]
    values = [executed_operations(a, env, count) for a in reversed(args)][::-1]
    acc = values[0]
    for v in values[1:]:
        acc = _step(op, acc, v)
    return acc


def _branches(tree) -> bool:
    return not isinstance(tree, (int, str)) and (ALIAS.get(tree[0], tree[0]) in ("cond", "&&", "||") or
                                                 any(_branches(a) for a in (tree[1:] if tree[0] != "cond" else
                                                                            [p for c in tree[1:] for p in c])))


@settings(PROPERTY, max_examples=300)
@given(st.lists(expr_trees, min_size=1, max_size=4))
def test_the_cost_bound_covers_what_a_firing_executes(trees):
    """The bound at load is never below the operations a firing takes, and is exact for code without
    branches (printf and its format add two)."""
    text = "(definteger x 5)\n" + "\n".join(f'(vprobe VMXLoad (printf "%u\\n" {render(t)}))' for t in trees)
    try:
        script = load(text, backend=FakeBackend(), filename="e.vp")
    except VPLoadError:
        return  # nested too deep (the operators test covers it)
    env = {"x": 5}
    for tree, cost in zip(trees, script.costs):
        count = [2]
        try:
            executed_operations(tree, env, count)
        except _Fault:
            pass
        assert cost.bounded and cost.operations >= count[0], render(tree)
        if not _branches(tree) and not any(isinstance(t, tuple) and t[0] in ("/", "%", "div", "mod")
                                           for t in _subtrees(tree)):
            assert cost.operations == count[0], render(tree)


@settings(PROPERTY, max_examples=300)
@given(st.lists(expr_trees, min_size=1, max_size=4))
def test_the_counted_operations_are_what_a_firing_executes(trees):
    """Loaded to count (the modelled charge), a firing counts exactly the VP operations it executes
    along its path; one that faults, at least those it executed (the stretch it was in counts whole)."""
    text = "(definteger x 5)\n" + "\n".join(f'(vprobe VMXLoad (printf "%u\\n" {render(t)}))' for t in trees)
    try:
        script = load(text, LoadConfig(count_operations=True), backend=FakeBackend(), filename="e.vp")
    except VPLoadError:
        return  # nested too deep (the operators test covers it)
    env = {"x": 5}
    expected, faulted = 0, False
    for tree in trees:
        count = [2]  # printf and its format
        try:
            executed_operations(tree, env, count)
        except _Fault:
            faulted = True
        expected += count[0]
    script.handler("VMXLoad")()
    if faulted:
        assert script.operations() >= expected
    else:
        assert script.operations() == expected, [render(t) for t in trees]


def _subtrees(tree):
    yield tree
    if isinstance(tree, tuple):
        for a in tree[1:]:
            if isinstance(a, tuple) and tree[0] == "cond":
                yield from (s for part in a for s in _subtrees(part))
            else:
                yield from _subtrees(a)


# ---- long literals --------------------------------------------------------------------------------------

@st.composite
def number_tokens(draw) -> tuple[str, int | None]:
    """A token that starts like a number, of any length (past Python's 4,300-digit limit for
    decimal strings), and its value when it is a literal that fits in 64 bits."""
    sign = draw(st.sampled_from(["", "-", "+"]))
    hexadecimal = draw(st.booleans())
    zeros = "0" * draw(st.sampled_from([0, 1, 5, 4300, 4301, 6000]))
    alphabet = "0123456789abcdefABCDEF" if hexadecimal else "0123456789"
    length = draw(st.sampled_from([1, 2, 16, 17, 19, 20, 21, 4300, 4301, 5000]))
    digits = draw(st.text(alphabet, min_size=1, max_size=8)) * (length // 8 + 1)
    digits = digits[:length]
    suffix = draw(st.sampled_from(["", "", "USEC", "z", "x1"]))
    token = sign + ("0x" if hexadecimal else "") + zeros + digits + suffix
    value = None
    if not suffix:
        magnitude = sum(int(d, 16) * 16 ** i for i, d in enumerate(reversed(digits))) if hexadecimal else \
            int(digits.lstrip("0") or "0") if len(digits) <= 4000 else None
        if magnitude is not None and magnitude <= U64:
            value = (-magnitude if sign == "-" else magnitude) & U64
    return token, value


@settings(PROPERTY, max_examples=150)
@given(number_tokens())
def test_number_tokens_of_any_length_load_or_give_a_short_located_error(case):
    token, value = case
    text = f"(vprobe VMXLoad (printf \"%u\" {token}))"
    out: list[str] = []
    try:
        script = load(text, backend=FakeBackend(), filename="n.vp", log_sink=out.append)
    except VPLoadError as e:
        (d,) = e.diagnostics
        assert (d.file, d.line, d.col) == ("n.vp", 1, 30) and len(d.message) < 160, d.message
        assert value is None
        return
    assert value is not None, token[:60]
    script.handler("VMXLoad")()
    script.flush()
    assert "".join(out) == str(value)


# ---- deep and long recursion ----------------------------------------------------------------------------

@st.composite
def recursive_programs(draw) -> tuple[str, LoadConfig]:
    """Functions calling themselves and each other, linearly or as trees (fib-like), with arguments
    from small to huge, under budgets and depths from tiny to beyond the host stack."""
    n = draw(st.integers(1, 3))
    funcs = []
    for i in range(n):
        fanout = draw(st.integers(1, 3))
        calls = " ".join(f"(r{draw(st.integers(0, n - 1))} (- k {draw(st.integers(1, 2))}))" for _ in range(fanout))
        funcs.append(f"(defun r{i} (k) (cond ((< k 1) 1) (1 (+ 1 {calls}))))")
    args = draw(st.lists(st.sampled_from([0, 3, 12, 40, 5000, 0xffffffffffffffff]), min_size=1, max_size=3))
    body = " ".join(f'(printf "%d;" (r0 {a}))' for a in args)
    config = LoadConfig(max_call_depth=draw(st.sampled_from([1, 8, 128, 10 ** 6])),
                        max_calls_per_firing=draw(st.sampled_from([1, 50, 10_000, 10 ** 6])),
                        max_ops_per_firing=10 ** 12)
    return "\n".join(funcs) + f'\n(vprobe VMXLoad {body} (logstr "end"))\n(vprobe VMXLoad (logstr "|next"))', config


@settings(PROPERTY, max_examples=60)
@given(recursive_programs())
def test_recursion_of_any_shape_ends_each_firing_cleanly(case):
    text, config = case
    out: list[str] = []
    script = load(text, config, backend=FakeBackend(), filename="r.vp", log_sink=out.append)
    (cost, _) = script.costs
    assert not cost.bounded and cost.max_calls == config.max_calls_per_firing
    for _ in range(2):
        script.handler("VMXLoad")()
        script.end_firing()
    log = "".join(out)
    assert log.count("|next") == 2
    for line in log.splitlines():  # output, or output cut by one fault line; the next probe runs
        assert re.fullmatch(r"(\d+;)*(end)?(\|next)?|vprobe error: probe VMXLoad aborted at r\.vp:[1-3]:8: "
                            r"(work budget exhausted|VP stack overflow): .*", line), line
    assert script._namespace_ref["_depth"] == [0]  # every activation was unwound
