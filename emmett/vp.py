"""VP forms, VP names and the VP printer.

Lowering builds VP as nested Python lists: `[head, arg, ...]`, where the head
is a VP keyword or operator (a `str`) or a function symbol, and the atoms are
`int` (printed in decimal; `HexInt` in hex), `VStr` (a string literal), `str`
(a fixed VP name such as RIP or ARG0) and symbols, which print as their VP
name, chosen only at the end (`assign_names`), when every name is known.

The constructors here fold as they build: constants are computed, `(+ (+ a b) c)`
becomes `(+ a b c)` (VP operators fold n-ary from the left), nested `do`s
merge, and an `if`/`else if` chain becomes one `cond`.
"""

import re

from .language import BODY_FORMS, FIRST_OPERAND_NAMED, MASK64, MAX_ARGS, MAX_NAME_BYTES, VARIADIC_FORMS, VP_RESERVED

_RESERVED_UPPER = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_NUMERIC = re.compile(r"[+-]?[0-9]")
WIDTH = 79

_INVERSE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
_ASSOCIATIVE = frozenset("+ * & | ^ && ||".split())
_BINARY = frozenset("+ - * / % << >> & | ^ && || == != < > <= >=".split())


class VStr(str):
    """A VP string literal."""
    __slots__ = ()


class HexInt(int):
    """An integer written in hex in the source: printed in hex."""
    __slots__ = ()


def is_const(x):
    return type(x) is int or type(x) is HexInt


_FOLD = {
    "+": lambda a, b: (a + b) & MASK64,
    "-": lambda a, b: (a - b) & MASK64,
    "*": lambda a, b: (a * b) & MASK64,
    "/": lambda a, b: None if b == 0 else a // b,
    "%": lambda a, b: None if b == 0 else a % b,
    "<<": lambda a, b: (a << b) & MASK64 if b < 64 else 0,
    ">>": lambda a, b: a >> b if b < 64 else 0,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
    "&&": lambda a, b: 1 if a and b else 0,
    "||": lambda a, b: 1 if a or b else 0,
    "==": lambda a, b: int(a == b),
    "!=": lambda a, b: int(a != b),
    "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b),
    "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
}


def fold_binary(op, a, b):
    """`a op b` on VP's unsigned 64-bit integers; None for a division by zero."""
    return _FOLD[op](a, b)


def op(o, *args):
    """`(o args...)` folded: constants computed, same-operator nests flattened."""
    if o == "!" and len(args) == 1 and type(args[0]) is list and len(args[0]) == 3 and args[0][0] in _INVERSE:
        # (! (< a b)) is (>= a b): VP's comparisons are all unsigned, so each has an exact inverse.
        return [_INVERSE[args[0][0]]] + args[0][1:]
    if all(is_const(a) for a in args):
        if len(args) == 1:
            v = args[0]
            if o == "!":
                return 0 if v else 1
            if o == "~":
                return v ^ MASK64
        else:
            acc = args[0]
            for b in args[1:]:
                acc = fold_binary(o, acc, b)
                if acc is None:
                    break
            else:
                if o in ("&", "|", "^") and any(type(a) is HexInt for a in args):
                    return HexInt(acc)
                return acc
    out = [o]
    for i, a in enumerate(args):
        if type(a) is list and a and a[0] == o and o in _BINARY and len(a) > 2 and (i == 0 or o in _ASSOCIATIVE):
            out.extend(a[1:])
        else:
            out.append(a)
    if o == "+" and len(out) > 3:
        # Gather the constant terms of a sum: (+ p 1188 4) is (+ p 1192).
        consts = [a for a in out[1:] if is_const(a)]
        if len(consts) > 1:
            total = sum(consts) & MASK64
            rest = [a for a in out[1:] if not is_const(a)]
            out = ["+"] + rest + ([total] if total else [])
            if len(out) <= 2:  # one term left, or none: the terms were constants that add up to 0
                return out[1] if len(out) == 2 else 0
    return out


class OpChain:
    """`op(o, form, b)` applied step after step (a long `a + b + c ...`), in time linear in the chain.

    op() copies its first operand's list to flatten it, and for "+" rescans
    it for constants, so a chain of n steps would cost n^2.  The chain owns
    the lists op() built for it and extends them in place; for "+" it tracks
    where the one constant of the sum is (op() leaves at most one in a sum of
    three or more operands it builds; a sum it returns whole, one of its
    operands, the chain does not own until op() has gathered its constants).  `form` is, after each step, what op() would have
    given.  `replace` sets a form built otherwise (it is not extended in place).
    """

    __slots__ = ("form", "owned", "const_at", "extended")

    def __init__(self, form):
        self.form = form
        self.owned = None  # the operator of `form` when it is a list of 3+ items this chain built
        self.const_at = None  # with owned "+": the index of the constant in `form`, if any
        self.extended = False  # whether the last step extended `form` in place (op() would have made a new list)

    def replace(self, form):
        self.form = form
        self.owned = None
        self.extended = False

    def apply(self, o, b):
        a = self.form
        self.extended = self.owned == o
        if self.owned != o:
            r = self.form = op(o, a, b)
            self.owned = None
            if type(r) is list and len(r) > 2 and r[0] == o and o in _BINARY:
                consts = [i for i in range(1, len(r)) if is_const(r[i])] if o == "+" else ()
                # A sum op() returns whole (an operand it was given) may hold more than one
                # constant; the next step's op() gathers them, and the chain owns what that gives.
                if len(consts) <= 1:
                    self.owned = o
                    self.const_at = consts[0] if consts else None
            return
        if type(b) is list and len(b) > 2 and b[0] == o and o in _ASSOCIATIVE:
            items = b[1:]
        else:
            items = [b]
        if o == "+":
            consts = [x for x in items if is_const(x)]
            if consts and len(a) + len(items) > 3 and len(consts) + (self.const_at is not None) > 1:
                # Gather the constants (see op): the other terms in order, then their total.
                total = sum(consts)
                if self.const_at is not None:
                    total += a.pop(self.const_at)
                total &= MASK64
                a.extend(x for x in items if not is_const(x))
                self.const_at = None
                if total:
                    a.append(total)
                    self.const_at = len(a) - 1
                if len(a) == 2:
                    self.replace(a[1])
                return
            if consts:
                self.const_at = len(a) + next(i for i, x in enumerate(items) if is_const(x))
        a.extend(items)


def do(forms):
    """`(do ...)` of `forms`: nested dos merged, a single form returned bare, 0 for none."""
    flat = []
    for f in forms:
        if type(f) is list and f and f[0] == "do":
            flat.extend(f[1:])
        else:
            flat.append(f)
    if not flat:
        return 0
    # Values that do nothing in the middle of a do are dropped.
    kept = [f for f in flat[:-1] if not (is_const(f) or type(f) is VStr)] + [flat[-1]]
    if len(kept) == 1:
        return kept[0]
    return ["do"] + kept


def cond(clauses):
    """`(cond ...)` from (test, value) pairs: constant tests decided, a trailing cond merged."""
    out = []
    for test, value in clauses:
        if is_const(test):
            if not test:
                continue
            if not out:
                return value
            out.append([1, value])
            break
        out.append([test, value])
    if not out:
        return 0
    last = out[-1]
    if is_const(last[0]) and type(last[1]) is list and last[1] and last[1][0] == "cond":
        out = out[:-1] + [list(c) for c in last[1][1:]]
    return ["cond"] + out


# ---- names -----------------------------------------------------------------------------

def valid_name(name):
    return (name not in VP_RESERVED and not _RESERVED_UPPER.match(name)
            and len(name.encode("utf-8")) <= MAX_NAME_BYTES and not _NUMERIC.match(name)
            and not name.startswith('"') and name != "")


class Namer:
    """Hands out distinct valid VP names, keeping the wanted name when it can."""

    def __init__(self):
        self.taken = set()

    def claim(self, wanted, taken=None):
        taken = self.taken if taken is None else taken
        name = wanted
        if name in VP_RESERVED or _RESERVED_UPPER.match(name) or _NUMERIC.match(name) or not name:
            name = "_" + name
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            name = name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
        base = name
        n = 1
        while name in taken or not valid_name(name):
            n += 1
            suffix = f"_{n}"
            cut = base.encode("utf-8")[:MAX_NAME_BYTES - len(suffix)].decode("utf-8", "ignore")
            name = cut + suffix
        taken.add(name)
        return name


# ---- printing ------------------------------------------------------------------------------

def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def atom(x):
    t = type(x)
    if t is int:
        if x >= 1 << 63:
            # VP reads "-5" as 2**64 - 5: small negative numbers read better that way.
            return f"-{(1 << 64) - x}" if x > (1 << 64) - (1 << 32) else f"0x{x:x}"
        return str(x)
    if t is HexInt:
        return f"0x{x:x}"
    if t is VStr:
        return quote(x)
    if t is str:
        return x
    return x.vpname


class Printer:
    """Prints VP forms, 79 columns wide, and records where each construct's text starts.

    `origins` maps id(VP list) to (Emmett position, list) (the lowering's tags);
    `segments` collects the source map as it prints: (line of the text, 0-based
    character column, Emmett position or None) at every token whose construct
    differs from the previous token's.  A token belongs to the innermost
    tagged list around it.  `start(line)` says on which line of the text the
    next form begins.
    """

    def __init__(self, indent=2, width=WIDTH, origins=None):
        self.indent = max(0, indent)
        self.width = width
        self._flat = {}
        self.origins = origins if origins is not None else {}
        self.segments = []
        self._line = 0
        self._current = None  # the Emmett position of the token being printed
        self._said = _UNSAID  # the position the last segment gave

    def start(self, line):
        self._line = line

    def flat(self, x):
        if type(x) is not list:
            return atom(x)
        key = id(x)
        s = self._flat.get(key)
        if s is None:
            s = "(" + " ".join([self.flat(i) for i in x]) + ")"
            self._flat[key] = (s, x)  # keep x alive so its id stays unique
            return s
        return s[0]

    def _token(self, line, col):
        if self._current != self._said:
            self.segments.append((self._line + line, col, self._current))
            self._said = self._current

    def _enter(self, x):
        """Start printing list `x`; returns the position to restore when it ends."""
        outer = self._current
        tag = self.origins.get(id(x))
        if tag is not None:
            self._current = tag[0]
        return outer

    def _mark_flat(self, x, line, col):
        """Record the segments of `x` printed on one line from column `col` (iteratively)."""
        stack = [(x, col)]
        while stack:
            node, c = stack.pop()
            if node is _EXIT:
                self._current = c
                continue
            if type(node) is not list:
                self._token(line, c)
                continue
            stack.append((_EXIT, self._enter(node)))
            self._token(line, c)
            c += 1
            kids = []
            for child in node:
                kids.append((child, c))
                c += len(self.flat(child)) + 1
            stack.extend(reversed(kids))

    def lines(self, x, col, out, prefix):
        """Append `x` to `out` starting at column `col` (the first line continues `prefix`)."""
        s = self.flat(x)
        if type(x) is not list or len(x) <= 1 or (
                col + len(s) <= self.width and not (type(x[0]) is str and x[0] in BODY_FORMS)):
            self._mark_flat(x, len(out), col)
            out.append(prefix + s)
            return
        outer = self._enter(x)
        self._token(len(out), col)
        head = x[0]
        pad = " " * (col + self.indent)
        inner = col + self.indent
        if head == "defun":
            params = self.flat(x[2])
            out.append(f"{prefix}(defun {atom(x[1])} {params}")
            body = x[3:]
        elif head == "vprobe":
            out.append(f"{prefix}(vprobe {atom(x[1])}")
            body = x[2:]
        elif type(head) is str and head in FIRST_OPERAND_NAMED:
            first = " ".join(self.flat(i) for i in x[:2])
            out.append(f"{prefix}({first}")
            body = x[2:]
        elif type(head) is list:
            # A cond clause: (test value)
            self.lines(head, col + 1, out, prefix + "(")
            body = x[1:]
        else:
            out.append(f"{prefix}({atom(head)}")
            body = x[1:]
        for item in body:
            self.lines(item, inner, out, pad)
        out[-1] += ")"
        self._current = outer

    def form(self, x):
        out = []
        self.lines(x, 0, out, "")
        return "\n".join(out)


def within_arity(form):
    """`form` with every operator, `do` and `cond` given at most MAX_ARGS operands, as VP requires.

    A longer one is regrouped with its meaning and its evaluation order kept:
    associative operators and `do` into groups of at most MAX_ARGS
    (`(+ (+ a1 .. a32) (+ a33 ..) ..)`), `(- a b c ..)` as `(- a (+ b c ..))`,
    the other operators, which fold from the left, left-deep
    (`(/ (/ a1 .. a32) a33 ..)`), a `cond` as clauses ending in `(1 (cond ..))`.
    Each regrouping nests one level deeper (the nesting limit is checked after).
    Lists are changed in place (forms are trees: each list has one parent).
    """
    stack = [form]
    while stack:
        x = stack.pop()
        if type(x) is not list:
            continue
        if len(x) > MAX_ARGS + 1 and type(x[0]) is str and (x[0] in _BINARY or x[0] in VARIADIC_FORMS):
            x[:] = _regrouped(x[0], x[1:])
        stack.extend(x)
    return form


def _regrouped(head, args):
    if head == "-":
        return ["-", args[0], _regrouped("+", args[1:]) if len(args) > MAX_ARGS else ["+"] + args[1:]]
    if head in _ASSOCIATIVE or head == "do":
        while len(args) > MAX_ARGS:
            args = [args[i] if len(args) - i == 1 else [head] + args[i:i + MAX_ARGS]
                    for i in range(0, len(args), MAX_ARGS)]
        return [head] + args
    if head == "cond":
        heads = []
        while len(args) > MAX_ARGS:
            heads.append(args[:MAX_ARGS - 1])
            args = args[MAX_ARGS - 1:]
        form = ["cond"] + args
        for clauses in reversed(heads):
            form = ["cond"] + clauses + [[1, form]]
        return form
    # Left-folding operators: the first MAX_ARGS operands, then MAX_ARGS - 1 more at each level.
    out = [head] + args[:MAX_ARGS]
    for i in range(MAX_ARGS, len(args), MAX_ARGS - 1):
        out = [head, out] + args[i:i + MAX_ARGS - 1]
    return out


def flatten_sums(form):
    """`form` with its chains of mixed `+` and `-` made flat sums, for a form that nests too deeply.

    `a - b + c - d` lowers to `(- (+ (- a b) c) d)`, a level per change of
    operator; as a sum of terms, `(+ a (- 0 b) c (- 0 d))`, it nests one level
    (and `within_arity` then groups it).  The terms keep their order, so the
    evaluation order (right to left) is the same.  Lists are changed in place.
    """
    lists = []
    stack = [form]
    while stack:
        x = stack.pop()
        if type(x) is list:
            lists.append(x)
            stack.extend(x)
    for x in reversed(lists):  # children first
        head = x[0] if x else None
        if head not in ("+", "-") or len(x) < 3:
            continue
        inner = x[1]
        if type(inner) is not list or len(inner) < 3 or inner[0] not in ("+", "-"):
            continue
        if inner[0] == head:  # (+ (+ a b) c), (- (- a b) c): one list
            x[1:2] = inner[1:]
            continue
        terms = inner[1:2] + [t if inner[0] == "+" else _negated(t) for t in inner[2:]]
        terms += [t if head == "+" else _negated(t) for t in x[2:]]
        x[:] = ["+"] + terms
    return form


def _negated(term):
    return (-term) & MASK64 if is_const(term) else ["-", 0, term]


_EXIT = object()  # marks, on the flat printer's stack, where a list's text ends
_UNSAID = object()


def nesting(x):
    """How deep the lists in `x` nest (iteratively: forms can be deep)."""
    deepest = 0
    stack = [(x, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in node:
            if type(child) is list:
                stack.append((child, depth + 1))
    return deepest if type(x) is list else 0


def walk(x):
    """Every atom and list in `x` (iteratively)."""
    stack = [x]
    while stack:
        node = stack.pop()
        yield node
        if type(node) is list:
            stack.extend(node)
