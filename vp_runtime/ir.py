"""The checked form of a script that the translator turns into Python.

The checker builds these nodes from the reader's forms once every name is
resolved; each expression carries its position (for fault messages) and a
type variable (resolved when the whole script has been checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .probe_points import ProbeSpec
from .typevars import TVar

Pos = tuple[int, int]


# ---- definitions -------------------------------------------------------------

@dataclass(eq=False)
class VarDef:
    """A user global: `definteger` or `defstring`."""

    name: str
    type: str
    init: int | str
    pos: Pos


@dataclass(eq=False)
class AggrDef:
    name: str
    int_keys: int
    str_keys: int
    pos: Pos


@dataclass(eq=False)
class BagDef:
    name: str
    size: int
    pos: Pos


@dataclass(eq=False)
class Param:
    name: str
    index: int
    tvar: TVar
    pos: Pos
    written: bool = False  # assigned in its function, or passed on to a written parameter

    @property
    def by_reference(self) -> bool:
        """String parameters that are written share the caller's variable."""
        return self.written and self.tvar.resolved == "string"


@dataclass(eq=False)
class FuncDef:
    name: str
    params: list[Param]
    result: TVar
    pos: Pos
    body: list["Expr"] = field(default_factory=list)
    recursive: bool = False


@dataclass(eq=False)
class ProbeDef:
    spec: ProbeSpec
    pos: Pos
    body: list["Expr"] = field(default_factory=list)


# ---- expressions ---------------------------------------------------------------

@dataclass(eq=False)
class Expr:
    pos: Pos
    tvar: TVar


@dataclass(eq=False)
class Const(Expr):
    value: int | str


@dataclass(eq=False)
class GlobalRef(Expr):
    var: VarDef


@dataclass(eq=False)
class ParamRef(Expr):
    param: Param


@dataclass(eq=False)
class BuiltinRef(Expr):
    """A built-in global: read from the machine (registers, TSC, ARGn ...) or, for
    the one the runtime supplies (spec: supplied_by RUNTIME), known to it."""

    name: str


@dataclass(eq=False)
class Op(Expr):
    op: str  # canonical symbolic name: + - * / % << >> ^ ~ | & && || ! > < >= <= == !=
    args: list[Expr]


@dataclass(eq=False)
class Cond(Expr):
    clauses: list[tuple[Expr, Expr]]


@dataclass(eq=False)
class Do(Expr):
    body: list[Expr]


@dataclass(eq=False)
class SetVar(Expr):
    target: VarDef | Param
    value: Expr


@dataclass(eq=False)
class Call(Expr):
    func: FuncDef
    args: list[Expr]


@dataclass(eq=False)
class BuiltinCall(Expr):
    name: str
    args: list[Expr]


@dataclass(eq=False)
class AggrAdd(Expr):
    aggr: AggrDef
    int_keys: list[Expr]
    str_keys: list[Expr]
    value: Expr


@dataclass(eq=False)
class AggrLog(Expr):
    aggr: AggrDef


@dataclass(eq=False)
class AggrClear(Expr):
    aggr: AggrDef


@dataclass(eq=False)
class BagInsert(Expr):
    bag: BagDef
    key: Expr
    value: Expr


@dataclass(eq=False)
class BagRemove(Expr):
    bag: BagDef
    key: Expr


@dataclass
class Program:
    """Everything the translator needs, all names resolved and types inferred."""

    variables: list[VarDef]
    aggregates: list[AggrDef]
    bags: list[BagDef]
    functions: list[FuncDef]
    probes: list[ProbeDef]
    builtin_globals: list[str]  # built-in globals the script reads, in first-use order
