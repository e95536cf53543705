"""What analysis records about a program: symbols, function and probe bodies, inference constraints."""

from . import ctype as T


class Symbol:
    """What a name is bound to: a `Sym` (a value, or a container) or a `FuncSym` (a function)."""

    __slots__ = ()
    implicit = False  # only a Sym can be implicit (undeclared, decided by its uses)


class Sym(Symbol):
    """A named thing a program refers to.

    kind: "var" (a VP global variable), "local", "param", "probeparam" (ARGn),
    "builtin" (a built-in global: RIP, TSC, PROBENAME...), "enum" (a constant), "aggr", "bag",
    "extern" (a guest object at a symbol's address), "guestsym" (the `&name`
    of an undeclared guest symbol), "implicit" (undecided), "error".
    """

    __slots__ = ("kind", "name", "type", "pos", "vpname", "implicit", "init", "preload",
                 "uses", "decided", "index", "value", "static", "hidden")

    def __init__(self, kind, name, type_=None, pos=None):
        self.kind = kind
        self.name = name
        self.type = type_
        self.pos = pos
        self.vpname = None
        self.implicit = False
        self.init = None
        self.preload = False
        self.uses = None
        self.decided = None  # where an implicit symbol's type was decided
        self.index = 0
        self.value = 0
        self.static = False
        self.hidden = False  # a local passed as an extra parameter (recursive functions)

    def __repr__(self):
        return f"Sym({self.kind}, {self.name!r})"


class FuncSym(Symbol):
    __slots__ = ("name", "type", "pos", "node", "ctx", "preload", "vpname", "recursive", "reachable", "model",
                 "kind")

    def __init__(self, name, type_, pos):
        self.kind = "func"
        self.name = name
        self.type = type_
        self.pos = pos
        self.node = None
        self.ctx = None
        self.preload = False
        self.vpname = None
        self.recursive = False
        self.reachable = False
        self.model = None

    def __repr__(self):
        return f"FuncSym({self.name!r})"


class Ctx:
    """One function or probe body: its scopes, locals and calls."""

    __slots__ = ("kind", "name", "params", "locals", "calls", "model", "ret", "scopes", "preload", "failed")

    def __init__(self, kind, name, model, preload):
        self.kind = kind  # "func" or "probe"
        self.name = name
        self.params = []
        self.locals = []
        self.calls = {}  # FuncSym -> first call position (insertion-ordered)
        self.model = model
        self.ret = T.VOID
        self.scopes = []
        self.preload = preload
        self.failed = False  # resolution gave up (too deeply nested): do not lower it


class Probe:
    __slots__ = ("node", "ctx", "pos")

    def __init__(self, node, ctx, pos):
        self.node = node
        self.ctx = ctx
        self.pos = pos


class Constraint:
    """What an assignment (or a call) says about the type of an implicit variable.

    kind: "value" (`x = e`: the type of e), "compound" (`x op= e`), "fixed"
    (the destination of a builtin: `type`), "weak" (passed to a parameter of
    type `type`: used only when nothing else decides).
    """

    __slots__ = ("sym", "kind", "node", "pos", "ctx", "type")

    def __init__(self, sym, kind, node, pos, ctx, type_=None):
        self.sym = sym
        self.kind = kind
        self.node = node
        self.pos = pos
        self.ctx = ctx
        self.type = type_


def where(pos):
    """A position for a message: 'line 3, column 5'."""
    return f"line {pos[1]}, column {pos[2]}"
