"""Name resolution: the pass over every function and probe body, with block scopes.

Computes: for each `Name`, its symbol (`Name.sym`: a parameter, a local, a
global, a built-in VP variable such as RIP or PROBENAME, an enum constant...);
for each `Call`, the function or builtin it calls (`Call.sym`); each body's
locals and the functions it calls (the call graph, in `Ctx.calls`).  A name
that is declared nowhere becomes an *implicit* symbol, with every use
recorded (assigned, updated as an aggregate, passed to a parameter, read), and
each assignment to one becomes an inference constraint; `infer` decides what
it is.  Each loop gets its control locals (`Loop.run`, and `Loop.skip` when a
`break` or `continue` leaves it), each jump its loop (`Jump.loop`); a jump
outside a loop, a `return` inside one, `switch` and `goto` are reported here,
and so are the aggregating functions
(`hist`, `lhist`) anywhere but as the value an aggregate update adds
(`a[k] <- hist(v)`, where they are marked: `Call.sym` is their name) —
unless the program defines a function of that name.
Needs: the declarations (`declare`): globals, functions with their
signatures, probes with their parameters, typedefs.
"""

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .histograms import AGGREGATING, USAGE
from .language import (AGGREGATE_LIST_BUILTINS, BUILTIN_GLOBALS, BUILTINS, CONSTANTS, CONTAINER_BUILTINS, DEST_BUILTINS,
                       GUEST_HELPERS)
from .symbols import Constraint, Ctx, FuncSym, Sym, where


class Resolver:
    def __init__(self, program):
        self.p = program
        self.layout = program.layout
        self.error = program.error
        self.fail = program.fail
        self._visit = S.dispatch_table(self, "r_")
        self._visit[type(None)] = self.r_Empty  # a statement the parser skipped after a syntax error
        self.loops = []  # the loops around the statement being resolved, innermost last

    def run(self):
        p = self.p
        for fs in p.functions:
            p.reporter.where = fs.pos
            ctx = Ctx("func", fs.name, fs.model, fs.preload)
            ctx.ret = fs.type.ret
            fs.ctx = ctx
            for name, ptype, ppos in fs.type.params:
                ctx.params.append(Sym("param", name, ptype, ppos))
            self.body(ctx, fs.node.body, fs.pos, f"function '{fs.name}' is nested too deeply to compile")
        for probe in p.probes:
            p.reporter.where = probe.pos
            self.body(probe.ctx, probe.node.body, probe.pos, "this probe is nested too deeply to compile")

    def body(self, ctx, body, pos, too_deep):
        ctx.scopes = [{sym.name: sym for sym in ctx.params if sym.name}]
        try:
            self.visit(body, ctx)
        except RecursionError:
            self.error(pos, too_deep)
            ctx.failed = True
        ctx.scopes = []

    def visit(self, node, ctx):
        self._visit[type(node)](node, ctx)

    def lookup(self, name, ctx):
        for scope in reversed(ctx.scopes):
            sym = scope.get(name)
            if sym is not None:
                return sym
        return self.p.globals.get(name)

    # ---- statements ----------------------------------------------------------------------

    def r_Block(self, s, ctx):
        ctx.scopes.append({})
        for item in s.items:
            self.visit(item, ctx)
        ctx.scopes.pop()

    def r_ExprStmt(self, s, ctx):
        self.visit(s.expr, ctx)

    def r_If(self, s, ctx):
        self.visit(s.test, ctx)
        self.visit(s.then, ctx)
        if s.other is not None:
            self.visit(s.other, ctx)

    def r_Return(self, s, ctx):
        if self.loops:
            self.error(s.pos, "'return' inside a loop is not supported: VP has no early exit "
                              "(set a variable, 'break', and return after the loop)")
        if s.value is not None:
            self.visit(s.value, ctx)

    def r_Empty(self, s, ctx):
        pass

    def r_Loop(self, s, ctx):
        s.run = Sym("local", "loop", T.VPINT, s.pos)
        ctx.locals.append(s.run)
        ctx.scopes.append({})  # a `for`'s declaration is local to the loop
        for part in (s.init, s.test, s.step):
            if part is not None:
                self.visit(part, ctx)
        self.loops.append(s)
        try:
            self.visit(s.body, ctx)
        finally:
            self.loops.pop()
            ctx.scopes.pop()

    def r_Jump(self, s, ctx):
        if not self.loops:
            self.error(s.pos, f"'{s.word}' outside a loop")
            return
        loop = s.loop = self.loops[-1]
        if loop.skip is None:
            loop.skip = Sym("local", "skip", T.VPINT, s.pos)
            ctx.locals.append(loop.skip)

    def r_Unsupported(self, s, ctx):
        if s.word == "try":
            self.error(s.pos, "'try'/'catch' is not supported: it comes from a later VProbes toolkit "
                              "compiler than the public one, and no VP form of it is documented")
            return
        self.error(s.pos, f"'{s.word}' is not supported: Emmett has only bounded loops ('for', 'while', "
                          f"'do'), so that every probe finishes quickly (use if/else)")

    def r_Declaration(self, decl, ctx):
        """A local declaration: its symbols enter the innermost scope."""
        layout = self.layout
        try:
            base, storage = layout.base_type(decl.specs, ctx.model)
        except CompileError:
            return
        words = {w for w, _ in storage}
        for d, init in decl.items:
            if init is not None:
                self.visit(init, ctx)
            try:
                if "typedef" in words:
                    self.p.typedefs[d.name] = layout.derive(base, d.ops, ctx.model)
                    continue
                if isinstance(base, (T.AggrType, T.BagType)):
                    self.fail(d.pos, f"{'aggregates' if isinstance(base, T.AggrType) else 'bags'} "
                                     f"must be declared at top level")
                if "extern" in words:
                    self.fail(d.pos, "extern guest objects must be declared at top level")
                t = layout.derive(base, d.ops, ctx.model)
                if isinstance(t, T.FuncType):
                    self.fail(d.pos, "functions must be declared at top level")
                layout.check_variable_type(t, d.pos, d.name)
                sym = Sym("local", d.name, t, d.pos)
                sym.static = "static" in words
                if sym.static and init is not None:
                    sym.init = layout.initial_value(t, init, ctx.model)
                d.sym = sym
                if d.name in BUILTIN_GLOBALS:
                    self.p.reporter.warning(d.pos, f"'{d.name}' hides the built-in VProbes variable of the same name")
                scope = ctx.scopes[-1]
                if d.name in scope:
                    self.fail(d.pos, f"'{d.name}' is already declared at {where(scope[d.name].pos)}")
                scope[d.name] = sym
                ctx.locals.append(sym)
            except CompileError:
                continue

    # ---- names ----------------------------------------------------------------------------------

    def implicit_sym(self, name, pos):
        implicit = self.p.implicit
        sym = implicit.get(name)
        if sym is None:
            sym = Sym("implicit", name, None, pos)
            sym.implicit = True
            sym.uses = []
            implicit[name] = sym
        return sym

    def resolve_name(self, e, ctx, use):
        """Bind Name `e`; an undeclared name becomes implicit, with `use` recorded."""
        sym = self.lookup(e.name, ctx)
        if sym is None:
            builtin = BUILTIN_GLOBALS.get(e.name)
            if builtin is not None:
                sym = Sym("builtin", e.name, builtin, e.pos)
            elif e.name in CONSTANTS:
                sym = Sym("enum", e.name, T.VPINT, e.pos)
                sym.value = CONSTANTS[e.name]
            else:
                sym = self.implicit_sym(e.name, e.pos)
        if sym.implicit and sym.kind == "implicit":
            sym.uses.append((use, e.pos, ctx))
        e.sym = sym
        return sym

    def resolve_target(self, target, ctx, use):
        """Bind what an assignment or update writes; the symbol when it is a plain name."""
        if type(target) is S.Name:
            return self.resolve_name(target, ctx, use)
        if type(target) is S.Index and type(target.base) is S.Name:
            self.resolve_name(target.base, ctx, "aggr" if use == "aggr" else "index")
            for k in target.keys:
                self.visit(k, ctx)
            return None
        self.visit(target, ctx)
        return None

    # ---- expressions ----------------------------------------------------------------------------

    def r_Name(self, e, ctx):
        self.resolve_name(e, ctx, "read")

    def r_IntLit(self, e, ctx):
        pass

    r_StrLit = r_IntLit

    def r_Binary(self, e, ctx):
        # A left-leaning chain (a + b + c ...) in a loop: long flat expressions are deep trees.
        spine = []
        while type(e) is S.Binary:
            spine.append(e)
            e = e.left
        self.visit(e, ctx)
        for node in reversed(spine):
            self.visit(node.right, ctx)

    def r_Unary(self, e, ctx):
        operand = e.operand
        if e.op == "&" and type(operand) is S.Name and self.lookup(operand.name, ctx) is None \
                and operand.name not in BUILTIN_GLOBALS and operand.name not in self.p.implicit:
            sym = Sym("guestsym", operand.name, T.VOID, operand.pos)
            operand.sym = sym
            self.p.guestsym_uses.append((sym, operand.pos))
        else:
            self.visit(operand, ctx)

    def r_IncDec(self, e, ctx):
        self.resolve_target(e.target, ctx, "aggr" if type(e.target) is S.Index else "assign")

    def r_Comma(self, e, ctx):
        for x in e.exprs:
            self.visit(x, ctx)

    def r_Conditional(self, e, ctx):
        self.visit(e.test, ctx)
        self.visit(e.then, ctx)
        self.visit(e.other, ctx)

    def r_Index(self, e, ctx):
        if type(e.base) is S.Name:
            self.resolve_name(e.base, ctx, "index")
        else:
            self.visit(e.base, ctx)
        for k in e.keys:
            self.visit(k, ctx)

    def r_Member(self, e, ctx):
        self.visit(e.base, ctx)

    def r_Cast(self, e, ctx):
        self.visit(e.operand, ctx)

    def r_SizeOf(self, e, ctx):
        if e.operand is not None:
            self.visit(e.operand, ctx)

    def r_Assign(self, e, ctx):
        if e.op == "<-":
            self.resolve_target(e.target, ctx, "aggr")
            value = e.value
            if type(value) is S.Call and self.aggregating(value, ctx):
                value.sym = value.func.name
                for a in value.args:
                    self.visit(a, ctx)
                return
            self.visit(value, ctx)
            return
        self.visit(e.value, ctx)
        sym = self.resolve_target(e.target, ctx, "assign")
        if sym is not None and sym.implicit:
            kind = "value" if e.op == "=" else "compound"
            self.p.constraints.append(Constraint(sym, kind, e, e.pos, ctx))

    def aggregating(self, call, ctx):
        """Whether `call` calls hist or lhist (and not a function of the program's of that name)."""
        f = call.func
        return type(f) is S.Name and f.name in AGGREGATING and not isinstance(self.lookup(f.name, ctx), FuncSym)

    def r_Call(self, e, ctx):
        f = e.func
        if type(f) is not S.Name:
            self.error(e.pos, "only named functions can be called")
            for a in e.args:
                self.visit(a, ctx)
            return
        name = f.name
        if self.aggregating(e, ctx):
            self.error(f.pos, f"{name}() makes a histogram of an aggregate: use it as {USAGE[name]}")
            for a in e.args:
                self.visit(a, ctx)
            return
        target = self.lookup(name, ctx)
        if name in BUILTINS and not isinstance(target, FuncSym):
            self.builtin_call(e, name, ctx)
            return
        if isinstance(target, FuncSym):
            e.sym = target
            if target not in ctx.calls:
                ctx.calls[target] = e.pos
            params = target.type.params
            for i, a in enumerate(e.args):
                if type(a) is S.Name:
                    sym = self.resolve_name(a, ctx, "arg")
                    if sym.implicit and i < len(params):
                        self.p.constraints.append(Constraint(sym, "weak", a, a.pos, ctx, params[i][1]))
                else:
                    self.visit(a, ctx)
            return
        for a in e.args:
            self.visit(a, ctx)
        if target is not None:
            self.error(f.pos, f"'{name}' is {T.describe(getattr(target, 'type', None))}, not a function")
        elif name in GUEST_HELPERS:
            hint = (" (it comes from the guest preload library, which --no-preload turned off)"
                    if not self.p.options.preload else " (the guest preload library does not define it)")
            self.error(f.pos, f"call to undefined function '{name}'{hint}")
        else:
            self.error(f.pos, f"call to undefined function '{name}'")

    def builtin_call(self, e, name, ctx):
        e.sym = name
        dest_type = DEST_BUILTINS.get(name)
        for i, a in enumerate(e.args):
            if i == 0 and dest_type is not None and type(a) is S.Name:
                sym = self.resolve_name(a, ctx, "assign")
                if sym.implicit:
                    self.p.constraints.append(Constraint(sym, "fixed", a, a.pos, ctx, dest_type))
            elif (i == 0 and name in CONTAINER_BUILTINS or name in AGGREGATE_LIST_BUILTINS) and type(a) is S.Name:
                self.resolve_name(a, ctx, "aggrref")
            else:
                self.visit(a, ctx)
