"""Type variables for VP's whole-script type inference.

VP declares globals with their types but not function parameters or results:
`(defun usec (ticks) ...)` learns that `ticks` is an integer from its use, and
a parameter that is only passed on learns its type from the call sites.  Types
are union-find nodes; unifying two nodes merges them, and a node bound to a
concrete type carries the place that decided it, for error messages.

MIXED is the type of a `cond` whose clauses yield different types where the
value is never used (e.g. a statement that either sets a string or calls
`getgueststr`); using such a value is an error.
"""

from __future__ import annotations

from .spec.values import INT, STR

MIXED = "mixed"


class TypeConflict(Exception):
    def __init__(self, have: str, want: str, origin):
        self.have, self.want, self.origin = have, want, origin
        super().__init__(f"{have} vs {want}")


class TVar:
    __slots__ = ("parent", "type", "origin")

    def __init__(self, type_: str | None = None, origin=None):
        self.parent: TVar | None = None
        self.type = type_
        self.origin = origin  # (line, col) where the concrete type was decided

    def find(self) -> "TVar":
        node = self
        while node.parent is not None:
            node = node.parent
        # Path compression keeps later look-ups short.
        walk = self
        while walk.parent is not None and walk.parent is not node:
            walk.parent, walk = node, walk.parent
        return node

    @property
    def resolved(self) -> str | None:
        return self.find().type


def concrete(type_: str, origin=None) -> TVar:
    return TVar(type_, origin)


def unify(a: TVar, b: TVar) -> None:
    """Merge `a` and `b`; raise TypeConflict (b's type first) if both are bound differently."""
    ra, rb = a.find(), b.find()
    if ra is rb:
        return
    if ra.type is not None and rb.type is not None:
        if ra.type != rb.type:
            raise TypeConflict(ra.type, rb.type, rb.origin or ra.origin)
        rb.parent = ra
        return
    if ra.type is None:
        ra.parent = rb
    else:
        rb.parent = ra
