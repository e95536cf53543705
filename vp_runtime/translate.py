"""Translation of a checked script into Python source, compiled once at load.

Each `defun` becomes a Python function and each `vprobe` a probe function the
machine calls directly, so a firing runs straight-line Python with no tree
walking.  This is a security boundary: the generated source is built only from
names this module invents (`g3`, `f1`, `p0`, ...), decimal integer literals and
fixed text.  Every VP name, string, format and file name reaches the code as a
value in the namespace (`_c7`), never as source text, so no script can run
Python of its own.

Integers are Python ints kept in 0 .. 2**64-1: `+ - * <<` are masked, the rest
cannot leave the range.  Division and modulo by zero, guest reads, symbol
look-ups and deep recursion raise VPFault carrying the VP position.  Functions on a
call-graph cycle also count their calls against the firing's budget (`_calls_left`,
set by each probe that can reach one), so recursion cannot make a firing run long;
code without recursion carries neither check.

When the machine models the time probes take, the code also counts the VP
operations it executes (`counting`; the cost model is `cost.py`'s): a probe
or function adds its straight-line cost when entered, each way through a
`cond` and each later operand of `&&` / `||` what it adds when taken, into the
namespace's `_ops`.  Code without branches or calls pays one addition per firing.

Each probe also counts its firings into `_fired` (the script's `firings`, which
the tools report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import ir, spec
from .backend import GlobalPath
from .builtins import plain_name
from .cost import cond_plan, straight_cost
from .limits import MAX_STRING_BYTES
from .printf import compile_format
from .spec import MASK64
from .typevars import STR

M64 = str(MASK64)  # the mask as it appears in generated source
DISCARD, RETURN = "discard", "return"

_ARITH = {"+", "-", "*"}
_BITWISE = {"^", "|", "&"}
_COMPARE = {">", "<", ">=", "<=", "==", "!="}


@dataclass
class Translation:
    """Python source plus the values its names stand for."""

    source: str
    constants: dict[str, object] = field(default_factory=dict)
    probe_functions: list[str] = field(default_factory=list)
    # Built-in global -> the namespace name of the machine's reader for it.
    readers: dict[str, str] = field(default_factory=dict)
    # The builtins the code calls, and whether it writes text to the log (text that may leave a
    # line unfinished: logstr, logint, printf), so that a firing pays only for what it can need.
    builtins: frozenset[str] = frozenset()
    writes_text: bool = False


class Translator:
    def __init__(self, program: ir.Program, location: Callable[[int, int], str], budgeted=frozenset(), *,
                 stamped: bool = False, counting: bool = False, paths: dict[str, GlobalPath] | None = None):
        self.program = program
        self.paths = paths or {}  # built-in globals read where they are (`GlobalPath`), not called for
        self.counting = counting  # count the VP operations executed into `_ops`
        self.budgeted = budgeted  # indexes of the probes that can reach recursive functions
        # A node's (line, byte column) as the `file:line:col` its fault lines name.
        self.location = location
        # Aggregate entries also record the aggregate clock (`_clock`) at each update.
        self.stamped = stamped
        self.names: dict[int, str] = {}
        for prefix, items in (("g", program.variables), ("a", program.aggregates), ("b", program.bags),
                              ("f", program.functions)):
            for i, item in enumerate(items):
                self.names[id(item)] = f"{prefix}{i}"
        machine_read = [name for name in program.builtin_globals if name not in RUNTIME_VALUES]
        self.readers = {name: f"r{i}" for i, name in enumerate(machine_read)}
        # Probes store their name for the functions they call when any function may read it.
        self.store_probe_name = len(machine_read) < len(program.builtin_globals)
        self.constants: dict[str, object] = {}
        self._const_names: dict[tuple, str] = {}
        self.out: list[str] = []
        self.temp_count = 0
        self.builtins_called: set[str] = set()
        self.writes_text = False
        # Per function being emitted:
        self.assigned_globals: set[str] = set()
        self.probe_name_const: str | None = None
        self.probe_vmm: str | None = None

    # ---- helpers -----------------------------------------------------------------

    def const(self, value) -> str:
        key = (type(value).__name__, value if isinstance(value, (int, str)) else id(value))
        name = self._const_names.get(key)
        if name is None:
            name = f"_c{len(self._const_names)}"
            self._const_names[key] = name
            self.constants[name] = value
        return name

    def where(self, expr_or_pos) -> str:
        """The constant naming `file:line:col` of an expression or position, for fault lines."""
        line, col = expr_or_pos if isinstance(expr_or_pos, tuple) else expr_or_pos.pos
        return self.const(self.location(line, col))

    def name(self, item) -> str:
        return self.names[id(item)]

    def emit(self, indent: int, text: str) -> None:
        self.out.append("    " * indent + text)

    def charged(self, operations: int, code: str) -> str:
        """`code` (an expression), counting `operations` first when the code counts."""
        if not self.counting or not operations:
            return code
        self.assigned_globals.add("_ops")
        return f"((_ops := _ops + {operations}) and ({code}))"

    def count(self, indent: int, operations: int) -> None:
        """A statement counting `operations`, when the code counts."""
        if self.counting and operations:
            self.assigned_globals.add("_ops")
            self.emit(indent, f"_ops += {operations}")

    # ---- expressions ----------------------------------------------------------

    def x(self, e: ir.Expr) -> str:
        """`e` as one Python expression."""
        method = getattr(self, "x_" + type(e).__name__)
        return method(e)

    def x_Const(self, e: ir.Const) -> str:
        return str(e.value) if isinstance(e.value, int) else self.const(e.value)

    def x_GlobalRef(self, e: ir.GlobalRef) -> str:
        name = self.name(e.var)
        return f"{name}.v" if e.var.type == STR else name

    def x_ParamRef(self, e: ir.ParamRef) -> str:
        return f"p{e.param.index}.v" if e.param.by_reference else f"p{e.param.index}"

    def x_BuiltinRef(self, e: ir.BuiltinRef) -> str:
        reader = self.readers.get(e.name)
        if reader is None:
            return RUNTIME_VALUES[e.name](self)
        path = self.paths.get(e.name)
        if path is None:
            return f"{reader}()"
        attributes, key = path  # the namespace name stands for the object the path starts from
        return reader + "".join(f".{a}" for a in attributes) + ("" if key is None else f"[{key!r}]")

    def probe_name(self) -> str:
        """The firing probe's name: a constant in the probe's own code; in a function,
        what the probe that called it stored."""
        return self.probe_name_const or "_probename_box[0]"

    def probe_in_vmm(self) -> str:
        """ISVMM: 1 if the firing probe runs in VMM context, 0 in VMX context; known in the
        probe's own code, stored beside its name for the functions it calls."""
        return self.probe_vmm or "_probename_box[1]"

    def operands(self, e: ir.Op) -> tuple[list[str], list[str]]:
        """The code of `e`'s operands, evaluated right to left, and the code that must run first.

        VP evaluates an operator's operands from the last to the first, so in
        `(+ _nameOffset (guestload (curthrptr)))` the call that sets
        `_nameOffset` runs before it is read (the reference's curprocname
        relies on this).  Python evaluates left to right, so when the order
        can be observed (an operand has an effect or can fault, and another
        operand is not a constant) every non-constant operand but the first
        is computed into a temporary, last operand first.
        """
        args = e.args
        if sum(not isinstance(a, ir.Const) for a in args) < 2 or not any(_effectful(a) for a in args):
            return [], [self.x(a) for a in args]
        codes: list[str] = [""] * len(args)
        first: list[str] = []
        for i in range(len(args) - 1, 0, -1):
            if isinstance(args[i], ir.Const):
                codes[i] = self.x(args[i])
                continue
            temp = f"_t{self.temp_count}"
            self.temp_count += 1
            first.append(f"({temp} := {self.x(args[i])})")
            codes[i] = temp
        codes[0] = self.x(args[0])
        return first, codes

    @staticmethod
    def sequence(first: list[str], code: str) -> str:
        """`code`, after the code in `first` has run."""
        return f"({', '.join(first)}, {code})[-1]" if first else code

    def x_Op(self, e: ir.Op) -> str:
        op = e.op
        if op in ("&&", "||", "!") or op in _COMPARE:
            return f"(1 if {self.truth(e)} else 0)"
        first, args = self.operands(e)
        if op == "-" and len(args) == 1:  # negation
            return f"((-{args[0]}) & {M64})"
        if op in _ARITH:
            return self.sequence(first, f"(({f' {op} '.join(args)}) & {M64})")
        if op in _BITWISE:
            return self.sequence(first, f"({f' {op} '.join(args)})")
        if op == "~":
            return f"({args[0]} ^ {M64})"
        # Folding operators whose every step needs checking: / % << >>
        acc = args[0]
        for operand, node in zip(args[1:], e.args[1:]):
            acc = self.binary_step(op, acc, operand, node)
        return self.sequence(first, acc)

    def binary_step(self, op: str, a: str, b: str, b_node: ir.Expr) -> str:
        constant = b_node.value if isinstance(b_node, ir.Const) else None
        if op == ">>":
            return f"({a} >> {b})"
        if op == "<<":
            if constant is not None and constant < 64:
                return f"(({a} << {b}) & {M64})"
            return f"_shl({a}, {b})"
        if constant:  # a non-zero constant divisor cannot fault
            return f"({a} {'//' if op == '/' else '%'} {b})"
        helper = "_div" if op == "/" else "_mod"
        return f"{helper}({a}, {b}, {self.where(b_node)})"

    def truth(self, e: ir.Expr) -> str:
        """`e` as a Python condition (any truthy value), for `if` and the logical operators."""
        if isinstance(e, ir.Op):
            if e.op in _COMPARE:
                first, args = self.operands(e)
                acc = args[0]
                for i, operand in enumerate(args[1:]):
                    test = f"{acc} {e.op} {operand}"
                    acc = test if i == len(args) - 2 else f"(1 if {test} else 0)"
                return self.sequence(first, acc)
            if e.op in ("&&", "||"):
                later = [self.charged(straight_cost(a), self.truth(a)) for a in e.args[1:]]
                joiner = " and " if e.op == "&&" else " or "
                return "(" + joiner.join([self.truth(e.args[0]), *later]) + ")"
            if e.op == "!":
                return f"(not {self.truth(e.args[0])})"
        return self.x(e)

    def default(self, e: ir.Expr) -> str:
        """What a cond with no true clause yields: 0, or "" for a string cond."""
        return self.const("") if e.tvar.resolved == STR else "0"

    def x_Cond(self, e: ir.Cond) -> str:
        plan = cond_plan(e)
        parts = [f"{self.charged(straight_cost(body), self.x(body))} if {self.charged(reach, self.truth(test))} else"
                 for test, body, reach in plan.clauses]
        last = self.default(e) if plan.otherwise is None else self.x(plan.otherwise)
        if plan.clauses:
            last = self.charged(plan.otherwise_cost, last)
        return f"({' '.join(parts + [last])})"

    def x_Do(self, e: ir.Do) -> str:
        return f"({', '.join(self.x(b) for b in e.body)},)[-1]"

    def target(self, t: ir.VarDef | ir.Param) -> tuple[str, bool]:
        """The Python name of an assignment target, and whether it is a string cell."""
        if isinstance(t, ir.Param):
            return f"p{t.index}", t.by_reference
        name = self.name(t)
        if t.type == STR:
            return name, True
        self.assigned_globals.add(name)
        return name, False

    def x_SetVar(self, e: ir.SetVar) -> str:
        name, is_cell = self.target(e.target)
        value = self.x(e.value)
        return f"_set({name}, {value})" if is_cell else f"({name} := {value})"

    def cell(self, e: ir.Expr) -> str:
        """A string cell for `e`: the variable's own when it is one, else a fresh temporary."""
        if isinstance(e, ir.GlobalRef):
            return self.name(e.var)
        if isinstance(e, ir.ParamRef) and e.param.by_reference:
            return f"p{e.param.index}"
        return f"_Cell({self.x(e)})"

    def x_Call(self, e: ir.Call) -> str:
        args = [self.cell(a) if p.by_reference else self.x(a) for p, a in zip(e.func.params, e.args)]
        return f"{self.name(e.func)}({', '.join(args)})"

    def x_AggrAdd(self, e: ir.AggrAdd) -> str:
        clock = ", _clock" if self.stamped else ""
        return f"_aggr_add({self.name(e.aggr)}, {self.key(e)}, {self.x(e.value)}{clock})"

    def key(self, e: ir.AggrAdd) -> str:
        keys = [self.x(k) for k in e.int_keys + e.str_keys]
        if len(keys) == 1:
            return keys[0]
        return f"({', '.join(keys)}{',' if keys else ''})"

    def x_AggrLog(self, e: ir.AggrLog) -> str:
        return f"_logaggr(A{self.name(e.aggr)})"

    def x_AggrClear(self, e: ir.AggrClear) -> str:
        return f"_clearaggr(A{self.name(e.aggr)})"

    def x_BagInsert(self, e: ir.BagInsert) -> str:
        return f"{self.name(e.bag)}.insert({self.x(e.key)}, {self.x(e.value)})"

    def x_BagRemove(self, e: ir.BagRemove) -> str:
        return f"{self.name(e.bag)}.remove({self.x(e.key)})"

    def formatted(self, fmt: ir.Expr, values: list[ir.Expr], loc: ir.Expr) -> str:
        """The text a printf/sprintf call produces."""
        args = "(" + "".join(self.x(v) + ", " for v in values) + ")"
        if isinstance(fmt, ir.Const):
            compiled = compile_format(fmt.value)
            if not values:
                return self.const(compiled(()))
            return f"{self.const(compiled)}({args})"
        return f"_format({self.x(fmt)}, {args}, {self.where(loc)})"

    def x_BuiltinCall(self, e: ir.BuiltinCall) -> str:
        self.builtins_called.add(e.name)
        code = BUILTIN_CODE.get(e.name)
        if code is not None:
            return code(self, e)
        # A plain builtin: its implementation, called with its arguments and where it is called.
        return f"{plain_name(e.name)}({''.join(self.x(a) + ', ' for a in e.args)}{self.where(e)})"

    # ---- builtins with code of their own (BUILTIN_CODE below) ---------------------------

    def log_text(self, helper: str, code: str) -> str:
        """A call writing text to the log (`_logstr` or `_logint`)."""
        self.writes_text = True
        return f"{helper}({code})"

    def b_logstr(self, e: ir.BuiltinCall) -> str:
        return self.log_text("_logstr", self.x(e.args[0]))

    def b_logint(self, e: ir.BuiltinCall) -> str:
        return self.log_text("_logint", self.x(e.args[0]))

    def b_printf(self, e: ir.BuiltinCall) -> str:
        return self.log_text("_logstr", self.formatted(e.args[0], e.args[1:], e))

    def b_sprintf(self, e: ir.BuiltinCall) -> str:
        return f"_setstr({self.cell(e.args[0])}, {self.formatted(e.args[1], e.args[2:], e)})"

    def b_strcmp(self, e: ir.BuiltinCall) -> str:
        return f"_strcmp({self.x(e.args[0])}, {self.x(e.args[1])})"

    def b_getguest(self, e: ir.BuiltinCall) -> str:
        a = e.args
        helper = "_getguest_sym" if a[0].tvar.resolved == STR else "_getguest"
        return f"{helper}({self.x(a[0])}, {self.where(e)})"

    def b_getgueststr(self, e: ir.BuiltinCall) -> str:
        a = e.args
        dest = self.cell(a[0])
        if a[1].tvar.resolved == STR:
            offset = self.x(a[2]) if len(a) == 3 else "0"
            return f"_getgueststr_sym({dest}, {self.x(a[1])}, {offset}, {self.where(e)})"
        if len(a) == 3:
            return f"_getgueststr({dest}, {self.x(a[2])}, {self.x(a[1])}, {self.where(e)})"
        return f"_getgueststr({dest}, {self.x(a[1])}, {MAX_STRING_BYTES}, {self.where(e)})"

    def b_gueststack(self, e: ir.BuiltinCall) -> str:
        dest = self.cell(e.args[0]) if e.args else "None"
        return f"_gueststack({dest}, {self.where(e)})"

    def b_getguestphysstr(self, e: ir.BuiltinCall) -> str:
        a = e.args
        return f"_getguestphysstr({self.cell(a[0])}, {self.x(a[2])}, {self.x(a[1])}, {self.where(e)})"

    def b_getsystemtime(self, e: ir.BuiltinCall) -> str:
        a = e.args
        if not a:
            return "_systemtime()"
        target, _ = self.target(a[0].param if isinstance(a[0], ir.ParamRef) else a[0].var)
        return f"(({target} := _systemtime()), 1)[1]"

    # ---- statements ------------------------------------------------------------

    def stmt(self, e: ir.Expr, target: str, indent: int) -> None:
        """Emit `e` as statements; with RETURN, return its value."""
        if isinstance(e, ir.Cond):
            plan = cond_plan(e)
            clauses, otherwise = plan.clauses, plan.otherwise
            for i, (test, body, reach) in enumerate(clauses):
                self.emit(indent, f"{'if' if i == 0 else 'elif'} {self.charged(reach, self.truth(test))}:")
                self.count(indent + 1, straight_cost(body))
                self.block(body, target, indent + 1)
            counted_otherwise = self.counting and clauses and plan.otherwise_cost
            if otherwise is None and target != RETURN and not counted_otherwise:
                return
            if clauses:
                self.emit(indent, "else:")
                indent += 1
                self.count(indent, plan.otherwise_cost)
            if otherwise is None:
                if target == RETURN:
                    self.emit(indent, f"return {self.default(e)}")
            else:  # under `else:` a body that emits nothing needs a `pass`
                (self.block if clauses else self.stmt)(otherwise, target, indent)
            return
        if isinstance(e, ir.Do):
            for sub in e.body[:-1]:
                self.stmt(sub, DISCARD, indent)
            self.stmt(e.body[-1], target, indent)
            return
        if isinstance(e, ir.SetVar):
            name, is_cell = self.target(e.target)
            place = f"{name}.v" if is_cell else name
            self.emit(indent, f"{place} = {self.x(e.value)}")
            if target == RETURN:
                self.emit(indent, f"return {place}")
            return
        if isinstance(e, ir.AggrAdd):
            self.aggregate_update(e, indent)
            if target == RETURN:
                self.emit(indent, "return 1")
            return
        if target == DISCARD:
            if isinstance(e, (ir.Const, ir.GlobalRef, ir.ParamRef)) or (
                    isinstance(e, ir.BuiltinRef) and e.name not in self.readers):
                return  # nothing to do, nothing that can fault
            if isinstance(e, ir.AggrClear):
                self.emit(indent, f"A{self.name(e.aggr)}.clear()")
                return
            self.emit(indent, self.x(e))
            return
        self.emit(indent, f"return {self.x(e)}")

    def block(self, e: ir.Expr, target: str, indent: int) -> None:
        before = len(self.out)
        self.stmt(e, target, indent)
        if len(self.out) == before:
            self.emit(indent, "pass")

    def aggregate_update(self, e: ir.AggrAdd, indent: int) -> None:
        """The inline form of `aggr`: the hot path of most scripts."""
        table = self.name(e.aggr)
        stamp = ", _clock()" if self.stamped else ""
        lines = [
            f"_k = {self.key(e)}",
            f"_v = {self.x(e.value)}",
            f"_e = {table}.get(_k)",
            "if _e is None:",
            f"    {table}[_k] = [1, _v, _v, _v, _v{stamp}]",
            "else:",
            "    _e[0] += 1",
            "    _e[1] += _v",
            "    if _v < _e[2]:",
            "        _e[2] = _v",
            "    elif _v > _e[3]:",
            "        _e[3] = _v",
            "    _e[4] = _v",
        ]
        if self.stamped:
            lines.append("    _e[5] = _clock()")
        for line in lines:
            self.emit(indent, line)

    # ---- definitions -----------------------------------------------------------

    def function(self, func: ir.FuncDef) -> None:
        self.assigned_globals = set()
        self.probe_name_const = self.probe_vmm = None
        header = f"def {self.name(func)}({', '.join(f'p{p.index}' for p in func.params)}):"
        start = len(self.out)
        indent = 1
        if func.recursive:
            # The work budget: what no bound at load covers is counted (probes reset it).
            self.assigned_globals.add("_calls_left")
            self.emit(1, "_calls_left -= 1")
            self.emit(1, f"if _calls_left < 0: _exhausted({self.where(func.pos)})")
            self.emit(1, f"if _depth[0] >= _max_depth: _overflow({self.where(func.pos)})")
            self.emit(1, "_depth[0] += 1")
            self.emit(1, "try:")
            indent = 2
        self.count(indent, sum(straight_cost(e) for e in func.body))
        for e in func.body[:-1]:
            self.stmt(e, DISCARD, indent)
        self.stmt(func.body[-1], RETURN, indent)
        if func.recursive:
            # A depth limit above what the host stack holds ends here, still located.
            self.emit(1, "except _RecursionError:")
            self.emit(2, f"_host_overflow({self.where(func.pos)})")
            self.emit(1, "finally:")
            self.emit(2, "_depth[0] -= 1")
        self.finish(header, start)

    def probe(self, index: int, probe: ir.ProbeDef) -> str:
        self.assigned_globals = set()
        name = f"probe{index}"
        self.probe_name_const = self.const(probe.spec.text)
        point = probe.spec.static or probe.spec.parametric
        self.probe_vmm = "1" if point.context == spec.VMM else "0"
        header = f"def {name}():"
        start = len(self.out)
        if self.store_probe_name:
            self.emit(1, f"_probename_box[:] = ({self.probe_name_const}, {self.probe_vmm})")
        if index in self.budgeted:
            self.assigned_globals.add("_calls_left")
            self.emit(1, "_calls_left = _max_calls")
        self.emit(1, f"_fired[{index}] += 1")  # how often it fired (Script.firings), for the tools
        self.count(1, sum(straight_cost(e) for e in probe.body))
        self.emit(1, "try:")
        before = len(self.out)
        for e in probe.body:
            self.stmt(e, DISCARD, 2)
        if len(self.out) == before:
            self.emit(2, "pass")
        self.emit(1, "except _Fault as _f:")
        self.emit(2, f"_fault({self.probe_name_const}, _f)")
        where = self.where(probe.pos)
        self.emit(1, "except _RecursionError:")
        self.emit(2, f"_fault({self.probe_name_const}, _stack_fault({where}))")
        self.emit(1, "except _Exception as _x:")
        self.emit(2, f"_fault({self.probe_name_const}, _internal_fault(_x, {where}))")
        self.finish(header, start)
        return name

    def finish(self, header: str, start: int) -> None:
        body = self.out[start:]
        del self.out[start:]
        self.out.append(header)
        if self.assigned_globals:
            self.out.append(f"    global {', '.join(sorted(self.assigned_globals))}")
        self.out.extend(body)
        self.out.append("")

    def translate(self) -> Translation:
        for func in self.program.functions:
            self.function(func)
        probes = [self.probe(i, p) for i, p in enumerate(self.program.probes)]
        source = "\n".join(self.out) + "\n"
        return Translation(source, self.constants, probes, self.readers, frozenset(self.builtins_called),
                           self.writes_text)


def _effectful(e: ir.Expr) -> bool:
    """Whether evaluating `e` can change state, write the log or fault."""
    if isinstance(e, (ir.Const, ir.GlobalRef, ir.ParamRef, ir.BuiltinRef)):
        return False
    if isinstance(e, ir.Op):
        if e.op in ("/", "%") and any(not (isinstance(a, ir.Const) and a.value) for a in e.args[1:]):
            return True
        return any(_effectful(a) for a in e.args)
    if isinstance(e, ir.Cond):
        return any(_effectful(t) or _effectful(b) for t, b in e.clauses)
    if isinstance(e, ir.Do):
        return any(_effectful(b) for b in e.body)
    return True


# The builtins whose call is not the plain one (builtins.PLAIN_BUILTINS has the others).
BUILTIN_CODE = {
    "logstr": Translator.b_logstr, "logint": Translator.b_logint, "printf": Translator.b_printf,
    "sprintf": Translator.b_sprintf, "strcmp": Translator.b_strcmp, "getguest": Translator.b_getguest,
    "getgueststr": Translator.b_getgueststr, "gueststack": Translator.b_gueststack,
    "getguestphysstr": Translator.b_getguestphysstr,
    "getsystemtime": Translator.b_getsystemtime,
}

# The built-in globals whose value the runtime knows itself (spec: supplied_by RUNTIME).
RUNTIME_VALUES = {"PROBENAME": Translator.probe_name, "ISVMM": Translator.probe_in_vmm}


def translate(program: ir.Program, location: Callable[[int, int], str], budgeted=frozenset(), *,
              stamped: bool = False, counting: bool = False, paths: dict[str, GlobalPath] | None = None) -> Translation:
    """`program` as Python source; `location` gives the `file:line:col` a fault at a (line, byte
    column) names; the probes whose indexes are in `budgeted` (those that can reach a recursive
    function) start each firing with a fresh call budget; `stamped`: aggregate entries also
    record the aggregate clock (see `vp_runtime.load`); `counting`: the code counts the VP
    operations it executes into `_ops` (see the module's description); `paths`: the built-in
    globals the code reads where the machine keeps them (`Backend` describes `global_path`):
    their reader's name in `readers` then stands for the object the path starts from."""
    for name, (attributes, key) in (paths or {}).items():
        if not all(a.isidentifier() and not a.startswith("_") for a in attributes) or \
                not isinstance(key, (int, str, type(None))):
            raise ValueError(f"the machine's path to {name} is not one of attributes and a key: {attributes!r}, {key!r}")
    return Translator(program, location, budgeted, stamped=stamped, counting=counting, paths=paths).translate()
