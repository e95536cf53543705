"""The Emmett syntax tree as the passes use it: every node lists its children, each pass dispatches
on node classes through one table, nodes cover source ranges, and each expression's type is
computed once and stored on its node."""

from __future__ import annotations

from pathlib import Path

import pytest

from emmett import ctype as T
from emmett import syntax as S
from emmett.driver import analyse
from emmett.lower import Lowerer
from emmett.resolve import Resolver

REPO = Path(__file__).resolve().parent.parent

EVERY_FORM = r"""
#define TWICE(x) ((x) * 2)
#define LIMIT 10
typedef unsigned long ulong;
struct task { @0x10 int pid; char comm[16]; struct task *parent; union { int a; long b; } u; unsigned f : 3, g : 4; };
enum color { RED, GREEN = 5, BLUE };
extern struct task init_task;
aggr counts[1][1];
bag pending[16];
string name = "init";
extern int limits[LIMIT];
int depth(int n);
int depth(int n) { if (n == 0) return 0; return depth(n - 1) + 1; }
memmodel guest64;
GUEST:sys_open(struct task *t, ulong flags) {
    int local = (int)flags + sizeof(struct task) + sizeof t;
    string s;
    s = "a" "b" + name;
    counts[t->pid, t->comm]++;
    pending[local] <- TWICE(local);
    local += t->parent ? t->parent->u.a : -1;
    local = pending[local] ? !local : ~local, local++;
    if (local > GREEN && strcmp(s, PROBENAME) != 0) { local--; } else ;
    printf("%d %s %d\n", depth(local), s, init_task.pid);
    for (;;) { if (local) break; }
    goto out;
}
"""


def program(source: str, **kw):
    p = analyse(source, "t.emt")
    assert p is not None
    return p


def every_node(p):
    for node in p.externals:
        yield from S.walk(node)


def nodes_in(value):
    """The nodes inside an attribute value (lists and the tuples of declarations and declarators)."""
    if isinstance(value, S.Node):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from nodes_in(v)


def test_children_are_every_node_a_node_holds():
    p = program(EVERY_FORM)
    seen = set()
    for node in every_node(p):
        seen.add(type(node))
        held = []
        for cls in type(node).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if slot not in ("sym", "type", "ctype", "loop"):  # annotations, not children
                    held.extend(nodes_in(getattr(node, slot, None)))
        kids = node.children()
        assert sorted(map(id, kids)) == sorted(map(id, held)), type(node).__name__
        starts = [S.first_pos(k) for k in kids if k.pos is not None]
        assert starts == sorted(starts), f"{type(node).__name__}: children not in source order"
    assert set(S.NODE_CLASSES) == seen  # the program above has a node of every class


def test_walk_is_parents_first_and_bottom_up_children_first():
    p = program(EVERY_FORM)
    body = p.probes[0].node.body
    pre = list(S.walk(body))
    post = S.bottom_up(body)
    assert sorted(map(id, pre)) == sorted(map(id, post))
    index_pre = {id(n): i for i, n in enumerate(pre)}
    index_post = {id(n): i for i, n in enumerate(post)}
    for n in pre:
        for c in n.children():
            assert index_pre[id(c)] > index_pre[id(n)]
            assert index_post[id(c)] < index_post[id(n)]


def test_walking_a_deep_tree_does_not_recurse():
    e = S.IntLit((0, 1, 1), 1, "1")
    for i in range(50000):
        e = S.Binary((0, 1, 1), "+", e, S.IntLit((0, 1, 1), 1, "1"))
    assert sum(1 for _ in S.walk(e)) == 100001
    assert len(S.bottom_up(e)) == 100001
    assert S.first_pos(e) == (0, 1, 1)


@pytest.mark.parametrize("owner, prefix, classes", [
    (Resolver, "r_", S.EXPRESSIONS + S.STATEMENTS),
    (Lowerer, "x_", S.EXPRESSIONS),
    (Lowerer, "s_", S.STATEMENTS),
])
def test_each_pass_handles_every_node_class_it_can_meet(owner, prefix, classes):
    missing = [c.__name__ for c in classes if not hasattr(owner, prefix + c.__name__)]
    assert missing == []


def test_a_dispatch_table_uses_the_method_on_the_class_when_it_is_built():
    class Pass:
        def v_Name(self, node):
            return "name"

    table = S.dispatch_table(Pass(), "v_", S.EXPRESSIONS, default=lambda node: "other")
    assert table[S.Name](None) == "name" and table[S.Binary](None) == "other"
    Pass.v_Name = lambda self, node: "replaced"
    assert S.dispatch_table(Pass(), "v_", (S.Name,))[S.Name](None) == "replaced"
    assert S.dispatch_table(Pass(), "v_", (S.Binary,)) == {}


# ---- ranges --------------------------------------------------------------------------------------

def text_of(p, node):
    fid, line, col, end_line, end_col = S.source_range(node, p.reporter.files)
    lines = p.reporter.files.texts[fid].split("\n")
    if line == end_line:
        return lines[line - 1][col - 1:end_col - 1]
    return "\n".join([lines[line - 1][col - 1:]] + lines[line:end_line - 1] + [lines[end_line - 1][:end_col - 1]])


def stmt_exprs(source):
    p = program(source)
    return p, [s.expr for s in p.probes[-1].node.body.items if isinstance(s, S.ExprStmt)]


@pytest.mark.parametrize("statement, expected", [
    ("x = a + b * c;", "x = a + b * c"),
    ("x = f(a, (b + 1));", "x = f(a, (b + 1))"),
    ("x = p->q[i + 1];", "x = p->q[i + 1]"),
    ("x = s.field;", "x = s.field"),
    ("x++;", "x++"),
    ("++x;", "++x"),
    ('x = "ab" "cd";', 'x = "ab" "cd"'),
    ("x = (long)y;", "x = (long)y"),
    ("x = sizeof(struct t);", "x = sizeof(struct t)"),
    ("x = -~!y;", "x = -~!y"),
    ("x = c ? d : e;", "x = c ? d : e"),
    ("x = 0x10UL << 2;", "x = 0x10UL << 2"),
    ("x <<= 2;", "x <<= 2"),
])
def test_an_expression_covers_its_whole_text(statement, expected):
    p, (e,) = stmt_exprs(f"VMM1Hz {{\n    {statement}\n}}\n")
    assert text_of(p, e) == expected


def test_operands_and_statements_have_ranges_too():
    p, (e,) = stmt_exprs("VMM1Hz {\n    x = first(1)\n        + second[2];\n}\n")
    assert text_of(p, e.value) == "first(1)\n        + second[2]"
    assert text_of(p, e.value.right) == "second[2]"
    body = p.probes[0].node.body
    assert text_of(p, body.items[0]) == "x = first(1)\n        + second[2];"
    assert text_of(p, body).startswith("{") and text_of(p, body).endswith("}")


def test_a_macro_use_covers_the_macro_name():
    p, (e,) = stmt_exprs("#define BIG (1 << 20)\nVMM1Hz { x = BIG + 1; }\n")
    assert text_of(p, e.value) == "BIG + 1"


def test_the_caret_position_is_unchanged_by_ranges():
    p, (e,) = stmt_exprs("VMM1Hz { x = a + b; }\n")
    assert e.pos == (p.probes[0].node.pos[0], 1, 12)  # the '=' as before
    assert S.first_pos(e) == (e.pos[0], 1, 10)


# ---- types, once ---------------------------------------------------------------------------------

def test_every_expression_of_a_well_typed_program_has_its_type_stored():
    p = program(EVERY_FORM.replace("    goto out;\n", ""))
    assert not p.reporter.error_count, [d.format() for d in p.reporter.diagnostics]
    bodies = [fs.node.body for fs in p.functions] + [probe.node.body for probe in p.probes]
    untyped = [(type(n).__name__, n.pos) for body in bodies for n in S.walk(body)
               if isinstance(n, S.Expr) and n.type is None and not (isinstance(n, S.Name) and n.sym is None)]
    assert untyped == []


@pytest.mark.parametrize("expr, kind", [
    ('c ? "a" : "b"', T.StringType),
    ("c ? 1 : p", T.PointerType),
    ("c ? p : 1", T.PointerType),
    ("c ? 1 : 2", T.IntType),
    ("p + 1", T.PointerType),
    ("p - p", T.IntType),
    ('"a" + 1', T.StringType),
])
def test_the_typing_rules(expr, kind):
    p, (e,) = stmt_exprs(f"struct t {{ int a; }};\nstruct t *p;\nint c;\nVMM1Hz {{ x = {expr}; }}\n")
    assert isinstance(e.value.type, kind), e.value.type


def test_an_implicit_variable_takes_the_type_lowering_gives_a_conditional():
    # The pointer branch decides, as in C, whichever branch it is.
    p, _ = stmt_exprs("struct t { int a; };\nstruct t *p;\nint c;\nVMM1Hz { x = c ? 0 : p; y = x->a; }\n")
    assert isinstance(p.implicit["x"].type, T.PointerType)
    assert not p.reporter.error_count


def test_an_operand_is_typed_even_when_its_parent_was_typed_first():
    # During inference `a = (a = RIP * b)` types the inner assignment from `a` before `b` is known;
    # the final pass must still type `RIP * b` and `b`.
    p, _ = stmt_exprs("VMM1Hz { b = twice((a = (a = (RIP * b))) & 7); }\nint twice(int n) { return n * 2; }\n")
    untyped = [type(n).__name__ for n in S.walk(p.probes[0].node.body)
               if isinstance(n, S.Expr) and n.type is None and not (isinstance(n, S.Name) and n.sym is None)]
    assert untyped == [] and not p.reporter.error_count
