"""A guest kernel's structure layouts, and the Emmett declarations of them a script includes.

Each guest profile describes the structures its kernel keeps (their fields'
offsets and C types, from the same constants the model writes them with),
and `emmett_structs` turns a selection into Emmett sparse structures, one
`@0xOFFSET type name;` line a field, as the public toolkit's `pdb2structs.py`
prints them from a Windows PDB.  A selection is read as that tool reads its
input, one request a line: `STRUCT.FIELD`, `STRUCT.*` (every field), or
`STRUCT` alone (declared, with no field).  The structures come out in an
order where one held by value is declared before its holder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    offset: int
    type: str  # the C type: "unsigned short", "struct _KPRCB" (held by value), "struct _KTHREAD *"
    name: str
    count: int | None = None  # an array's length

    def declaration(self) -> str:
        base, stars = self.type.rstrip(" *"), "*" * self.type.count("*")
        suffix = f"[{self.count}]" if self.count is not None else ""
        return f"   @0x{self.offset:03x} {base:<19} {stars:>1}{self.name}{suffix};"

    def held_struct(self) -> str | None:
        """The structure this field holds by value, if it does."""
        return self.type[len("struct "):] if self.type.startswith("struct ") and "*" not in self.type else None


Layouts = dict[str, tuple[Field, ...]]  # structure name -> its fields, by offset


class StructRequestError(ValueError):
    """A request names a structure or field the guest does not have (the message says which)."""


def parse_requests(text: str, layouts: Layouts) -> dict[str, list[str]]:
    """Structure -> the fields asked for ("*": all), from request lines; unknown names are errors."""
    wanted: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        request = line.strip()
        if not request:
            continue
        struct, _, field = request.partition(".")
        fields = layouts.get(struct)
        if fields is None:
            raise StructRequestError(f"line {n}: this guest has no structure '{struct}' "
                                     f"(it has: {', '.join(sorted(layouts))})")
        chosen = wanted.setdefault(struct, [])
        if field and field != "*" and all(f.name != field for f in fields):
            raise StructRequestError(f"line {n}: '{struct}' has no field '{field}' "
                                     f"(it has: {', '.join(f.name for f in fields)})")
        if field:
            chosen.append(field)
    return wanted


def emmett_structs(layouts: Layouts, wanted: dict[str, list[str]] | None = None) -> str:
    """Emmett declarations of the structures (and fields) `wanted`, or of every structure whole;
    a structure held by value that was not asked for is declared empty before its holder."""
    if wanted is None:
        wanted = {name: ["*"] for name in layouts}
    chosen = {name: [f for f in layouts[name] if "*" in fields or f.name in fields] for name, fields in wanted.items()}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for field in chosen.setdefault(name, []):
            held = field.held_struct()
            if held is not None and held != name:
                visit(held)
        order.append(name)

    for name in list(chosen):
        visit(name)
    return "\n\n".join(f"struct {name} {{\n" + "\n".join(f.declaration() for f in chosen[name]) + "\n};\n"
                       for name in order)
