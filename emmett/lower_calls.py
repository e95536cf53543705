"""Lowering of calls: user functions, and each of Emmett's builtins (a part of `lower.Lowerer`).

A builtin that takes only values is lowered from its signature in the spec
(`value_builtin`: each argument converted to its parameter's type); every other
builtin has its `b_NAME` method: it checks the number and the kinds of its
arguments (variables it writes, printf formats against their arguments), and
builds the VP call.  `assert(c, fmt, args...)` is VP's assert with the message
the toolkit's compiler gives it ("line N: " and the formatted text).
"""

from functools import partial

from . import ctype as T
from . import syntax as S
from .diagnostics import CompileError
from .language import (BUILTINS, MAX_ARGS, PRINTF_CONVERSIONS, PRINTF_DIRECTIVES, PRINTF_BAD_DIRECTIVE,
                       VALUE_BUILTINS)
from .symbols import FuncSym, Sym
from .vp import VStr, cond, do, op




class Quiet(CompileError):
    """An error already reported elsewhere (e.g. an undecidable implicit name)."""


def is_intlike(t):
    return isinstance(t, (T.IntType, T.PointerType))


class CallLowering:
    """The call and builtin methods of the Lowerer (they use its expression and conversion methods)."""

    def __init__(self):
        self._builtins = {name: getattr(self, "b_" + name, None) or partial(self.value_builtin, name)
                          for name in BUILTINS}

    def x_Call(self, e, ctx, discard):
        target = e.sym
        if target is None:
            raise Quiet("")
        if len(e.args) > MAX_ARGS:
            self.fail(e.pos, f"too many arguments ({len(e.args)}); at most {MAX_ARGS} are allowed")
        if isinstance(target, FuncSym):
            return self.user_call(e, target, ctx, discard)
        return self._builtins[target](e, ctx, discard)

    def user_call(self, e, fs, ctx, discard):
        params = fs.type.params
        if len(e.args) != len(params):
            self.fail(e.pos, f"'{fs.name}' takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                             f"but {len(e.args)} {'are' if len(e.args) != 1 else 'is'} given")
        if fs.ctx is None:
            self.fail(e.pos, f"function '{fs.name}' is declared but never defined")
        args = []
        for (pname, ptype, _), a in zip(params, e.args):
            form = self.expr(a, ctx)
            t = a.type
            args.append(self.convert(form, t, ptype, a, ctx, f"argument '{pname}' of '{fs.name}'"))
        if fs.recursive:
            for local in fs.ctx.locals:
                if local.hidden:
                    args.append(VStr("") if isinstance(local.type, T.StringType) else 0)
        return [fs] + args

    def arity(self, e, low, high, usage):
        n = len(e.args)
        if n < low or (high is not None and n > high):
            self.fail(e.pos, f"wrong number of arguments: {usage}")

    def string_dest(self, a, ctx, what):
        if type(a) is S.Name and isinstance(a.sym, Sym) and a.sym.kind in ("var", "local", "param"):
            if a.sym.type is None:
                raise Quiet("")
            if not isinstance(a.sym.type, T.StringType):
                self.fail(a.pos, f"{what} must be a string variable, but '{a.name}' is {T.describe(a.sym.type)}")
            return a.sym
        self.fail(a.pos, f"{what} must be a string variable")

    def int_dest(self, a, ctx, what):
        if type(a) is S.Name and isinstance(a.sym, Sym) and a.sym.kind in ("var", "local", "param"):
            if a.sym.type is None:
                raise Quiet("")
            if not is_intlike(a.sym.type):
                self.fail(a.pos, f"{what} must be an integer variable, but '{a.name}' is {T.describe(a.sym.type)}")
            return a.sym
        self.fail(a.pos, f"{what} must be an integer variable")

    def format_args(self, name, fmt_node, rest, ctx):
        ff = self.expr(fmt_node, ctx)
        ft = fmt_node.type
        fmt = self.as_string(ff, ft, fmt_node, ctx, f"the format of {name}")
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
            form = self.expr(a, ctx)
            t = a.type
            what = f"{name} argument {n}"
            if kind == "str":
                out.append(self.as_string(form, t, a, ctx, f"{what} (for a %s directive)"))
            elif kind == "int":
                if not is_intlike(t):
                    self.fail(a, f"{what} must be an integer (for the format's directive {n}), but this is {T.describe(t)}")
                out.append(form)
            else:
                if not (is_intlike(t) or isinstance(t, T.StringType)):
                    self.fail(a, f"{what} must be an integer or a string, but this is {T.describe(t)}")
                out.append(form)
        return out

    def b_printf(self, e, ctx, discard):
        self.arity(e, 1, None, "printf(FORMAT, ARGS...)")
        return ["printf"] + self.format_args("printf", e.args[0], e.args[1:], ctx)

    def b_sprintf(self, e, ctx, discard):
        self.arity(e, 2, None, "sprintf(STRING-VARIABLE, FORMAT, ARGS...)")
        dest = self.string_dest(e.args[0], ctx, "the destination of sprintf")
        return ["sprintf", dest] + self.format_args("sprintf", e.args[1], e.args[2:], ctx)

    def b_getguest(self, e, ctx, discard):
        self.arity(e, 1, 1, 'getguest(ADDRESS) or getguest("SYMBOL")')
        form = self.expr(e.args[0], ctx)
        t = e.args[0].type
        if not (is_intlike(t) or isinstance(t, T.StringType)):
            self.fail(e.args[0].pos, f"getguest takes an address or a symbol name, not {T.describe(t)}")
        return ["getguest", form]

    def value_builtin(self, name, e, ctx, discard):
        """A builtin that takes only values (language.VALUE_BUILTINS): each argument converted
        to its parameter's type, as the spec's signature says."""
        params = VALUE_BUILTINS[name]
        self.arity(e, len(params), len(params), f"{name}({', '.join(p[0] for p in params)})")
        out = [name]
        for (_, ptype, role), a in zip(params, e.args):
            form = self.expr(a, ctx)
            what = f"{role} of {name}"
            if ptype is T.STRING:
                out.append(self.as_string(form, a.type, a, ctx, what))
            else:
                out.append(self.as_int(form, a.type, a, what))
        return out

    def b_getgueststr(self, e, ctx, discard):
        self.arity(e, 2, 3, 'getgueststr(STRING-VARIABLE, ADDRESS), getgueststr(STRING-VARIABLE, MAX-LENGTH, ADDRESS) '
                            'or getgueststr(STRING-VARIABLE, "SYMBOL" [, OFFSET])')
        dest = self.string_dest(e.args[0], ctx, "the destination of getgueststr")
        rest = []
        for i, a in enumerate(e.args[1:]):
            form = self.expr(a, ctx)
            t = a.type
            if isinstance(t, T.StringType):
                if i != 0:
                    self.fail(a.pos, "only the second argument of getgueststr may be a symbol name")
            elif not is_intlike(t):
                self.fail(a.pos, f"getgueststr takes addresses, lengths and symbol names, not {T.describe(t)}")
            rest.append(form)
        return ["getgueststr", dest] + rest

    def b_getguestphysstr(self, e, ctx, discard):
        self.arity(e, 3, 3, "getguestphysstr(STRING-VARIABLE, MAX-LENGTH, PHYSICAL-ADDRESS)")
        dest = self.string_dest(e.args[0], ctx, "the destination of getguestphysstr")
        rest = []
        for a, what in zip(e.args[1:], ("the length given to getguestphysstr", "the address given to getguestphysstr")):
            form = self.expr(a, ctx)
            rest.append(self.as_int(form, a.type, a, what))
        return ["getguestphysstr", dest] + rest

    def b_gueststack(self, e, ctx, discard):
        self.arity(e, 1, 1, "gueststack(STRING-VARIABLE)")
        return ["gueststack", self.string_dest(e.args[0], ctx, "the destination of gueststack")]

    def b_getsystemtime(self, e, ctx, discard):
        self.arity(e, 0, 1, "getsystemtime() or getsystemtime(INTEGER-VARIABLE)")
        if e.args:
            return ["getsystemtime", self.int_dest(e.args[0], ctx, "the destination of getsystemtime")]
        return ["getsystemtime"]

    def _offset(self, e, ctx, name, most=1):
        self.arity(e, 1, most, f'{name}("FUNCTION") or {name}(&function)' if most == 1 else
                   f'{name}("FUNCTION" [, "COPY-ROUTINE"]) or {name}(&function [, &copy_routine])')
        out = [name]
        for a in e.args:
            form = self.expr(a, ctx)
            t = a.type
            if is_intlike(t):  # an address: &symbol, or a number
                out.append(form)
            else:
                out.append(self.as_string(form, t, a, ctx, f"the function named to {name}"))
        return out

    def b_offatret(self, e, ctx, discard):
        return self._offset(e, ctx, "offatret")

    def b_offatstrcpy(self, e, ctx, discard):
        return self._offset(e, ctx, "offatstrcpy", 2)

    def b_offatseg(self, e, ctx, discard):
        return self._offset(e, ctx, "offatseg")

    def container_arg(self, a, kind, what):
        """The aggregate (`kind` "aggr") or bag ("bag") that argument `a` names."""
        if type(a) is S.Name and isinstance(a.sym, Sym):
            if a.sym.kind == kind:
                return a.sym
            if a.sym.kind in ("implicit", "error"):
                raise Quiet("")
        self.fail(a.pos, f"{what} takes {'an aggregate' if kind == 'aggr' else 'a bag'}")

    def _aggregate_op(self, e, name):
        """logaggr and clearaggr: of one aggregate or several, in turn."""
        self.arity(e, 1, None, f"{name}(AGGREGATE, ...)")
        return [name, *(self.container_arg(a, "aggr", name) for a in e.args)]

    def b_logaggr(self, e, ctx, discard):
        return self._aggregate_op(e, "logaggr")

    def b_clearaggr(self, e, ctx, discard):
        return self._aggregate_op(e, "clearaggr")

    def b_baginsert(self, e, ctx, discard):
        self.arity(e, 3, 3, "baginsert(BAG, KEY, VALUE)")
        bag = self.container_arg(e.args[0], "bag", "baginsert")
        out = ["baginsert", bag]
        for a, what in zip(e.args[1:], ("a bag key", "a bag value")):
            form = self.expr(a, ctx)
            t = a.type
            out.append(self.as_int(form, t, a, what))
        return out

    def b_bagremove(self, e, ctx, discard):
        self.arity(e, 2, 2, "bagremove(BAG, KEY)")
        bag = self.container_arg(e.args[0], "bag", "bagremove")
        form = self.expr(e.args[1], ctx)
        t = e.args[1].type
        return ["bagremove", bag, self.as_int(form, t, e.args[1], "a bag key")]

    def b_assert(self, e, ctx, discard):
        """VP's assert, its message as the toolkit's compiler words it: "line N" or "line N: MESSAGE"."""
        self.arity(e, 1, None, "assert(CONDITION [, FORMAT, ARGS...])")
        test = self.condition(e.args[0], ctx)
        line = e.pos[1]
        if len(e.args) == 1:
            return ["assert", test, VStr(f"line {line}")]
        parts = self.format_args("assert", e.args[1], e.args[2:], ctx)
        if type(parts[0]) is not VStr:
            self.fail(e.args[1].pos, "the message of assert must be a string literal (a format)")
        fmt = VStr(f"line {line}: " + parts[0])
        if len(parts) == 1:
            return ["assert", test, fmt]
        tmp = self.temp()
        return ["assert", test, do([["sprintf", tmp, fmt] + parts[1:], tmp])]

    def b_exit(self, e, ctx, discard):
        self.arity(e, 0, 0, "exit()")
        return ["exit"]


def format_kinds(fmt):
    """The argument kinds ("int"/"str") a printf format takes, or an error message (VP's directive grammar)."""
    kinds = []
    try:
        for _, m in PRINTF_DIRECTIVES(fmt):
            kinds.extend("int" for part in ("width", "precision") if m.group(part) == "*")
            conv = m.group("conversion")
            if conv != "%":
                kinds.append(PRINTF_CONVERSIONS[conv])
    except PRINTF_BAD_DIRECTIVE as e:
        return e.message
    return kinds
