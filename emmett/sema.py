"""Semantic analysis: declarations, symbol tables and scopes, name resolution,
and whole-program type inference for undeclared variables.

The passes, in order:

1. `declare`: the top-level declarations in source order (types and struct
   layouts depend on order, as in C; memory models apply from their
   `memmodel` on), every function signature and every probe.
2. `resolve`: every function and probe body, with block scopes.  Each name
   is bound to its symbol; a name that is not declared anywhere becomes an
   *implicit* symbol, and the way it is used (assigned, updated as an
   aggregate, only read) decides later what it is.  The call graph is
   recorded here.
3. `infer`: implicit variables take the type of what is assigned to them,
   over the whole program, whatever the order of definitions: a constraint
   whose value depends on another unknown variable waits until that variable
   is known; when nothing can progress the first unknown variable (in source
   order) defaults to an integer (`count = count + 1;`), and so on.

Lowering (`lower.py`) then type-checks every expression against these types.
"""

from vp_runtime import spec

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError

# ---- what VP and the machine provide ----------------------------------------------------

MACHINE_GLOBALS = frozenset(g.name for g in spec.GLOBALS.values() if g.type == spec.INT)
STATIC_PROBES = frozenset(spec.STATIC_PROBES)

# Emmett's built-in functions (VP builtins and special forms, plus assert and exit).
BUILTINS = frozenset(
    "printf sprintf logstr logint strcmp getguest getguestphys getgueststr gueststack getsystemtime "
    "offatret offatstrcpy offatseg logaggr clearaggr baginsert bagremove assert exit".split()
)
# Builtins whose first argument is a variable they write, and its type.
DEST_BUILTINS = {b.name: T.STRING if b.params[0].type == spec.STR else T.VPINT
                 for b in spec.BUILTINS.values() if b.params and b.params[0].destination}

# Functions a guest preload library provides.
GUEST_HELPERS = frozenset("curpid curprocname curtid curppid curthrptr".split())

MAX_PROBE_PARAMS = spec.PROBE_ARGS


class Sym:
    """A named thing a program refers to.

    kind: "var" (a VP global variable), "local", "param", "probeparam" (ARGn),
    "machine" (RIP, TSC...), "probename", "enum" (a constant), "aggr", "bag",
    "extern" (a guest object at a symbol's address), "guestsym" (the `&name`
    of an undeclared guest symbol), "implicit" (undecided), "error".
    """

    __slots__ = ("kind", "name", "type", "pos", "vpname", "owner", "implicit", "init", "preload",
                 "uses", "decided", "index", "value", "static", "hidden")

    def __init__(self, kind, name, type_=None, pos=None):
        self.kind = kind
        self.name = name
        self.type = type_
        self.pos = pos
        self.vpname = None
        self.owner = None
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


class FuncSym:
    __slots__ = ("name", "type", "pos", "node", "ctx", "preload", "vpname", "recursive", "reachable",
                 "param_names", "model", "kind")

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
        self.param_names = []
        self.model = None

    def __repr__(self):
        return f"FuncSym({self.name!r})"


class Ctx:
    """One function or probe body: its scopes, locals and calls."""

    __slots__ = ("kind", "func", "probe", "name", "params", "locals", "calls", "model", "ret", "node",
                 "scopes", "preload", "failed")

    def __init__(self, kind, name, model, preload):
        self.kind = kind  # "func" or "probe"
        self.func = None
        self.probe = None
        self.name = name
        self.params = []
        self.locals = []
        self.calls = {}  # FuncSym -> first call position (insertion-ordered)
        self.model = model
        self.ret = T.VOID
        self.node = None
        self.scopes = []
        self.preload = preload
        self.failed = False  # resolution gave up (too deeply nested): do not lower it


class Probe:
    __slots__ = ("node", "spec", "ctx", "pos", "preload")

    def __init__(self, node, spec, ctx, pos, preload):
        self.node = node
        self.spec = spec
        self.ctx = ctx
        self.pos = pos
        self.preload = preload


class Constraint:
    __slots__ = ("sym", "kind", "node", "pos", "ctx", "type")

    def __init__(self, sym, kind, node, pos, ctx, type_=None):
        self.sym = sym
        self.kind = kind  # "value", "compound", "fixed", "weak"
        self.node = node
        self.pos = pos
        self.ctx = ctx
        self.type = type_


def _where(pos):
    return f"line {pos[1]}, column {pos[2]}"


class Program:
    """Everything analysis knows about one compilation."""

    def __init__(self, reporter, options, symbols):
        self.reporter = reporter
        self.options = options
        self.guest_symbols = symbols  # name -> address, from -s (or None)
        self.globals = {}  # name -> Sym | FuncSym (variables, aggregates, bags, externs, enum constants, functions)
        self.global_order = []  # Syms in declaration order (variables, aggregates, bags)
        self.functions = []  # FuncSym in definition order
        self.tags = {}  # struct/union/enum tag -> type
        self.typedefs = {}  # name -> type
        self.probes = []
        self.implicit = {}  # name -> Sym (undeclared, decided by use)
        self.constraints = []
        self.guestsym_uses = []  # (Sym, pos) of &name for undeclared names
        self.model = T.MEMMODELS.get(options.memmodel) or T.MEMMODELS["guest64"]
        self.temp = None  # the shared temporary string variable, when needed

    # ---- reporting ------------------------------------------------------------------

    def error(self, pos, message):
        self.reporter.error(pos, message)

    def fail(self, pos, message):
        self.reporter.fail(pos, message)

    # ---- pass 1: declarations ---------------------------------------------------------------

    def declare(self, externals, preload, skip_names=frozenset()):
        for node in externals:
            try:
                if isinstance(node, S.MemModel):
                    model = T.MEMMODELS.get(node.name)
                    if model is None:
                        self.error(node.name_pos, f"unknown memory model '{node.name}' "
                                                  f"(one of {', '.join(T.MEMMODELS)})")
                    else:
                        self.model = model
                elif isinstance(node, S.Declaration):
                    self.declare_global(node, preload, skip_names)
                elif isinstance(node, S.FuncDef):
                    self.declare_function(node, preload, skip_names)
                elif isinstance(node, S.ProbeDef):
                    self.declare_probe(node, preload)
            except CompileError:
                pass

    def top_level_names(self, externals):
        """The names a program defines at top level (a preload's definitions of them are dropped)."""
        names = set()
        for node in externals:
            if isinstance(node, S.FuncDef):
                if node.declarator.name:
                    names.add(node.declarator.name)
            elif isinstance(node, S.Declaration):
                for d, _ in node.items:
                    if d.name:
                        names.add(d.name)
        return names

    # ---- types -----------------------------------------------------------------------------

    def base_type(self, specs, model):
        """The type the specifiers name, and the storage words among them."""
        storage = []
        longs = shorts = chars = ints = signed = unsigned = 0
        other = None
        other_pos = None
        for s in specs:
            w = s.word
            if w in ("typedef", "extern", "static", "perthread", "pervm", "pervmk", "perhost",
                     "const", "volatile", "auto", "register", "inline"):
                if w not in ("const", "volatile", "auto", "register", "inline"):
                    storage.append((w, s.pos))
                continue
            if w == "long":
                longs += 1
            elif w == "short":
                shorts += 1
            elif w == "char":
                chars += 1
            elif w == "int":
                ints += 1
            elif w == "signed":
                signed += 1
            elif w == "unsigned":
                unsigned += 1
            else:
                if other is not None:
                    self.fail(s.pos, f"two types in one declaration: '{_spec_text(other)}' and '{_spec_text(s)}'")
                other = s
                other_pos = s.pos
        numeric = longs or shorts or chars or ints or signed or unsigned
        if other is not None:
            if numeric:
                self.fail(other_pos, f"'{_spec_text(other)}' cannot be combined with integer type words")
            return self.named_type(other, model), storage
        if not numeric:
            pos = specs[0].pos if specs else (0, 1, 1)
            self.fail(pos, "a declaration needs a type (such as int or string)")
        if signed and unsigned:
            self.fail(specs[0].pos, "a type cannot be both signed and unsigned")
        if chars > 1 or shorts > 1 or longs > 2 or ints > 1 or (chars and (shorts or longs)) or (shorts and longs):
            self.fail(specs[0].pos, "invalid combination of integer type words")
        if chars:
            size, base = 1, "char"
        elif shorts:
            size, base = 2, "short"
        elif longs == 2:
            size, base = 8, "long long"
        elif longs == 1:
            size, base = model.long_size, "long"
        else:
            size, base = model.int_size, "int"
        name = ("unsigned " if unsigned else "") + base
        return T.IntType(name, size, not unsigned), storage

    def named_type(self, s, model):
        w = s.word
        if w == "void":
            return T.VOID
        if w == "string":
            return T.STRING
        if w == "bag":
            return T.BagType(None)
        if w == "aggr":
            return T.AggrType()
        if w in T.FIXED_INTS:
            size, signed = T.FIXED_INTS[w]
            return T.IntType(w, size, signed)
        if w == "typename":
            t = self.typedefs.get(s.node)
            if t is None:
                self.fail(s.pos, f"unknown type name '{s.node}'")
            return t
        if w == "struct":
            return self.struct_type(s.node, model)
        if w == "enum":
            return self.enum_type(s.node, model)
        self.fail(s.pos, f"'{w}' is not a type")

    def struct_type(self, spec, model):
        key = (spec.kind, spec.tag)
        existing = self.tags.get(key) if spec.tag else None
        if spec.fields is None:
            if existing is None:
                existing = T.StructType(spec.kind, spec.tag, spec.pos)
                self.tags[key] = existing
            return existing
        if existing is not None and existing.complete:
            self.fail(spec.pos, f"{spec.kind} {spec.tag} is already defined at {_where(existing.pos)}")
        st = existing or T.StructType(spec.kind, spec.tag, spec.pos)
        if spec.tag:
            self.tags[key] = st
        self.layout(st, spec.fields, model)
        return st

    def layout(self, st, fields, model):
        offset = 0
        size = 0
        align = 1
        union = st.su == "union"
        for fd in fields:
            if fd is None:
                continue
            try:
                base, storage = self.base_type(fd.specs, model)
                if storage:
                    self.error(storage[0][1], f"'{storage[0][0]}' cannot be used on a {st.su} field")
                pinned = self.const_value(fd.offset, model) if fd.offset is not None else None
                if pinned is not None and not union and pinned < offset:
                    self.error(fd.pos, f"the pinned offset {pinned:#x} is before the end of the previous field "
                                       f"({offset:#x}): offsets must not decrease")
                    pinned = offset
                declarators = fd.declarators
                if not declarators:
                    if isinstance(base, T.StructType) and base.complete:
                        # An anonymous struct or union: its fields are this one's.
                        off = pinned if pinned is not None else (0 if union else _align_up(offset, base.align))
                        for f in base.fields.values():
                            self.add_field(st, f.name, f.type, off + f.offset, f.pos)
                        end = off + base.size
                        size = max(size, end)
                        offset = offset if union else end
                        align = max(align, base.align)
                    continue
                for i, d in enumerate(declarators):
                    t = self.derive(base, d.ops, model, d.pos)
                    if isinstance(t, (T.StringType, T.AggrType, T.BagType, T.FuncType)) or t is T.VOID:
                        self.fail(d.pos, f"a {st.su} field cannot be {T.describe(t)}")
                    if isinstance(t, T.StructType) and not t.complete:
                        self.fail(d.pos, f"field '{d.name}' has the incomplete type '{t}'")
                    if pinned is not None and i == 0:
                        off = pinned
                    else:
                        off = 0 if union else _align_up(offset, t.align)
                    self.add_field(st, d.name, t, off, d.pos)
                    end = off + t.size
                    size = max(size, end)
                    if not union:
                        offset = end
                    align = max(align, t.align)
            except CompileError:
                continue
        st.align = align
        st.size = _align_up(size, align)
        st.complete = True

    def add_field(self, st, name, t, off, pos):
        if name in st.fields:
            self.error(pos, f"{st} already has a field '{name}'")
            return
        st.fields[name] = T.Field(name, t, off, pos)

    def enum_type(self, spec, model):
        if spec.items is None:
            existing = self.tags.get(("enum", spec.tag))
            if existing is None:
                existing = T.EnumType(spec.tag, model.int_size)
                self.tags[("enum", spec.tag)] = existing
            return existing
        et = T.EnumType(spec.tag, model.int_size)
        if spec.tag:
            self.tags[("enum", spec.tag)] = et
        value = 0
        for name, expr, pos in spec.items:
            if expr is not None:
                try:
                    value = self.const_value(expr, model)
                except CompileError:
                    pass
            sym = Sym("enum", name, et, pos)
            sym.value = value
            self.define_global(name, sym, pos)
            value = (value + 1) & 0xFFFFFFFFFFFFFFFF
        return et

    def derive(self, base, ops, model, pos, param=False):
        t = base
        for op in ops:
            kind = op[0]
            if kind == "ptr":
                t = T.PointerType(t, model.ptr_size)
            elif kind == "array":
                if t is T.VOID or isinstance(t, (T.StringType, T.FuncType, T.AggrType, T.BagType)):
                    self.fail(op[2], f"an array cannot hold {T.describe(t)}")
                if isinstance(t, T.StructType) and not t.complete:
                    self.fail(op[2], f"an array of the incomplete type '{t}'")
                count = None if op[1] is None else self.const_value(op[1], model)
                t = T.ArrayType(t, count)
            else:
                params = []
                for pd in op[1]:
                    ptype = self.param_type(pd, model)
                    if ptype is T.VOID and pd.declarator.name is None and len(op[1]) == 1:
                        break
                    params.append((pd.declarator.name, ptype, pd.declarator.pos or pd.pos))
                if isinstance(t, (T.ArrayType, T.FuncType)):
                    self.fail(op[2], "a function cannot return an array or a function")
                t = T.FuncType(t, params)
        return t

    def param_type(self, pd, model):
        base, storage = self.base_type(pd.specs, model)
        t = self.derive(base, pd.declarator.ops, model, pd.pos)
        if isinstance(t, T.ArrayType):
            t = T.PointerType(t.elem, model.ptr_size)
        return t

    def type_name(self, tn, model):
        """The type a cast or sizeof names (built once per node)."""
        if tn.ctype is None:
            base, storage = self.base_type(tn.specs, model)
            if storage:
                self.fail(storage[0][1], f"'{storage[0][0]}' cannot appear in a type name")
            tn.ctype = self.derive(base, tn.declarator.ops, model, tn.pos)
        return tn.ctype

    # ---- constants ------------------------------------------------------------------------------

    def const_value(self, e, model):
        """The value of an integer constant expression (array sizes, enum values, @offsets, initializers)."""
        M = 0xFFFFFFFFFFFFFFFF
        if isinstance(e, S.IntLit):
            return e.value
        if isinstance(e, S.Name):
            sym = self.globals.get(e.name)
            if isinstance(sym, Sym) and sym.kind == "enum":
                return sym.value
            self.fail(e.pos, f"'{e.name}' is not a constant")
        if isinstance(e, S.Unary) and e.op in "-+~!":
            v = self.const_value(e.operand, model)
            return {"-": (-v) & M, "+": v, "~": v ^ M, "!": 0 if v else 1}[e.op]
        if isinstance(e, S.Binary):
            a = self.const_value(e.left, model)
            b = self.const_value(e.right, model)
            result = fold_binary(e.op, a, b)
            if result is None:
                self.fail(e.pos, "division by zero in a constant expression")
            return result
        if isinstance(e, S.Conditional):
            return self.const_value(e.then if self.const_value(e.test, model) else e.other, model)
        if isinstance(e, S.SizeOf):
            if e.tname is not None:
                t = self.type_name(e.tname, model)
            else:
                t = self.typeof(e.operand, None, [], model)
            return self.size_of(t, e.pos)
        if isinstance(e, S.Cast):
            t = self.type_name(e.tname, model)
            v = self.const_value(e.operand, model)
            if isinstance(t, T.IntType) and t.size < 8:
                v &= (1 << (8 * t.size)) - 1
            return v
        self.fail(e.pos, "this must be an integer constant")

    def size_of(self, t, pos):
        if t is None:
            self.fail(pos, "sizeof: the type of this expression is not known")
        if isinstance(t, (T.StringType, T.AggrType, T.BagType, T.FuncType)) or t is T.VOID:
            self.fail(pos, f"sizeof cannot be applied to {T.describe(t)}")
        if isinstance(t, T.StructType) and not t.complete:
            self.fail(pos, f"sizeof of the incomplete type '{t}'")
        if isinstance(t, T.ArrayType) and t.count is None:
            self.fail(pos, "sizeof of an array of unknown size")
        return t.size

    # ---- globals --------------------------------------------------------------------------------

    def define_global(self, name, sym, pos):
        earlier = self.globals.get(name)
        if earlier is not None:
            self.fail(pos, f"'{name}' is already declared at {_where(earlier.pos)}")
        if name in MACHINE_GLOBALS or name == "PROBENAME":
            self.reporter.warning(pos, f"'{name}' hides the built-in VProbes variable of the same name")
        if name in BUILTINS and isinstance(sym, FuncSym):
            self.fail(pos, f"'{name}' is a built-in function and cannot be redefined")
        self.globals[name] = sym

    def declare_global(self, node, preload, skip_names):
        base, storage = self.base_type(node.specs, self.model)
        words = {w for w, _ in storage}
        model = self.model
        for d, init in node.items:
            if preload and d.name in skip_names:
                continue
            try:
                if "typedef" in words:
                    t = self.derive(base, d.ops, model, d.pos)
                    if d.name in self.typedefs:
                        self.fail(d.pos, f"type '{d.name}' is already defined")
                    self.typedefs[d.name] = t
                    continue
                if isinstance(base, T.AggrType):
                    self.declare_aggr(d, init, preload)
                    continue
                if isinstance(base, T.BagType):
                    self.declare_bag(d, init, preload, model)
                    continue
                t = self.derive(base, d.ops, model, d.pos)
                if isinstance(t, T.FuncType):
                    self.declare_prototype(d, t, preload)
                    continue
                if "extern" in words:
                    if init is not None:
                        self.fail(init.pos, "an extern guest object cannot have an initializer")
                    sym = Sym("extern", d.name, t, d.pos)
                    sym.preload = preload
                    self.define_global(d.name, sym, d.pos)
                    continue
                self.check_variable_type(t, d.pos, d.name)
                sym = Sym("var", d.name, t, d.pos)
                sym.preload = preload
                if init is not None:
                    sym.init = self.global_init(t, init, model)
                self.define_global(d.name, sym, d.pos)
                self.global_order.append(sym)
            except CompileError:
                continue

    def check_variable_type(self, t, pos, name):
        if isinstance(t, T.StructType):
            self.fail(pos, f"'{name}' cannot be {T.describe(t)}: VP variables hold integers and strings; "
                           f"use a pointer to reach guest memory")
        if isinstance(t, T.ArrayType):
            self.fail(pos, f"'{name}' cannot be an array: VP variables hold integers and strings; "
                           f"use a pointer to reach guest memory")
        if t is T.VOID:
            self.fail(pos, f"'{name}' cannot be void")

    def global_init(self, t, init, model):
        if isinstance(t, T.StringType):
            if isinstance(init, S.StrLit):
                return init.value
            self.fail(init.pos, "a global string's initial value must be a string literal")
        return self.const_value(init, model)

    def declare_aggr(self, d, init, preload):
        if init is not None:
            self.fail(init.pos, "an aggregate cannot have an initial value")
        dims = [op for op in d.ops]
        if any(op[0] != "array" for op in dims):
            self.fail(d.pos, "an aggregate is declared as aggr NAME[INTEGER-KEYS][STRING-KEYS] (or aggr NAME;)")
        dims.reverse()  # ops list the last bracket first
        t = T.AggrType()
        if len(dims) == 2:
            t.int_keys = self.const_value(dims[0][1], self.model) if dims[0][1] is not None else None
            t.str_keys = self.const_value(dims[1][1], self.model) if dims[1][1] is not None else None
            if t.int_keys is None or t.str_keys is None:
                self.fail(d.pos, "aggr NAME[I][S] needs both key counts")
            if t.int_keys + t.str_keys > 16:
                self.fail(d.pos, f"an aggregate has at most 16 keys; this one asks for {t.int_keys + t.str_keys}")
        elif dims:
            self.fail(d.pos, "an aggregate is declared as aggr NAME[INTEGER-KEYS][STRING-KEYS] (or aggr NAME;)")
        sym = Sym("aggr", d.name, t, d.pos)
        sym.preload = preload
        sym.decided = d.pos if dims else None
        self.define_global(d.name, sym, d.pos)
        self.global_order.append(sym)

    def declare_bag(self, d, init, preload, model):
        if init is not None:
            self.fail(init.pos, "a bag cannot have an initial value")
        if len(d.ops) != 1 or d.ops[0][0] != "array" or d.ops[0][1] is None:
            self.fail(d.pos, "a bag is declared as bag NAME[SIZE]")
        size = self.const_value(d.ops[0][1], model)
        if size == 0:
            self.fail(d.pos, "a bag must hold at least one key/value pair")
        sym = Sym("bag", d.name, T.BagType(size), d.pos)
        sym.preload = preload
        self.define_global(d.name, sym, d.pos)
        self.global_order.append(sym)

    def declare_prototype(self, d, t, preload):
        existing = self.globals.get(d.name)
        if isinstance(existing, FuncSym):
            self.check_same_signature(existing, t, d.pos)
            return
        fs = FuncSym(d.name, t, d.pos)
        fs.preload = preload
        self.define_global(d.name, fs, d.pos)

    def check_same_signature(self, fs, t, pos):
        a, b = fs.type, t
        if not T.same_type(a.ret, b.ret) or len(a.params) != len(b.params) or any(
                not T.same_type(x[1], y[1]) for x, y in zip(a.params, b.params)):
            self.fail(pos, f"'{fs.name}' is declared differently at {_where(fs.pos)}")

    def declare_function(self, node, preload, skip_names):
        d = node.declarator
        if preload and d.name in skip_names:
            return
        base, storage = self.base_type(node.specs, self.model)
        if not d.ops or d.ops[-1][0] != "func":
            self.fail(d.pos, "expected a function definition: a name followed by a parameter list")
        t = self.derive(base, d.ops, self.model, d.pos)
        if d.name in BUILTINS:
            self.fail(d.pos, f"'{d.name}' is a built-in function and cannot be redefined")
        if len(t.params) > 32:
            self.fail(d.pos, f"'{d.name}' has {len(t.params)} parameters; at most 32 are allowed")
        if isinstance(t.ret, (T.StructType, T.AggrType, T.BagType)):
            self.fail(d.pos, f"a function cannot return {T.describe(t.ret)}")
        existing = self.globals.get(d.name)
        if isinstance(existing, FuncSym) and existing.node is None:
            self.check_same_signature(existing, t, d.pos)
            fs = existing
            fs.type = t
            fs.pos = d.pos
        else:
            if isinstance(existing, FuncSym):
                self.fail(d.pos, f"function '{d.name}' is already defined at {_where(existing.pos)}")
            fs = FuncSym(d.name, t, d.pos)
            self.define_global(d.name, fs, d.pos)
        fs.node = node
        fs.preload = preload
        fs.model = self.model
        self.functions.append(fs)
        seen = set()
        for name, ptype, ppos in t.params:
            if name is None:
                self.fail(ppos, f"every parameter of '{d.name}' needs a name")
            if name in seen:
                self.fail(ppos, f"parameter '{name}' appears twice in '{d.name}'")
            seen.add(name)
            if isinstance(ptype, (T.StructType, T.AggrType, T.BagType)) or ptype is T.VOID:
                self.fail(ppos, f"parameter '{name}' cannot be {T.describe(ptype)}")

    def declare_probe(self, node, preload):
        ctx = Ctx("probe", None, self.model, preload)
        probe = Probe(node, None, ctx, node.pos, preload)
        ctx.probe = probe
        ctx.node = node
        self.probes.append(probe)
        params = node.params or []
        if len(params) > MAX_PROBE_PARAMS:
            self.error(params[MAX_PROBE_PARAMS].pos, f"a probe has at most {MAX_PROBE_PARAMS} arguments (ARG0 to ARG9)")
        for i, pd in enumerate(params[:MAX_PROBE_PARAMS]):
            try:
                t = self.param_type(pd, self.model)
            except CompileError:
                t = T.VPINT
            if not t.is_scalar():
                self.error(pd.pos, f"probe argument '{pd.declarator.name}' must be an integer or a pointer")
                t = T.VPINT
            sym = Sym("probeparam", pd.declarator.name, t, pd.declarator.pos)
            sym.index = i
            ctx.params.append(sym)

    # ---- pass 2: resolution ----------------------------------------------------------------------

    def resolve_all(self):
        for fs in self.functions:
            self.resolve_function(fs)
        for probe in self.probes:
            ctx = probe.ctx
            self.reporter.where = probe.pos
            ctx.scopes = [{p.name: p for p in ctx.params if p.name}]
            try:
                self.resolve_stmt(probe.node.body, ctx)
            except RecursionError:
                self.error(probe.pos, "this probe is nested too deeply to compile")
                ctx.failed = True
            ctx.scopes = []

    def resolve_function(self, fs):
        self.reporter.where = fs.pos
        ctx = Ctx("func", fs.name, fs.model, fs.preload)
        ctx.func = fs
        ctx.node = fs.node
        ctx.ret = fs.type.ret
        fs.ctx = ctx
        for name, ptype, ppos in fs.type.params:
            sym = Sym("param", name, ptype, ppos)
            sym.owner = ctx
            ctx.params.append(sym)
        ctx.scopes = [{p.name: p for p in ctx.params}]
        try:
            self.resolve_stmt(fs.node.body, ctx)
        except RecursionError:
            self.error(fs.pos, f"function '{fs.name}' is nested too deeply to compile")
            ctx.failed = True
        ctx.scopes = []

    def lookup(self, name, ctx):
        for scope in reversed(ctx.scopes):
            sym = scope.get(name)
            if sym is not None:
                return sym
        return self.globals.get(name)

    def resolve_stmt(self, s, ctx):
        if isinstance(s, S.Block):
            ctx.scopes.append({})
            for item in s.items:
                self.resolve_stmt(item, ctx)
            ctx.scopes.pop()
        elif isinstance(s, S.ExprStmt):
            self.resolve_expr(s.expr, ctx)
        elif isinstance(s, S.If):
            self.resolve_expr(s.test, ctx)
            self.resolve_stmt(s.then, ctx)
            if s.other is not None:
                self.resolve_stmt(s.other, ctx)
        elif isinstance(s, S.Return):
            if s.value is not None:
                self.resolve_expr(s.value, ctx)
        elif isinstance(s, S.Declaration):
            self.declare_local(s, ctx)
        elif isinstance(s, S.Unsupported):
            self.error(s.pos, f"'{s.word}' is not supported: Emmett has no loops or jumps, so that every "
                              f"probe finishes quickly (use if/else, or recursion, which VP bounds)")
        # Empty: nothing

    def declare_local(self, decl, ctx):
        try:
            base, storage = self.base_type(decl.specs, ctx.model)
        except CompileError:
            return
        words = {w for w, _ in storage}
        for d, init in decl.items:
            if init is not None:
                self.resolve_expr(init, ctx)
            try:
                if "typedef" in words:
                    self.typedefs[d.name] = self.derive(base, d.ops, ctx.model, d.pos)
                    continue
                if isinstance(base, (T.AggrType, T.BagType)):
                    self.fail(d.pos, f"{'aggregates' if isinstance(base, T.AggrType) else 'bags'} must be declared at top level")
                if "extern" in words:
                    self.fail(d.pos, "extern guest objects must be declared at top level")
                t = self.derive(base, d.ops, ctx.model, d.pos)
                if isinstance(t, T.FuncType):
                    self.fail(d.pos, "functions must be declared at top level")
                self.check_variable_type(t, d.pos, d.name)
                sym = Sym("local", d.name, t, d.pos)
                sym.owner = ctx
                sym.static = "static" in words
                if sym.static and init is not None:
                    sym.init = self.global_init(t, init, ctx.model)
                d.sym = sym
                if d.name in MACHINE_GLOBALS or d.name == "PROBENAME":
                    self.reporter.warning(d.pos, f"'{d.name}' hides the built-in VProbes variable of the same name")
                scope = ctx.scopes[-1]
                if d.name in scope:
                    self.fail(d.pos, f"'{d.name}' is already declared at {_where(scope[d.name].pos)}")
                scope[d.name] = sym
                ctx.locals.append(sym)
            except CompileError:
                continue

    def implicit_sym(self, name, pos):
        sym = self.implicit.get(name)
        if sym is None:
            sym = Sym("implicit", name, None, pos)
            sym.implicit = True
            sym.uses = []
            self.implicit[name] = sym
        return sym

    def resolve_name(self, e, ctx, use):
        """Bind Name `e`; an undeclared name becomes implicit, with `use` recorded."""
        sym = self.lookup(e.name, ctx)
        if sym is None:
            if e.name in MACHINE_GLOBALS:
                sym = Sym("machine", e.name, T.VPINT, e.pos)
            elif e.name == "PROBENAME":
                sym = Sym("probename", e.name, T.STRING, e.pos)
            else:
                sym = self.implicit_sym(e.name, e.pos)
        if sym.implicit and sym.kind == "implicit":
            sym.uses.append((use, e.pos, ctx))
        e.sym = sym
        return sym

    def resolve_expr(self, e, ctx):
        if isinstance(e, S.Name):
            self.resolve_name(e, ctx, "read")
        elif isinstance(e, (S.IntLit, S.StrLit)):
            pass
        elif isinstance(e, S.Binary):
            self.resolve_expr(e.left, ctx)
            self.resolve_expr(e.right, ctx)
        elif isinstance(e, S.Assign):
            self.resolve_assign(e, ctx)
        elif isinstance(e, S.Call):
            self.resolve_call(e, ctx)
        elif isinstance(e, S.Unary):
            if e.op == "&" and isinstance(e.operand, S.Name) and self.lookup(e.operand.name, ctx) is None \
                    and e.operand.name not in MACHINE_GLOBALS and e.operand.name != "PROBENAME" \
                    and e.operand.name not in self.implicit:
                sym = Sym("guestsym", e.operand.name, T.VOID, e.operand.pos)
                e.operand.sym = sym
                self.guestsym_uses.append((sym, e.operand.pos))
            else:
                self.resolve_expr(e.operand, ctx)
        elif isinstance(e, S.IncDec):
            self.resolve_target(e.target, ctx, "aggr" if isinstance(e.target, S.Index) else "assign")
        elif isinstance(e, S.Conditional):
            self.resolve_expr(e.test, ctx)
            self.resolve_expr(e.then, ctx)
            self.resolve_expr(e.other, ctx)
        elif isinstance(e, S.Index):
            if isinstance(e.base, S.Name):
                self.resolve_name(e.base, ctx, "index")
            else:
                self.resolve_expr(e.base, ctx)
            for k in e.keys:
                self.resolve_expr(k, ctx)
        elif isinstance(e, S.Member):
            self.resolve_expr(e.base, ctx)
        elif isinstance(e, S.Cast):
            self.resolve_expr(e.operand, ctx)
        elif isinstance(e, S.SizeOf):
            if e.operand is not None:
                self.resolve_expr(e.operand, ctx)

    def resolve_target(self, target, ctx, use):
        if isinstance(target, S.Name):
            return self.resolve_name(target, ctx, use)
        if isinstance(target, S.Index) and isinstance(target.base, S.Name):
            self.resolve_name(target.base, ctx, "aggr" if use == "aggr" else "index")
            for k in target.keys:
                self.resolve_expr(k, ctx)
            return None
        self.resolve_expr(target, ctx)
        return None

    def resolve_assign(self, e, ctx):
        if e.op == "<-":
            self.resolve_target(e.target, ctx, "aggr")
            self.resolve_expr(e.value, ctx)
            return
        self.resolve_expr(e.value, ctx)
        sym = self.resolve_target(e.target, ctx, "assign")
        if sym is not None and sym.implicit:
            kind = "value" if e.op == "=" else "compound"
            self.constraints.append(Constraint(sym, kind, e, e.pos, ctx))

    def resolve_call(self, e, ctx):
        f = e.func
        if not isinstance(f, S.Name):
            self.error(e.pos, "only named functions can be called")
            for a in e.args:
                self.resolve_expr(a, ctx)
            return
        name = f.name
        if name in BUILTINS:
            e.sym = name
            dest_type = DEST_BUILTINS.get(name)
            for i, a in enumerate(e.args):
                if i == 0 and dest_type is not None and isinstance(a, S.Name):
                    sym = self.resolve_name(a, ctx, "assign")
                    if sym.implicit:
                        self.constraints.append(Constraint(sym, "fixed", a, a.pos, ctx, dest_type))
                elif i == 0 and name in ("logaggr", "clearaggr", "baginsert", "bagremove") and isinstance(a, S.Name):
                    self.resolve_name(a, ctx, "aggrref")
                else:
                    self.resolve_expr(a, ctx)
            return
        target = self.lookup(name, ctx)
        if isinstance(target, FuncSym):
            e.sym = target
            if target not in ctx.calls:
                ctx.calls[target] = e.pos
            params = target.type.params
            for i, a in enumerate(e.args):
                if isinstance(a, S.Name):
                    sym = self.resolve_name(a, ctx, "arg")
                    if sym.implicit and i < len(params):
                        self.constraints.append(Constraint(sym, "weak", a, a.pos, ctx, params[i][1]))
                else:
                    self.resolve_expr(a, ctx)
            return
        for a in e.args:
            self.resolve_expr(a, ctx)
        if target is not None:
            self.error(f.pos, f"'{name}' is {T.describe(getattr(target, 'type', None))}, not a function")
        elif name in GUEST_HELPERS:
            hint = (" (it comes from the guest preload library, which --no-preload turned off)"
                    if not self.options.preload else " (the guest preload library does not define it)")
            self.error(f.pos, f"call to undefined function '{name}'{hint}")
        else:
            self.error(f.pos, f"call to undefined function '{name}'")

    # ---- pass 3: implicit symbols and inference ---------------------------------------------------------

    def decide_implicit(self):
        for name, sym in self.implicit.items():
            uses = sym.uses
            aggr = [u for u in uses if u[0] == "aggr"]
            assign = [u for u in uses if u[0] in ("assign", "arg")]
            if aggr and assign:
                a, b = aggr[0][1], assign[0][1]
                later, earlier, what = (b, a, "an aggregate") if a < b else (a, b, "a variable")
                self.error(later, f"'{name}' is used here as {'a variable' if what == 'an aggregate' else 'an aggregate'}, "
                                  f"but as {what} at {_where(earlier)}")
                sym.kind = "error"
            elif aggr:
                sym.kind = "aggr"
                sym.type = T.AggrType()
                sym.pos = aggr[0][1]
                preload = all(u[2].preload for u in uses)
                sym.preload = preload
                self.global_order.append(sym)
            elif assign:
                sym.kind = "var"
                sym.pos = assign[0][1]
                sym.preload = all(u[2].preload for u in uses)
            else:
                first = uses[0]
                if any(u[0] == "aggrref" for u in uses) and all(u[0] == "aggrref" for u in uses):
                    self.error(first[1], f"unknown aggregate '{name}' (an aggregate declares itself "
                                         f"where it is updated, e.g. {name}[key]++)")
                else:
                    self.error(first[1], f"unknown name '{name}'" + self.spelling_hint(name))
                sym.kind = "error"
        for sym, pos in self.guestsym_uses:
            implicit = self.implicit.get(sym.name)
            if implicit is not None and implicit.kind == "var":
                self.error(pos, f"cannot take the address of VP variable '{sym.name}': it does not live in guest memory")

    def spelling_hint(self, name):
        upper = name.upper()
        if upper in MACHINE_GLOBALS or upper == "PROBENAME":
            return f" (did you mean the built-in '{upper}'?)"
        return ""

    def infer(self):
        """Type every implicit variable from what is assigned to it (see the module docstring)."""
        waiting = {}
        strong = [c for c in self.constraints if c.kind != "weak" and c.sym.kind == "var"]
        weak = [c for c in self.constraints if c.kind == "weak" and c.sym.kind == "var"]
        pending_vars = [s for s in self.implicit.values() if s.kind == "var"]
        from collections import deque
        queue = deque(strong)

        def settle(sym, t, pos):
            sym.type = t
            sym.decided = pos
            for c in waiting.pop(sym, ()):
                queue.append(c)

        while True:
            while queue:
                c = queue.popleft()
                sym = c.sym
                if sym.type is not None:
                    continue
                missing = []
                t = self.constraint_type(c, missing)
                if t is None:
                    for m in missing:
                        waiting.setdefault(m, []).append(c)
                    continue
                settle(sym, t, c.pos)
            # Then weak constraints (a variable only passed to a parameter takes its type)...
            progressed = False
            for c in weak:
                if c.sym.type is None:
                    settle(c.sym, self.var_type(c.type, c.ctx.model), c.pos)
                    progressed = True
                    break
            if progressed:
                continue
            # ... and, when nothing else decides, the first unknown variable is an integer.
            for sym in pending_vars:
                if sym.type is None:
                    settle(sym, T.VPINT, sym.decided or sym.pos)
                    progressed = True
                    break
            if not progressed:
                break

    def var_type(self, t, model):
        """The type a variable gets from a value of type `t`."""
        if isinstance(t, T.ArrayType):
            return T.PointerType(t.elem, model.ptr_size)
        if isinstance(t, T.IntType):
            return T.VPINT
        return t

    def constraint_type(self, c, missing):
        if c.kind == "fixed":
            return c.type
        e = c.node
        model = c.ctx.model
        if c.kind == "value":
            t = self.typeof(e.value, c.ctx, missing, model)
        else:  # compound assignment: the type of `target op value`
            op = e.op[:-1]
            vt = self.typeof(e.value, c.ctx, missing, model)
            t = self.binary_type(op, None, vt)
            if t is None and not missing:
                missing.append(c.sym)
        if t is None:
            return None
        if t is T.VOID or isinstance(t, (T.StructType, T.AggrType, T.BagType, T.FuncType)):
            return None
        return self.var_type(t, model)

    # ---- types of expressions (no checking; None when unknown) --------------------------------------------

    def typeof(self, e, ctx, missing, model):
        try:
            return self._typeof(e, ctx, missing, model)
        except CompileError:
            return None

    def _typeof(self, e, ctx, missing, model):
        if isinstance(e, S.IntLit):
            return T.VPINT
        if isinstance(e, S.StrLit):
            return T.STRING
        if isinstance(e, S.Name):
            sym = e.sym
            if sym is None:
                sym = self.globals.get(e.name)
                if sym is None:
                    return None
            if isinstance(sym, FuncSym):
                return None
            if sym.kind in ("implicit", "error"):
                return None
            if sym.type is None:
                missing.append(sym)
                return None
            if sym.kind == "extern":
                return T.decay(sym.type, model)
            if sym.kind == "enum":
                return T.VPINT
            return sym.type
        if isinstance(e, S.Binary):
            lt = self._typeof(e.left, ctx, missing, model)
            rt = self._typeof(e.right, ctx, missing, model)
            return self.binary_type(e.op, T.decay(lt, model) if lt else None, T.decay(rt, model) if rt else None)
        if isinstance(e, S.Unary):
            if e.op == "*":
                t = self._typeof(e.operand, ctx, missing, model)
                if isinstance(t, (T.PointerType, T.ArrayType)):
                    inner = t.target if isinstance(t, T.PointerType) else t.elem
                    return T.decay(inner, model)
                return None
            if e.op == "&":
                t = self.lvalue_type(e.operand, ctx, missing, model)
                return T.PointerType(t if t is not None else T.VOID, model.ptr_size)
            return T.VPINT
        if isinstance(e, S.Assign):
            if e.op == "<-":
                return T.VPINT
            t = self._typeof(e.target, ctx, missing, model)
            if t is None and e.op == "=":
                return self._typeof(e.value, ctx, missing, model)
            return t
        if isinstance(e, S.IncDec):
            if isinstance(e.target, S.Index):
                return T.VPINT
            return self._typeof(e.target, ctx, missing, model)
        if isinstance(e, S.Conditional):
            t = self._typeof(e.then, ctx, missing, model)
            return t if t is not None else self._typeof(e.other, ctx, missing, model)
        if isinstance(e, S.Call):
            if isinstance(e.sym, FuncSym):
                return e.sym.type.ret
            if e.sym in BUILTINS:
                return T.VOID if e.sym == "exit" else T.VPINT
            return None
        if isinstance(e, S.Index):
            base = e.base
            if isinstance(base, S.Name) and isinstance(base.sym, Sym) and base.sym.kind in ("aggr", "bag"):
                return T.VPINT
            t = self._typeof(base, ctx, missing, model)
            if isinstance(t, (T.PointerType, T.ArrayType)):
                inner = t.target if isinstance(t, T.PointerType) else t.elem
                return T.decay(inner, model)
            return None
        if isinstance(e, S.Member):
            t = self.lvalue_type(e, ctx, missing, model)
            return T.decay(t, model) if t is not None else None
        if isinstance(e, S.Cast):
            return self.type_name(e.tname, model)
        if isinstance(e, S.SizeOf):
            return T.VPINT
        return None

    def lvalue_type(self, e, ctx, missing, model):
        """The type of the object `e` designates (arrays not decayed)."""
        if isinstance(e, S.Member):
            bt = self.lvalue_type(e.base, ctx, missing, model) if not e.arrow else \
                self._typeof(e.base, ctx, missing, model)
            if e.arrow:
                if not isinstance(bt, T.PointerType):
                    return None
                bt = bt.target
            if isinstance(bt, T.StructType):
                f = bt.fields.get(e.field)
                return f.type if f is not None else None
            return None
        if isinstance(e, S.Unary) and e.op == "*":
            t = self._typeof(e.operand, ctx, missing, model)
            return t.target if isinstance(t, T.PointerType) else None
        if isinstance(e, S.Index):
            t = self._typeof(e.base, ctx, missing, model)
            if isinstance(t, T.PointerType):
                return t.target
            return None
        if isinstance(e, S.Name):
            sym = e.sym
            if isinstance(sym, Sym) and sym.kind == "extern":
                return sym.type
            if isinstance(sym, Sym) and sym.kind == "guestsym":
                return T.VOID
        return self._typeof(e, ctx, missing, model)

    @staticmethod
    def binary_type(op, lt, rt):
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

    # ---- the call graph ---------------------------------------------------------------------------------------

    def mark_reachable(self):
        """Functions reachable from a probe, and functions on call-graph cycles (recursive)."""
        stack = []
        for probe in self.probes:
            stack.extend(probe.ctx.calls)
        while stack:
            fs = stack.pop()
            if fs.reachable:
                continue
            fs.reachable = True
            if fs.ctx is not None:
                stack.extend(fs.ctx.calls)
        defined = [fs for fs in self.functions if fs.ctx is not None]
        graph = {id(fs): [id(c) for c in fs.ctx.calls if c.ctx is not None] for fs in defined}
        by_id = {id(fs): fs for fs in defined}
        for scc in strongly_connected(graph):
            if len(scc) > 1 or scc[0] in graph[scc[0]]:
                for fid in scc:
                    by_id[fid].recursive = True


def fold_binary(op, a, b):
    """`a op b` on VP's unsigned 64-bit integers; None for a division by zero."""
    M = 0xFFFFFFFFFFFFFFFF
    if op == "+":
        return (a + b) & M
    if op == "-":
        return (a - b) & M
    if op == "*":
        return (a * b) & M
    if op == "/":
        return None if b == 0 else a // b
    if op == "%":
        return None if b == 0 else a % b
    if op == "<<":
        return (a << b) & M if b < 64 else 0
    if op == ">>":
        return a >> b if b < 64 else 0
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    if op == "^":
        return a ^ b
    if op == "&&":
        return 1 if a and b else 0
    if op == "||":
        return 1 if a or b else 0
    if op == "==":
        return int(a == b)
    if op == "!=":
        return int(a != b)
    if op == "<":
        return int(a < b)
    if op == ">":
        return int(a > b)
    if op == "<=":
        return int(a <= b)
    if op == ">=":
        return int(a >= b)
    raise ValueError(op)


def strongly_connected(graph):
    """Tarjan's algorithm without recursion; returns lists of node ids."""
    index = {}
    low = {}
    on_stack = set()
    stack = []
    result = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    scc.append(member)
                    if member == node:
                        break
                result.append(scc)
    return result


def _align_up(n, a):
    return (n + a - 1) // a * a if a > 1 else n


def _spec_text(s):
    if s.word == "typename":
        return s.node
    if s.word == "struct":
        return f"{s.node.kind} {s.node.tag or ''}".strip()
    if s.word == "enum":
        return f"enum {s.node.tag or ''}".strip()
    return s.word
