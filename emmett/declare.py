"""Declarations: the first pass over the top level, in source order.

Computes: the program's globals (variables with their initial values,
aggregates, bags, externs, enum constants, function prototypes and
definitions), typedefs and tags, the list of functions and probes (each probe
with its parameters, ARG0... ARG9), and the memory model in force at each of
them.  Order matters as in C: a type, a struct layout or a `memmodel` applies
from where it is written on.
Needs: the parsed top level of the guest preload library and of the program;
the names the program defines itself (`top_level_names`), whose preload
definitions are dropped.
"""

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .language import BUILTINS, HIDEABLE_BUILTINS, MAX_KEYS, MAX_PARAMS, MAX_PROBE_PARAMS
from .symbols import Ctx, FuncSym, Probe, Sym, where

AGGREGATE_FORMS = ("an aggregate is declared as aggr NAME[INTEGER-KEYS][STRING-KEYS], "
                   "aggr NAME[INTEGER-KEYS] or aggr NAME;")


class Declarations:
    def __init__(self, program):
        self.p = program
        self.layout = program.layout
        self.fail = program.fail
        self.error = program.error
        self._top = S.dispatch_table(self, "d_", (S.MemModel, S.Declaration, S.FuncDef, S.ProbeDef))

    def run(self, externals, preload, skip_names):
        for node in externals:
            try:
                self._top[type(node)](node, preload, skip_names)
            except CompileError:
                pass

    # ---- one method per top-level construct ---------------------------------------------------

    def d_MemModel(self, node, preload, skip_names):
        model = T.MEMMODELS.get(node.name)
        if model is None:
            self.error(node.name_pos, f"unknown memory model '{node.name}' (one of {', '.join(T.MEMMODELS)})")
        else:
            self.p.model = model

    def d_Declaration(self, node, preload, skip_names):
        p = self.p
        model = p.model
        base, storage = self.layout.base_type(node.specs, model)
        words = {w for w, _ in storage}
        for d, init in node.items:
            if preload and d.name in skip_names:
                continue
            try:
                if "typedef" in words:
                    t = self.layout.derive(base, d.ops, model)
                    if d.name in p.typedefs:
                        self.fail(d.pos, f"type '{d.name}' is already defined")
                    p.typedefs[d.name] = t
                    continue
                if isinstance(base, T.AggrType):
                    self.aggregate(d, init, preload)
                    continue
                if isinstance(base, T.BagType):
                    self.bag(d, init, preload, model)
                    continue
                t = self.layout.derive(base, d.ops, model)
                if isinstance(t, T.FuncType):
                    self.prototype(d, t, preload)
                    continue
                if "extern" in words:
                    if init is not None:
                        self.fail(init.pos, "an extern guest object cannot have an initializer")
                    sym = Sym("extern", d.name, t, d.pos)
                    sym.preload = preload
                    p.define_global(d.name, sym, d.pos)
                    continue
                self.layout.check_variable_type(t, d.pos, d.name)
                sym = Sym("var", d.name, t, d.pos)
                sym.preload = preload
                if init is not None:
                    sym.init = self.layout.initial_value(t, init, model)
                p.define_global(d.name, sym, d.pos)
                p.global_order.append(sym)
            except CompileError:
                continue

    def d_FuncDef(self, node, preload, skip_names):
        p = self.p
        d = node.declarator
        if preload and d.name in skip_names:
            return
        base, _ = self.layout.base_type(node.specs, p.model)
        if not d.ops or d.ops[-1][0] != "func":
            self.fail(d.pos, "expected a function definition: a name followed by a parameter list")
        t = self.layout.derive(base, d.ops, p.model)
        if d.name in BUILTINS and d.name not in HIDEABLE_BUILTINS:
            self.fail(d.pos, f"'{d.name}' is a built-in function and cannot be redefined")
        if len(t.params) > MAX_PARAMS:
            self.fail(d.pos, f"'{d.name}' has {len(t.params)} parameters; at most {MAX_PARAMS} are allowed")
        if isinstance(t.ret, (T.StructType, T.AggrType, T.BagType)):
            self.fail(d.pos, f"a function cannot return {T.describe(t.ret)}")
        existing = p.globals.get(d.name)
        if isinstance(existing, FuncSym) and existing.node is None:
            self.check_same_signature(existing, t, d.pos)
            fs = existing
            fs.type = t
            fs.pos = d.pos
        else:
            if isinstance(existing, FuncSym):
                self.fail(d.pos, f"function '{d.name}' is already defined at {where(existing.pos)}")
            fs = FuncSym(d.name, t, d.pos)
            p.define_global(d.name, fs, d.pos)
        fs.node = node
        fs.preload = preload
        fs.model = p.model
        p.functions.append(fs)
        seen = set()
        for name, ptype, ppos in t.params:
            if name is None:
                self.fail(ppos, f"every parameter of '{d.name}' needs a name")
            if name in seen:
                self.fail(ppos, f"parameter '{name}' appears twice in '{d.name}'")
            seen.add(name)
            if isinstance(ptype, (T.StructType, T.AggrType, T.BagType)) or ptype is T.VOID:
                self.fail(ppos, f"parameter '{name}' cannot be {T.describe(ptype)}")

    def d_ProbeDef(self, node, preload, skip_names):
        p = self.p
        ctx = Ctx("probe", None, p.model, preload)
        p.probes.append(Probe(node, ctx, node.pos))
        params = node.params or []
        kinds = [part[0] for part in node.parts[:2] if part[1] == "ID"]
        if "EXIT" in kinds and len(params) > 1:
            self.error(params[1].pos, "an EXIT probe has one parameter: the function's return value (ARG0)")
        if len(params) > MAX_PROBE_PARAMS:
            self.error(params[MAX_PROBE_PARAMS].pos,
                       f"a probe has at most {MAX_PROBE_PARAMS} arguments (ARG0 to ARG{MAX_PROBE_PARAMS - 1})")
        for i, pd in enumerate(params[:MAX_PROBE_PARAMS]):
            try:
                t = self.layout.param_type(pd, p.model)
            except CompileError:
                t = T.VPINT
            if not t.is_scalar():
                self.error(pd.pos, f"probe argument '{pd.declarator.name}' must be an integer or a pointer")
                t = T.VPINT
            sym = Sym("probeparam", pd.declarator.name, t, pd.declarator.pos)
            sym.index = i
            ctx.params.append(sym)

    # ---- the kinds of global declaration ----------------------------------------------------

    def aggregate(self, d, init, preload):
        if init is not None:
            self.fail(init.pos, "an aggregate cannot have an initial value")
        dims = list(d.ops)
        if any(op[0] != "array" for op in dims) or len(dims) > 2:
            self.fail(d.pos, AGGREGATE_FORMS)
        dims.reverse()  # ops list the last bracket first
        t = T.AggrType()
        model = self.p.model
        if dims:
            if any(op[1] is None for op in dims):
                self.fail(d.pos, "aggr NAME[I][S] needs both key counts" if len(dims) == 2
                          else "aggr NAME[N] needs its number of integer keys")
            counts = [self.layout.const_value(op[1], model) for op in dims]
            t.int_keys, t.str_keys = counts if len(counts) == 2 else (counts[0], 0)
            if t.int_keys + t.str_keys > MAX_KEYS:
                self.fail(d.pos, f"an aggregate has at most {MAX_KEYS} keys; "
                                 f"this one asks for {t.int_keys + t.str_keys}")
        sym = Sym("aggr", d.name, t, d.pos)
        sym.preload = preload
        sym.decided = d.pos if dims else None
        self.p.define_global(d.name, sym, d.pos)
        self.p.global_order.append(sym)

    def bag(self, d, init, preload, model):
        if init is not None:
            self.fail(init.pos, "a bag cannot have an initial value")
        if len(d.ops) != 1 or d.ops[0][0] != "array" or d.ops[0][1] is None:
            self.fail(d.pos, "a bag is declared as bag NAME[SIZE]")
        size = self.layout.const_value(d.ops[0][1], model)
        if size == 0:
            self.fail(d.pos, "a bag must hold at least one key/value pair")
        sym = Sym("bag", d.name, T.BagType(size), d.pos)
        sym.preload = preload
        self.p.define_global(d.name, sym, d.pos)
        self.p.global_order.append(sym)

    def prototype(self, d, t, preload):
        existing = self.p.globals.get(d.name)
        if isinstance(existing, FuncSym):
            self.check_same_signature(existing, t, d.pos)
            return
        fs = FuncSym(d.name, t, d.pos)
        fs.preload = preload
        self.p.define_global(d.name, fs, d.pos)

    def check_same_signature(self, fs, t, pos):
        a, b = fs.type, t
        if not T.same_type(a.ret, b.ret) or len(a.params) != len(b.params) or any(
                not T.same_type(x[1], y[1]) for x, y in zip(a.params, b.params)):
            self.fail(pos, f"'{fs.name}' is declared differently at {where(fs.pos)}")


def top_level_names(externals):
    """The names a program defines at top level (a preload's definitions of them are dropped)."""
    names = set()
    for node in externals:
        if type(node) is S.FuncDef:
            if node.declarator.name:
                names.add(node.declarator.name)
        elif type(node) is S.Declaration:
            for d, _ in node.items:
                if d.name:
                    names.add(d.name)
    return names
