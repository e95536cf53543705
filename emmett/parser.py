"""Parsing: the LALR tables for `grammar.Grammar`, cached outside the source tree.

PLY builds the tables from the grammar once; they are stored (with `marshal`)
in the compiler's cache (`cache.py`: `~/.cache/vprobes-toolchain/`) in a file
named by a signature of the grammar (its rules, precedence, tokens and the PLY
version), so a changed grammar never reads stale tables and checkouts with
different grammars keep their own.  A process whose signature has tables reads
them and makes the LR parser from them directly: PLY neither analyses nor
checks the grammar again.  If the cache cannot be read or written the tables
are built in memory.  Nothing is ever written into the source tree: no
parsetab.py, no parser.out.
"""

import marshal
import sys

from ply import yacc

from . import cache
from .grammar import Grammar

_TABLES = None  # the LRTable of this process
_FORMAT = "tables 2"  # what the cached file holds (2: with the default reductions), part of its signature


def _rule_functions():
    funcs = []
    for name in dir(Grammar):
        if name.startswith("p_") and name != "p_error":
            f = getattr(Grammar, name)
            funcs.append((f.__code__.co_firstlineno, name, f.__doc__))
    funcs.sort()
    return funcs


def grammar_signature():
    """A signature of everything the tables depend on."""
    parts = [_FORMAT, yacc.__tabversion__, repr((Grammar.start, Grammar.precedence, Grammar.tokens))]
    for _, name, doc in _rule_functions():
        parts.append(name)
        parts.append(doc)
    return cache.signature(parts)


def cache_path(signature=None):
    return cache.table_path("emmett-parser", signature or grammar_signature(), ".marshal")


class _Quiet:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _build(path):
    """Generate the tables with PLY (which checks the grammar); keep them at `path` if possible."""
    grammar = Grammar()
    parser = yacc.yacc(module=grammar, debug=False, write_tables=False, optimize=False,
                       tabmodule="emmett_parser_tables_never_imported",
                       errorlog=_Quiet(), start=Grammar.start)
    table = yacc.LRTable()
    table.lr_action = parser.action
    table.lr_goto = parser.goto
    table.lr_productions = parser.productions
    table.lr_method = "LALR"
    table.emmett_defaults = _default_reductions(parser.action)
    if path is not None:
        data = marshal.dumps({
            "tabversion": yacc.__tabversion__,
            "action": parser.action,
            "goto": parser.goto,
            "productions": [(p.str, p.name, p.len, p.func, p.file, p.line) for p in parser.productions],
            "defaults": table.emmett_defaults,
        })

        def write(partial):
            with open(partial, "wb") as f:
                f.write(data)

        cache.store(path, write)
    return table


def _load(path):
    with open(path, "rb") as f:
        # marshal.load(f) would read the file a few bytes at a time (readinto per object): several times slower.
        data = marshal.loads(f.read())
    if data.get("tabversion") != yacc.__tabversion__:
        raise ValueError("stale tables")
    table = yacc.LRTable()
    table.lr_action = data["action"]
    table.lr_goto = data["goto"]
    table.lr_productions = [yacc.MiniProduction(*p) for p in data["productions"]]
    table.lr_method = "LALR"
    table.emmett_defaults = data["defaults"]
    return table


def tables():
    """This process's LRTable: read from the cache when its grammar signature has tables, else built."""
    global _TABLES
    if _TABLES is None:
        try:
            path = cache_path()
        except Exception:  # no usable home directory: build in memory
            path = None
        table = None
        if path is not None:
            try:
                table = _load(path)
            except Exception:
                table = None
        if table is None:
            table = _build(path)
        _TABLES = table
    return _TABLES


def make_parser(grammar):
    """An LR parser bound to `grammar`'s actions (one per parse)."""
    table = tables()
    bound = yacc.LRTable()
    bound.lr_action = table.lr_action
    bound.lr_goto = table.lr_goto
    bound.lr_method = table.lr_method
    bound.lr_productions = [yacc.MiniProduction(p.str, p.name, p.len, p.func, p.file, p.line)
                            for p in table.lr_productions]
    pdict = {name: getattr(grammar, name) for p in bound.lr_productions if (name := p.func)}
    bound.bind_callables(pdict)
    parser = yacc.LRParser(bound, grammar.p_error)
    parser.defaulted_states = table.emmett_defaults
    grammar.parser = parser
    return parser


def _default_reductions(action):
    """{state: reduction} for the states whose every action is the same reduction: they reduce
    without reading a lookahead.

    This is yacc's default reduction (PLY only applies it when a state has a
    single lookahead).  It matters for typedef names: the declaration
    `typedef long ulong;` must be reduced, and `ulong` made a type name for the
    lexer, before the token after the ';' is read.
    """
    defaults = {}
    for state, actions in action.items():
        values = set(actions.values())
        if len(values) == 1:
            (only,) = values
            if only < 0:
                defaults[state] = only
    return defaults


def parse(stream, grammar):
    """Parse the token stream; return the list of top-level nodes (None if unrecoverable)."""
    parser = make_parser(grammar)
    limit = sys.getrecursionlimit()
    try:
        return parser.parse(lexer=stream, tracking=False)
    finally:
        sys.setrecursionlimit(limit)
