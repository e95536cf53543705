"""The Emmett front end: C precedence in the grammar, the preprocessor, and the
parser tables, which are built once and cached outside the source tree."""

from __future__ import annotations

import os
import marshal
import subprocess
import sys
from pathlib import Path

import pytest
from ply import lex

import emmett
from emmett import cache
from emmett import lexer as L
from emmett import parser as P
from emmett import syntax as S
from emmett.diagnostics import Files, Reporter
from emmett.grammar import Grammar
from emmett.lexer import TokenStream
from emmett.preprocess import Preprocessor

REPO = Path(__file__).resolve().parent.parent


def parse(source: str):
    files = Files()
    reporter = Reporter(files)
    pre = Preprocessor(files, reporter)
    pre.run_file("t.emt", source, None)
    typedefs: set[str] = set()
    stream = TokenStream(pre.chunks, reporter, typedefs)
    tree = P.parse(stream, Grammar(reporter, typedefs, stream))
    assert not reporter.diagnostics, [d.format() for d in reporter.diagnostics]
    return tree


def expr(source: str):
    """The expression of `VMM1Hz { EXPR; }`, as nested tuples."""
    probe = parse(f"VMM1Hz {{ {source}; }}")[0]
    return shape(probe.body.items[0].expr)


def shape(e):
    if isinstance(e, S.Name):
        return e.name
    if isinstance(e, S.IntLit):
        return e.value
    if isinstance(e, S.StrLit):
        return repr(e.value)
    if isinstance(e, (S.Binary, S.Assign)):
        return (e.op, shape(e.left if isinstance(e, S.Binary) else e.target),
                shape(e.right if isinstance(e, S.Binary) else e.value))
    if isinstance(e, S.Unary):
        return (e.op, shape(e.operand))
    if isinstance(e, S.Conditional):
        return ("?", shape(e.test), shape(e.then), shape(e.other))
    if isinstance(e, S.IncDec):
        return (e.op + ("pre" if e.prefix else "post"), shape(e.target))
    if isinstance(e, S.Call):
        return ("call", shape(e.func), *[shape(a) for a in e.args])
    if isinstance(e, S.Index):
        return ("[]", shape(e.base), *[shape(k) for k in e.keys])
    if isinstance(e, S.Member):
        return ("->" if e.arrow else ".", shape(e.base), e.field)
    if isinstance(e, S.Cast):
        return ("cast", shape(e.operand))
    if isinstance(e, S.SizeOf):
        return ("sizeof", "type" if e.tname else shape(e.operand))
    raise TypeError(e)


@pytest.mark.parametrize("source, tree", [
    ("a + b * c", ("+", "a", ("*", "b", "c"))),
    ("a - b - c", ("-", ("-", "a", "b"), "c")),
    ("a << 1 + 2", ("<<", "a", ("+", 1, 2))),
    ("a < b == c > d", ("==", ("<", "a", "b"), (">", "c", "d"))),
    ("a & b ^ c | d", ("|", ("^", ("&", "a", "b"), "c"), "d")),
    ("a || b && c", ("||", "a", ("&&", "b", "c"))),
    ("a = b = c", ("=", "a", ("=", "b", "c"))),
    ("a += b ? c : d", ("+=", "a", ("?", "b", "c", "d"))),
    ("a ? b : c ? d : e", ("?", "a", "b", ("?", "c", "d", "e"))),
    ("-a * b", ("*", ("-", "a"), "b")),
    ("!a && b", ("&&", ("!", "a"), "b")),
    ("*p->next", ("*", ("->", "p", "next"))),
    ("&s.f[2]", ("&", ("[]", (".", "s", "f"), 2))),
    ("-a[1]", ("-", ("[]", "a", 1))),
    ("a++ + ++b", ("+", ("++post", "a"), ("++pre", "b"))),
    ("(int)x + 1", ("+", ("cast", "x"), 1)),
    ("(char *)p + 1", ("+", ("cast", "p"), 1)),
    ("sizeof(int) * 2", ("*", ("sizeof", "type"), 2)),
    ("sizeof x + 1", ("+", ("sizeof", "x"), 1)),
    ("f(a, b)(c)", ("call", ("call", "f", "a", "b"), "c")),
    ("t[k1, k2] <- v + 1", ("<-", ("[]", "t", "k1", "k2"), ("+", "v", 1))),
    ('"a" "b" + c', ("+", "'ab'", "c")),
])
def test_c_precedence_and_associativity(source, tree):
    assert expr(source) == tree


def test_typedef_names_are_types_after_their_declaration():
    tree = parse("typedef unsigned long ulong;\nulong x;\nVMM1Hz { x = (ulong)-RIP; }")
    assert [(s.word, s.node) for s in tree[1].specs] == [("typename", "ulong")]
    assert shape(tree[2].body.items[0].expr) == ("=", "x", ("cast", ("-", "RIP")))
    # Without the typedef the same text is a subtraction from a variable named ulong.
    assert expr("x = (ulong)-RIP") == ("=", "x", ("-", "ulong", "RIP"))


def test_probe_names_of_every_form():
    tree = parse("USEC:100 ;\nGUEST:sym ;\nGUEST:ENTER:sym ;\nOFFSET:sym:0x10 ;\nTIMER:10msec ;\nVMX:TIMER:1sec ;\n"
                 "Disk_IOStart(int a, int b) { }\n")
    texts = [":".join(str(v[1] if isinstance(v, tuple) else v) for v, _, _ in p.parts) for p in tree]
    assert texts == ["USEC:100", "GUEST:sym", "GUEST:ENTER:sym", "OFFSET:sym:0x10", "TIMER:10msec",
                     "VMX:TIMER:1sec", "Disk_IOStart"]
    assert [d.declarator.name for d in tree[-1].params] == ["a", "b"]


def test_every_node_carries_its_position():
    tree = parse("int f(int a)\n{\n    return a +\n        2;\n}\n")
    ret = tree[0].body.items[0]
    assert ret.pos == (0, 3, 5)
    assert ret.value.pos == (0, 3, 14)  # the operator
    assert ret.value.right.pos == (0, 4, 9)


# ---- parser tables ------------------------------------------------------------------------------

def test_tables_are_cached_under_the_user_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(P, "_TABLES", None)
    P.tables()
    path = Path(P.cache_path())
    assert path.parent == tmp_path / "vprobes-toolchain"
    assert path.name.startswith("emmett-parser-") and path.exists()
    # A later process reads them back instead of building them again.
    monkeypatch.setattr(P, "_TABLES", None)
    monkeypatch.setattr(P, "_build", lambda path: pytest.fail("rebuilt the parser tables"))
    assert emmett.compile("VMM1Hz { }", "t.emt").ok


def test_an_unwritable_cache_falls_back_to_tables_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr(P, "_TABLES", None)
    assert emmett.compile("VMM1Hz { x = 1; }", "t.emt").ok
    assert blocker.is_file()


def test_a_corrupt_cache_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = Path(P.cache_path())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not marshal data")
    monkeypatch.setattr(P, "_TABLES", None)
    assert emmett.compile("VMM1Hz { x = 1; }", "t.emt").ok
    assert marshal.loads(path.read_bytes())["action"]


def test_the_cache_file_name_follows_the_grammar(monkeypatch):
    signature = P.grammar_signature()
    assert len(signature) == 24 and int(signature, 16) >= 0
    original = Grammar.p_expr_binary.__doc__
    monkeypatch.setattr(Grammar.p_expr_binary, "__doc__", original + "\n                | expr '@' expr")
    assert P.grammar_signature() != signature


def test_nothing_is_written_into_the_source_tree(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    code = "import emmett; assert emmett.compile('VMM1Hz { }', 't.emt').ok"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, timeout=120)
    written = [p for name in ("parsetab.py", "parser.out", "lextab.py")
               for p in REPO.rglob(name) if ".venv" not in p.parts]
    assert written == []
    assert list((tmp_path / "cache" / "vprobes-toolchain").glob("emmett-parser-*.marshal"))


def test_grammars_of_different_signatures_keep_their_own_tables(tmp_path, monkeypatch):
    """Two checkouts with different grammars on one machine: each keeps its file, neither rebuilds."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "vprobes-toolchain"
    for signature in ("a" * 24, "b" * 24):
        monkeypatch.setattr(P, "grammar_signature", lambda signature=signature: signature)
        monkeypatch.setattr(P, "_TABLES", None)
        P.tables()
    assert sorted(p.name for p in folder.glob("emmett-parser-*")) == [
        f"emmett-parser-{'a' * 24}.marshal", f"emmett-parser-{'b' * 24}.marshal"]
    monkeypatch.setattr(P, "_build", lambda path: pytest.fail("rebuilt the parser tables"))
    for signature in ("a" * 24, "b" * 24):
        monkeypatch.setattr(P, "grammar_signature", lambda signature=signature: signature)
        monkeypatch.setattr(P, "_TABLES", None)
        assert emmett.compile("VMM1Hz { x = 1; }", "t.emt").ok


def test_only_the_most_recent_tables_of_a_kind_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "vprobes-toolchain"
    folder.mkdir()
    for i in range(cache.KEEP + 2):
        old = folder / f"emmett-parser-{i:024x}.marshal"
        old.write_bytes(b"")
        os.utime(old, (1000 + i, 1000 + i))
    (folder / f"emmett-lexer-{0:024x}.py").write_text("")  # another kind: not counted
    monkeypatch.setattr(P, "_TABLES", None)
    P.tables()
    kept = sorted(p.name for p in folder.glob("emmett-parser-*"))
    assert len(kept) == cache.KEEP and Path(P.cache_path()).name in kept
    assert f"emmett-parser-{0:024x}.marshal" not in kept and f"emmett-parser-{cache.KEEP + 1:024x}.marshal" in kept
    assert (folder / f"emmett-lexer-{0:024x}.py").exists()


# ---- the lexer's table --------------------------------------------------------------------------

def test_the_lexer_table_is_cached_and_read_back_without_checking_the_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(L, "_MASTER", None)
    L._master_lexer()
    (table,) = (tmp_path / "vprobes-toolchain").glob("emmett-lexer-*.py")
    assert table.name == f"emmett-lexer-{L._rules_signature()}.py"
    monkeypatch.setattr(L, "_MASTER", None)
    monkeypatch.setattr(lex.LexerReflect, "validate_all", lambda self: pytest.fail("checked the rules again"))
    assert [t.value for t in parse_tokens("x += 0x10; // done")] == ["x", "+=", "0x10", ";"]


def test_changed_lexer_rules_get_a_new_table(monkeypatch):
    signature = L._rules_signature()
    monkeypatch.setattr(L._Rules, "t_ARROW", r"->|=>")
    assert L._rules_signature() != signature


def test_a_damaged_lexer_table_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    table = tmp_path / "vprobes-toolchain" / f"emmett-lexer-{L._rules_signature()}.py"
    table.parent.mkdir()
    table.write_text("_tabversion = '3.10'\n_lexstatere = {'INITIAL': [('(unbalanced', [])]}\n")
    monkeypatch.setattr(L, "_MASTER", None)
    assert [t.value for t in parse_tokens("a->b")] == ["a", "->", "b"]
    assert "unbalanced" not in table.read_text()


def parse_tokens(source: str):
    lexer = L._master_lexer().clone()
    lexer.input(source)
    return list(iter(lexer.token, None))
