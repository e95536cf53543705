"""The forms of VP: top-level forms, special forms, operators, reserved names.

A form is written `(NAME ...)`.  Top-level forms make up a script; special
forms are expressions whose arguments are not all evaluated as values (a
`cond` clause, the variable `setint` assigns, an aggregate's name).  An
operator takes integer operands and has a symbolic and, for most, an
alphabetic spelling (Tables 2-5 to 2-8).
"""

from .records import Record


class Form(Record):
    """A top-level or special form: its name, how it is written, what it does."""

    __slots__ = ("name", "usage", "description")


TOP_LEVEL_FORMS = {f.name: f for f in (
    Form("version", '(version "MAJOR.MINOR") or (version MAJOR.MINOR)',
         "the VProbes version the script targets (Table 3-1)"),
    Form("definteger", "(definteger NAME [VALUE])", "an integer global, 0 unless a value is given"),
    Form("defstring", '(defstring NAME ["VALUE"])', "a string global, empty unless a value is given"),
    Form("defaggr", "(defaggr NAME I S)", "an aggregate with I integer keys and S string keys"),
    Form("defbag", "(defbag NAME SIZE)", "a bag of at most SIZE integer key/value pairs"),
    Form("defun", "(defun NAME (PARAMS...) BODY...)", "a function; its value is that of its last expression"),
    Form("vprobe", "(vprobe POINT BODY...)", "code that runs each time the probe point fires"),
)}

SPECIAL_FORMS = {f.name: f for f in (
    Form("cond", "(cond (CONDITION EXPRESSION) ...)",
         "the expression of the first clause whose condition is non-zero; 0 if none is"),
    Form("do", "(do EXPRESSION...)", "each expression in turn; the value of the last"),
    Form("setint", "(setint VARIABLE VALUE)", "assign an integer variable"),
    Form("setstr", "(setstr VARIABLE VALUE)", "assign a string variable"),
    Form("aggr", "(aggr NAME (INTEGER-KEYS...) (STRING-KEYS...) VALUE)", "add VALUE to an aggregate's entry"),
    Form("logaggr", "(logaggr AGGREGATE...)", "write each aggregate's entries to the log, in turn"),
    Form("clearaggr", "(clearaggr AGGREGATE...)", "remove every entry of each aggregate"),
    Form("baginsert", "(baginsert BAG KEY VALUE)", "insert a key/value pair into a bag"),
    Form("bagremove", "(bagremove BAG KEY)", "remove a key's oldest value from a bag and return it (0 if none)"),
)}


class Operator(Record):
    """An operator: its symbol, its alphabetic name (or None), how many operands it
    takes (max None: any number; more than two fold from the left) and what it does.
    Operands and results are unsigned 64-bit integers."""

    __slots__ = ("symbol", "word", "min_operands", "max_operands", "operation")


OPERATORS = (
    Operator("+", "add", 2, None, "addition"),
    Operator("-", "sub", 1, None, "subtraction; with one operand, negation"),
    Operator("*", "mul", 2, None, "multiplication"),
    Operator("/", "div", 2, None, "division"),
    Operator("%", "mod", 2, None, "modulo"),
    Operator("<<", "lshift", 2, None, "left shift"),
    Operator(">>", "rshift", 2, None, "right shift"),
    Operator("^", "xor", 2, None, "exclusive or"),
    Operator("~", None, 1, 1, "bitwise not"),
    Operator("|", None, 2, None, "bitwise or"),
    Operator("&", None, 2, None, "bitwise and"),
    Operator("&&", "and", 2, None, "logical and (short-circuit)"),
    Operator("||", "or", 2, None, "logical or (short-circuit)"),
    Operator("!", "not", 1, 1, "logical not"),
    Operator(">", None, 2, None, "greater than"),
    Operator("<", None, 2, None, "less than"),
    Operator(">=", None, 2, None, "greater than or equal to"),
    Operator("<=", None, 2, None, "less than or equal to"),
    Operator("==", None, 2, None, "equal to"),
    Operator("!=", None, 2, None, "not equal to"),
)

# Either spelling -> the operator.
OPERATOR_NAMES = {name: o for o in OPERATORS for name in (o.symbol, o.word) if name}

# "Names that contain only uppercase letters" are reserved for VProbes (as are
# every form, operator, builtin and built-in global name).
RESERVED_UPPER_PATTERN = r"[A-Z]+\Z"
