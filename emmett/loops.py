"""Bounded loops: `for`, `while` and `do ... while` unrolled into guarded copies of their body.

VP has no loops, which is what bounds the work of every probe firing (and
lets the runtime read that bound off the program at load).  Emmett keeps the
guarantee the way eBPF compilers do: a loop becomes at most N copies of its
body, one after the other, each run only while the loop goes on.  N is the
compile-time limit, `CompileOptions.max_loop` (`emmettc --max-loop N`), 64 by
default: a copy of a small body that reads a guest string is about 270 bytes
of translated code, and the runtime's translation cache holds 32 KiB by
default (`vprobe.maxCodeBytes`).  A loop whose header says how many times it
runs (`for (i = 0; i < 8; i++)` over a local the body never assigns) becomes
exactly that many plain copies; a longer one is refused at compile time.  Any
other loop whose condition still holds after its last copy faults at run
time, at the loop, saying so ("loop at FILE:L:C ran more than 64
iterations") — it is never cut short silently.

The control state lives in two integer locals resolution gives each loop:
`run` (1 until the condition fails or a `break`) and, when a `break` or
`continue` leaves the body, `skip` (1 for the rest of an iteration after
one; the statements after a jump are guarded by it, and after a `break` the
step is skipped too).  A `while (i < n) BODY` lowers to

    (do (setint run 1)
        (cond ((&& run (< i n)) BODY) (1 (setint run 0)))
        ... N copies ...
        (assert (! (&& run (< i n))) "loop at FILE:L:C ran more than N iterations ..."))

(the condition is evaluated after the last copy exactly as C would, to
decide whether the loop ends).  Loops nested in loops multiply: a nest
whose innermost body would be copied more than the limit is refused at
compile time.  The runtime's load-time cost bound then sees straight-line
code.
"""

from . import ctype as T
from . import syntax as S
from .vp import VStr, cond, do, is_const, op


def header_bound(loop):
    """How many times `loop` runs by its header alone, or None when the header does not say.

    The shape recognised: `for (i = A; i < B; STEP)` (or `<=`) with integer
    literals, STEP `i++`, `++i`, `i += C` or `i = i + C` (C > 0), and `i` an
    integer local (a pointer steps by its element size) the body never assigns.  A `while`/`for` whose condition is the
    constant 0 runs 0 times, a `do ... while (0)` once.
    """
    test = loop.test
    if type(test) is S.IntLit and test.value == 0:
        return 1 if loop.kind == "do" else 0
    if loop.kind != "for" or type(test) is not S.Binary or test.op not in ("<", "<="):
        return None
    var = _name_sym(test.left)
    if var is None or var.kind != "local" or not isinstance(var.type, T.IntType) or type(test.right) is not S.IntLit:
        return None
    start = _initial(loop.init, var)
    stride = _stride(loop.step, var)
    if start is None or not stride or _assigns(loop.body, var):
        return None
    end = test.right.value + (1 if test.op == "<=" else 0)
    return max(0, -(-(end - start) // stride))


def _name_sym(e):
    return e.sym if type(e) is S.Name else None


def _initial(init, var):
    if type(init) is S.Assign and init.op == "=" and _name_sym(init.target) is var and type(init.value) is S.IntLit:
        return init.value.value
    if type(init) is S.Declaration and len(init.items) == 1:
        d, value = init.items[0]
        if d.sym is var and type(value) is S.IntLit:
            return value.value
    return None


def _stride(step, var):
    if type(step) is S.IncDec and step.op == "++" and _name_sym(step.target) is var:
        return 1
    if type(step) is S.Assign and _name_sym(step.target) is var:
        if step.op == "+=" and type(step.value) is S.IntLit:
            return step.value.value
        v = step.value
        if (step.op == "=" and type(v) is S.Binary and v.op == "+" and _name_sym(v.left) is var
                and type(v.right) is S.IntLit):
            return v.right.value
    return None


def _assigns(body, var):
    for n in S.walk(body):
        if type(n) in (S.Assign, S.IncDec) and _name_sym(n.target) is var:
            return True
        if type(n) is S.Unary and n.op == "&" and _name_sym(n.operand) is var:
            return True
    return False


def leaves(s, loop):
    """Whether statement `s` holds a `break` or `continue` of `loop`."""
    return any(type(n) is S.Jump and n.loop is loop for n in S.walk(s))


class LoopLowering:
    """The lowering of loops and jumps, mixed into `lower.Lowerer`."""

    def __init__(self):
        self.loop_nest = []  # (Loop, copies of its body so far down the nest), innermost last

    def s_Loop(self, s, ctx, tail):
        limit = self.p.options.max_loop
        bound = header_bound(s)
        if bound is not None and bound > limit:
            self.fail(s.pos, f"this loop runs {bound} times, more than the limit of {limit} "
                             f"(emmettc --max-loop N raises it)")
        copies = limit if bound is None else bound
        total = (self.loop_nest[-1][1] if self.loop_nest else 1) * copies
        if total > limit:
            sizes = " × ".join(str(c) for c in self._nest_sizes() + [copies])
            self.fail(s.pos, f"this loop and the loops around it unroll into {total} copies of its body "
                             f"({sizes}), more than the limit of {limit}: give the loops constant bounds "
                             f"(for (i = 0; i < 8; i++)) or raise the limit (emmettc --max-loop N)")
        forms = self._loop_init(s, ctx)
        test = 1 if s.test is None else self.condition(s.test, ctx)
        step = None if s.step is None else self.expr(s.step, ctx, discard=True)
        self.loop_nest.append((s, max(total, 1)))
        try:
            body = self.stmt(s.body, ctx, False)
        finally:
            self.loop_nest.pop()
        run, skip = s.run, s.skip
        breaks = skip is not None and any(type(n) is S.Jump and n.loop is s and n.word == "break"
                                          for n in S.walk(s.body))
        parts = ([["setint", skip, 0]] if skip is not None else []) + body
        if step is not None and not (is_const(step) or type(step) is VStr):
            parts.append(cond([(run, step)]) if breaks else step)
        if bound is not None and not breaks:
            # The header says how often the loop runs (its test reads a local and a constant): plain copies.
            return forms + [self.copied(do(parts)) if i else do(parts) for i in range(copies)]
        if s.kind == "do":
            if bound is None:
                parts.append(cond([(op("&&", run, op("!", test)), ["setint", run, 0])]))
            go = run
            template = cond([(run, do(parts))])
        else:
            go = run if is_const(test) and test else op("&&", run, test)
            template = cond([(go, do(parts)), (1, ["setint", run, 0])])
        forms.append(["setint", run, 1])
        forms.extend(self.copied(template) if i else template for i in range(copies))
        if bound is None:
            at = self.reporter.located(s.pos, "")
            forms.append(["assert", op("!", self.copied(go) if copies else go),
                          VStr(f"loop at {at.file}:{at.line}:{at.col} ran more than {copies} iterations "
                               f"(the limit: emmettc --max-loop N)")])
        return forms

    def _nest_sizes(self):
        sizes, before = [], 1
        for _, total in self.loop_nest:
            sizes.append(total // before)
            before = total
        return sizes

    def _loop_init(self, s, ctx):
        init = s.init
        if init is None:
            return []
        if type(init) is S.Declaration:
            return self.s_Declaration(init, ctx, False)
        form = self.expr(init, ctx, discard=True)
        return [] if is_const(form) or type(form) is VStr else [form]

    def s_Jump(self, s, ctx, tail):
        loop = s.loop
        if loop is None:
            return []  # reported during resolution
        if s.word == "break":
            return [["setint", loop.skip, 1], ["setint", loop.run, 0]]
        return [["setint", loop.skip, 1]]

    def after_jump(self, s):
        """The `skip` local that guards the statements after `s` in a block, or None if `s` cannot jump."""
        if not self.loop_nest:
            return None
        loop = self.loop_nest[-1][0]
        if loop.skip is None or not leaves(s, loop):
            return None
        return loop.skip

    def copied(self, form):
        """A copy of VP form `form` (lists are trees: each copy of a body needs lists of its own),
        each copied list tagged with the source position of its original."""
        if type(form) is not list:
            return form
        out = [self.copied(x) for x in form]
        origin = self.origins.get(id(form))
        if origin is not None:
            self.origins[id(out)] = (origin[0], out)
        return out
