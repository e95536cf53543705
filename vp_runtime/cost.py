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
