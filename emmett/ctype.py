"""Emmett's types: C types for guest memory layout, plus VP's strings, aggregates and bags.

In VP every integer is 64 bits wide; the sizes of C integer types matter only
for the layout of guest memory (struct fields, array elements, pointer
arithmetic) and for how many bytes a memory read keeps.  Sizes that depend on
the memory model (`int`, `long`, pointers) are fixed when the type is written,
under the model in force at that point.
"""


class MemModel:
    __slots__ = ("name", "int_size", "long_size", "ptr_size", "accessor")

    def __init__(self, name, int_size, long_size, ptr_size, accessor):
        self.name = name
        self.int_size = int_size
        self.long_size = long_size
        self.ptr_size = ptr_size
        self.accessor = accessor  # "getguest", "getguestphys" or None (no guest access)


MEMMODELS = {
    m.name: m
    for m in (
        MemModel("guest64", 4, 8, 8, "getguest"),
        MemModel("guest32", 4, 4, 4, "getguest"),
        MemModel("guest16", 2, 4, 2, "getguest"),
        MemModel("guestphys", 8, 8, 8, "getguestphys"),
        MemModel("vmw64", 4, 8, 8, None),
        MemModel("vmw32", 4, 4, 4, None),
    )
}


class CType:
    __slots__ = ()
    kind = "?"
    size = 0
    align = 1

    def is_int(self):
        return False

    def is_scalar(self):
        """A value VP can hold in an integer variable."""
        return False


class IntType(CType):
    __slots__ = ("name", "size", "signed", "align")
    kind = "int"

    def __init__(self, name, size, signed=True):
        self.name = name
        self.size = size
        self.signed = signed
        self.align = size

    def is_int(self):
        return True

    def is_scalar(self):
        return True

    def __str__(self):
        return self.name


class EnumType(IntType):
    __slots__ = ("tag",)
    kind = "enum"

    def __init__(self, tag, size):
        super().__init__(f"enum {tag}" if tag else "enum", size, True)
        self.tag = tag


class PointerType(CType):
    __slots__ = ("target", "size", "align")
    kind = "ptr"

    def __init__(self, target, size):
        self.target = target
        self.size = size
        self.align = size

    def is_scalar(self):
        return True

    def __str__(self):
        t = str(self.target)
        return t + ("*" if t.endswith("*") else " *")


class ArrayType(CType):
    __slots__ = ("elem", "count", "size", "align")
    kind = "array"

    def __init__(self, elem, count):
        self.elem = elem
        self.count = count  # None for an array of unknown size
        self.size = elem.size * (count or 0)
        self.align = elem.align

    def __str__(self):
        return f"{self.elem}[{'' if self.count is None else self.count}]"


class Field:
    """A struct or union field: its type and byte offset; a bit-field also has its first bit
    and width within the `type`-sized unit at that offset."""

    __slots__ = ("name", "type", "offset", "pos", "bit", "width")

    def __init__(self, name, type_, offset, pos, bit=0, width=None):
        self.name = name
        self.type = type_
        self.offset = offset
        self.pos = pos
        self.bit = bit
        self.width = width  # None: not a bit-field


class StructType(CType):
    __slots__ = ("su", "tag", "fields", "size", "align", "complete", "pos")
    kind = "struct"

    def __init__(self, su, tag, pos):
        self.su = su  # "struct" or "union"
        self.tag = tag
        self.fields = {}
        self.size = 0
        self.align = 1
        self.complete = False
        self.pos = pos

    def __str__(self):
        return f"{self.su} {self.tag or '<anonymous>'}"


class StringType(CType):
    __slots__ = ()
    kind = "string"

    def __str__(self):
        return "string"


class VoidType(CType):
    __slots__ = ()
    kind = "void"
    size = 1

    def __str__(self):
        return "void"


class AggrType(CType):
    __slots__ = ("int_keys", "str_keys")
    kind = "aggr"

    def __init__(self, int_keys=None, str_keys=None):
        self.int_keys = int_keys
        self.str_keys = str_keys

    def __str__(self):
        return "aggr"


class BagType(CType):
    __slots__ = ("capacity",)
    kind = "bag"

    def __init__(self, capacity):
        self.capacity = capacity

    def __str__(self):
        return "bag"


class FuncType(CType):
    __slots__ = ("ret", "params")
    kind = "func"

    def __init__(self, ret, params):
        self.ret = ret
        self.params = params  # list of (name, type)

    def __str__(self):
        return f"{self.ret} ({', '.join(str(t) for _, t in self.params)})"


STRING = StringType()
VOID = VoidType()
# The type of VP integer values (literals, arithmetic, registers): 64 bits.
VPINT = IntType("int", 8, True)

FIXED_INTS = {
    "int8": (1, True), "int16": (2, True), "int32": (4, True), "int64": (8, True),
    "uint8": (1, False), "uint16": (2, False), "uint32": (4, False), "uint64": (8, False),
}


def is_char_pointer(t):
    """A `char *` or `char[]`: something that can be read as a guest string."""
    if isinstance(t, PointerType) or isinstance(t, ArrayType):
        inner = t.target if isinstance(t, PointerType) else t.elem
        return isinstance(inner, IntType) and inner.size == 1 and not isinstance(inner, EnumType)
    return False


def decay(t, model):
    """Arrays used as values become pointers to their first element."""
    if isinstance(t, ArrayType):
        return PointerType(t.elem, model.ptr_size)
    return t


def same_type(a, b):
    if a is b:
        return True
    if a.kind != b.kind:
        return a.is_int() and b.is_int()
    if isinstance(a, IntType):
        return True
    if isinstance(a, PointerType):
        return same_type(a.target, b.target) or a.target.kind == "void" or b.target.kind == "void"
    if isinstance(a, ArrayType):
        return a.count == b.count and same_type(a.elem, b.elem)
    if isinstance(a, StructType):
        return a is b
    return True


def describe(t):
    """`t` for a message: 'an integer', 'a string', "a pointer ('struct task *')" ..."""
    if t is None:
        return "of unknown type"
    if isinstance(t, IntType):
        return "an integer" if t is VPINT else f"an integer ('{t}')"
    if isinstance(t, StringType):
        return "a string"
    if isinstance(t, PointerType):
        return f"a pointer ('{t}')"
    if isinstance(t, ArrayType):
        return f"an array ('{t}')"
    if isinstance(t, StructType):
        return f"a {t.su} ('{t}')"
    if isinstance(t, VoidType):
        return "void (no value)"
    if isinstance(t, AggrType):
        return "an aggregate"
    if isinstance(t, BagType):
        return "a bag"
    if isinstance(t, FuncType):
        return "a function"
    return str(t)
