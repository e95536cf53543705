"""The cost model of VP, and the most work a probe firing can do, computed at load.

VP has no loops, so a probe whose code never recurses does a bounded amount
of work, and the bound can be read off the checked program.  The unit is the
*VP operation*:

* one evaluation of a node of the checked program: a constant, a read of a
  variable, parameter or built-in global, a special form (`cond`, `do`,
  `setint`, `aggr` ...), a call of a user function, a builtin; an operator
  counts one operation per step (`(+ a b c)` is two additions);
* plus, for the builtins that read the guest, one per 8-byte word of guest
  memory they may read (the spec's `guest_words` of each builtin).

`operation_cost(node)` is that definition for one node (its operands are
nodes of their own); everything that charges for VP operations reads it.
`logaggr` and `clearaggr` are one operation each: the entries they print or
drop are what the script collected, not code.

The bound of a probe (`probe_costs`) is the worst case over the program's
paths: a sequence costs the sum of its parts, a `cond` its costliest way
through (tests are evaluated in order up to the clause taken), `&&` and `||`
all their operands, and a call its arguments plus the callee's body.
Functions on a cycle of the call graph have no static bound; the runtime
counts their calls against `vprobe.maxCallsPerFiring` instead.  For a probe
that reaches one, the bound is its work outside recursive activations plus
that many activations of the costliest recursive function it can reach
(calls of recursive functions inside an activation count only the call and
its arguments: the callee's activation counts on its own).

The same unit is what a firing is charged for when the machine models the
time probes take (`vprobe.chargeProbeTime = "model"`): the translated code
counts the operations it executes (`LoadConfig.count_operations`).  Work is
counted a straight-line stretch at a time: `straight_cost(e)` is what
evaluating `e` always executes (its own operation and the operands that always
run, up to the first place where the path depends on data); `cond_plan`
says how a `cond` is laid out and what reaching each of its parts adds (a
constant test is decided at load, as the translator does); the first operand
of `&&` and `||` is straight line, each later one is counted when it is
evaluated; a callee counts its own body when it is entered.  For code
without `cond`, `&&`, `||` or calls the count is a constant known at load,
and equals the probe's bound.  A firing that faults part-way is charged for
every stretch it entered.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .spec.builtins import BUILTINS


def operation_cost(node: ir.Expr) -> int:
    """VP operations evaluating `node` itself takes (not counting its operands)."""
    if isinstance(node, ir.Op):
        return max(1, len(node.args) - 1)
    if isinstance(node, ir.BuiltinCall):
        return 1 + BUILTINS[node.name].guest_words
    return 1


@dataclass(frozen=True)
class CondPlan:
    """A `cond` as it runs: the clauses whose test is decided at run time, and what each part adds.

    `lead` is what always runs (the constant tests before the first live one, and
    that test): part of the enclosing straight line.  `clauses` are the live
    (test, body, reach) triples, `reach` being what evaluating the test adds when
    control gets there (0 for the first: in `lead`).  `otherwise` is the body that
    runs when no live test holds (a constant true test's, or None: the cond's
    default), and `otherwise_cost` what that way adds (the constant tests after the
    last live one, and the otherwise body's straight line).  With no live clause
    `lead` covers the whole cond, its otherwise included.
    """

    lead: int
    clauses: list[tuple[ir.Expr, ir.Expr, int]]
    otherwise: ir.Expr | None
    otherwise_cost: int


def cond_plan(e: ir.Cond) -> CondPlan:
    """How `e` runs (see `CondPlan`): a constant test is decided here, so a zero one drops its
    clause and a non-zero one makes its body the otherwise and drops every clause after it."""
    clauses: list[tuple[ir.Expr, ir.Expr, int]] = []
    pending = lead = 0  # constant tests not charged yet
    for test, body in e.clauses:
        if isinstance(test, ir.Const):
            pending += operation_cost(test)
            if test.value:
                if not clauses:
                    return CondPlan(lead + pending + straight_cost(body), [], body, 0)
                return CondPlan(lead, clauses, body, pending + straight_cost(body))
            continue
        reach = pending + straight_cost(test)
        if clauses:
            clauses.append((test, body, reach))
        else:
            lead = reach
            clauses.append((test, body, 0))
        pending = 0
    if not clauses:
        return CondPlan(pending, [], None, 0)
    return CondPlan(lead, clauses, None, pending)


def straight_cost(e: ir.Expr) -> int:
    """VP operations evaluating `e` executes whatever the data: its own and those of the operands
    that always run (see the module's description)."""
    own = operation_cost(e)
    if isinstance(e, ir.Cond):
        return own + cond_plan(e).lead
    if isinstance(e, ir.Op) and e.op in ("&&", "||"):
        return own + straight_cost(e.args[0])
    return own + sum(straight_cost(child) for child in _children(e))


@dataclass(frozen=True)
class ProbeCost:
    """The most VP operations one firing of a probe executes."""

    probe: str  # the probe point, as the script names it
    pos: ir.Pos  # of the probe point in the script
    operations: int  # the worst case; with recursion, the work outside recursive activations
    recursion: tuple[str, ...] = ()  # recursive functions the probe can reach, in definition order
    per_call: int = 0  # the most one activation of those functions executes
    max_calls: int = 0  # the calls a firing may make of them (vprobe.maxCallsPerFiring)

    @property
    def bounded(self) -> bool:
        """Whether the code alone bounds the probe (it reaches no recursion)."""
        return not self.recursion

    @property
    def worst_case(self) -> int:
        """The most a firing can execute: with recursion, under the call budget."""
        return self.operations + self.max_calls * self.per_call

    def describe(self) -> str:
        """The bound as people read it, e.g. `1,204` or `unbounded recursion (fib): ...`."""
        if self.bounded:
            return f"{self.operations:,}"
        names = ", ".join(self.recursion)
        return (f"unbounded recursion ({names}): budget {self.max_calls:,} calls of at most "
                f"{self.per_call:,} operations, so at most {self.worst_case:,}")


class _Costs:
    """Costs of expressions and function bodies; recursive functions' activations counted apart."""

    def __init__(self, program: ir.Program):
        self.program = program
        self.local: dict[int, int] = {}  # id(function) -> cost of one activation
        self.callees: dict[int, list[ir.FuncDef]] = {}
        for func in program.functions:
            found: list[ir.FuncDef] = []
            for e in func.body:
                _calls_in(e, found)
            self.callees[id(func)] = found
        # Bodies in callee-first order (iteratively: call chains may be longer than the host stack).
        done: set[int] = set()
        for root in program.functions:
            if id(root) in done:
                continue
            stack = [(root, iter(self.callees[id(root)]))]
            done.add(id(root))
            while stack:
                func, pending = stack[-1]
                for callee in pending:
                    if id(callee) not in done and not callee.recursive:
                        done.add(id(callee))
                        stack.append((callee, iter(self.callees[id(callee)])))
                        break
                else:
                    stack.pop()
                    self.local[id(func)] = sum(self.expr(e) for e in func.body)

    def expr(self, e: ir.Expr) -> int:
        own = operation_cost(e)
        if isinstance(e, ir.Cond):
            worst = tests = 0
            for test, body in e.clauses:
                tests += self.expr(test)
                worst = max(worst, tests + self.expr(body))
            return own + max(worst, tests)
        if isinstance(e, ir.Call):
            callee = 0 if e.func.recursive else self.local[id(e.func)]
            return own + sum(self.expr(a) for a in e.args) + callee
        return own + sum(self.expr(child) for child in _children(e))

    def reachable_recursion(self, body: list[ir.Expr]) -> list[ir.FuncDef]:
        """The recursive functions `body` can reach through any chain of calls."""
        found: list[ir.FuncDef] = []
        for e in body:
            _calls_in(e, found)
        seen = {id(f) for f in found}
        work = list(found)
        while work:
            for callee in self.callees[id(work.pop())]:
                if id(callee) not in seen:
                    seen.add(id(callee))
                    work.append(callee)
        return [f for f in self.program.functions if id(f) in seen and f.recursive]


def _children(e: ir.Expr) -> list[ir.Expr]:
    if isinstance(e, (ir.Op, ir.BuiltinCall, ir.Call)):
        return e.args
    if isinstance(e, ir.Do):
        return e.body
    if isinstance(e, ir.Cond):
        return [part for clause in e.clauses for part in clause]
    if isinstance(e, ir.SetVar):
        return [e.value]
    if isinstance(e, ir.AggrAdd):
        return [*e.int_keys, *e.str_keys, e.value]
    if isinstance(e, ir.BagInsert):
        return [e.key, e.value]
    if isinstance(e, ir.BagRemove):
        return [e.key]
    return []


def _calls_in(e: ir.Expr, found: list[ir.FuncDef]) -> None:
    """Append the functions `e` calls directly that `found` does not hold yet."""
    seen = {id(f) for f in found}
    work = [e]
    while work:
        node = work.pop()
        if isinstance(node, ir.Call) and id(node.func) not in seen:
            seen.add(id(node.func))
            found.append(node.func)
        work.extend(_children(node))


def probe_costs(program: ir.Program, max_calls: int) -> list[ProbeCost]:
    """The bound of every probe of `program`, in script order; `max_calls` is the call budget."""
    costs = _Costs(program)
    result = []
    for probe in program.probes:
        operations = sum(costs.expr(e) for e in probe.body)
        recursion = costs.reachable_recursion(probe.body)
        if not recursion:
            result.append(ProbeCost(probe.spec.text, probe.pos, operations))
            continue
        per_call = max(costs.local[id(f)] for f in recursion)
        result.append(ProbeCost(probe.spec.text, probe.pos, operations, tuple(f.name for f in recursion),
                                per_call, max_calls))
    return result
