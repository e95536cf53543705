"""C types of declarations and the layout of guest memory: the pass that turns specifiers and
declarators into types, and integer constant expressions into values.

Computes: the type a list of specifiers and a declarator name (`int`, `unsigned
long`, typedef names, `struct task *[4]`...), struct and union layouts (field
offsets with C alignment, `@OFFSET` pins, anonymous members), enum constants
(defined as globals), the types that casts and sizeof name (cached on the
`TypeName`), and the values of constant expressions (array sizes, enum
values, offsets, global initializers, `sizeof`).
Needs: the program's tag and typedef tables and its globals (enum constants,
and `define_global` to add them); the memory model in force where the type is
written, which fixes the sizes of `int`, `long` and pointers.
"""

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .language import CONSTANTS, MASK64
from .symbols import Sym, where
from .vp import fold_binary

_STORAGE = frozenset(("typedef", "extern", "static", "perthread", "pervm", "pervmk", "perhost"))
_IGNORED = frozenset(("const", "volatile", "auto", "register", "inline"))
_INT_WORDS = frozenset(("long", "short", "char", "int", "signed", "unsigned"))


class Layout:
    def __init__(self, program):
        self.p = program
        self.fail = program.fail
        self.error = program.error
        self._const = S.dispatch_table(self, "c_")

    # ---- specifiers and declarators ----------------------------------------------------------

    def base_type(self, specs, model):
        """The type the specifiers name, and the storage words among them (with their positions)."""
        storage = []
        counts = dict.fromkeys(_INT_WORDS, 0)
        other = None
        for s in specs:
            w = s.word
            if w in _STORAGE:
                storage.append((w, s.pos))
            elif w in _IGNORED:
                continue
            elif w in counts:
                counts[w] += 1
            else:
                if other is not None:
                    self.fail(s.pos, f"two types in one declaration: '{_spec_text(other)}' and '{_spec_text(s)}'")
                other = s
        longs, shorts, chars, ints = counts["long"], counts["short"], counts["char"], counts["int"]
        signed, unsigned = counts["signed"], counts["unsigned"]
        numeric = longs or shorts or chars or ints or signed or unsigned
        if other is not None:
            if numeric:
                self.fail(other.pos, f"'{_spec_text(other)}' cannot be combined with integer type words")
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
            t = self.p.typedefs.get(s.node)
            if t is None:
                self.fail(s.pos, f"unknown type name '{s.node}'")
            return t
        if w == "struct":
            return self.struct_type(s.node, model)
        if w == "enum":
            return self.enum_type(s.node, model)
        self.fail(s.pos, f"'{w}' is not a type")

    def derive(self, base, ops, model):
        """The type a declarator's operators make of `base` (see `syntax.Declarator`)."""
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
        base, _ = self.base_type(pd.specs, model)
        t = self.derive(base, pd.declarator.ops, model)
        if isinstance(t, T.ArrayType):
            t = T.PointerType(t.elem, model.ptr_size)
        return t

    def type_name(self, tn, model):
        """The type a cast or sizeof names (built once per node)."""
        if tn.ctype is None:
            base, storage = self.base_type(tn.specs, model)
            if storage:
                self.fail(storage[0][1], f"'{storage[0][0]}' cannot appear in a type name")
            tn.ctype = self.derive(base, tn.declarator.ops, model)
        return tn.ctype

    # ---- struct, union, enum -----------------------------------------------------------------

    def struct_type(self, spec, model):
        key = (spec.kind, spec.tag)
        tags = self.p.tags
        existing = tags.get(key) if spec.tag else None
        if spec.fields is None:
            if existing is None:
                existing = T.StructType(spec.kind, spec.tag, spec.pos)
                tags[key] = existing
            return existing
        if existing is not None and existing.complete:
            self.fail(spec.pos, f"{spec.kind} {spec.tag} is already defined at {where(existing.pos)}")
        st = existing or T.StructType(spec.kind, spec.tag, spec.pos)
        if spec.tag:
            tags[key] = st
        self.lay_out(st, spec.fields, model)
        return st

    def lay_out(self, st, fields, model):
        """Field offsets, size and alignment of `st` from its field declarations (C rules, `@` pins)."""
        offset = 0  # where the next field may start (a struct's fields do not overlap)
        bits = None  # after a bit-field: the bit where the next one may start
        size = 0
        align = 1
        union = st.su == "union"
        for fd, pinned in self.in_offset_order(fields, union, model):
            try:
                base, storage = self.base_type(fd.specs, model)
                if storage:
                    self.error(storage[0][1], f"'{storage[0][0]}' cannot be used on a {st.su} field")
                if pinned is not None and not union and pinned < offset:
                    self.error(fd.pos, f"the field pinned at offset {pinned:#x} overlaps the one before it "
                                       f"in offset order, which ends at {offset:#x}")
                    pinned = offset
                declarators = fd.declarators
                if not declarators:
                    if isinstance(base, T.StructType) and base.complete:
                        # An anonymous struct or union: its fields are this one's.
                        off = pinned if pinned is not None else (0 if union else _align_up(offset, base.align))
                        for f in base.fields.values():
                            self.add_field(st, f.name, f.type, off + f.offset, f.pos, f.bit, f.width)
                        end = off + base.size
                        size = max(size, end)
                        offset = offset if union else end
                        bits = None
                        align = max(align, base.align)
                    continue
                for i, d in enumerate(declarators):
                    t = self.derive(base, d.ops, model)
                    if isinstance(t, (T.StringType, T.AggrType, T.BagType, T.FuncType)) or t is T.VOID:
                        self.fail(d.pos, f"a {st.su} field cannot be {T.describe(t)}")
                    if isinstance(t, T.StructType) and not t.complete:
                        self.fail(d.pos, f"field '{d.name}' has the incomplete type '{t}'")
                    first = pinned if pinned is not None and i == 0 else None
                    if fd.widths[i] is not None:
                        start = 8 * first if first is not None else 0 if union else \
                            bits if bits is not None else 8 * offset
                        end_bits = self.bit_field(st, d, t, self.const_value(fd.widths[i], model), start)
                        end = -(-end_bits // 8)
                        bits = None if union else end_bits
                        if d.name is not None:
                            align = max(align, t.align)
                    else:
                        off = first if first is not None else 0 if union else _align_up(offset, t.align)
                        self.add_field(st, d.name, t, off, d.pos)
                        end = off + t.size
                        bits = None
                        align = max(align, t.align)
                    size = max(size, end)
                    if not union:
                        offset = end
            except CompileError:
                continue
        st.align = align
        st.size = _align_up(size, align)
        st.complete = True

    def in_offset_order(self, fields, union, model):
        """The field declarations as (declaration, pinned offset or None), in the order they
        are laid out: a field pinned with `@` and the unpinned ones after it form a block,
        and a struct's blocks go in the order of their pinned offsets (the fields before
        the first pin first), so pins may be written in any order (the toolkit's rule)."""
        blocks = []  # [pinned offset, or -1 for the fields before the first pin; its fields]
        for fd in fields:
            if fd is None:
                continue
            try:
                pinned = self.const_value(fd.offset, model) if fd.offset is not None else None
            except CompileError:
                continue
            if pinned is not None or not blocks:
                blocks.append((-1 if pinned is None else pinned, []))
            blocks[-1][1].append((fd, pinned))
        if not union:
            blocks.sort(key=lambda block: block[0])
        return [field for _, block in blocks for field in block]

    def bit_field(self, st, d, t, width, start):
        """Place bit-field `d` of integer type `t` at bit `start` of `st` or, as C compilers for
        x86 do, at the next `t`-sized unit when it would straddle one (width 0: only move to the
        next unit).  The bit after it."""
        what = f"bit-field '{d.name}'" if d.name else "a bit-field"
        if not t.is_int():
            self.fail(d.pos, f"{what} must have an integer type, but this is {T.describe(t)}")
        unit = 8 * t.size
        if width > unit or width == 0 and d.name is not None:
            self.fail(d.pos, f"{what} is {width} bits wide: a named one is 1 to {unit} bits of its '{t}'")
        if width == 0:
            return _align_up(start, unit)
        if start // unit != (start + width - 1) // unit:
            start = _align_up(start, unit)
        if d.name is not None:
            self.add_field(st, d.name, t, start // unit * t.size, d.pos, start % unit, width)
        return start + width

    def add_field(self, st, name, t, off, pos, bit=0, width=None):
        if name in st.fields:
            self.error(pos, f"{st} already has a field '{name}'")
            return
        st.fields[name] = T.Field(name, t, off, pos, bit, width)

    def enum_type(self, spec, model):
        tags = self.p.tags
        if spec.items is None:
            existing = tags.get(("enum", spec.tag))
            if existing is None:
                existing = T.EnumType(spec.tag, model.int_size)
                tags[("enum", spec.tag)] = existing
            return existing
        et = T.EnumType(spec.tag, model.int_size)
        if spec.tag:
            tags[("enum", spec.tag)] = et
        value = 0
        for name, expr, pos in spec.items:
            if expr is not None:
                try:
                    value = self.const_value(expr, model)
                except CompileError:
                    pass
            sym = Sym("enum", name, et, pos)
            sym.value = value
            self.p.define_global(name, sym, pos)
            value = (value + 1) & MASK64
        return et

    # ---- variables ---------------------------------------------------------------------------

    def check_variable_type(self, t, pos, name):
        """A VP variable (global or local) holds an integer, a pointer or a string."""
        if isinstance(t, T.StructType):
            self.fail(pos, f"'{name}' cannot be {T.describe(t)}: VP variables hold integers and strings; "
                           f"use a pointer to reach guest memory")
        if isinstance(t, T.ArrayType):
            self.fail(pos, f"'{name}' cannot be an array: VP variables hold integers and strings; "
                           f"use a pointer to reach guest memory")
        if t is T.VOID:
            self.fail(pos, f"'{name}' cannot be void")

    def initial_value(self, t, init, model):
        """The initial value of a global or static variable of type `t`: a constant."""
        if isinstance(t, T.StringType):
            if isinstance(init, S.StrLit):
                return init.value
            self.fail(init.pos, "a global string's initial value must be a string literal")
        return self.const_value(init, model)

    # ---- constants ---------------------------------------------------------------------------

    def const_value(self, e, model):
        """The value of an integer constant expression (array sizes, enum values, @offsets, initializers)."""
        handler = self._const.get(type(e))
        if handler is None:
            self.fail(e.pos, "this must be an integer constant")
        return handler(e, model)

    def c_IntLit(self, e, model):
        return e.value

    def c_Name(self, e, model):
        sym = self.p.globals.get(e.name)
        if isinstance(sym, Sym) and sym.kind == "enum":
            return sym.value
        if sym is None and e.name in CONSTANTS:
            return CONSTANTS[e.name]
        self.fail(e.pos, f"'{e.name}' is not a constant")

    def c_Unary(self, e, model):
        if e.op not in "-+~!":
            self.fail(e.pos, "this must be an integer constant")
        v = self.const_value(e.operand, model)
        return {"-": (-v) & MASK64, "+": v, "~": v ^ MASK64, "!": 0 if v else 1}[e.op]

    def c_Binary(self, e, model):
        # A left-leaning chain (1 + 2 + 3 ...) in a loop: long flat expressions are deep trees.
        spine = []
        while type(e) is S.Binary:
            spine.append(e)
            e = e.left
        value = self.const_value(e, model)
        for node in reversed(spine):
            value = fold_binary(node.op, value, self.const_value(node.right, model))
            if value is None:
                self.fail(node.pos, "division by zero in a constant expression")
        return value

    def c_Conditional(self, e, model):
        return self.const_value(e.then if self.const_value(e.test, model) else e.other, model)

    def c_SizeOf(self, e, model):
        if e.tname is not None:
            t = self.type_name(e.tname, model)
        else:
            t = self.p.types.value_type(e.operand, model)
        return self.size_of(t, e.pos)

    def c_Cast(self, e, model):
        t = self.type_name(e.tname, model)
        v = self.const_value(e.operand, model)
        if isinstance(t, T.IntType) and t.size < 8:
            v &= (1 << (8 * t.size)) - 1
        return v

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
