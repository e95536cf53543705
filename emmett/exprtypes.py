"""The types of expressions: Emmett's typing rules, written once.

Computes: the type of every expression's value (`Expr.type`; arrays used as
values decay to pointers), stored on the node the first time it is known, so
each node is typed once; the object type of an lvalue (`object_type`: the
undecayed type of what `p->f`, `*p`, `a[i]` or an extern designates, for
`&` and `sizeof`).  Lowering reads these types; it does not compute its own.
Needs: resolved names (`Name.sym`, `Call.sym`; an unresolved name, in a
constant expression at top level, is looked up among the globals) and the
symbols' types.  During inference some variables are not typed yet: a type
that depends on one is not stored, the variable is added to `missing`, and
the expression is typed again once it is known.  Each computation types a
subtree children first (`_sweep`), so a long flat expression costs linear
time and no deep recursion.

The rules where C leaves a choice: `a ? b : c` is a string if either branch is
(the other must then be a string or guest characters), void if either is,
otherwise the pointer type of a pointer branch, otherwise the second branch's
type; a string `+` anything is a string, `-` of strings an integer (an error
lowering reports); pointer arithmetic keeps the pointer's type.
"""

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .histograms import AGGREGATING
from .language import BUILTINS
from .symbols import FuncSym, Sym


class ExprTypes:
    def __init__(self, program):
        self.p = program
        self._rules = S.dispatch_table(self, "t_", S.EXPRESSIONS)
        self._partial = None  # during a sweep: id(node) -> (type, variables it waits for) of nodes not typed for good

    def value_type(self, e, model, missing=None):
        """The type of `e`'s value (stored on `e` once known); None if unknown or ill-typed.

        The variables whose types it waits for are added to `missing`.
        """
        t = e.type
        if t is not None:
            return t
        partial = self._partial
        if partial is None:
            partial = self._partial = {}
            try:
                self._sweep(_untyped_bottom_up(e), model)
            finally:
                self._partial = None
        elif id(e) not in partial:
            self._sweep(_untyped_bottom_up(e), model)
        if e.type is not None:
            return e.type
        t, waits_for = partial[id(e)]
        if missing is not None:
            missing.extend(waits_for)
        return t

    def _sweep(self, order, model):
        """Type the nodes of `order` (children before parents), so that no rule recurses more than a
        level (a long flat expression is a deep tree).  A node whose type is unknown, or depends on
        a variable not typed yet, goes in `_partial` with what it waits for, for its parents to read."""
        rules = self._rules.get
        partial = self._partial
        for n in order:
            rule = rules(n.__class__)
            if rule is None or id(n) in partial:
                continue
            waits_for = []
            t = rule(n, model, waits_for)
            if t is not None and not waits_for:
                n.type = t
            else:
                partial[id(n)] = (t, tuple(dict.fromkeys(waits_for)))  # each variable once

    def object_type(self, e, model, missing=None):
        """The type of the object `e` designates (arrays not decayed)."""
        if missing is None:
            missing = []
        if type(e) is S.Member:
            if e.arrow:
                bt = self.value_type(e.base, model, missing)
                if not isinstance(bt, T.PointerType):
                    return None
                bt = bt.target
            else:
                bt = self.object_type(e.base, model, missing)
            if isinstance(bt, T.StructType):
                f = bt.fields.get(e.field)
                return f.type if f is not None else None
            return None
        if type(e) is S.Unary and e.op == "*":
            t = self.value_type(e.operand, model, missing)
            return t.target if isinstance(t, T.PointerType) else None
        if type(e) is S.Index:
            t = self.value_type(e.base, model, missing)
            return t.target if isinstance(t, T.PointerType) else None
        if type(e) is S.Name:
            sym = e.sym
            if isinstance(sym, Sym) and sym.kind == "extern":
                return sym.type
            if isinstance(sym, Sym) and sym.kind == "guestsym":
                return T.VOID
        return self.value_type(e, model, missing)

    def type_body(self, body, model):
        """Type every expression of a function or probe body."""
        if body is None:  # skipped after a syntax error
            return
        self._partial = {}
        try:
            self._sweep(S.bottom_up(body), model)
        finally:
            self._partial = None

    # ---- the rules, one per expression class ------------------------------------------------

    def t_IntLit(self, e, model, missing):
        return T.VPINT

    def t_StrLit(self, e, model, missing):
        return T.STRING

    def t_Name(self, e, model, missing):
        sym = e.sym
        if sym is None:
            sym = self.p.globals.get(e.name)
            if sym is None:
                return None
        if isinstance(sym, FuncSym) or sym.kind in ("implicit", "error"):
            return None
        if sym.type is None:
            missing.append(sym)
            return None
        if sym.kind == "extern":
            return T.decay(sym.type, model)
        if sym.kind == "enum":
            return T.VPINT
        return sym.type

    def t_Binary(self, e, model, missing):
        lt = self.value_type(e.left, model, missing)
        rt = self.value_type(e.right, model, missing)
        return binary_type(e.op, T.decay(lt, model) if lt else None, T.decay(rt, model) if rt else None)

    def t_Unary(self, e, model, missing):
        if e.op == "*":
            t = self.value_type(e.operand, model, missing)
            if isinstance(t, (T.PointerType, T.ArrayType)):
                return T.decay(t.target if isinstance(t, T.PointerType) else t.elem, model)
            return None
        if e.op == "&":
            t = self.object_type(e.operand, model, missing)
            return T.PointerType(t if t is not None else T.VOID, model.ptr_size)
        return T.VPINT

    def t_Assign(self, e, model, missing):
        if e.op == "<-":
            return T.VPINT
        t = self.value_type(e.target, model, missing)
        if t is None and e.op == "=":
            return self.value_type(e.value, model, missing)
        return t

    def t_IncDec(self, e, model, missing):
        if type(e.target) is S.Index:
            return T.VPINT
        return self.value_type(e.target, model, missing)

    def t_Comma(self, e, model, missing):
        return self.value_type(e.exprs[-1], model, missing)

    def t_Conditional(self, e, model, missing):
        a = self.value_type(e.then, model, missing)
        b = self.value_type(e.other, model, missing)
        if isinstance(a, T.StringType) or isinstance(b, T.StringType):
            return T.STRING
        if a is T.VOID or b is T.VOID:
            return T.VOID
        if a is None or b is None:
            return None
        return a if isinstance(a, T.PointerType) else b

    def t_Call(self, e, model, missing):
        if isinstance(e.sym, FuncSym):
            return e.sym.type.ret
        if e.sym in BUILTINS or e.sym in AGGREGATING:
            return T.VOID if e.sym == "exit" else T.VPINT
        return None

    def t_Index(self, e, model, missing):
        base = e.base
        if type(base) is S.Name and isinstance(base.sym, Sym) and base.sym.kind in ("aggr", "bag"):
            return T.VPINT
        t = self.value_type(base, model, missing)
        if isinstance(t, (T.PointerType, T.ArrayType)):
            return T.decay(t.target if isinstance(t, T.PointerType) else t.elem, model)
        return None

    def t_Member(self, e, model, missing):
        t = self.object_type(e, model, missing)
        return T.decay(t, model) if t is not None else None

    def t_Cast(self, e, model, missing):
        try:
            return self.p.layout.type_name(e.tname, model)
        except CompileError:
            return None

    def t_SizeOf(self, e, model, missing):
        return T.VPINT


def _untyped_bottom_up(root):
    """The untyped nodes of `root`'s subtree (none below a typed one), children before parents."""
    order = []
    stack = [root]
    while stack:
        n = stack.pop()
        if n.type is None:
            order.append(n)
            stack.extend(n.children())
    order.reverse()
    return order


def binary_type(op, lt, rt):
    """The type of `l op r` from its operands' (decayed) types; None if that depends on an unknown."""
    if op in ("+", "-"):
        if isinstance(lt, T.StringType) or isinstance(rt, T.StringType):
            return T.STRING if op == "+" else T.VPINT
        if isinstance(lt, T.PointerType):
            if op == "-" and isinstance(rt, T.PointerType):
                return T.VPINT
            return lt
        if isinstance(rt, T.PointerType) and op == "+":
            return rt
        if lt is None or rt is None:
            return None
        return T.VPINT
    return T.VPINT
