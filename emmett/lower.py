"""Lowering: type-check every function and probe body and turn it into VP forms.

C-like memory access becomes address arithmetic and guest reads:
`p->pid` (a 4-byte field at offset 0x2bc) becomes
`(& 0xffffffff (getguest (+ p 700)))`; arrays and pointers scale by the
element size; a `char *` or `char[]` used as a string becomes a string read
with `getgueststr`; `&symbol` is a guest symbol's address from the symbol file.
Strings: `+` becomes `sprintf`, `==`/`!=` become `strcmp`.  Statements become
`cond`, `do`, `setint`/`setstr`, `aggr`, `baginsert`/`bagremove`.

Each expression lowers to a pair (VP form, type).  A problem raises
`CompileError` after reporting it, abandoning that statement; lowering goes on
with the next one, so one run reports the errors of every statement.
"""

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .sema import FuncSym, Sym, _where
from .vp import HexInt, VStr, cond, do, is_const, op

MAX_STRING_BYTES = 255
MAX_ARGS = 32
M64 = 0xFFFFFFFFFFFFFFFF

_COMPARE = frozenset("== != < > <= >=".split())
_INT_OPS = frozenset("* / % << >> & | ^".split())


class _Quiet(CompileError):
    """An error already reported elsewhere (e.g. an undecidable implicit name)."""


class MemLV:
    __slots__ = ("addr", "type", "model", "pos")

    def __init__(self, addr, type_, model, pos):
        self.addr = addr
        self.type = type_
        self.model = model
        self.pos = pos


class VarLV:
    __slots__ = ("sym", "pos")

    def __init__(self, sym, pos):
        self.sym = sym
        self.pos = pos


class AggrLV:
    __slots__ = ("sym", "keys", "pos")

    def __init__(self, sym, keys, pos):
        self.sym = sym
        self.keys = keys
        self.pos = pos


class BagLV:
    __slots__ = ("sym", "key", "pos")

    def __init__(self, sym, key, pos):
        self.sym = sym
        self.key = key
        self.pos = pos


def is_intlike(t):
    return isinstance(t, (T.IntType, T.PointerType))


def string_bytes(s):
    return len(s.encode("utf-8", "surrogateescape"))


class Lowerer:
    def __init__(self, program):
        self.p = program
        self.reporter = program.reporter

    def fail(self, pos, message):
        self.reporter.fail(pos, message)

    # ---- functions and probes ------------------------------------------------------------

    def lower_function(self, fs):
        self.reporter.where = fs.pos
        ctx = fs.ctx
        if ctx.failed:
            return [0]
        body = fs.node.body
        try:
            restructure_block(body, self.reporter)
            if ctx.ret is not T.VOID and not always_returns(body):
                self.reporter.error(_end_pos(fs), f"'{fs.name}' must end with 'return VALUE;' on every path "
                                                  f"(VP functions return the value of their last expression)")
            forms = self.block(body.items, ctx, True)
        except CompileError:
            forms = []
        except RecursionError:
            self.reporter.error(fs.pos, f"function '{fs.name}' is nested too deeply to compile")
            forms = []
        return forms or [0]

    def lower_probe(self, probe):
        self.reporter.where = probe.pos
        ctx = probe.ctx
        if ctx.failed:
            return [0]
        body = probe.node.body
        try:
            if isinstance(body, S.Block):
                restructure_block(body, self.reporter)
                forms = self.block(body.items, ctx, True)
            else:
                forms = self.stmt(body, ctx, True)
        except CompileError:
            forms = []
        except RecursionError:
            self.reporter.error(probe.pos, "this probe is nested too deeply to compile")
            forms = []
        return forms or [0]

    # ---- statements ----------------------------------------------------------------------------

    def block(self, items, ctx, tail):
        out = []
        last = len(items) - 1
        for i, s in enumerate(items):
            try:
                out.extend(self.stmt(s, ctx, tail and i == last))
            except CompileError:
                pass
        return out

    def stmt(self, s, ctx, tail):
        if isinstance(s, S.ExprStmt):
            form, _ = self.expr(s.expr, ctx, discard=True)
            if is_const(form) or type(form) is VStr:
                return []
            return [form]
        if isinstance(s, S.Block):
            return self.block(s.items, ctx, tail)
        if isinstance(s, S.If):
            test = self.condition(s.test, ctx)
            then = do(self.stmt(s.then, ctx, tail))
            clauses = [(test, then)]
            if s.other is not None:
                clauses.append((1, do(self.stmt(s.other, ctx, tail))))
            form = cond(clauses)
            return [] if is_const(form) and not tail else [form]
        if isinstance(s, S.Return):
            return self.return_stmt(s, ctx, tail)
        if isinstance(s, S.Declaration):
            return self.local_decl(s, ctx)
        return []  # Empty, Unsupported (reported during resolution)

    def return_stmt(self, s, ctx, tail):
        if not tail:
            self.fail(s.pos, "'return' must be the last statement on its path: VP has no early exit "
                             "(put the rest of the function in an else branch)")
        if ctx.kind == "probe":
            if s.value is not None:
                self.fail(s.value.pos, "a probe does not return a value")
            return []
        ret = ctx.ret
        if s.value is None:
            if ret is not T.VOID:
                self.fail(s.pos, f"'{ctx.name}' must return {T.describe(ret)}")
            return []
        form, t = self.expr(s.value, ctx)
        if ret is T.VOID:
            self.fail(s.value.pos, f"'{ctx.name}' is void and cannot return a value")
        return [self.convert(form, t, ret, s.value.pos, ctx, f"the value returned by '{ctx.name}'")]

    def local_decl(self, decl, ctx):
        out = []
        for d, init in decl.items:
            sym = d.sym
            if sym is None:
                continue
            if sym.static:
                continue
            if init is not None:
                try:
                    form, t = self.expr(init, ctx)
                    value = self.convert(form, t, sym.type, init.pos, ctx, f"the initial value of '{sym.name}'")
                except CompileError:
                    continue
            elif sym.hidden:
                continue  # each call passes a fresh 0 or ""
            else:
                value = VStr("") if isinstance(sym.type, T.StringType) else 0
            out.append(["setstr" if isinstance(sym.type, T.StringType) else "setint", sym, value])
        return out

    def condition(self, e, ctx):
        form, t = self.expr(e, ctx)
        if not is_intlike(t):
            self.fail(e.pos, f"a condition must be an integer or a pointer, not {T.describe(t)}")
        return form

    # ---- conversions --------------------------------------------------------------------------------

    def convert(self, form, t, want, pos, ctx, what):
        """`form` (of type `t`) as a value of type `want`, or an error naming `what`."""
        if isinstance(want, T.StringType):
            return self.as_string(form, t, pos, ctx, what)
        if is_intlike(want):
            if is_intlike(t):
                return form
            self.fail(pos, f"{what} must be {T.describe(want)}, but this is {T.describe(t)}")
        if want is T.VOID:
            return form
        self.fail(pos, f"{what} cannot be {T.describe(want)}")

    def as_string(self, form, t, pos, ctx, what):
        if isinstance(t, T.StringType):
            return form
        if T.is_char_pointer(t):
            return self.guest_string(form, pos, ctx)
        self.fail(pos, f"{what} must be a string, but this is {T.describe(t)}")

    def as_int(self, form, t, pos, what):
        if is_intlike(t):
            return form
        self.fail(pos, f"{what} must be an integer, but this is {T.describe(t)}")

    def temp(self):
        if self.p.temp is None:
            sym = Sym("var", "_tmp", T.STRING, (0, 1, 1))
            self.p.temp = sym
        return self.p.temp

    def guest_string(self, addr, pos, ctx):
        model = ctx.model
        if model.accessor != "getguest":
            self.fail(pos, f"cannot read a string from guest memory under memmodel {model.name} "
                           f"(getgueststr reads guest linear memory)")
        tmp = self.temp()
        return ["do", ["getgueststr", tmp, addr], tmp]

    # ---- expressions ----------------------------------------------------------------------------------

    def expr(self, e, ctx, discard=False):
        method = getattr(self, "x_" + type(e).__name__)
        return method(e, ctx, discard)

    def x_IntLit(self, e, ctx, discard):
        text = e.text.lower()
        return (HexInt(e.value) if text.startswith("0x") else e.value), T.VPINT

    def x_StrLit(self, e, ctx, discard):
        value = e.value
        nul = value.find("\0")
        if nul >= 0:
            value = value[:nul]
        if string_bytes(value) > MAX_STRING_BYTES:
            self.fail(e.pos, f"string literal of {string_bytes(value)} bytes; strings are limited to {MAX_STRING_BYTES} bytes")
        return VStr(value), T.STRING

    def x_Name(self, e, ctx, discard):
        sym = e.sym
        if sym is None:
            raise _Quiet("")
        if isinstance(sym, FuncSym):
            self.fail(e.pos, f"'{e.name}' is a function; call it as {e.name}(...)")
        kind = sym.kind
        if kind in ("var", "local", "param"):
            if sym.type is None:
                raise _Quiet("")
            return sym, sym.type
        if kind == "probeparam":
            return f"ARG{sym.index}", sym.type
        if kind == "machine":
            return sym.name, T.VPINT
        if kind == "probename":
            return "PROBENAME", T.STRING
        if kind == "enum":
            return sym.value, T.VPINT
        if kind == "extern":
            return self.load(MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos), ctx)
        if kind == "aggr":
            self.fail(e.pos, f"aggregate '{e.name}' cannot be read; log it with logaggr({e.name})")
        if kind == "bag":
            self.fail(e.pos, f"bag '{e.name}' cannot be read as a whole; read one key with {e.name}[key]")
        if kind == "guestsym":
            self.fail(e.pos, f"unknown name '{e.name}'")
        raise _Quiet("")

    def x_Unary(self, e, ctx, discard):
        o = e.op
        if o == "*":
            return self.load(self.lvalue(e, ctx), ctx)
        if o == "&":
            return self.address_of(e.operand, ctx)
        form, t = self.expr(e.operand, ctx)
        if o == "-":
            self.as_int(form, t, e.operand.pos, "the operand of unary '-'")
            if is_const(form):
                return (-form) & M64, T.VPINT
            return op("-", 0, form), T.VPINT
        if o == "+":
            self.as_int(form, t, e.operand.pos, "the operand of unary '+'")
            return form, T.VPINT
        what = "'!'" if o == "!" else "'~'"
        self.as_int(form, t, e.operand.pos, f"the operand of {what}")
        return op(o, form), T.VPINT

    def x_Binary(self, e, ctx, discard):
        o = e.op
        if o == "+" and self.is_string_expr(e, ctx):
            return self.concat(e, ctx)
        lf, lt = self.expr(e.left, ctx)
        rf, rt = self.expr(e.right, ctx)
        if lt is T.VOID or rt is T.VOID:
            bad = e.left if lt is T.VOID else e.right
            self.fail(bad.pos, "a void function's result has no value")
        if o in ("==", "!=") and (isinstance(lt, T.StringType) or isinstance(rt, T.StringType)):
            a = self.as_string(lf, lt, e.left.pos, ctx, f"the left operand of '{o}'")
            b = self.as_string(rf, rt, e.right.pos, ctx, f"the right operand of '{o}'")
            if type(a) is VStr and type(b) is VStr:
                return int((a == b) == (o == "==")), T.VPINT
            return [o, ["strcmp", a, b], 0], T.VPINT
        if isinstance(lt, T.StringType) or isinstance(rt, T.StringType):
            if o in _COMPARE:
                self.fail(e.pos, f"strings can only be compared with == and !=, not '{o}'")
            bad, bt = (e.left, lt) if isinstance(lt, T.StringType) else (e.right, rt)
            self.fail(bad.pos, f"the operands of '{o}' must be integers, but this is a string")
        self.as_int(lf, lt, e.left.pos, f"the left operand of '{o}'")
        self.as_int(rf, rt, e.right.pos, f"the right operand of '{o}'")
        if o in ("+", "-"):
            return self.additive(o, lf, lt, rf, rt, e)
        if o in ("/", "%") and is_const(rf) and rf == 0:
            self.fail(e.right.pos, "division by zero" if o == "/" else "modulo by zero")
        return op(o, lf, rf), T.VPINT

    def additive(self, o, lf, lt, rf, rt, e):
        lp = isinstance(lt, T.PointerType)
        rp = isinstance(rt, T.PointerType)
        if lp and rp:
            if o == "+":
                self.fail(e.pos, "two pointers cannot be added")
            size = self.elem_size(lt, e.pos)
            diff = op("-", lf, rf)
            return (op("/", diff, size) if size != 1 else diff), T.VPINT
        if lp:
            return op(o, lf, self.scale(rf, self.elem_size(lt, e.pos))), lt
        if rp:
            if o == "-":
                self.fail(e.pos, "an integer minus a pointer is not meaningful")
            return op("+", self.scale(lf, self.elem_size(rt, e.pos)), rf), rt
        return op(o, lf, rf), T.VPINT

    def elem_size(self, pt, pos):
        target = pt.target
        if target is T.VOID:
            return 1  # GNU C: void * arithmetic counts bytes
        if isinstance(target, T.StructType) and not target.complete:
            self.fail(pos, f"pointer arithmetic on a pointer to the incomplete type '{target}'")
        if isinstance(target, (T.StringType, T.FuncType)):
            self.fail(pos, f"pointer arithmetic on a pointer to {T.describe(target)}")
        return max(target.size, 1)

    @staticmethod
    def scale(form, size):
        if size == 1:
            return form
        return op("*", form, size)

    def is_string_expr(self, e, ctx):
        t = self.p.typeof(e, ctx, [], ctx.model)
        return isinstance(t, T.StringType)

    def concat(self, e, ctx):
        parts = []
        stack = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, S.Binary) and node.op == "+" and self.is_string_expr(node, ctx):
                stack.append(node.right)
                stack.append(node.left)
            else:
                parts.append(node)
        forms = []
        for part in parts:
            form, t = self.expr(part, ctx)
            if is_intlike(t):
                self.fail(part.pos, f"cannot add {T.describe(t)} to a string (use sprintf to format numbers)")
            forms.append(self.as_string(form, t, part.pos, ctx, "an operand of string '+'"))
        if all(type(f) is VStr for f in forms):
            value = "".join(forms)
            if string_bytes(value) > MAX_STRING_BYTES:
                self.fail(e.pos, f"this string is {string_bytes(value)} bytes; strings are limited to {MAX_STRING_BYTES} bytes")
            return VStr(value), T.STRING
        if len(forms) + 2 > MAX_ARGS:
            self.fail(e.pos, f"this string concatenation has {len(forms)} parts; at most {MAX_ARGS - 2} are allowed")
        return self.concat_forms(forms, e.pos), T.STRING

    def x_Conditional(self, e, ctx, discard):
        test = self.condition(e.test, ctx)
        af, at = self.expr(e.then, ctx, discard)
        bf, bt = self.expr(e.other, ctx, discard)
        if isinstance(at, T.StringType) or isinstance(bt, T.StringType):
            a = self.as_string(af, at, e.then.pos, ctx, "the first branch of '?:'")
            b = self.as_string(bf, bt, e.other.pos, ctx, "the second branch of '?:'")
            return cond([(test, a), (1, b)]), T.STRING
        if at is T.VOID or bt is T.VOID:
            if not discard:
                self.fail(e.pos, "a void function's result has no value")
            return cond([(test, af), (1, bf)]), T.VOID
        self.as_int(af, at, e.then.pos, "the first branch of '?:'")
        self.as_int(bf, bt, e.other.pos, "the second branch of '?:'")
        return cond([(test, af), (1, bf)]), at if isinstance(at, T.PointerType) else bt

    def x_Cast(self, e, ctx, discard):
        try:
            want = self.p.type_name(e.tname, ctx.model)
        except CompileError:
            raise _Quiet("")
        form, t = self.expr(e.operand, ctx, discard)
        if isinstance(want, T.StringType):
            return self.as_string(form, t, e.operand.pos, ctx, "a value cast to string"), T.STRING
        if want is T.VOID:
            return form, T.VOID
        if isinstance(want, (T.StructType, T.ArrayType, T.AggrType, T.BagType, T.FuncType)):
            self.fail(e.pos, f"cannot cast to {T.describe(want)}")
        if not is_intlike(t):
            self.fail(e.operand.pos, f"cannot cast {T.describe(t)} to '{want}'")
        if isinstance(want, T.IntType) and want.size < 8:
            mask = HexInt((1 << (8 * want.size)) - 1)
            return op("&", form, mask) if not is_const(form) else form & mask, want
        return form, want

    def x_SizeOf(self, e, ctx, discard):
        try:
            if e.tname is not None:
                t = self.p.type_name(e.tname, ctx.model)
            else:
                # The operand is not evaluated; its object type counts (an array is not decayed).
                t = self.p.lvalue_type(e.operand, ctx, [], ctx.model)
            if t is T.VPINT:
                t = T.IntType("long", 8)  # a VP integer value is 8 bytes
            return self.p.size_of(t, e.pos), T.VPINT
        except CompileError:
            raise _Quiet("")

    # ---- memory -------------------------------------------------------------------------------------

    def symbol_address(self, name, pos):
        symbols = self.p.guest_symbols
        if symbols is None:
            self.fail(pos, f"the address of guest symbol '{name}' needs a guest symbol file: "
                           f"compile with -s SYMFILE (/proc/kallsyms format)")
        addr = symbols.get(name)
        if addr is None:
            self.fail(pos, f"unknown guest symbol '{name}' (not in the symbol file)")
        return HexInt(addr)

    def load(self, lv, ctx):
        """Read the object `lv` designates: a masked getguest, or its address for an array."""
        t = lv.type
        if isinstance(t, T.ArrayType):
            return lv.addr, T.PointerType(t.elem, lv.model.ptr_size)
        if isinstance(t, T.StructType):
            self.fail(lv.pos, f"cannot read a whole {t.su} ('{t}') from guest memory; read one of its fields")
        if t is T.VOID:
            self.fail(lv.pos, "cannot read through a void pointer; cast it to a typed pointer first")
        if isinstance(t, (T.StringType, T.FuncType)):
            self.fail(lv.pos, f"cannot read {T.describe(t)} from guest memory")
        if t.size > 8:
            self.fail(lv.pos, f"cannot read an object of {t.size} bytes; reads are at most 8 bytes")
        accessor = lv.model.accessor
        if accessor is None:
            self.fail(lv.pos, f"memmodel {lv.model.name} describes host memory: there is no guest memory to read")
        form = [accessor, lv.addr]
        if t.size < 8:
            # An 8-byte read masked to the object's width (as the reference does for 4-byte variables).
            form = ["&", HexInt((1 << (8 * t.size)) - 1), form]
        return form, t

    def lvalue(self, e, ctx):
        if isinstance(e, S.Name):
            sym = e.sym
            if isinstance(sym, FuncSym):
                self.fail(e.pos, f"'{e.name}' is a function, not a variable")
            kind = sym.kind
            if kind in ("var", "local", "param"):
                if sym.type is None:
                    raise _Quiet("")
                return VarLV(sym, e.pos)
            if kind == "extern":
                return MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos)
            if kind == "aggr":
                return AggrLV(sym, [], e.pos)
            if kind == "probeparam":
                self.fail(e.pos, f"probe argument '{e.name}' (ARG{sym.index}) is read-only")
            if kind in ("machine", "probename"):
                self.fail(e.pos, f"cannot assign to built-in '{e.name}': VProbes variables are read-only")
            if kind == "enum":
                self.fail(e.pos, f"'{e.name}' is a constant")
            if kind == "bag":
                self.fail(e.pos, f"bag '{e.name}' is used one key at a time: {e.name}[key] <- value")
            raise _Quiet("")
        if isinstance(e, S.Unary) and e.op == "*":
            form, t = self.expr(e.operand, ctx)
            if not isinstance(t, T.PointerType):
                self.fail(e.pos, f"only a pointer can be dereferenced, but this is {T.describe(t)}")
            return MemLV(form, t.target, ctx.model, e.pos)
        if isinstance(e, S.Index):
            return self.index_lvalue(e, ctx)
        if isinstance(e, S.Member):
            return self.member_lvalue(e, ctx)
        self.fail(e.pos, "this expression cannot be assigned to or updated")

    def index_lvalue(self, e, ctx):
        base = e.base
        if isinstance(base, S.Name) and isinstance(base.sym, Sym):
            kind = base.sym.kind
            if kind == "aggr":
                return AggrLV(base.sym, e.keys, e.pos)
            if kind == "bag":
                if len(e.keys) != 1:
                    self.fail(e.pos, f"bag '{base.name}' takes one integer key")
                return BagLV(base.sym, e.keys[0], e.pos)
            if kind in ("implicit", "error"):
                raise _Quiet("")
        if len(e.keys) != 1:
            self.fail(e.pos, "an array or pointer takes exactly one index")
        if isinstance(base, (S.Member, S.Name)) or (isinstance(base, S.Unary) and base.op == "*") \
                or isinstance(base, S.Index):
            blv = self.try_mem_lvalue(base, ctx)
        else:
            blv = None
        if blv is not None and isinstance(blv.type, T.ArrayType):
            addr, elem = blv.addr, blv.type.elem
        else:
            form, t = self.expr(base, ctx)
            if isinstance(t, T.StringType):
                self.fail(e.pos, "strings cannot be indexed")
            if not isinstance(t, T.PointerType):
                self.fail(e.pos, f"only arrays and pointers can be indexed, but this is {T.describe(t)}")
            addr, elem = form, t.target
        kf, kt = self.expr(e.keys[0], ctx)
        self.as_int(kf, kt, e.keys[0].pos, "an array index")
        if elem is T.VOID:
            self.fail(e.pos, "cannot index a void pointer")
        size = elem.size
        if isinstance(elem, T.StructType) and not elem.complete:
            self.fail(e.pos, f"cannot index an array of the incomplete type '{elem}'")
        return MemLV(op("+", addr, self.scale(kf, size)), elem, ctx.model, e.pos)

    def try_mem_lvalue(self, e, ctx):
        """The memory object `e` designates, or None if `e` is not in guest memory."""
        if isinstance(e, S.Name):
            sym = e.sym
            if isinstance(sym, Sym) and sym.kind == "extern":
                return MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos)
            return None
        if isinstance(e, (S.Member,)) or (isinstance(e, S.Unary) and e.op == "*"):
            return self.lvalue(e, ctx)
        if isinstance(e, S.Index):
            lv = self.lvalue(e, ctx)
            return lv if isinstance(lv, MemLV) else None
        return None

    def member_lvalue(self, e, ctx):
        if e.arrow:
            form, t = self.expr(e.base, ctx)
            if not isinstance(t, T.PointerType) or not isinstance(t.target, T.StructType):
                self.fail(e.pos, f"'->' needs a pointer to a struct or union, but this is {T.describe(t)}")
            st = t.target
            addr = form
        else:
            blv = self.try_mem_lvalue(e.base, ctx)
            if blv is None or not isinstance(blv.type, T.StructType):
                bt = self.p.typeof(e.base, ctx, [], ctx.model)
                if isinstance(bt, T.PointerType) and isinstance(bt.target, T.StructType):
                    self.fail(e.pos, f"'.' on a pointer: use '->' to reach field '{e.field}'")
                self.fail(e.pos, f"'.' needs a struct or union in guest memory, but this is {T.describe(bt)}")
            st = blv.type
            addr = blv.addr
        if not st.complete:
            self.fail(e.pos, f"'{st}' is incomplete: its fields are not known")
        f = st.fields.get(e.field)
        if f is None:
            self.fail(e.field_pos, f"'{st}' has no field '{e.field}'")
        return MemLV(op("+", addr, f.offset) if f.offset else addr, f.type, ctx.model, e.pos)

    def x_Member(self, e, ctx, discard):
        return self.load(self.member_lvalue(e, ctx), ctx)

    def address_of(self, operand, ctx):
        if isinstance(operand, S.Name):
            sym = operand.sym
            if isinstance(sym, Sym) and sym.kind == "guestsym":
                return self.symbol_address(sym.name, operand.pos), T.PointerType(T.VOID, ctx.model.ptr_size)
            if isinstance(sym, Sym) and sym.kind == "extern":
                return self.symbol_address(sym.name, operand.pos), T.PointerType(sym.type, ctx.model.ptr_size)
            if isinstance(sym, Sym) and sym.kind in ("var", "local", "param", "probeparam", "machine", "probename"):
                self.fail(operand.pos, f"cannot take the address of '{operand.name}': VP variables do not live in guest memory")
            if isinstance(sym, FuncSym):
                self.fail(operand.pos, f"cannot take the address of function '{operand.name}'")
            raise _Quiet("")
        lv = self.lvalue(operand, ctx)
        if not isinstance(lv, MemLV):
            self.fail(operand.pos, "only objects in guest memory have an address")
        return lv.addr, T.PointerType(lv.type, ctx.model.ptr_size)

    # ---- indexing: arrays, aggregates, bags ------------------------------------------------------------------

    def x_Index(self, e, ctx, discard):
        lv = self.index_lvalue(e, ctx)
        if isinstance(lv, AggrLV):
            self.fail(e.pos, f"aggregate '{lv.sym.name}' cannot be read; update it with ++ or <- and log it with logaggr")
        if isinstance(lv, BagLV):
            kf, kt = self.expr(lv.key, ctx)
            self.as_int(kf, kt, lv.key.pos, "a bag key")
            return ["bagremove", lv.sym, kf], T.VPINT
        return self.load(lv, ctx)

    def aggr_keys(self, lv, ctx):
        sym = lv.sym
        ints, strs = [], []
        for k in lv.keys:
            form, t = self.expr(k, ctx)
            if isinstance(t, T.StringType):
                strs.append(form)
            elif T.is_char_pointer(t):
                strs.append(self.guest_string(form, k.pos, ctx))
            elif is_intlike(t):
                ints.append(form)
            else:
                self.fail(k.pos, f"an aggregate key must be an integer or a string, but this is {T.describe(t)}")
        at = sym.type
        if len(ints) + len(strs) > 16:
            self.fail(lv.pos, f"an aggregate has at most 16 keys; this use gives {len(ints) + len(strs)}")
        if at.int_keys is None:
            at.int_keys, at.str_keys = len(ints), len(strs)
            sym.decided = lv.pos
        elif (at.int_keys, at.str_keys) != (len(ints), len(strs)):
            origin = f" (declared at {_where(sym.decided)})" if sym.decided and not sym.implicit else \
                f" (as first used at {_where(sym.decided)})" if sym.decided else ""
            self.fail(lv.pos, f"aggregate '{sym.name}' has {_keys(at.int_keys, at.str_keys)}{origin}, "
                              f"but this use gives {_keys(len(ints), len(strs))}")
        return ints, strs

    # ---- assignment ---------------------------------------------------------------------------------------------------

    def x_Assign(self, e, ctx, discard):
        o = e.op
        if o == "<-":
            lv = self.lvalue(e.target, ctx)
            if isinstance(lv, AggrLV):
                ints, strs = self.aggr_keys(lv, ctx)
                vf, vt = self.expr(e.value, ctx)
                self.as_int(vf, vt, e.value.pos, "the value added to an aggregate")
                return ["aggr", lv.sym, ints, strs, vf], T.VPINT
            if isinstance(lv, BagLV):
                kf, kt = self.expr(lv.key, ctx)
                self.as_int(kf, kt, lv.key.pos, "a bag key")
                vf, vt = self.expr(e.value, ctx)
                self.as_int(vf, vt, e.value.pos, "a bag value")
                return ["baginsert", lv.sym, kf, vf], T.VPINT
            self.fail(e.pos, "'<-' adds to an aggregate (a[keys] <- value) or inserts into a bag (b[key] <- value)")
        lv = self.lvalue(e.target, ctx)
        if isinstance(lv, MemLV):
            self.fail(e.pos, "guest memory is read-only: VProbes never changes guest state")
        if isinstance(lv, (AggrLV, BagLV)):
            what = "aggregate" if isinstance(lv, AggrLV) else "bag"
            hint = "a[keys]++ or a[keys] <- value" if what == "aggregate" else "b[key] <- value"
            self.fail(e.pos, f"a {what} is updated with {hint}, not '{o}'")
        sym = lv.sym
        t = sym.type
        vf, vt = self.expr(e.value, ctx)
        if o != "=":
            bop = o[:-1]
            if isinstance(t, T.StringType):
                if bop != "+":
                    self.fail(e.pos, f"'{o}' does not apply to strings (only '+=' does)")
                b = self.as_string(vf, vt, e.value.pos, ctx, "the value appended to a string")
                value = self.concat_forms([sym, b], e.pos)
            else:
                self.as_int(vf, vt, e.value.pos, f"the right operand of '{o}'")
                if bop in ("+", "-"):
                    value, _ = self.additive(bop, sym, t, vf, vt, e)
                else:
                    if bop in ("/", "%") and is_const(vf) and vf == 0:
                        self.fail(e.value.pos, "division by zero")
                    value = op(bop, sym, vf)
        else:
            if discard and isinstance(t, T.StringType):
                direct = self.direct_string_update(sym, vf, vt, ctx)
                if direct is not None:
                    return direct, t
            value = self.assigned_value(sym, vf, vt, e.value.pos, ctx)
        head = "setstr" if isinstance(t, T.StringType) else "setint"
        return [head, sym, value], t

    def direct_string_update(self, sym, vf, vt, ctx):
        """`s = guest_chars` and `s = a + b` as a statement: write `s` directly, no temporary."""
        if T.is_char_pointer(vt) and ctx.model.accessor == "getguest":
            return ["getgueststr", sym, vf]
        if type(vf) is list and len(vf) == 3 and vf[0] == "do" and vf[2] is self.p.temp \
                and type(vf[1]) is list and vf[1][0] in ("sprintf", "getgueststr") and vf[1][1] is self.p.temp:
            return [vf[1][0], sym] + vf[1][2:]
        return None

    def assigned_value(self, sym, vf, vt, pos, ctx):
        t = sym.type
        if vt is T.VOID:
            self.fail(pos, "a void function's result has no value")
        if isinstance(t, T.StringType):
            if isinstance(vt, T.StringType) or T.is_char_pointer(vt):
                return self.as_string(vf, vt, pos, ctx, "")
            self.fail(pos, f"cannot assign {T.describe(vt)} to string '{sym.name}'" + self.origin(sym))
        if is_intlike(t):
            if is_intlike(vt):
                return vf
            self.fail(pos, f"cannot assign {T.describe(vt)} to '{sym.name}', which is {T.describe(t)}" + self.origin(sym))
        self.fail(pos, f"'{sym.name}' cannot be assigned")

    @staticmethod
    def origin(sym):
        if sym.implicit and sym.decided is not None:
            return f" (its type comes from the assignment at {_where(sym.decided)})"
        if sym.pos is not None and sym.kind in ("var", "local", "param"):
            return f" (declared at {_where(sym.pos)})"
        return ""

    def concat_forms(self, forms, pos):
        tmp = self.temp()
        fmt = []
        args = []
        for f in forms:
            if type(f) is VStr:
                fmt.append(f.replace("%", "%%"))
            else:
                fmt.append("%s")
                args.append(f)
        if len(args) == 1 and fmt == ["%s"]:
            return args[0]
        return ["do", ["sprintf", tmp, VStr("".join(fmt))] + args, tmp]

    def x_IncDec(self, e, ctx, discard):
        lv = self.lvalue(e.target, ctx)
        if isinstance(lv, AggrLV):
            if e.op == "--":
                self.fail(e.pos, "aggregates count up: use a[keys]++ or a[keys] <- value")
            ints, strs = self.aggr_keys(lv, ctx)
            return ["aggr", lv.sym, ints, strs, 1], T.VPINT
        if isinstance(lv, MemLV):
            self.fail(e.pos, "guest memory is read-only: VProbes never changes guest state")
        if isinstance(lv, BagLV):
            self.fail(e.pos, "bags are updated with b[key] <- value")
        sym = lv.sym
        t = sym.type
        if not is_intlike(t):
            self.fail(e.pos, f"'{e.op}' needs an integer or a pointer, but '{sym.name}' is {T.describe(t)}")
        step = self.elem_size(t, e.pos) if isinstance(t, T.PointerType) else 1
        bop = "+" if e.op == "++" else "-"
        update = ["setint", sym, op(bop, sym, step)]
        if e.prefix or discard:
            return update, t
        return op("-" if bop == "+" else "+", update, step), t

    # ---- calls -------------------------------------------------------------------------------------------------------

    def x_Call(self, e, ctx, discard):
        target = e.sym
        if target is None:
            raise _Quiet("")
        if len(e.args) > MAX_ARGS:
            self.fail(e.pos, f"too many arguments ({len(e.args)}); at most {MAX_ARGS} are allowed")
        if isinstance(target, FuncSym):
            return self.user_call(e, target, ctx, discard)
        return getattr(self, "b_" + target)(e, ctx, discard)

    def user_call(self, e, fs, ctx, discard):
        params = fs.type.params
        if len(e.args) != len(params):
            self.fail(e.pos, f"'{fs.name}' takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                             f"but {len(e.args)} {'are' if len(e.args) != 1 else 'is'} given")
        if fs.ctx is None:
            self.fail(e.pos, f"function '{fs.name}' is declared but never defined")
        args = []
        for (pname, ptype, _), a in zip(params, e.args):
            form, t = self.expr(a, ctx)
            args.append(self.convert(form, t, ptype, a.pos, ctx, f"argument '{pname}' of '{fs.name}'"))
        if fs.recursive:
            for local in fs.ctx.locals:
                if local.hidden:
                    args.append(VStr("") if isinstance(local.type, T.StringType) else 0)
        return [fs] + args, fs.type.ret

    def arity(self, e, low, high, usage):
        n = len(e.args)
        if n < low or (high is not None and n > high):
            self.fail(e.pos, f"wrong number of arguments: {usage}")

    def string_dest(self, a, ctx, what):
        if isinstance(a, S.Name) and isinstance(a.sym, Sym) and a.sym.kind in ("var", "local", "param"):
            if a.sym.type is None:
                raise _Quiet("")
            if not isinstance(a.sym.type, T.StringType):
                self.fail(a.pos, f"{what} must be a string variable, but '{a.name}' is {T.describe(a.sym.type)}")
            return a.sym
        self.fail(a.pos, f"{what} must be a string variable")

    def int_dest(self, a, ctx, what):
        if isinstance(a, S.Name) and isinstance(a.sym, Sym) and a.sym.kind in ("var", "local", "param"):
            if a.sym.type is None:
                raise _Quiet("")
            if not is_intlike(a.sym.type):
                self.fail(a.pos, f"{what} must be an integer variable, but '{a.name}' is {T.describe(a.sym.type)}")
            return a.sym
        self.fail(a.pos, f"{what} must be an integer variable")

    def format_args(self, name, fmt_node, rest, ctx):
        ff, ft = self.expr(fmt_node, ctx)
        fmt = self.as_string(ff, ft, fmt_node.pos, ctx, f"the format of {name}")
        if type(fmt) is VStr:
            kinds = format_kinds(fmt)
            if isinstance(kinds, str):
                self.fail(fmt_node.pos, f"bad {name} format: {kinds}")
            if len(kinds) != len(rest):
                self.fail(fmt_node.pos, f"the {name} format wants {len(kinds)} argument{'s' if len(kinds) != 1 else ''}, "
                                        f"but {len(rest)} {'are' if len(rest) != 1 else 'is'} given")
        else:
            kinds = [None] * len(rest)
        out = [fmt]
        for n, (kind, a) in enumerate(zip(kinds, rest), 1):
            form, t = self.expr(a, ctx)
            what = f"{name} argument {n}"
            if kind == "str":
                out.append(self.as_string(form, t, a.pos, ctx, f"{what} (for a %s directive)"))
            elif kind == "int":
                if not is_intlike(t):
                    self.fail(a.pos, f"{what} must be an integer (for the format's directive {n}), but this is {T.describe(t)}")
                out.append(form)
            else:
                if not (is_intlike(t) or isinstance(t, T.StringType)):
                    self.fail(a.pos, f"{what} must be an integer or a string, but this is {T.describe(t)}")
                out.append(form)
        return out

    def b_printf(self, e, ctx, discard):
        self.arity(e, 1, None, "printf(FORMAT, ARGS...)")
        return ["printf"] + self.format_args("printf", e.args[0], e.args[1:], ctx), T.VPINT

    def b_sprintf(self, e, ctx, discard):
        self.arity(e, 2, None, "sprintf(STRING-VARIABLE, FORMAT, ARGS...)")
        dest = self.string_dest(e.args[0], ctx, "the destination of sprintf")
        return ["sprintf", dest] + self.format_args("sprintf", e.args[1], e.args[2:], ctx), T.VPINT

    def b_logstr(self, e, ctx, discard):
        self.arity(e, 1, 1, "logstr(STRING)")
        form, t = self.expr(e.args[0], ctx)
        return ["logstr", self.as_string(form, t, e.args[0].pos, ctx, "the argument of logstr")], T.VPINT

    def b_logint(self, e, ctx, discard):
        self.arity(e, 1, 1, "logint(INTEGER)")
        form, t = self.expr(e.args[0], ctx)
        return ["logint", self.as_int(form, t, e.args[0].pos, "the argument of logint")], T.VPINT

    def b_strcmp(self, e, ctx, discard):
        self.arity(e, 2, 2, "strcmp(STRING, STRING)")
        forms = []
        for a in e.args:
            form, t = self.expr(a, ctx)
            forms.append(self.as_string(form, t, a.pos, ctx, "an argument of strcmp"))
        return ["strcmp"] + forms, T.VPINT

    def b_getguest(self, e, ctx, discard):
        self.arity(e, 1, 1, 'getguest(ADDRESS) or getguest("SYMBOL")')
        form, t = self.expr(e.args[0], ctx)
        if not (is_intlike(t) or isinstance(t, T.StringType)):
            self.fail(e.args[0].pos, f"getguest takes an address or a symbol name, not {T.describe(t)}")
        return ["getguest", form], T.VPINT

    def b_getguestphys(self, e, ctx, discard):
        self.arity(e, 1, 1, "getguestphys(PHYSICAL-ADDRESS)")
        form, t = self.expr(e.args[0], ctx)
        return ["getguestphys", self.as_int(form, t, e.args[0].pos, "the address given to getguestphys")], T.VPINT

    def b_getgueststr(self, e, ctx, discard):
        self.arity(e, 2, 3, 'getgueststr(STRING-VARIABLE, ADDRESS), getgueststr(STRING-VARIABLE, MAX-LENGTH, ADDRESS) '
                            'or getgueststr(STRING-VARIABLE, "SYMBOL" [, OFFSET])')
        dest = self.string_dest(e.args[0], ctx, "the destination of getgueststr")
        rest = []
        for i, a in enumerate(e.args[1:]):
            form, t = self.expr(a, ctx)
            if isinstance(t, T.StringType):
                if i != 0:
                    self.fail(a.pos, "only the second argument of getgueststr may be a symbol name")
            elif not is_intlike(t):
                self.fail(a.pos, f"getgueststr takes addresses, lengths and symbol names, not {T.describe(t)}")
            rest.append(form)
        return ["getgueststr", dest] + rest, T.VPINT

    def b_gueststack(self, e, ctx, discard):
        self.arity(e, 1, 1, "gueststack(STRING-VARIABLE)")
        return ["gueststack", self.string_dest(e.args[0], ctx, "the destination of gueststack")], T.VPINT

    def b_getsystemtime(self, e, ctx, discard):
        self.arity(e, 0, 1, "getsystemtime() or getsystemtime(INTEGER-VARIABLE)")
        if e.args:
            return ["getsystemtime", self.int_dest(e.args[0], ctx, "the destination of getsystemtime")], T.VPINT
        return ["getsystemtime"], T.VPINT

    def _offset(self, e, ctx, name):
        self.arity(e, 1, 1, f'{name}("FUNCTION")')
        form, t = self.expr(e.args[0], ctx)
        return [name, self.as_string(form, t, e.args[0].pos, ctx, f"the function named to {name}")], T.VPINT

    def b_offatret(self, e, ctx, discard):
        return self._offset(e, ctx, "offatret")

    def b_offatstrcpy(self, e, ctx, discard):
        return self._offset(e, ctx, "offatstrcpy")

    def b_offatseg(self, e, ctx, discard):
        return self._offset(e, ctx, "offatseg")

    def aggregate_arg(self, a, what):
        if isinstance(a, S.Name) and isinstance(a.sym, Sym):
            if a.sym.kind == "aggr":
                return a.sym
            if a.sym.kind in ("implicit", "error"):
                raise _Quiet("")
        self.fail(a.pos, f"{what} takes an aggregate")

    def b_logaggr(self, e, ctx, discard):
        self.arity(e, 1, 1, "logaggr(AGGREGATE)")
        return ["logaggr", self.aggregate_arg(e.args[0], "logaggr")], T.VPINT

    def b_clearaggr(self, e, ctx, discard):
        self.arity(e, 1, 1, "clearaggr(AGGREGATE)")
        return ["clearaggr", self.aggregate_arg(e.args[0], "clearaggr")], T.VPINT

    def bag_arg(self, a, what):
        if isinstance(a, S.Name) and isinstance(a.sym, Sym):
            if a.sym.kind == "bag":
                return a.sym
            if a.sym.kind in ("implicit", "error"):
                raise _Quiet("")
        self.fail(a.pos, f"{what} takes a bag")

    def b_baginsert(self, e, ctx, discard):
        self.arity(e, 3, 3, "baginsert(BAG, KEY, VALUE)")
        bag = self.bag_arg(e.args[0], "baginsert")
        out = ["baginsert", bag]
        for a, what in zip(e.args[1:], ("a bag key", "a bag value")):
            form, t = self.expr(a, ctx)
            out.append(self.as_int(form, t, a.pos, what))
        return out, T.VPINT

    def b_bagremove(self, e, ctx, discard):
        self.arity(e, 2, 2, "bagremove(BAG, KEY)")
        bag = self.bag_arg(e.args[0], "bagremove")
        form, t = self.expr(e.args[1], ctx)
        return ["bagremove", bag, self.as_int(form, t, e.args[1].pos, "a bag key")], T.VPINT

    def b_assert(self, e, ctx, discard):
        self.arity(e, 1, None, "assert(CONDITION [, FORMAT, ARGS...])")
        test = self.condition(e.args[0], ctx)
        fid, line, col = e.pos
        where = f"{self.reporter.files.names[fid]}:{line}:{col}"
        if len(e.args) > 1:
            parts = self.format_args("assert", e.args[1], e.args[2:], ctx)
            if type(parts[0]) is VStr:
                message = ["printf", VStr(f"assertion failed at {where}: " + parts[0] + "\n")] + parts[1:]
            else:
                message = do([["printf", VStr(f"assertion failed at {where}: ")], ["printf"] + parts,
                              ["printf", VStr("\n")]])
        else:
            message = ["printf", VStr(f"assertion failed at {where}\n")]
        return cond([(op("!", test), do([message, exit_form()]))]), T.VPINT

    def b_exit(self, e, ctx, discard):
        self.arity(e, 0, 0, "exit()")
        return exit_form(), T.VOID


def exit_form():
    """VP cannot unload itself; exit() aborts the current firing with a fault that names it."""
    return ["getguest", VStr("exit()")]


def format_kinds(fmt):
    """The argument kinds ("int"/"str") a printf format takes, or an error message."""
    kinds = []
    i, n = 0, len(fmt)
    while True:
        j = fmt.find("%", i)
        if j < 0:
            return kinds
        k = j + 1
        if k >= n:
            return "'%' at the end of the format string (write %% for a percent sign)"
        while k < n and fmt[k] in "-+ #0":
            k += 1
        if k < n and fmt[k] == "*":
            kinds.append("int")
            k += 1
        else:
            while k < n and fmt[k].isdigit():
                k += 1
        if k < n and fmt[k] == ".":
            k += 1
            if k < n and fmt[k] == "*":
                kinds.append("int")
                k += 1
            else:
                while k < n and fmt[k].isdigit():
                    k += 1
        if fmt.startswith(("hh", "ll"), k):
            k += 2
        elif k < n and fmt[k] in "hlqjztL":
            k += 1
        if k >= n:
            return f"incomplete directive '{fmt[j:]}' at the end of the format string"
        conv = fmt[k]
        if conv == "%":
            if k != j + 1:
                return f"bad directive '{fmt[j:k + 1]}'"
        elif conv == "s":
            kinds.append("str")
        elif conv in "diuxXocp":
            kinds.append("int")
        else:
            why = " (VP has no floating point)" if conv in "eEfFgGaA" else \
                " ('%n' would write to memory)" if conv == "n" else ""
            return f"unknown conversion '{fmt[j:k + 1]}'{why}"
        i = k + 1


def _keys(i, s):
    return f"{i} integer key{'s' if i != 1 else ''} and {s} string key{'s' if s != 1 else ''}"


# ---- early returns ---------------------------------------------------------------------------------------

def always_returns(s):
    if isinstance(s, S.Return):
        return True
    if isinstance(s, S.Block):
        return bool(s.items) and always_returns(s.items[-1])
    if isinstance(s, S.If):
        return s.other is not None and always_returns(s.then) and always_returns(s.other)
    return False


def restructure_block(block, reporter):
    """Rewrite `if (c) return a; rest` as `if (c) return a; else { rest }`, in every block.

    VP has no early exit, so a return must end its path; this lets the common
    C idiom of returning early compile.  Statements after a return that ends
    every path are unreachable (a warning)."""
    block.items = _restructure(block.items, reporter)


def _restructure(items, reporter):
    out = []
    n = len(items)
    for i, s in enumerate(items):
        _restructure_inner(s, reporter)
        if i < n - 1:
            if isinstance(s, S.Return):
                reporter.warning(items[i + 1].pos, "unreachable code after 'return'")
                out.append(s)
                return out
            if isinstance(s, S.If):
                then_ret = always_returns(s.then)
                other_ret = s.other is not None and always_returns(s.other)
                if then_ret and other_ret:
                    reporter.warning(items[i + 1].pos, "unreachable code: every path above returns")
                    out.append(s)
                    return out
                if then_ret or other_ret:
                    rest = items[i + 1:]
                    if then_ret:
                        other = _restructure(([s.other] if s.other is not None else []) + rest, reporter)
                        s = S.If(s.pos, s.test, s.then, S.Block(rest[0].pos, other))
                    else:
                        s = S.If(s.pos, s.test, S.Block(s.then.pos, _restructure([s.then] + rest, reporter)), s.other)
                    out.append(s)
                    return out
        out.append(s)
    return out


def _restructure_inner(s, reporter):
    if isinstance(s, S.Block):
        s.items = _restructure(s.items, reporter)
    elif isinstance(s, S.If):
        _restructure_inner(s.then, reporter)
        if s.other is not None:
            _restructure_inner(s.other, reporter)


def _end_pos(fs):
    body = fs.node.body
    if body.items:
        return body.items[-1].pos
    return body.pos
