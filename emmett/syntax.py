"""The Emmett abstract syntax tree.

Every node carries `pos`, the source position where the construct starts:
a tuple `(file_id, line, col)` (1-based line and column) into the
compilation's file table (`source.Files`), so diagnostics always point at the
original file and line, also for code that came from an `#include` or a macro.

Nodes are plain classes with `__slots__` and hand-written `__init__`s: cheap
to build (the parser makes one per reduction) and cheap to define, which
`emmettc`'s start-up needs (as dataclasses they add about 8 ms to every run).  Analysis passes annotate some of them in place (`Name.sym`,
`Call.sym`).
"""


class Node:
    __slots__ = ("pos",)


# ---- expressions ---------------------------------------------------------------

class Name(Node):
    __slots__ = ("name", "sym")

    def __init__(self, pos, name):
        self.pos = pos
        self.name = name
        self.sym = None


class IntLit(Node):
    __slots__ = ("value", "text")

    def __init__(self, pos, value, text):
        self.pos = pos
        self.value = value
        self.text = text


class StrLit(Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos = pos
        self.value = value


class Unary(Node):
    """`op` is one of - + ! ~ * (dereference) & (address of)."""

    __slots__ = ("op", "operand")

    def __init__(self, pos, op, operand):
        self.pos = pos
        self.op = op
        self.operand = operand


class IncDec(Node):
    __slots__ = ("op", "prefix", "target")

    def __init__(self, pos, op, prefix, target):
        self.pos = pos
        self.op = op  # "++" or "--"
        self.prefix = prefix
        self.target = target


class Binary(Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, pos, op, left, right):
        self.pos = pos
        self.op = op
        self.left = left
        self.right = right


class Conditional(Node):
    __slots__ = ("test", "then", "other")

    def __init__(self, pos, test, then, other):
        self.pos = pos
        self.test = test
        self.then = then
        self.other = other


class Assign(Node):
    """`op` is "=", a compound operator such as "+=", or "<-" (aggregate/bag insert)."""

    __slots__ = ("op", "target", "value")

    def __init__(self, pos, op, target, value):
        self.pos = pos
        self.op = op
        self.target = target
        self.value = value


class Call(Node):
    __slots__ = ("func", "args", "sym")

    def __init__(self, pos, func, args):
        self.pos = pos
        self.func = func  # a Name node
        self.args = args
        self.sym = None


class Index(Node):
    """`base[k1, k2, ...]`: an array or pointer element, an aggregate entry or a bag slot."""

    __slots__ = ("base", "keys")

    def __init__(self, pos, base, keys):
        self.pos = pos
        self.base = base
        self.keys = keys


class Member(Node):
    __slots__ = ("base", "field", "arrow", "field_pos")

    def __init__(self, pos, base, field, arrow, field_pos):
        self.pos = pos
        self.base = base
        self.field = field
        self.arrow = arrow
        self.field_pos = field_pos


class Cast(Node):
    __slots__ = ("tname", "operand")

    def __init__(self, pos, tname, operand):
        self.pos = pos
        self.tname = tname
        self.operand = operand


class SizeOf(Node):
    """`sizeof(type)` (tname set) or `sizeof expr` (operand set)."""

    __slots__ = ("tname", "operand")

    def __init__(self, pos, tname, operand):
        self.pos = pos
        self.tname = tname
        self.operand = operand


# ---- types and declarations ----------------------------------------------------------

class Spec(Node):
    """One declaration specifier: a keyword (`word`), or a struct/enum/typedef reference."""

    __slots__ = ("word", "node")

    def __init__(self, pos, word, node=None):
        self.pos = pos
        self.word = word  # "int", "unsigned", "typedef", "struct" (node=StructSpec), "typename" ...
        self.node = node


class StructSpec(Node):
    __slots__ = ("kind", "tag", "fields")

    def __init__(self, pos, kind, tag, fields):
        self.pos = pos
        self.kind = kind  # "struct" or "union"
        self.tag = tag
        self.fields = fields  # list of FieldDecl, or None for a reference


class FieldDecl(Node):
    __slots__ = ("specs", "declarators", "offset")

    def __init__(self, pos, specs, declarators, offset):
        self.pos = pos
        self.specs = specs
        self.declarators = declarators
        self.offset = offset  # an expression (from `@OFFSET`) or None


class EnumSpec(Node):
    __slots__ = ("tag", "items")

    def __init__(self, pos, tag, items):
        self.pos = pos
        self.tag = tag
        self.items = items  # list of (name, value expression or None, pos), or None


class Declarator(Node):
    """A declared name and how its type derives from the base type.

    `ops` apply to the base type in order: ("ptr",), ("array", size_expr|None, pos),
    ("func", [ParamDecl], pos).  `int *a[3]` gives [ptr, array 3]: an array of
    three pointers.  `name` is None in an abstract declarator (casts, sizeof).
    """

    __slots__ = ("name", "ops", "sym")

    def __init__(self, pos, name, ops):
        self.pos = pos
        self.name = name
        self.ops = ops
        self.sym = None


class TypeName(Node):
    __slots__ = ("specs", "declarator", "ctype")

    def __init__(self, pos, specs, declarator):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator
        self.ctype = None


class ParamDecl(Node):
    __slots__ = ("specs", "declarator")

    def __init__(self, pos, specs, declarator):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator


class Declaration(Node):
    __slots__ = ("specs", "items")

    def __init__(self, pos, specs, items):
        self.pos = pos
        self.specs = specs
        self.items = items  # list of (Declarator, initializer expression or None)


class FuncDef(Node):
    __slots__ = ("specs", "declarator", "body")

    def __init__(self, pos, specs, declarator, body):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator
        self.body = body


class ProbeDef(Node):
    __slots__ = ("parts", "params", "body")

    def __init__(self, pos, parts, params, body):
        self.pos = pos
        self.parts = parts  # list of (text, token type, pos): GUEST, ':', system_call ...
        self.params = params  # list of ParamDecl or None
        self.body = body


class MemModel(Node):
    __slots__ = ("name", "name_pos")

    def __init__(self, pos, name, name_pos):
        self.pos = pos
        self.name = name
        self.name_pos = name_pos


# ---- statements ------------------------------------------------------------------

class Block(Node):
    __slots__ = ("items",)

    def __init__(self, pos, items):
        self.pos = pos
        self.items = items


class ExprStmt(Node):
    __slots__ = ("expr",)

    def __init__(self, pos, expr):
        self.pos = pos
        self.expr = expr


class If(Node):
    __slots__ = ("test", "then", "other")

    def __init__(self, pos, test, then, other):
        self.pos = pos
        self.test = test
        self.then = then
        self.other = other


class Return(Node):
    __slots__ = ("value",)

    def __init__(self, pos, value):
        self.pos = pos
        self.value = value


class Empty(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos


class Unsupported(Node):
    """A loop, switch or jump: parsed so the error is clear, never compiled."""

    __slots__ = ("word",)

    def __init__(self, pos, word):
        self.pos = pos
        self.word = word
