"""Load-time checking: resolve every name, infer and check every type.

The checker turns the reader's forms into the IR of `ir.py`.  It reports, with
the offending form's position, everything the reference forbids: unknown forms
and names, wrong arity, type errors, assignment to built-ins, duplicate or
reserved names, reads of aggregates, key counts that do not match `defaggr`,
calls to undefined functions and the size limits.  Each top-level form stops at
its first error, so one load reports one error per broken form.

Types are inferred over the whole script (see `typevars.py`), so the order of
definitions does not matter and parameters learn their types from use.
"""

from __future__ import annotations

import re

from vprobes_shared.graphs import nodes_on_cycles

from . import ir, spec
from .backend import Backend
from .errors import Diagnostic, VPLoadError
from .limits import CURRENT_VERSION, MAX_ARGS, MAX_KEYS, MAX_NAME_BYTES, MAX_PROBES, MAX_STRING_BYTES
from .printf import FormatError, compile_format
from .probe_points import parse_probe_spec
from .reader import Decimal, Int, List, Node, Source, Str, Sym, TargetLine
from .typevars import INT, MIXED, STR, TVar, TypeConflict, concrete, unify

_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\Z")
_RESERVED_UPPER = re.compile(spec.RESERVED_UPPER_PATTERN)
# The globals the runtime itself supplies (PROBENAME), offered whatever the machine.
_RUNTIME_GLOBALS = {g.name: g for g in spec.GLOBALS.values() if g.supplied_by == spec.RUNTIME}

_TYPE_WORDS = {INT: "an integer", STR: "a string", MIXED: "sometimes an integer and sometimes a string"}


class _FormError(Exception):
    """Abandons checking of the current top-level form; the diagnostic is already recorded."""


def _usage(form: str) -> str:
    """How a top-level or special form is written, as the spec says."""
    return (spec.TOP_LEVEL_FORMS.get(form) or spec.SPECIAL_FORMS[form]).usage


def _pos(node: Node) -> ir.Pos:
    return (node.line, node.col)


class Checker:
    def __init__(self, source: Source, backend: Backend):
        self.source = source
        self.backend = backend
        # The built-in globals a script on this machine can read, and every name that is one.
        self.offered_globals = {**backend.globals(), **_RUNTIME_GLOBALS}
        self.builtin_globals = spec.GLOBALS.keys() | self.offered_globals.keys()
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        # Every user-defined top-level name: name -> definition.
        self.defs: dict[str, ir.VarDef | ir.AggrDef | ir.BagDef | ir.FuncDef] = {}
        self.variables: list[ir.VarDef] = []
        self.aggregates: list[ir.AggrDef] = []
        self.bags: list[ir.BagDef] = []
        self.functions: list[ir.FuncDef] = []
        self.probes: list[ir.ProbeDef] = []
        self.used_globals: dict[str, None] = {}
        self.conds: list[ir.Cond] = []
        self.calls: list[tuple[ir.FuncDef | None, ir.Call]] = []
        # Builtin arguments that may be an address or a symbol name, and their role:
        # typed once every other constraint is known.
        self.late_addresses: list[tuple[ir.Expr, str]] = []
        self.scope: dict[str, ir.Param] = {}
        self.current_func: ir.FuncDef | None = None

    # ---- reporting ------------------------------------------------------------

    def fail(self, where, message: str):
        line, col = where if isinstance(where, tuple) else _pos(where)
        self.errors.append(self.source.diagnostic(line, col, message))
        raise _FormError

    def warn(self, where, message: str) -> None:
        line, col = where if isinstance(where, tuple) else _pos(where)
        self.warnings.append(self.source.diagnostic(line, col, message, "warning"))

    def expect(self, expr: ir.Expr, type_: str, what: str) -> ir.Expr:
        try:
            unify(expr.tvar, concrete(type_, expr.pos))
        except TypeConflict as c:
            self.fail(expr.pos, f"{what} must be {_TYPE_WORDS[type_]}, but this is {_TYPE_WORDS[c.have]}")
        return expr

    # ---- the whole script ------------------------------------------------------

    def check(self, forms: list) -> ir.Program:
        declared: list[tuple[List, object]] = []
        for form in forms:
            try:
                declared.append((form, self.declare(form)))
            except _FormError:
                pass
        for form, definition in declared:
            try:
                if isinstance(definition, ir.FuncDef):
                    self.check_function(form, definition)
                elif isinstance(definition, ir.ProbeDef):
                    self.check_probe_body(form, definition)
            except _FormError:
                pass
        if not self.probes and not self.errors:
            where = _pos(forms[0]) if forms else (1, 1)
            self.errors.append(self.source.diagnostic(*where, "the script defines no probe: a VP script needs at least one (vprobe ...)"))
        if len(self.probes) > MAX_PROBES:
            self.errors.append(self.source.diagnostic(
                *self.probes[MAX_PROBES].pos, f"too many probes: {len(self.probes)}, at most {MAX_PROBES} per VM"))
        if not self.errors:
            self.resolve_types()
        if self.errors:
            # Report in source order, whichever pass found them.
            errors = sorted(self.errors, key=lambda d: (d.line, d.col))
            raise VPLoadError(errors + self.warnings)
        self.mark_written_params()
        self.mark_recursion()
        return ir.Program(
            self.variables, self.aggregates, self.bags, self.functions, self.probes,
            list(self.used_globals),
        )

    # ---- top-level forms -----------------------------------------------------------

    def declare(self, form):
        if isinstance(form, TargetLine):
            self.fail(form, f"'{form.text}' is ESX only: a target line of a script that probes several "
                            f"domains (the VMkernel, several VMs), which only an ESX host splits and loads; "
                            f"a hosted VM takes the script alone")
        if not isinstance(form, List):
            self.fail(form, "expected a top-level form such as (vprobe ...) or (defun ...), not a bare value")
        if not form.items or not isinstance(form.items[0], Sym):
            self.fail(form, "expected a top-level form such as (vprobe ...) or (defun ...)")
        head = form.items[0].name
        if head not in spec.TOP_LEVEL_FORMS:
            *others, last = spec.TOP_LEVEL_FORMS
            hint = f" (only {', '.join(others)} and {last} may appear at top level)"
            self.fail(form.items[0], f"unknown top-level form '{head}'{hint}")
        return getattr(self, "declare_" + head)(form)

    def declare_version(self, form: List):
        args = form.items[1:]
        if len(args) != 1 or not isinstance(args[0], (Str, Decimal)):
            self.fail(form, 'version takes one version, e.g. (version "1.0") or (version 1.0)')
        text = args[0].value if isinstance(args[0], Str) else args[0].text
        m = _VERSION.match(text)
        if not m:
            self.fail(args[0], f"bad version '{text}': expected \"MAJOR.MINOR\"")
        major, minor = int(m.group(1)), int(m.group(2))
        cur_major, cur_minor = CURRENT_VERSION
        current = f"{cur_major}.{cur_minor}"
        if major > cur_major:
            self.fail(args[0], f"the script needs VProbes version {major}.{minor}; this engine runs version {current}")
        if major < cur_major:
            self.warn(args[0], f"version mismatch: the script targets VProbes {major}.{minor}, this engine is {current}; trying to run it")
        elif minor > cur_minor:
            self.warn(args[0], f"the script targets VProbes {major}.{minor}, newer than this engine's {current}; it may use features this engine lacks")
        return None

    def user_name(self, node, what: str) -> str:
        if not isinstance(node, Sym):
            self.fail(node, f"expected the name of the {what}")
        name = node.name
        if len(name) > MAX_NAME_BYTES:
            self.fail(node, f"the name '{name[:20]}...' is {len(name)} bytes; names are limited to {MAX_NAME_BYTES} bytes")
        if name in spec.RESERVED_WORDS:
            self.fail(node, f"'{name}' is a built-in VP name and cannot be redefined")
        if name in self.builtin_globals:
            self.fail(node, f"'{name}' is a built-in global and cannot be redefined")
        if _RESERVED_UPPER.match(name):
            self.fail(node, f"'{name}': names made only of upper-case letters are reserved for VProbes")
        return name

    def define(self, node: Sym, name: str, definition) -> None:
        earlier = self.defs.get(name)
        if earlier is not None:
            line, col = earlier.pos
            self.fail(node, f"'{name}' is already defined at line {line}, column {self.source.display_col(line, col)}")
        self.defs[name] = definition

    def literal(self, form: List, index: int, kind, what: str):
        items = form.items
        if index >= len(items) or not isinstance(items[index], kind):
            where = items[index] if index < len(items) else form
            self.fail(where, f"{items[0].name} needs {what}")
        return items[index]

    def declare_definteger(self, form: List):
        if len(form.items) not in (2, 3):
            self.fail(form, f"definteger takes a name and an optional initial integer: {_usage('definteger')}")
        name = self.user_name(form.items[1], "integer variable")
        init = self.literal(form, 2, Int, "an integer literal as initial value").value if len(form.items) == 3 else 0
        var = ir.VarDef(name, INT, init, _pos(form.items[1]))
        self.define(form.items[1], name, var)
        self.variables.append(var)

    def declare_defstring(self, form: List):
        if len(form.items) not in (2, 3):
            self.fail(form, f"defstring takes a name and an optional initial string: {_usage('defstring')}")
        name = self.user_name(form.items[1], "string variable")
        init = ""
        if len(form.items) == 3:
            node = self.literal(form, 2, Str, "a string literal as initial value")
            init = self.check_string_literal(node)
        var = ir.VarDef(name, STR, init, _pos(form.items[1]))
        self.define(form.items[1], name, var)
        self.variables.append(var)

    def declare_defaggr(self, form: List):
        if len(form.items) != 4:
            self.fail(form, f"defaggr takes a name, the number of integer keys and the number of string keys: {_usage('defaggr')}")
        name = self.user_name(form.items[1], "aggregate")
        n_int = self.literal(form, 2, Int, "the number of integer keys as an integer literal").value
        n_str = self.literal(form, 3, Int, "the number of string keys as an integer literal").value
        if n_int + n_str > MAX_KEYS:
            self.fail(form, f"an aggregate has at most {MAX_KEYS} keys; this one asks for {n_int + n_str}")
        aggr = ir.AggrDef(name, n_int, n_str, _pos(form.items[1]))
        self.define(form.items[1], name, aggr)
        self.aggregates.append(aggr)

    def declare_defbag(self, form: List):
        if len(form.items) != 3:
            self.fail(form, f"defbag takes a name and a size: {_usage('defbag')}")
        name = self.user_name(form.items[1], "bag")
        size = self.literal(form, 2, Int, "its size (the number of key/value pairs) as an integer literal").value
        if size == 0:
            self.fail(form.items[2], "a bag must hold at least one key/value pair")
        bag = ir.BagDef(name, size, _pos(form.items[1]))
        self.define(form.items[1], name, bag)
        self.bags.append(bag)

    def declare_defun(self, form: List):
        if len(form.items) < 4:
            self.fail(form, f"defun takes a name, a parameter list and at least one expression: {_usage('defun')}")
        name = self.user_name(form.items[1], "function")
        plist = form.items[2]
        if not isinstance(plist, List):
            self.fail(plist, f"the parameters of '{name}' must be a list, e.g. (a b), or () for none")
        if len(plist.items) > MAX_ARGS:
            self.fail(plist, f"'{name}' has {len(plist.items)} parameters; at most {MAX_ARGS} are allowed")
        params: list[ir.Param] = []
        seen: dict[str, ir.Param] = {}
        for i, p in enumerate(plist.items):
            pname = self.user_name(p, "parameter")
            if pname in seen:
                self.fail(p, f"parameter '{pname}' appears twice in '{name}'")
            param = ir.Param(pname, i, TVar(), _pos(p))
            seen[pname] = param
            params.append(param)
        func = ir.FuncDef(name, params, TVar(), _pos(form.items[1]))
        self.define(form.items[1], name, func)
        self.functions.append(func)
        return func

    def declare_vprobe(self, form: List):
        if len(form.items) < 3:
            self.fail(form, f"vprobe takes a probe point and at least one expression: {_usage('vprobe')}")
        point = form.items[1]
        if not isinstance(point, Sym):
            self.fail(point, "expected a probe point name such as VMM1Hz, GUEST:symbol or USEC:1000")
        if len(point.name) > MAX_NAME_BYTES:
            self.fail(point, f"the probe name is {len(point.name)} bytes; names are limited to {MAX_NAME_BYTES} bytes")
        spec = parse_probe_spec(point.name)
        if isinstance(spec, str):
            self.fail(point, spec)
        refusal = self.backend.check_probe(spec)
        if refusal:
            self.fail(point, refusal)
        probe = ir.ProbeDef(spec, _pos(point))
        self.probes.append(probe)
        return probe

    def check_string_literal(self, node: Str) -> str:
        if len(node.value) > MAX_STRING_BYTES:
            self.fail(node, f"string literal of {len(node.value)} bytes; strings are limited to {MAX_STRING_BYTES} bytes")
        return node.value

    # ---- bodies ---------------------------------------------------------------

    def check_function(self, form: List, func: ir.FuncDef) -> None:
        self.scope = {p.name: p for p in func.params}
        self.current_func = func
        try:
            func.body = [self.expr(e) for e in form.items[3:]]
            try:
                unify(func.result, func.body[-1].tvar)
            except TypeConflict as c:
                self.fail(form.items[-1], f"'{func.name}' returns {_TYPE_WORDS[c.want]} here, "
                                          f"but a caller uses its result as {_TYPE_WORDS[c.have]}")
        finally:
            self.scope, self.current_func = {}, None

    def check_probe_body(self, form: List, probe: ir.ProbeDef) -> None:
        probe.body = [self.expr(e) for e in form.items[2:]]

    def expr(self, node) -> ir.Expr:
        pos = _pos(node)
        if isinstance(node, Int):
            return ir.Const(pos, concrete(INT, pos), node.value)
        if isinstance(node, Str):
            return ir.Const(pos, concrete(STR, pos), self.check_string_literal(node))
        if isinstance(node, Sym):
            return self.name_ref(node)
        if isinstance(node, Decimal):
            self.fail(node, f"'{node.text}': VP numbers are integers (only (version {node.text}) takes a fraction)")
        if not node.items:
            self.fail(node, "empty expression '()'")
        head = node.items[0]
        if not isinstance(head, Sym):
            self.fail(head, "expected an operator or function name at the start of the expression")
        name = head.name
        args = node.items[1:]
        if len(args) > MAX_ARGS:
            self.fail(node, f"'{name}' is given {len(args)} arguments; at most {MAX_ARGS} are allowed")
        if name in spec.SPECIAL_FORMS:
            return getattr(self, "form_" + name)(node, args)
        if name in spec.OPERATOR_NAMES:
            return self.operator(node, name, args)
        if name in spec.BUILTINS:
            return self.builtin(node, spec.BUILTINS[name], args)
        if name in spec.TOP_LEVEL_FORMS:
            self.fail(head, f"'{name}' is only allowed at the top level of a script")
        if name in self.scope:
            self.fail(head, f"'{name}' is a parameter, not a function")
        definition = self.defs.get(name)
        if isinstance(definition, ir.FuncDef):
            return self.call(node, definition, args)
        if definition is not None or name in self.builtin_globals:
            self.fail(head, f"'{name}' is a variable, not a function")
        if name in spec.ESX_ONLY_BUILTINS:
            self.fail(head, f"'{name}' is ESX only: {spec.ESX_ONLY_BUILTINS[name]}, which a hosted VM cannot do")
        if name in spec.MONITOR_BUILTINS:
            self.fail(head, f"'{name}' is not available: {spec.MONITOR_BUILTINS[name]}, which this VM does not expose")
        self.fail(head, f"call to undefined function '{name}'")

    def name_ref(self, node: Sym) -> ir.Expr:
        pos = _pos(node)
        name = node.name
        param = self.scope.get(name)
        if param is not None:
            return ir.ParamRef(pos, param.tvar, param)
        definition = self.defs.get(name)
        if isinstance(definition, ir.VarDef):
            return ir.GlobalRef(pos, concrete(definition.type, definition.pos), definition)
        if isinstance(definition, ir.AggrDef):
            self.fail(node, f"aggregate '{name}' cannot be read; log it with (logaggr {name})")
        if isinstance(definition, ir.BagDef):
            self.fail(node, f"bag '{name}' cannot be read as a value; use (bagremove {name} KEY)")
        if isinstance(definition, ir.FuncDef):
            self.fail(node, f"'{name}' is a function; call it as ({name} ...)")
        info = self.offered_globals.get(name)
        if info is not None:
            self.used_globals[name] = None
            return ir.BuiltinRef(pos, concrete(info.type, pos), name)
        if name in spec.GLOBALS:
            why = getattr(self.backend, "global_refusal", lambda _: None)(name)
            self.fail(node, f"unknown name '{name}': this VM does not offer that built-in global"
                            + (f" ({why})" if why else ""))
        if name in spec.ESX_ONLY_GLOBALS:
            self.fail(node, f"'{name}' is ESX only: {spec.ESX_ONLY_GLOBALS[name]}, which a hosted VM does not have")
        if name in spec.MONITOR_GLOBALS:
            self.fail(node, f"'{name}' is not available: {spec.MONITOR_GLOBALS[name]}, in VMware's monitor's "
                            f"own memory, which this VM does not expose")
        if name in spec.RESERVED_WORDS:
            self.fail(node, f"'{name}' is a built-in operator or function; call it as ({name} ...)")
        self.fail(node, f"unknown name '{name}'")

    def arity(self, node: List, args: list, low: int, high: int | None, usage: str) -> None:
        if len(args) < low or (high is not None and len(args) > high):
            self.fail(node, f"wrong number of arguments: {usage}")

    def variable(self, node, type_: str, what: str) -> ir.VarDef | ir.Param:
        """The variable `node` names, for assignment; marks parameters as written."""
        if isinstance(node, Sym):
            param = self.scope.get(node.name)
            if param is not None:
                try:
                    unify(param.tvar, concrete(type_, _pos(node)))
                except TypeConflict:
                    self.fail(node, f"{what} must be {_TYPE_WORDS[type_]} variable, but parameter '{node.name}' is used as {_TYPE_WORDS[param.tvar.resolved]}")
                param.written = True
                return param
            definition = self.defs.get(node.name)
            if isinstance(definition, ir.VarDef):
                if definition.type != type_:
                    self.fail(node, f"{what} must be {_TYPE_WORDS[type_]} variable, but '{node.name}' is {_TYPE_WORDS[definition.type]} variable")
                return definition
            if node.name in self.builtin_globals:
                self.fail(node, f"cannot assign to built-in '{node.name}': built-in globals are read-only")
            if definition is not None:
                self.fail(node, f"{what} must be {_TYPE_WORDS[type_]} variable; '{node.name}' is not a variable")
            self.fail(node, f"unknown variable '{node.name}'")
        self.fail(node, f"{what} must be the name of {_TYPE_WORDS[type_]} variable")

    # ---- special forms -------------------------------------------------------------

    def form_cond(self, node: List, args: list) -> ir.Expr:
        if not args:
            self.fail(node, f"cond needs at least one clause: {_usage('cond')}")
        clauses = []
        for clause in args:
            if not isinstance(clause, List) or len(clause.items) != 2:
                self.fail(clause, "a cond clause is a list of a condition and an expression: (CONDITION EXPRESSION)")
            test = self.expect(self.expr(clause.items[0]), INT, "a cond condition")
            clauses.append((test, self.expr(clause.items[1])))
        cond = ir.Cond(_pos(node), TVar(), clauses)
        self.conds.append(cond)
        return cond

    def form_do(self, node: List, args: list) -> ir.Expr:
        self.arity(node, args, 1, None, f"{_usage('do')} needs at least one expression")
        body = [self.expr(a) for a in args]
        return ir.Do(_pos(node), body[-1].tvar, body)

    def _set(self, node: List, args: list, type_: str, form: str) -> ir.Expr:
        self.arity(node, args, 2, 2, _usage(form))
        target = self.variable(args[0], type_, f"the target of {form}")
        value = self.expect(self.expr(args[1]), type_, f"the value assigned by {form}")
        return ir.SetVar(_pos(node), concrete(type_, _pos(node)), target, value)

    def form_setint(self, node, args):
        return self._set(node, args, INT, "setint")

    def form_setstr(self, node, args):
        return self._set(node, args, STR, "setstr")

    def named(self, node, kind, what: str):
        if isinstance(node, Sym):
            definition = self.defs.get(node.name)
            if isinstance(definition, kind):
                return definition
            if definition is None and node.name not in self.scope:
                self.fail(node, f"unknown {what} '{node.name}'")
            self.fail(node, f"'{node.name}' is not {'an' if what[0] in 'aeiou' else 'a'} {what}")
        self.fail(node, f"expected the name of {'an' if what[0] in 'aeiou' else 'a'} {what}")

    def form_aggr(self, node: List, args: list) -> ir.Expr:
        self.arity(node, args, 4, 4, _usage("aggr"))
        aggr = self.named(args[0], ir.AggrDef, "aggregate")
        keys = []
        for key_list, count, type_, kind in ((args[1], aggr.int_keys, INT, "integer"), (args[2], aggr.str_keys, STR, "string")):
            if not isinstance(key_list, List):
                self.fail(key_list, f"the {kind} keys of (aggr ...) must be a list, e.g. () or (KEY ...)")
            if len(key_list.items) != count:
                self.fail(key_list, f"aggregate '{aggr.name}' has {count} {kind} key{'s' if count != 1 else ''}, "
                                    f"but {len(key_list.items)} {'are' if len(key_list.items) != 1 else 'is'} given")
            keys.append([self.expect(self.expr(k), type_, f"{'an' if kind == 'integer' else 'a'} {kind} key of '{aggr.name}'") for k in key_list.items])
        value = self.expect(self.expr(args[3]), INT, "the value added to an aggregate")
        return ir.AggrAdd(_pos(node), concrete(INT), aggr, keys[0], keys[1], value)

    def form_logaggr(self, node, args):
        return self._each_aggregate(node, args, "logaggr", ir.AggrLog)

    def form_clearaggr(self, node, args):
        return self._each_aggregate(node, args, "clearaggr", ir.AggrClear)

    def _each_aggregate(self, node, args, form: str, make) -> ir.Expr:
        """(logaggr A B ...) / (clearaggr A B ...): each aggregate in turn."""
        self.arity(node, args, 1, None, _usage(form))
        each = [make(_pos(node), concrete(INT), self.named(a, ir.AggrDef, "aggregate")) for a in args]
        return each[0] if len(each) == 1 else ir.Do(_pos(node), concrete(INT), each)

    def form_baginsert(self, node, args):
        self.arity(node, args, 3, 3, _usage("baginsert"))
        bag = self.named(args[0], ir.BagDef, "bag")
        key = self.expect(self.expr(args[1]), INT, "a bag key")
        value = self.expect(self.expr(args[2]), INT, "a bag value")
        return ir.BagInsert(_pos(node), concrete(INT), bag, key, value)

    def form_bagremove(self, node, args):
        self.arity(node, args, 2, 2, _usage("bagremove"))
        bag = self.named(args[0], ir.BagDef, "bag")
        key = self.expect(self.expr(args[1]), INT, "a bag key")
        return ir.BagRemove(_pos(node), concrete(INT), bag, key)

    # ---- operators and calls -----------------------------------------------------

    def operator(self, node: List, name: str, args: list) -> ir.Expr:
        operator = spec.OPERATOR_NAMES[name]
        low, high = operator.min_operands, operator.max_operands
        if high == 1:
            usage = f"({name} VALUE) takes one operand"
        else:
            usage = f"({name} {'A B' if low == 2 else 'A'} ...) takes at least {'two operands' if low == 2 else 'one operand'}"
        self.arity(node, args, low, high, usage)
        operands = [self.expect(self.expr(a), INT, f"an operand of '{name}'") for a in args]
        return ir.Op(_pos(node), concrete(INT), operator.symbol, operands)

    def call(self, node: List, func: ir.FuncDef, args: list) -> ir.Expr:
        if len(args) != len(func.params):
            self.fail(node, f"'{func.name}' takes {len(func.params)} argument{'s' if len(func.params) != 1 else ''}, "
                            f"but {len(args)} {'are' if len(args) != 1 else 'is'} given")
        exprs = []
        for param, arg in zip(func.params, args):
            e = self.expr(arg)
            try:
                unify(param.tvar, e.tvar)
            except TypeConflict:
                self.fail(arg, f"argument '{param.name}' of '{func.name}' must be {_TYPE_WORDS[param.tvar.resolved]}, "
                               f"but this is {_TYPE_WORDS[e.tvar.resolved]}")
            exprs.append(e)
        call = ir.Call(_pos(node), func.result, func, exprs)
        self.calls.append((self.current_func, call))
        return call

    def builtin(self, node: List, info: spec.Builtin, args: list) -> ir.BuiltinCall:
        """A call of a builtin, checked against its signature in the spec (and refused here if the
        machine says it cannot run it)."""
        check = getattr(self.backend, "check_builtin", None)
        refusal = check(info.name) if check is not None else None
        if refusal:
            self.fail(node.items[0], f"{info.name}: {refusal}")
        params = info.params
        takes_format = bool(params) and params[-1].type == spec.FORMAT
        self.arity(node, args, sum(not p.optional for p in params), None if takes_format else len(params),
                   info.usage)
        exprs: list[ir.Expr] = []
        addresses: list[tuple[ir.Expr, str]] = []
        result = info.result
        for i, param in enumerate(params):
            what = f"{param.role} of {info.name}"
            if i == len(args):  # an optional parameter left out
                if param.destination:
                    result = param.type  # the value is returned instead of written
                break
            arg = args[i]
            if param.destination:
                exprs.append(self.destination(arg, param.type, what))
            elif param.type == spec.FORMAT:
                exprs.extend(self.format_args(info.name, arg, args[i + 1:]))
            elif param.type == spec.ADDRESS:
                expr = self.expr(arg)
                addresses.append((expr, what))
                exprs.append(expr)
                if isinstance(expr, ir.Const) and isinstance(expr.value, str):
                    self.check_symbol_name(arg, expr.value)
            else:
                exprs.append(self.expect(self.expr(arg), param.type, what))
        call = ir.BuiltinCall(_pos(node), concrete(result), info.name, exprs)
        self.late_addresses.extend(addresses)
        check_constant = _CONSTANT_ARGUMENT_CHECKS.get(info.name)
        if check_constant is not None and isinstance(exprs[0], ir.Const):
            check_constant(self, args[0], exprs[0].value)
        return call

    def check_symbol_name(self, node, name: str) -> None:
        """A constant guest symbol the VM refuses outright (`Backend.symbol_refusal`, optional: a
        real kernel without an old name's counterpart) is refused at load; any other unknown name
        faults when the probe runs, as the reference's VMs do."""
        refusal = getattr(self.backend, "symbol_refusal", None)
        reason = refusal(name) if refusal is not None else None
        if reason is not None:
            self.fail(node, reason)

    def check_gpr_number(self, node, number: int) -> None:
        """A constant getgpr register that does not exist is refused at load."""
        if number >= len(spec.GPR_ORDER):
            self.fail(node, f"getgpr: there is no general-purpose register {number} (0 RAX ... 15 R15)")

    def check_vmcs_field(self, node, number: int) -> None:
        """A constant getvmcs field this VM cannot read is refused at load."""
        field = spec.VMCS_FIELDS.get(number)
        if field is None:
            self.fail(node, f"getvmcs: {number:#x} is not the encoding of a VMCS field this VM's VMCS has")
        if field.global_name is not None and field.global_name not in self.offered_globals:
            reason = ("it runs on AMD-V, which keeps a VMCB" if field.global_name.startswith("VMCS_")
                      else f"it does not offer {field.global_name}")
            self.fail(node, f"getvmcs: this VM cannot read the {field.description} ({number:#x}): {reason}")

    def format_args(self, name: str, fmt_node, rest: list) -> list[ir.Expr]:
        fmt = self.expect(self.expr(fmt_node), STR, f"the format of {name}")
        values = [self.expr(a) for a in rest]
        if isinstance(fmt, ir.Const):
            try:
                compiled = compile_format(fmt.value)
            except FormatError as e:
                self.fail(fmt_node, f"bad {name} format: {e.message} (at offset {e.offset})")
            if len(compiled.kinds) != len(values):
                self.fail(fmt_node, f"the {name} format wants {len(compiled.kinds)} argument{'s' if len(compiled.kinds) != 1 else ''}, "
                                    f"but {len(values)} {'are' if len(values) != 1 else 'is'} given")
            for n, (kind, value) in enumerate(zip(compiled.kinds, values), 1):
                self.expect(value, INT if kind == "int" else STR, f"{name} argument {n} (for the format's directive {n})")
        return [fmt] + values

    def destination(self, node, type_: str, what: str) -> ir.Expr:
        target = self.variable(node, type_, what)
        pos = _pos(node)
        if isinstance(target, ir.Param):
            return ir.ParamRef(pos, target.tvar, target)
        return ir.GlobalRef(pos, concrete(type_), target)

    # ---- whole-script passes ----------------------------------------------------------

    def resolve_types(self) -> None:
        """Settle cond results and overloaded builtins once all direct constraints are known."""
        pending = list(self.conds)
        progress = True
        while pending and progress:
            progress = False
            still = []
            for cond in pending:
                if self.settle_cond(cond, final=False):
                    progress = True
                else:
                    still.append(cond)
            pending = still
        for cond in pending:
            self.settle_cond(cond, final=True)
        for arg, what in self.late_addresses:
            if arg.tvar.resolved is None:
                unify(arg.tvar, concrete(INT))
            elif arg.tvar.resolved == MIXED:
                self.errors.append(self.source.diagnostic(*arg.pos, f"{what} must be a string or an integer, "
                                                                    "but this is sometimes one and sometimes the other"))

    def settle_cond(self, cond: ir.Cond, final: bool) -> bool:
        root = cond.tvar.find()
        bodies = [body for _, body in cond.clauses]
        known = {b.tvar.resolved for b in bodies} - {None}
        if root.type in (INT, STR):
            for body in bodies:
                try:
                    unify(body.tvar, root)
                except TypeConflict as c:
                    self.errors.append(self.source.diagnostic(*body.pos, f"this cond clause yields {_TYPE_WORDS[c.have]}, "
                                                                         f"but the cond's value is used as {_TYPE_WORDS[root.type]}"))
            return True
        if root.type == MIXED:
            return True
        if len(known) > 1:
            root.type = MIXED
            return True
        if known or final:
            for body in bodies:
                unify(body.tvar, cond.tvar)
            return True
        return False

    def mark_written_params(self) -> None:
        """A parameter passed to a written parameter is itself written (until nothing changes)."""
        changed = True
        while changed:
            changed = False
            for _, call in self.calls:
                for param, arg in zip(call.func.params, call.args):
                    if param.written and isinstance(arg, ir.ParamRef) and not arg.param.written:
                        arg.param.written = True
                        changed = True

    def mark_recursion(self) -> None:
        """Functions on a cycle of the call graph get a run-time depth check."""
        graph: dict[int, set[int]] = {id(f): set() for f in self.functions}
        for caller, call in self.calls:
            if caller is not None:
                graph[id(caller)].add(id(call.func))
        by_id = {id(f): f for f in self.functions}
        for fid in nodes_on_cycles(graph):
            by_id[fid].recursive = True


# Builtins whose first argument, when constant, is checked at load: what it names must exist.
_CONSTANT_ARGUMENT_CHECKS = {"getgpr": Checker.check_gpr_number, "getvmcs": Checker.check_vmcs_field}


def check(source: Source, forms: list, backend: Backend) -> tuple[ir.Program, list[Diagnostic]]:
    """Check `forms`; return the program and its warnings, or raise VPLoadError."""
    checker = Checker(source, backend)
    return checker.check(forms), checker.warnings
