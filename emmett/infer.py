"""Implicit variables: what each undeclared name is, and the type of each implicit variable.

Computes: for every implicit symbol (a name used but declared nowhere), its
kind from all its uses in the program: an aggregate where it is updated as one
(`calls[RIP]++`), a VP global variable where it is assigned or passed to a
function, an error ("unknown name") where it is only read; then the type of
each implicit variable from what is assigned to it, over the whole program,
whatever the order of definitions: a constraint whose value depends on another
unknown variable waits until that variable is known; when nothing can progress
a variable only passed to a parameter takes the parameter's type, else the
first unknown variable (in source order) defaults to an integer
(`count = count + 1;`), and so on.
Needs: resolution's implicit symbols with their uses, and its constraints;
expression types (`exprtypes`) for the values assigned.
"""

from collections import deque

from . import ctype as T
from .exprtypes import binary_type
from .language import BUILTIN_GLOBALS, BUILTINS, BUILTINS_WITHOUT_ARGUMENTS, GUEST_HELPERS
from .symbols import where


def decide_implicit(program):
    """Make each implicit symbol an aggregate, a variable or an error, from its uses."""
    error = program.error
    for name, sym in program.implicit.items():
        uses = sym.uses
        aggr = [u for u in uses if u[0] == "aggr"]
        assign = [u for u in uses if u[0] in ("assign", "arg")]
        if aggr and assign:
            a, b = aggr[0][1], assign[0][1]
            later, earlier, what = (b, a, "an aggregate") if a < b else (a, b, "a variable")
            error(later, f"'{name}' is used here as {'a variable' if what == 'an aggregate' else 'an aggregate'}, "
                         f"but as {what} at {where(earlier)}")
            sym.kind = "error"
        elif aggr:
            sym.kind = "aggr"
            sym.type = T.AggrType()
            sym.pos = aggr[0][1]
            sym.preload = all(u[2].preload for u in uses)
            program.global_order.append(sym)
        elif assign:
            sym.kind = "var"
            sym.pos = assign[0][1]
            sym.preload = all(u[2].preload for u in uses)
        else:
            first = uses[0]
            if all(u[0] == "aggrref" for u in uses):
                error(first[1], f"unknown aggregate '{name}' (an aggregate declares itself "
                                f"where it is updated, e.g. {name}[key]++)")
            elif name in BUILTINS:
                args = "" if name in BUILTINS_WITHOUT_ARGUMENTS else "..."
                error(first[1], f"'{name}' is a built-in function; call it: {name}({args})")
            elif name in GUEST_HELPERS:
                error(first[1], f"'{name}' is a function of the guest preload library"
                                + (", which --no-preload turned off" if not program.options.preload else
                                   " (which does not define it)") + f"; call it: {name}()")
            else:
                error(first[1], f"unknown name '{name}'" + spelling_hint(name))
            sym.kind = "error"
    for sym, pos in program.guestsym_uses:
        implicit = program.implicit.get(sym.name)
        if implicit is not None and implicit.kind == "var":
            error(pos, f"cannot take the address of VP variable '{sym.name}': it does not live in guest memory")


def spelling_hint(name):
    upper = name.upper()
    if upper in BUILTIN_GLOBALS:
        return f" (did you mean the built-in '{upper}'?)"
    return ""


def infer(program):
    """Type every implicit variable from what is assigned to it (see the module docstring)."""
    types = program.types
    constraints = [c for c in program.constraints if c.sym.kind == "var"]
    queue = deque(c for c in constraints if c.kind != "weak")
    weak = [c for c in constraints if c.kind == "weak"]
    pending = [s for s in program.implicit.values() if s.kind == "var"]
    waiting = {}  # unknown variable -> constraints waiting for it
    # Types, once settled, never change: the first undecided weak constraint and
    # variable only move forward.
    next_weak = next_pending = 0

    def settle(sym, t, pos):
        sym.type = t
        sym.decided = pos
        queue.extend(waiting.pop(sym, ()))

    while True:
        while queue:
            c = queue.popleft()
            if c.sym.type is not None:
                continue
            missing = []
            t = constraint_type(c, types, missing)
            if t is None:
                for m in dict.fromkeys(missing):  # each variable it waits for, once
                    waiting.setdefault(m, []).append(c)
                continue
            settle(c.sym, t, c.pos)
        # Then weak constraints (a variable only passed to a parameter takes its type)...
        while next_weak < len(weak) and weak[next_weak].sym.type is not None:
            next_weak += 1
        if next_weak < len(weak):
            c = weak[next_weak]
            settle(c.sym, var_type(c.type, c.ctx.model), c.pos)
            continue
        # ... and, when nothing else decides, the first unknown variable is an integer.
        while next_pending < len(pending) and pending[next_pending].type is not None:
            next_pending += 1
        if next_pending == len(pending):
            break
        sym = pending[next_pending]
        settle(sym, T.VPINT, sym.decided or sym.pos)


def var_type(t, model):
    """The type a variable gets from a value of type `t`."""
    if isinstance(t, T.ArrayType):
        return T.PointerType(t.elem, model.ptr_size)
    if isinstance(t, T.IntType):
        return T.VPINT
    return t


def constraint_type(c, types, missing):
    """The type constraint `c` gives its variable; None while it depends on an unknown (in `missing`)."""
    if c.kind == "fixed":
        return c.type
    e = c.node
    model = c.ctx.model
    if c.kind == "value":
        t = types.value_type(e.value, model, missing)
    else:  # compound assignment: the type of `target op value`
        t = binary_type(e.op[:-1], None, types.value_type(e.value, model, missing))
        if t is None and not missing:
            missing.append(c.sym)
    if t is None:
        return None
    if t is T.VOID or isinstance(t, (T.StructType, T.AggrType, T.BagType, T.FuncType)):
        return None
    return var_type(t, model)
