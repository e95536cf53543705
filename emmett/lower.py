"""Lowering: type-check every function and probe body and turn it into VP forms.

C-like memory access becomes address arithmetic and guest reads:
`p->pid` (a 4-byte field at offset 0x2bc) becomes
`(& 0xffffffff (getguest (+ p 700)))`; arrays and pointers scale by the
element size; a `char *` or `char[]` used as a string becomes a string read
with `getgueststr`; `&symbol` is a guest symbol's address from the symbol file.
Strings: `+` becomes `sprintf`, `==`/`!=` become `strcmp`.  Statements become
`cond`, `do` (loops unrolled, `loops.py`), `setint`/`setstr`, `aggr`, `baginsert`/`bagremove`.

Each expression lowers to its VP form; its type is the one `exprtypes`
stored on the node, which lowering checks against what each construct needs.
Every VP list a statement or an expression lowers to is tagged with the
node's position (`origins`: the innermost construct wins), for the source
map the output carries; every aggregate update of an emitted body is
recorded (`aggregates`, `aggr_info.py`) for the printers.
A problem raises `CompileError` after reporting it, abandoning that statement;
lowering goes on with the next one, so one run reports the errors of every
statement.  Calls and builtins are lowered in `lower_calls`.
"""

from . import ctype as T
from . import syntax as S
from .aggr_info import AggregateUses
from .diagnostics import CompileError
from .histograms import Histograms, is_aggregating_call
from .language import DEST_BUILTINS, MASK64, MAX_ARGS, MAX_KEYS, MAX_STRING_BYTES
from .loops import LoopLowering
from .lower_calls import CallLowering, Quiet, is_intlike
from .returns import always_returns, end_of_body, restructure_block
from .symbols import FuncSym, Sym, where
from .vp import HexInt, OpChain, VStr, cond, do, is_const, op

_COMPARE = frozenset("== != < > <= >=".split())


class MemLV:
    __slots__ = ("addr", "type", "model", "pos", "field")

    def __init__(self, addr, type_, model, pos, field=None):
        self.addr = addr
        self.type = type_
        self.model = model
        self.pos = pos
        self.field = field  # a bit-field: its T.Field (the bits of the unit at `addr` it holds)


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


def string_bytes(s):
    return len(s.encode("utf-8", "surrogateescape"))


class Lowerer(CallLowering, LoopLowering):
    def __init__(self, program):
        self.p = program
        self.reporter = program.reporter
        # id(VP list) -> (Emmett position, the list: kept alive so that its id stays its own).
        self.origins = {}
        self.aggregates = AggregateUses(program.reporter.files)
        self.probe_point = None  # the VP point of the probe being lowered (None in a function)
        self.emitted = True  # whether the body being lowered is emitted (its aggregate updates count)
        self.histograms = Histograms(self)
        self._expr = S.dispatch_table(self, "x_", S.EXPRESSIONS)
        self._stmt = S.dispatch_table(self, "s_", S.STATEMENTS)
        self._stmt[type(None)] = self.s_Empty  # a statement the parser skipped after a syntax error
        self._lvalue = S.dispatch_table(self, "lv_", S.EXPRESSIONS, self.lv_other)
        CallLowering.__init__(self)
        LoopLowering.__init__(self)

    def fail(self, pos, message):
        self.reporter.fail(pos, message)

    # ---- functions and probes ------------------------------------------------------------

    def lower_function(self, fs):
        self.reporter.where = fs.pos
        self.probe_point, self.emitted = None, fs.reachable
        ctx = fs.ctx
        if ctx.failed:
            return [0]
        body = fs.node.body
        try:
            restructure_block(body, self.reporter)
            if ctx.ret is not T.VOID and not always_returns(body):
                self.reporter.error(end_of_body(body), f"'{fs.name}' must end with 'return VALUE;' on every path "
                                                  f"(VP functions return the value of their last expression)")
            forms = self.block(body.items, ctx, True)
        except CompileError:
            forms = []
        except RecursionError:
            self.reporter.error(fs.pos, f"function '{fs.name}' is nested too deeply to compile")
            forms = []
        return forms or [0]

    def lower_probe(self, probe, probe_point):
        self.reporter.where = probe.pos
        self.probe_point, self.emitted = probe_point, True
        ctx = probe.ctx
        if ctx.failed:
            return [0]
        body = probe.node.body
        try:
            if type(body) is S.Block:
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
            skip = self.after_jump(s) if i < last else None
            if skip is not None:  # a break or continue above: the rest runs only if none was taken
                rest = do(self.block(items[i + 1:], ctx, tail))
                if not is_const(rest):
                    out.append(cond([(op("!", skip), rest)]))
                break
        return out

    def stmt(self, s, ctx, tail):
        """The VP forms of statement `s` (`tail`: it ends its function, so it may return)."""
        forms = self._stmt[type(s)](s, ctx, tail)
        if s is not None:
            for form in forms:
                self.tag(form, s.pos)
        return forms

    def tag(self, form, pos, replace=False):
        """Record that VP list `form` comes from Emmett position `pos`, unless an inner construct
        already said where it comes from (or `replace`)."""
        if type(form) is list and (replace or id(form) not in self.origins):
            self.origins[id(form)] = (pos, form)
        return form

    def s_ExprStmt(self, s, ctx, tail):
        form = self.expr(s.expr, ctx, discard=True)
        if is_const(form) or type(form) is VStr:
            return []
        return [form]

    def s_Block(self, s, ctx, tail):
        return self.block(s.items, ctx, tail)

    def s_If(self, s, ctx, tail):
        test = self.condition(s.test, ctx)
        then = do(self.stmt(s.then, ctx, tail))
        clauses = [(test, then)]
        if s.other is not None:
            clauses.append((1, do(self.stmt(s.other, ctx, tail))))
        form = cond(clauses)
        return [] if is_const(form) and not tail else [form]

    def s_Empty(self, s, ctx, tail):
        return []

    s_Unsupported = s_Empty  # reported during resolution

    def s_Return(self, s, ctx, tail):
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
        form = self.expr(s.value, ctx)
        t = s.value.type
        if ret is T.VOID:
            self.fail(s.value.pos, f"'{ctx.name}' is void and cannot return a value")
        return [self.convert(form, t, ret, s.value, ctx, f"the value returned by '{ctx.name}'")]

    def s_Declaration(self, decl, ctx, tail):
        out = []
        for d, init in decl.items:
            sym = d.sym
            if sym is None:
                continue
            if sym.static:
                continue
            if init is not None:
                try:
                    form = self.expr(init, ctx)
                    t = init.type
                    value = self.convert(form, t, sym.type, init, ctx, f"the initial value of '{sym.name}'")
                except CompileError:
                    continue
            elif sym.hidden:
                continue  # each call passes a fresh 0 or ""
            else:
                value = VStr("") if isinstance(sym.type, T.StringType) else 0
            out.append(["setstr" if isinstance(sym.type, T.StringType) else "setint", sym, value])
        return out

    def condition(self, e, ctx):
        form = self.expr(e, ctx)
        t = e.type
        if not is_intlike(t):
            self.fail(e.pos, f"a condition must be an integer or a pointer, not {T.describe(t)}")
        return form

    # ---- conversions --------------------------------------------------------------------------------

    def convert(self, form, t, want, pos, ctx, what):
        """`form` (of type `t`) as a value of type `want`, or an error naming `what` at `pos` (a
        position, or the expression node whose range the message covers, as `as_string` and `as_int`)."""
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
        """The VP form of expression `e` (`discard`: its value is not used)."""
        return self.tag(self._expr[type(e)](e, ctx, discard), e.pos)

    def x_IntLit(self, e, ctx, discard):
        text = e.text.lower()
        return HexInt(e.value) if text.startswith("0x") else e.value

    def x_StrLit(self, e, ctx, discard):
        value = e.value
        nul = value.find("\0")
        if nul >= 0:
            value = value[:nul]
        if string_bytes(value) > MAX_STRING_BYTES:
            self.fail(e.pos, f"string literal of {string_bytes(value)} bytes; strings are limited to {MAX_STRING_BYTES} bytes")
        return VStr(value)

    def x_Name(self, e, ctx, discard):
        sym = e.sym
        if sym is None:
            raise Quiet("")
        if isinstance(sym, FuncSym):
            args = "..." if sym.type.params else ""
            self.fail(e.pos, f"'{e.name}' is a function; call it: {e.name}({args})")
        kind = sym.kind
        if kind in ("var", "local", "param"):
            if sym.type is None:
                raise Quiet("")
            return sym
        if kind == "probeparam":
            return f"ARG{sym.index}"
        if kind == "builtin":
            return sym.name
        if kind == "enum":
            return sym.value
        if kind == "extern":
            return self.load(MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos))
        if kind == "aggr":
            self.fail(e.pos, f"aggregate '{e.name}' cannot be read; log it with logaggr({e.name})")
        if kind == "bag":
            self.fail(e.pos, f"bag '{e.name}' cannot be read as a whole; read one key with {e.name}[key]")
        if kind == "guestsym":
            self.fail(e.pos, f"unknown name '{e.name}'")
        raise Quiet("")

    def x_Unary(self, e, ctx, discard):
        o = e.op
        if o == "*":
            return self.load(self.lvalue(e, ctx))
        if o == "&":
            return self.address_of(e.operand, ctx)
        form = self.expr(e.operand, ctx)
        t = e.operand.type
        if o == "-":
            self.as_int(form, t, e.operand, "the operand of unary '-'")
            if is_const(form):
                return (-form) & MASK64
            return op("-", 0, form)
        if o == "+":
            self.as_int(form, t, e.operand, "the operand of unary '+'")
            return form
        what = "'!'" if o == "!" else "'~'"
        self.as_int(form, t, e.operand, f"the operand of {what}")
        return op(o, form)

    def x_Binary(self, e, ctx, discard):
        if e.op == "+" and isinstance(e.type, T.StringType):
            return self.concat(e, ctx)
        # A left-leaning chain (a + b - c * d ...) is lowered in a loop, operand by
        # operand, into one OpChain: time linear in its length, no deep recursion.
        spine = []
        n = e
        while type(n) is S.Binary and not (n.op == "+" and isinstance(n.type, T.StringType)):
            spine.append(n)
            n = n.left
        chain = OpChain(self.expr(n, ctx))
        for node in reversed(spine):
            self.binary(node, chain, self.expr(node.right, ctx), ctx)
            # Each node's form comes from the node, as if lowered on its own (a list the
            # chain extended in place stands for the new node now).
            self.tag(chain.form, node.pos, replace=chain.extended)
        return chain.form

    def binary(self, e, chain, rf, ctx):
        """Check binary node `e` and combine its operands' forms: `chain.form` (the left) and `rf`."""
        o = e.op
        lf = chain.form
        lt = e.left.type
        rt = e.right.type
        if lt is T.VOID or rt is T.VOID:
            bad = e.left if lt is T.VOID else e.right
            self.fail(bad, "a void function's result has no value")
        if o in ("==", "!=") and (isinstance(lt, T.StringType) or isinstance(rt, T.StringType)):
            a = self.as_string(lf, lt, e.left, ctx, f"the left operand of '{o}'")
            b = self.as_string(rf, rt, e.right, ctx, f"the right operand of '{o}'")
            if type(a) is VStr and type(b) is VStr:
                chain.replace(int((a == b) == (o == "==")))
            else:
                chain.replace([o, ["strcmp", a, b], 0])
            return
        if isinstance(lt, T.StringType) or isinstance(rt, T.StringType):
            if o in _COMPARE:
                self.fail(e.pos, f"strings can only be compared with == and !=, not '{o}'")
            bad = e.left if isinstance(lt, T.StringType) else e.right
            self.fail(bad, f"the operands of '{o}' must be integers, but this is a string")
        self.as_int(lf, lt, e.left, f"the left operand of '{o}'")
        self.as_int(rf, rt, e.right, f"the right operand of '{o}'")
        if o in ("+", "-"):
            self.additive(o, chain, lt, rf, rt, e)
            return
        if o in ("/", "%") and is_const(rf) and rf == 0:
            self.fail(e.right.pos, "division by zero" if o == "/" else "modulo by zero")
        chain.apply(o, rf)

    def additive(self, o, chain, lt, rf, rt, e):
        """`chain.form o rf` for `+`/`-`, with C's pointer arithmetic (offsets scaled by the element size)."""
        lp = isinstance(lt, T.PointerType)
        rp = isinstance(rt, T.PointerType)
        if lp and rp:
            if o == "+":
                self.fail(e.pos, "two pointers cannot be added")
            size = self.elem_size(lt, e.pos)
            diff = op("-", chain.form, rf)
            chain.replace(op("/", diff, size) if size != 1 else diff)
        elif lp:
            chain.apply(o, self.scale(rf, self.elem_size(lt, e.pos)))
        elif rp:
            if o == "-":
                self.fail(e.pos, "an integer minus a pointer is not meaningful")
            chain.replace(op("+", self.scale(chain.form, self.elem_size(rt, e.pos)), rf))
        else:
            chain.apply(o, rf)

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

    def concat(self, e, ctx):
        """A string `+` chain: one sprintf into the temporary string (or one literal)."""
        parts = []
        stack = [e]
        while stack:
            node = stack.pop()
            if type(node) is S.Binary and node.op == "+" and isinstance(node.type, T.StringType):
                stack.append(node.right)
                stack.append(node.left)
            else:
                parts.append(node)
        forms = []
        for part in parts:
            form = self.expr(part, ctx)
            t = part.type
            if is_intlike(t):
                self.fail(part, f"cannot add {T.describe(t)} to a string (use sprintf to format numbers)")
            forms.append(self.as_string(form, t, part, ctx, "an operand of string '+'"))
        if all(type(f) is VStr for f in forms):
            value = "".join(forms)
            if string_bytes(value) > MAX_STRING_BYTES:
                self.fail(e.pos, f"this string is {string_bytes(value)} bytes; strings are limited to {MAX_STRING_BYTES} bytes")
            return VStr(value)
        if len(forms) + 2 > MAX_ARGS:
            self.fail(e.pos, f"this string concatenation has {len(forms)} parts; at most {MAX_ARGS - 2} are allowed")
        return self.concat_forms(forms, e.pos)

    def x_Comma(self, e, ctx, discard):
        """Each expression in turn, for its effects; the value is the last one's (VP's `do`)."""
        *effects, last = e.exprs
        return ["do", *(self.expr(x, ctx, True) for x in effects), self.expr(last, ctx, discard)]

    def x_Conditional(self, e, ctx, discard):
        test = self.condition(e.test, ctx)
        af = self.expr(e.then, ctx, discard)
        at = e.then.type
        bf = self.expr(e.other, ctx, discard)
        bt = e.other.type
        if isinstance(at, T.StringType) or isinstance(bt, T.StringType):
            a = self.as_string(af, at, e.then, ctx, "the first branch of '?:'")
            b = self.as_string(bf, bt, e.other, ctx, "the second branch of '?:'")
            return cond([(test, a), (1, b)])
        if at is T.VOID or bt is T.VOID:
            if not discard:
                self.fail(e.pos, "a void function's result has no value")
            return cond([(test, af), (1, bf)])
        self.as_int(af, at, e.then, "the first branch of '?:'")
        self.as_int(bf, bt, e.other, "the second branch of '?:'")
        return cond([(test, af), (1, bf)])

    def x_Cast(self, e, ctx, discard):
        try:
            want = self.p.layout.type_name(e.tname, ctx.model)
        except CompileError:
            raise Quiet("")
        form = self.expr(e.operand, ctx, discard)
        t = e.operand.type
        if isinstance(want, T.StringType):
            return self.as_string(form, t, e.operand, ctx, "a value cast to string")
        if want is T.VOID:
            return form
        if isinstance(want, (T.StructType, T.ArrayType, T.AggrType, T.BagType, T.FuncType)):
            self.fail(e.pos, f"cannot cast to {T.describe(want)}")
        if not is_intlike(t):
            self.fail(e.operand.pos, f"cannot cast {T.describe(t)} to '{want}'")
        if isinstance(want, T.IntType) and want.size < 8:
            mask = HexInt((1 << (8 * want.size)) - 1)
            return op("&", form, mask) if not is_const(form) else form & mask
        return form

    def x_SizeOf(self, e, ctx, discard):
        try:
            if e.tname is not None:
                t = self.p.layout.type_name(e.tname, ctx.model)
            else:
                # The operand is not evaluated; its object type counts (an array is not decayed).
                t = self.p.types.object_type(e.operand, ctx.model)
                if t is None:
                    self.expr(e.operand, ctx)  # it does not type: say why (a function's name, an unknown name...)
            if t is T.VPINT:
                t = T.IntType("long", 8)  # a VP integer value is 8 bytes
            return self.p.layout.size_of(t, e.pos)
        except CompileError:
            raise Quiet("")

    # ---- memory -------------------------------------------------------------------------------------

    def symbol_address(self, name, pos):
        symbols = self.p.guest_symbols
        if symbols is None:
            self.fail(pos, f"the address of guest symbol '{name}' needs a guest symbol file: "
                           f"compile with -s SYMFILE (/proc/kallsyms or WinDbg x format)")
        addr = symbols.get(name)
        if addr is None:
            self.fail(pos, f"unknown guest symbol '{name}' (not in the symbol file)")
        return HexInt(addr)

    def load(self, lv):
        """Read the object `lv` designates: a masked getguest, or its address for an array."""
        t = lv.type
        if isinstance(t, T.ArrayType):
            return lv.addr
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
        f = lv.field
        if f is not None:  # a bit-field: its bits of the unit, shifted down
            shifted = [">>", form, f.bit] if f.bit else form
            return ["&", HexInt((1 << f.width) - 1), shifted]
        if t.size < 8:
            # An 8-byte read masked to the object's width (as the reference does for 4-byte variables).
            form = ["&", HexInt((1 << (8 * t.size)) - 1), form]
        return form

    def lvalue(self, e, ctx):
        """What an assignment, an update, `&` or a read through memory designates (a `*LV`)."""
        return self._lvalue[type(e)](e, ctx)

    def lv_Name(self, e, ctx):
        sym = e.sym
        if isinstance(sym, FuncSym):
            self.fail(e.pos, f"'{e.name}' is a function, not a variable")
        kind = sym.kind
        if kind in ("var", "local", "param"):
            if sym.type is None:
                raise Quiet("")
            return VarLV(sym, e.pos)
        if kind == "extern":
            return MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos)
        if kind == "aggr":
            return AggrLV(sym, [], e.pos)
        if kind == "probeparam":
            self.fail(e.pos, f"probe argument '{e.name}' (ARG{sym.index}) is read-only")
        if kind == "builtin":
            self.fail(e.pos, f"cannot assign to built-in '{e.name}': VProbes variables are read-only")
        if kind == "enum":
            self.fail(e.pos, f"'{e.name}' is a constant")
        if kind == "bag":
            self.fail(e.pos, f"bag '{e.name}' is used one key at a time: {e.name}[key] <- value")
        raise Quiet("")

    def lv_Unary(self, e, ctx):
        if e.op != "*":
            return self.lv_other(e, ctx)
        form = self.expr(e.operand, ctx)
        t = e.operand.type
        if not isinstance(t, T.PointerType):
            self.fail(e.pos, f"only a pointer can be dereferenced, but this is {T.describe(t)}")
        return MemLV(form, t.target, ctx.model, e.pos)

    def lv_Index(self, e, ctx):
        return self.index_lvalue(e, ctx)

    def lv_Member(self, e, ctx):
        return self.member_lvalue(e, ctx)

    def lv_other(self, e, ctx):
        self.fail(e.pos, "this expression cannot be assigned to or updated")

    def index_lvalue(self, e, ctx):
        base = e.base
        if type(base) is S.Name and isinstance(base.sym, Sym):
            kind = base.sym.kind
            if kind == "aggr":
                return AggrLV(base.sym, e.keys, e.pos)
            if kind == "bag":
                if len(e.keys) != 1:
                    self.fail(e.pos, f"bag '{base.name}' takes one integer key")
                return BagLV(base.sym, e.keys[0], e.pos)
            if kind in ("implicit", "error"):
                raise Quiet("")
        if len(e.keys) != 1:
            self.fail(e.pos, "an array or pointer takes exactly one index")
        blv = self.try_mem_lvalue(base, ctx)
        if blv is not None and isinstance(blv.type, T.ArrayType):
            addr, elem = blv.addr, blv.type.elem
        else:
            form = self.expr(base, ctx)
            t = base.type
            if isinstance(t, T.StringType):
                self.fail(e.pos, "strings cannot be indexed")
            if not isinstance(t, T.PointerType):
                self.fail(e.pos, f"only arrays and pointers can be indexed, but this is {T.describe(t)}")
            addr, elem = form, t.target
        kf = self.expr(e.keys[0], ctx)
        kt = e.keys[0].type
        self.as_int(kf, kt, e.keys[0], "an array index")
        if elem is T.VOID:
            self.fail(e.pos, "cannot index a void pointer")
        size = elem.size
        if isinstance(elem, T.StructType) and not elem.complete:
            self.fail(e.pos, f"cannot index an array of the incomplete type '{elem}'")
        return MemLV(op("+", addr, self.scale(kf, size)), elem, ctx.model, e.pos)

    def try_mem_lvalue(self, e, ctx):
        """The memory object `e` designates, or None if `e` is not in guest memory."""
        cls = type(e)
        if cls is S.Name:
            sym = e.sym
            if isinstance(sym, Sym) and sym.kind == "extern":
                return MemLV(self.symbol_address(sym.name, e.pos), sym.type, ctx.model, e.pos)
            return None
        if cls is S.Member or cls is S.Index or (cls is S.Unary and e.op == "*"):
            lv = self.lvalue(e, ctx)
            return lv if isinstance(lv, MemLV) else None
        return None

    def member_lvalue(self, e, ctx):
        if e.arrow:
            form = self.expr(e.base, ctx)
            t = e.base.type
            if not isinstance(t, T.PointerType) or not isinstance(t.target, T.StructType):
                self.fail(e.pos, f"'->' needs a pointer to a struct or union, but this is {T.describe(t)}")
            st = t.target
            addr = form
        else:
            blv = self.try_mem_lvalue(e.base, ctx)
            if blv is None or not isinstance(blv.type, T.StructType):
                bt = e.base.type
                if bt is None:
                    self.expr(e.base, ctx)  # it does not type: say why (a function's name, an unknown name...)
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
        return MemLV(op("+", addr, f.offset) if f.offset else addr, f.type, ctx.model, e.pos,
                     f if f.width is not None else None)

    def x_Member(self, e, ctx, discard):
        return self.load(self.member_lvalue(e, ctx))

    def address_of(self, operand, ctx):
        if type(operand) is S.Name:
            sym = operand.sym
            if isinstance(sym, Sym) and sym.kind in ("guestsym", "extern"):
                return self.symbol_address(sym.name, operand.pos)
            if isinstance(sym, Sym) and sym.kind in ("var", "local", "param", "probeparam", "builtin"):
                self.fail(operand.pos, f"cannot take the address of '{operand.name}': VP variables do not live in guest memory")
            if isinstance(sym, FuncSym):
                self.fail(operand.pos, f"cannot take the address of function '{operand.name}'")
            raise Quiet("")
        lv = self.lvalue(operand, ctx)
        if not isinstance(lv, MemLV):
            self.fail(operand.pos, "only objects in guest memory have an address")
        if lv.field is not None:
            self.fail(operand.pos, f"cannot take the address of bit-field '{lv.field.name}'")
        return lv.addr

    # ---- indexing: arrays, aggregates, bags ------------------------------------------------------------------

    def x_Index(self, e, ctx, discard):
        lv = self.index_lvalue(e, ctx)
        if isinstance(lv, AggrLV):
            self.fail(e.pos, f"aggregate '{lv.sym.name}' cannot be read; update it with ++ or <- and log it with logaggr")
        if isinstance(lv, BagLV):
            kf = self.expr(lv.key, ctx)
            kt = lv.key.type
            self.as_int(kf, kt, lv.key, "a bag key")
            return ["bagremove", lv.sym, kf]
        return self.load(lv)

    def aggr_keys(self, lv, ctx, extra_int_keys=0):
        """(integer key forms, string key forms, the key nodes in the log's order: integers first).

        `extra_int_keys`: integer keys the update adds after the program's (a histogram's bucket).
        """
        sym = lv.sym
        ints, strs = [], []
        int_nodes, str_nodes = [], []
        for k in lv.keys:
            form = self.expr(k, ctx)
            t = k.type
            if isinstance(t, T.StringType):
                strs.append(form)
                str_nodes.append(k)
            elif T.is_char_pointer(t):
                strs.append(self.guest_string(form, k.pos, ctx))
                str_nodes.append(k)
            elif is_intlike(t):
                ints.append(form)
                int_nodes.append(k)
            else:
                self.fail(k.pos, f"an aggregate key must be an integer or a string, but this is {T.describe(t)}")
        at = sym.type
        n_ints = len(ints) + extra_int_keys
        bucket = " (counting the bucket key)" if extra_int_keys else ""
        if n_ints + len(strs) > MAX_KEYS:
            self.fail(lv.pos, f"an aggregate has at most {MAX_KEYS} keys; this use gives {n_ints + len(strs)}{bucket}")
        if at.int_keys is None:
            at.int_keys, at.str_keys = n_ints, len(strs)
            sym.decided = lv.pos
        elif (at.int_keys, at.str_keys) != (n_ints, len(strs)):
            origin = f" (declared at {where(sym.decided)})" if sym.decided and not sym.implicit else \
                f" (as first used at {where(sym.decided)})" if sym.decided else ""
            self.fail(lv.pos, f"aggregate '{sym.name}' has {_keys(at.int_keys, at.str_keys)}{origin}, "
                              f"but this use gives {_keys(n_ints, len(strs))}{bucket}")
        return ints, strs, int_nodes + str_nodes

    def record_update(self, sym, keys, update, value=None, hist=None):
        if self.emitted:
            self.aggregates.record(sym, keys, self.probe_point, update, value, hist)

    # ---- assignment ---------------------------------------------------------------------------------------------------

    def x_Assign(self, e, ctx, discard):
        o = e.op
        if o == "<-":
            lv = self.lvalue(e.target, ctx)
            if isinstance(lv, AggrLV):
                if is_aggregating_call(e.value):
                    return self.histograms.update(lv, e.value, ctx)
                self.histograms.plain_update(lv.sym, e.pos)
                ints, strs, keys = self.aggr_keys(lv, ctx)
                vf = self.expr(e.value, ctx)
                vt = e.value.type
                self.as_int(vf, vt, e.value, "the value added to an aggregate")
                self.record_update(lv.sym, keys, "value", e.value)
                return ["aggr", lv.sym, ints, strs, vf]
            if isinstance(lv, BagLV):
                if is_aggregating_call(e.value):
                    self.fail(e.value.pos, f"{e.value.sym}() makes a histogram of an aggregate; "
                                           f"'{lv.sym.name}' is a bag")
                kf = self.expr(lv.key, ctx)
                kt = lv.key.type
                self.as_int(kf, kt, lv.key, "a bag key")
                vf = self.expr(e.value, ctx)
                vt = e.value.type
                self.as_int(vf, vt, e.value, "a bag value")
                return ["baginsert", lv.sym, kf, vf]
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
        vf = self.expr(e.value, ctx)
        vt = e.value.type
        if o != "=":
            bop = o[:-1]
            if isinstance(t, T.StringType):
                if bop != "+":
                    self.fail(e.pos, f"'{o}' does not apply to strings (only '+=' does)")
                b = self.as_string(vf, vt, e.value, ctx, "the value appended to a string")
                value = self.concat_forms([sym, b], e.pos)
            else:
                self.as_int(vf, vt, e.value, f"the right operand of '{o}'")
                if bop in ("+", "-"):
                    chain = OpChain(sym)
                    self.additive(bop, chain, t, vf, vt, e)
                    value = chain.form
                else:
                    if bop in ("/", "%") and is_const(vf) and vf == 0:
                        self.fail(e.value.pos, "division by zero")
                    value = op(bop, sym, vf)
        else:
            if discard and isinstance(t, T.StringType):
                direct = self.direct_string_update(sym, vf, vt, ctx)
                if direct is not None:
                    return direct
            value = self.assigned_value(sym, vf, vt, e.value.pos, ctx)
        head = "setstr" if isinstance(t, T.StringType) else "setint"
        return [head, sym, value]

    def direct_string_update(self, sym, vf, vt, ctx):
        """`s = guest_chars` and `s = a + b` as a statement: write `s` directly, no temporary."""
        if T.is_char_pointer(vt) and ctx.model.accessor == "getguest":
            return ["getgueststr", sym, vf]
        if type(vf) is list and len(vf) == 3 and vf[0] == "do" and vf[2] is self.p.temp \
                and type(vf[1]) is list and type(vf[1][0]) is str and DEST_BUILTINS.get(vf[1][0]) is T.STRING and vf[1][1] is self.p.temp:
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
            return f" (its type comes from the assignment at {where(sym.decided)})"
        if sym.pos is not None and sym.kind in ("var", "local", "param"):
            return f" (declared at {where(sym.pos)})"
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
            self.histograms.plain_update(lv.sym, e.pos)
            ints, strs, keys = self.aggr_keys(lv, ctx)
            self.record_update(lv.sym, keys, "count")
            return ["aggr", lv.sym, ints, strs, 1]
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
            return update
        return op("-" if bop == "+" else "+", update, step)


def _keys(i, s):
    return f"{i} integer key{'s' if i != 1 else ''} and {s} string key{'s' if s != 1 else ''}"
