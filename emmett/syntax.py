"""The Emmett abstract syntax tree, its traversal and the ranges its nodes cover.

Positions.  Every node carries `pos`, a tuple `(file_id, line, col)` (1-based
line and column) into the compilation's file table (`diagnostics.Files`), so
diagnostics always point at the original file and line, also for code that
came from an `#include` or a macro.  `pos` is where a diagnostic about the
node puts its caret: the first token of most constructs, the operator of a
binary, assignment, `?:`, index, member or postfix expression.  A node's
*range* runs from its first token to its last: `first_pos(node)` and
`last_pos(node)` find them from the tree (the leftmost and rightmost tokens of
the subtree; nodes that end with a token of their own, such as a call's `)`,
a block's `}` or a statement's `;`, record that token's position in `last`),
and `source_range(node, files)` gives the range with the end column just past
the last token (its length read from the source).

Children.  Every node lists its child nodes in source order with
`children()`; `walk` and `bottom_up` traverse a tree without recursion (a long
flat expression is a deep tree).  Passes dispatch on a node's class through a
table built once per pass object by `dispatch_table(owner, prefix)`: the
method `prefix + ClassName` of the owner handles that class.  This is the one
way the compiler's passes walk the tree.

Nodes are plain classes with `__slots__` and hand-written `__init__`s: cheap
to build (the parser makes one per reduction) and cheap to define, which
`emmettc`'s start-up needs (as dataclasses they add about 8 ms to every run).
Analysis annotates them in place: `Name.sym`, `Call.sym` (resolution),
`Declarator.sym` (local declarations), `Expr.type` (the expression's type,
from `exprtypes`), `TypeName.ctype` (the C type a cast or sizeof names).
"""


class Node:
    __slots__ = ("pos",)
    last = None  # the position of the node's own last token, where it has one (see the module docstring)
    type = None  # only expressions have a type (`Expr.type`)

    def children(self):
        return ()


class Expr(Node):
    """An expression; `type` is its Emmett type once `exprtypes` has computed it (None: unknown)."""

    __slots__ = ("type",)


# ---- expressions ---------------------------------------------------------------

class Name(Expr):
    __slots__ = ("name", "sym")

    def __init__(self, pos, name):
        self.pos = pos
        self.name = name
        self.sym = None
        self.type = None


class IntLit(Expr):
    __slots__ = ("value", "text")

    def __init__(self, pos, value, text):
        self.pos = pos
        self.value = value
        self.text = text
        self.type = None


class StrLit(Expr):
    """Adjacent string literals are one StrLit; `last` is the position of the last of them."""

    __slots__ = ("value", "last")

    def __init__(self, pos, value):
        self.pos = pos
        self.value = value
        self.last = pos
        self.type = None


class Unary(Expr):
    """`op` is one of - + ! ~ * (dereference) & (address of)."""

    __slots__ = ("op", "operand")

    def __init__(self, pos, op, operand):
        self.pos = pos
        self.op = op
        self.operand = operand
        self.type = None

    def children(self):
        return (self.operand,)


class IncDec(Expr):
    __slots__ = ("op", "prefix", "target")

    def __init__(self, pos, op, prefix, target):
        self.pos = pos
        self.op = op  # "++" or "--"
        self.prefix = prefix
        self.target = target
        self.type = None

    @property
    def last(self):
        return None if self.prefix else self.pos

    def children(self):
        return (self.target,)


class Binary(Expr):
    __slots__ = ("op", "left", "right")

    def __init__(self, pos, op, left, right):
        self.pos = pos
        self.op = op
        self.left = left
        self.right = right
        self.type = None

    def children(self):
        return (self.left, self.right)


class Comma(Expr):
    """`a, b, c`: each evaluated in turn; the value is the last one's."""

    __slots__ = ("exprs",)

    def __init__(self, pos, exprs):
        self.pos = pos
        self.exprs = exprs
        self.type = None

    def children(self):
        return tuple(self.exprs)


class Conditional(Expr):
    __slots__ = ("test", "then", "other")

    def __init__(self, pos, test, then, other):
        self.pos = pos
        self.test = test
        self.then = then
        self.other = other
        self.type = None

    def children(self):
        return (self.test, self.then, self.other)


class Assign(Expr):
    """`op` is "=", a compound operator such as "+=", or "<-" (aggregate/bag insert)."""

    __slots__ = ("op", "target", "value")

    def __init__(self, pos, op, target, value):
        self.pos = pos
        self.op = op
        self.target = target
        self.value = value
        self.type = None

    def children(self):
        return (self.target, self.value)


class Call(Expr):
    __slots__ = ("func", "args", "sym", "last")

    def __init__(self, pos, func, args, last=None):
        self.pos = pos
        self.func = func  # a Name node (or, in a malformed call, any expression)
        self.args = args
        self.sym = None
        self.last = last  # the ')'
        self.type = None

    def children(self):
        return (self.func, *self.args)


class Index(Expr):
    """`base[k1, k2, ...]`: an array or pointer element, an aggregate entry or a bag slot."""

    __slots__ = ("base", "keys", "last")

    def __init__(self, pos, base, keys, last=None):
        self.pos = pos
        self.base = base
        self.keys = keys
        self.last = last  # the ']'
        self.type = None

    def children(self):
        return (self.base, *self.keys)


class Member(Expr):
    __slots__ = ("base", "field", "arrow", "field_pos")

    def __init__(self, pos, base, field, arrow, field_pos):
        self.pos = pos
        self.base = base
        self.field = field
        self.arrow = arrow
        self.field_pos = field_pos
        self.type = None

    @property
    def last(self):
        return self.field_pos

    def children(self):
        return (self.base,)


class Cast(Expr):
    __slots__ = ("tname", "operand")

    def __init__(self, pos, tname, operand):
        self.pos = pos
        self.tname = tname
        self.operand = operand
        self.type = None

    def children(self):
        return (self.tname, self.operand)


class SizeOf(Expr):
    """`sizeof(type)` (tname set; `last` is the ')') or `sizeof expr` (operand set)."""

    __slots__ = ("tname", "operand", "last")

    def __init__(self, pos, tname, operand, last=None):
        self.pos = pos
        self.tname = tname
        self.operand = operand
        self.last = last
        self.type = None

    def children(self):
        return (self.tname,) if self.tname is not None else (self.operand,)


# ---- types and declarations ----------------------------------------------------------

class Spec(Node):
    """One declaration specifier: a keyword (`word`), or a struct/enum/typedef reference."""

    __slots__ = ("word", "node")

    def __init__(self, pos, word, node=None):
        self.pos = pos
        self.word = word  # "int", "unsigned", "typedef", "struct" (node=StructSpec), "typename" ...
        self.node = node

    def children(self):
        return (self.node,) if isinstance(self.node, Node) else ()


class StructSpec(Node):
    __slots__ = ("kind", "tag", "fields", "last")

    def __init__(self, pos, kind, tag, fields, last=None):
        self.pos = pos
        self.kind = kind  # "struct" or "union"
        self.tag = tag
        self.fields = fields  # list of FieldDecl (None for a field the parser skipped), or None for a reference
        self.last = last  # the '}' of a definition

    def children(self):
        return tuple(f for f in self.fields if f is not None) if self.fields else ()


class FieldDecl(Node):
    __slots__ = ("offset", "specs", "declarators", "widths", "last")

    def __init__(self, pos, specs, declarators, widths, offset, last=None):
        self.pos = pos
        self.specs = specs
        self.declarators = declarators  # a bit-field that only pads (`int : 3;`) has no name
        self.widths = widths  # each declarator's bit-field width (an expression), or None
        self.offset = offset  # an expression (from `@OFFSET`) or None
        self.last = last  # the ';'

    def children(self):
        head = (self.offset,) if self.offset is not None else ()
        declared = [x for d, w in zip(self.declarators, self.widths) for x in (d, w) if x is not None]
        return (*head, *self.specs, *declared)


class EnumSpec(Node):
    __slots__ = ("tag", "items", "last")

    def __init__(self, pos, tag, items, last=None):
        self.pos = pos
        self.tag = tag
        self.items = items  # list of (name, value expression or None, pos), or None
        self.last = last  # the '}' of a definition

    def children(self):
        return tuple(value for _, value, _ in self.items if value is not None) if self.items else ()


class Declarator(Node):
    """A declared name and how its type derives from the base type.

    `ops` apply to the base type in order: ("ptr",), ("array", size_expr|None, pos),
    ("func", [ParamDecl], pos).  `int *a[3]` gives [ptr, array 3]: an array of
    three pointers.  `name` is None in an abstract declarator (casts, sizeof),
    whose `pos` is None.
    """

    __slots__ = ("name", "ops", "sym")

    def __init__(self, pos, name, ops):
        self.pos = pos
        self.name = name
        self.ops = ops
        self.sym = None

    def children(self):
        out = []
        for op in reversed(self.ops):  # the ops list the last bracket first
            if op[0] == "array" and op[1] is not None:
                out.append(op[1])
            elif op[0] == "func":
                out.extend(op[1])
        return out


class TypeName(Node):
    __slots__ = ("specs", "declarator", "ctype")

    def __init__(self, pos, specs, declarator):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator
        self.ctype = None

    def children(self):
        return (*self.specs, self.declarator)


class ParamDecl(Node):
    __slots__ = ("specs", "declarator")

    def __init__(self, pos, specs, declarator):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator

    def children(self):
        return (*self.specs, self.declarator)


class Declaration(Node):
    __slots__ = ("specs", "items", "last")

    def __init__(self, pos, specs, items, last=None):
        self.pos = pos
        self.specs = specs
        self.items = items  # list of (Declarator, initializer expression or None)
        self.last = last  # the ';'

    def children(self):
        out = list(self.specs)
        for d, init in self.items:
            out.append(d)
            if init is not None:
                out.append(init)
        return out


class FuncDef(Node):
    __slots__ = ("specs", "declarator", "body")

    def __init__(self, pos, specs, declarator, body):
        self.pos = pos
        self.specs = specs
        self.declarator = declarator
        self.body = body

    def children(self):
        return (*self.specs, self.declarator, self.body)


class ProbeDef(Node):
    """`body` is None where the parser skipped the statement after a syntax error."""

    __slots__ = ("parts", "params", "body")

    def __init__(self, pos, parts, params, body):
        self.pos = pos
        self.parts = parts  # list of (text, token type, pos): GUEST, ':', system_call ...
        self.params = params  # list of ParamDecl or None
        self.body = body

    def children(self):
        return (*(self.params or ()), self.body) if self.body is not None else tuple(self.params or ())


class MemModel(Node):
    __slots__ = ("name", "name_pos", "last")

    def __init__(self, pos, name, name_pos, last=None):
        self.pos = pos
        self.name = name
        self.name_pos = name_pos
        self.last = last  # the ';'


class Header(Node):
    """A toolkit header line, `@NAME = VALUE` (`@MEMORY_MODEL = guest64`, `@SYMBOL_FILE = path`);
    the driver takes them out of the program before the passes (not in NODE_CLASSES)."""

    __slots__ = ("name", "value")

    def __init__(self, pos, name, value):
        self.pos = pos
        self.name = name
        self.value = value


# ---- statements ------------------------------------------------------------------

class Block(Node):
    __slots__ = ("items", "last")

    def __init__(self, pos, items, last=None):
        self.pos = pos
        self.items = items
        self.last = last  # the '}' (None for a block the compiler made)

    def children(self):
        return self.items


class ExprStmt(Node):
    __slots__ = ("expr", "last")

    def __init__(self, pos, expr, last=None):
        self.pos = pos
        self.expr = expr
        self.last = last  # the ';'

    def children(self):
        return (self.expr,)


class If(Node):
    """`then` and `other` are None where the parser skipped a statement after a syntax error."""

    __slots__ = ("test", "then", "other")

    def __init__(self, pos, test, then, other):
        self.pos = pos
        self.test = test
        self.then = then
        self.other = other

    def children(self):
        return tuple(n for n in (self.test, self.then, self.other) if n is not None)


class Return(Node):
    __slots__ = ("value", "last")

    def __init__(self, pos, value, last=None):
        self.pos = pos
        self.value = value
        self.last = last  # the ';'

    def children(self):
        return (self.value,) if self.value is not None else ()


class Empty(Node):
    __slots__ = ()

    def __init__(self, pos):
        self.pos = pos


class Loop(Node):
    """`for`, `while` or `do ... while`: a bounded loop, unrolled by lowering (`loops.py`).

    `kind` is "for", "while" or "do"; `init` (a `for`'s first part: an
    expression or a Declaration), `test` and `step` are None where left out.
    Resolution gives the loop `run` (the local that is 1 while the loop goes
    on) and, when a `break` or `continue` leaves its body, `skip` (1 for the
    rest of an iteration after one); `last` is a `do`'s ';'.
    """

    __slots__ = ("kind", "init", "test", "step", "body", "last", "run", "skip")

    def __init__(self, pos, kind, init, test, step, body, last=None):
        self.pos = pos
        self.kind = kind
        self.init = init
        self.test = test
        self.step = step
        self.body = body
        self.last = last
        self.run = None
        self.skip = None

    def children(self):
        parts = (self.body, self.test) if self.kind == "do" else (self.init, self.test, self.step, self.body)
        return tuple(n for n in parts if n is not None)


class Jump(Node):
    """`break` or `continue` (`word`); resolution sets `loop`, the Loop it leaves."""

    __slots__ = ("word", "loop", "last")

    def __init__(self, pos, word, last=None):
        self.pos = pos
        self.word = word
        self.loop = None
        self.last = last  # the ';'


class Unsupported(Node):
    """A switch, goto or try: parsed so the error is clear, never compiled."""

    __slots__ = ("word",)

    def __init__(self, pos, word):
        self.pos = pos
        self.word = word


NODE_CLASSES = (
    Name, IntLit, StrLit, Unary, IncDec, Binary, Comma, Conditional, Assign, Call, Index, Member, Cast, SizeOf,
    Spec, StructSpec, FieldDecl, EnumSpec, Declarator, TypeName, ParamDecl, Declaration, FuncDef, ProbeDef,
    MemModel, Block, ExprStmt, If, Return, Empty, Loop, Jump, Unsupported,
)
EXPRESSIONS = tuple(c for c in NODE_CLASSES if issubclass(c, Expr))
STATEMENTS = (Block, ExprStmt, If, Return, Declaration, Empty, Loop, Jump, Unsupported)


# ---- traversal --------------------------------------------------------------------

def dispatch_table(owner, prefix, classes=NODE_CLASSES, default=None):
    """{node class: the bound method `prefix + ClassName` of `owner`}, for the classes it handles.

    Built once per pass object, so each visit is one dictionary lookup (and a
    method replaced on the class before the pass starts is the one used).
    Classes without a method get `default`, or are left out when it is None.
    """
    table = {}
    for cls in classes:
        method = getattr(owner, prefix + cls.__name__, default)
        if method is not None:
            table[cls] = method
    return table


def walk(node):
    """`node` and every node below it, parents before children, in source order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        kids = n.children()
        if kids:
            stack.extend(reversed(kids))


def bottom_up(node):
    """`node` and every node below it, as a list in which each node comes after all its descendants."""
    order = []
    stack = [node]
    pop, push, add = stack.pop, stack.extend, order.append
    while stack:
        n = pop()
        add(n)
        push(n.children())
    order.reverse()  # a parents-first order, reversed
    return order


# ---- ranges ------------------------------------------------------------------------

def first_pos(node):
    """The position of the first token of `node` (the start of its range)."""
    best = node.pos
    n = node
    while True:
        kids = n.children()
        if not kids:
            return best
        n = kids[0]
        p = n.pos
        if p is not None and (best is None or (p[0] == best[0] and p[1:] < best[1:])):
            best = p


def last_pos(node):
    """The position of the last token of `node` (its range ends where that token ends)."""
    n = node
    while True:
        last = n.last
        if last is not None:
            return last
        kids = [k for k in n.children() if k.pos is not None]  # abstract declarators have no position
        if not kids:
            return n.pos
        n = kids[-1]


def source_range(node, files):
    """(file id, line, column, end line, end column) of `node`, the end just past its last token.

    `files` is the compilation's file table (`diagnostics.Files`), which reads
    the last token's length from the source.
    """
    first = first_pos(node)
    last = last_pos(node)
    if last is None or last[0] != first[0] or last[1:] < first[1:]:
        last = first  # a construct made of tokens from elsewhere (a macro's): its first token only
    end_line, end_col = files.token_end(last)
    return first[0], first[1], first[2], end_line, end_col
