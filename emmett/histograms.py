"""Histograms: `a[keys] <- hist(value)` and `a[keys] <- lhist(value, min, max, step)`.

They lower to plain VP aggregates (the VP stays VP and runs anywhere): the
bucket is one more integer key, after the program's own integer keys, and
the aggregated value is the sample itself, so each bucket's count, sum, min
and max are exact.  A bucket key holds the bucket's lower bound:

* `hist(value)` (DTrace's quantize, bpftrace's hist): power-of-two buckets,
  key 0 for 0 and 2^k for a value in [2^k, 2^(k+1));
* `lhist(value, min, max, step)` (lquantize, lhist): linear buckets of
  `step` from `min` (constants, 0 <= min < max, step dividing max - min),
  key `min + i*step` for [min + i*step, min + (i+1)*step), key `max` for the
  values at or above max, key 0 for those below min.

An optional last argument names the unit (`hist(t, "us")`); without it the
unit is read from the sampled expression's name when that ends in a unit
(`usec`, `lat_ns`, `msecs`, `bytes`...: UNIT_WORDS).  Every update of a
histogram aggregate uses the same buckets.  Values are VP's unsigned
integers: a negative sample falls in the top bucket.

Each histogram aggregate gets one VP function that makes the update,
`NAME.hist (KEY... value)`: its arguments evaluate the keys and the sample
once each (in the order of a plain update: the keys, then the value), and it computes the bucket (power-of-two buckets with the shared
`hist.pow2`, which rounds down to a power of two without a loop).
"""

from . import ctype as T
from . import syntax as S
from .symbols import Ctx, FuncSym, Sym, where
from .vp import cond, is_const, op

HIST, LHIST = "hist", "lhist"
AGGREGATING = frozenset((HIST, LHIST))
USAGE = {HIST: 'AGGREGATE[keys] <- hist(value [, "unit"])',
         LHIST: 'AGGREGATE[keys] <- lhist(value, min, max, step [, "unit"])'}
MAX_LINEAR_BUCKETS = 10_000
MAX_UNIT_BYTES = 32
# A unit -> the words that name it at the end of a sampled variable's or function's name.
UNIT_WORDS = {
    "ns": ("ns", "nsec", "nsecs", "nanoseconds"),
    "us": ("us", "usec", "usecs", "microseconds"),
    "ms": ("ms", "msec", "msecs", "milliseconds"),
    "s": ("sec", "secs", "seconds"),
    "bytes": ("bytes",),
}
_UNIT_OF_WORD = {word: unit for unit, words in UNIT_WORDS.items() for word in words}


def is_aggregating_call(node):
    """Whether `node` is a call of hist or lhist (resolution marks them: `Call.sym`)."""
    return type(node) is S.Call and node.sym in AGGREGATING


def unit_of(node):
    """The unit a sampled expression's name says (`usec`, `lat_us()`...), or None."""
    if type(node) is S.Call:
        node = node.func
    if type(node) is not S.Name:
        return None
    name = node.name.lower()
    word = name.rsplit("_", 1)[-1]
    return _UNIT_OF_WORD.get(name) or _UNIT_OF_WORD.get(word)


class Histograms:
    """The histogram updates of one program, as lowering meets them."""

    def __init__(self, lowerer):
        self.lower = lowerer
        self.fail = lowerer.fail
        self.shapes = {}  # id(aggregate Sym) -> (its buckets: a dict, or None for plain updates, where)
        self.updaters = {}  # id(aggregate Sym) -> FuncSym of its update function
        self.bodies = []  # [(FuncSym, body forms)] of the functions the updates call
        self.pow2 = None

    # ---- checks -----------------------------------------------------------------------------

    def plain_update(self, sym, pos):
        """A `++` or `<- value` of aggregate `sym`: refused if it holds a histogram."""
        self._same_shape(sym, None, pos)

    def _same_shape(self, sym, shape, pos):
        """Every update of `sym` makes the same buckets (`shape` without its unit; None: a plain update)."""
        if shape is not None:
            shape = {k: v for k, v in shape.items() if k != "unit"}
        known = self.shapes.get(id(sym))
        if known is None:
            self.shapes[id(sym)] = (shape, pos)
            return
        old, old_pos = known
        if old == shape:
            return
        if old is None:
            self.fail(pos, f"aggregate '{sym.name}' is updated with ++ or <- value at {where(old_pos)}: a "
                           f"histogram needs an aggregate of its own")
        if shape is None:
            self.fail(pos, f"aggregate '{sym.name}' is a histogram ({where(old_pos)}): it is updated only "
                           f"with {old['kind'] == 'pow2' and 'hist' or 'lhist'}(...)")
        self.fail(pos, f"aggregate '{sym.name}' has other buckets at {where(old_pos)}: every update of a "
                       f"histogram uses the same buckets")

    def _shape(self, call, ctx):
        """The buckets `call` asks for (a dict for the annotations) and the lowered sample."""
        name, args = call.sym, call.args
        want = (1, 2) if name == HIST else (4, 5)
        if len(args) not in want:
            self.fail(call.pos, f"{name}() takes {' or '.join(map(str, want))} arguments: {USAGE[name]}")
        unit = None
        if len(args) == want[1]:
            unit = self._unit(args[-1], name)
            args = args[:-1]
        sample = self.lower.expr(args[0], ctx)
        self.lower.as_int(sample, args[0].type, args[0], f"the value {name}() counts")
        if name == HIST:
            shape = {"kind": "pow2"}
        else:
            lo, hi, step = (self._constant(a, ctx, name) for a in args[1:4])
            if not lo < hi or step == 0 or (hi - lo) % step:
                self.fail(call.pos, f"lhist's buckets need min < max and a step that divides max - min "
                                    f"(here min {lo}, max {hi}, step {step})")
            if (hi - lo) // step > MAX_LINEAR_BUCKETS:
                self.fail(call.pos, f"lhist would have {(hi - lo) // step:,} buckets; at most "
                                    f"{MAX_LINEAR_BUCKETS:,} (use a larger step, or hist)")
            shape = {"kind": "linear", "min": lo, "max": hi, "step": step}
        unit = unit or unit_of(args[0])
        if unit is not None:
            shape["unit"] = unit
        return shape, sample

    def _constant(self, node, ctx, name):
        form = self.lower.expr(node, ctx)
        if not is_const(form) or form >= 1 << 63:
            self.fail(node.pos, f"{name}'s min, max and step must be non-negative integer constants")
        return int(form)

    def _unit(self, node, name):
        if type(node) is not S.StrLit or not node.value or len(node.value.encode("utf-8")) > MAX_UNIT_BYTES \
                or not node.value.isprintable():
            self.fail(node.pos, f"the last argument of {name}() is its unit: a short string such as \"us\" "
                                f"(at most {MAX_UNIT_BYTES} bytes)")
        return node.value

    # ---- lowering ---------------------------------------------------------------------------

    def update(self, lv, call, ctx):
        """The VP form of `lv <- hist(...)` / `lhist(...)`: a call of the aggregate's update function."""
        shape, sample = self._shape(call, ctx)
        ints, strs, keys = self.lower.aggr_keys(lv, ctx, extra_int_keys=1)
        shape["bucket"] = len(ints)
        self._same_shape(lv.sym, shape, call.pos)
        # In the log's order the bucket is the last integer key; its header is the sample's text.
        log_keys = keys[:len(ints)] + [call.args[0]] + keys[len(ints):]
        self.lower.record_update(lv.sym, log_keys, "hist", call.args[0], shape)
        # Keys first, then the value, in the order a plain update evaluates them.
        return [self._updater(lv.sym, shape, ints, strs, call.pos)] + ints + strs + [sample]

    def _updater(self, sym, shape, ints, strs, pos):
        fs = self.updaters.get(id(sym))
        if fs is not None:
            return fs
        int_params = [Sym("param", f"key{i}", T.VPINT, pos) for i in range(len(ints))]
        str_params = [Sym("param", f"key{len(ints) + i}", T.STRING, pos) for i in range(len(strs))]
        value = Sym("param", "value", T.VPINT, pos)
        fs = self._function(f"{sym.name}.hist", int_params + str_params + [value], pos)
        body = [["aggr", sym, int_params + [self._bucket(shape, value, pos)], str_params, value]]
        self.updaters[id(sym)] = fs
        self.bodies.append((fs, body))
        return fs

    def _bucket(self, shape, v, pos):
        if shape["kind"] == "pow2":
            return [self._pow2_function(pos), v]
        lo, hi, step = shape["min"], shape["max"], shape["step"]
        inside = v if step == 1 else op("-", v, op("%", op("-", v, lo) if lo else v, step))
        clauses = [(op("<", v, lo), 0)] if lo else []
        return cond(clauses + [(op(">=", v, hi), hi), (1, inside)])

    def _pow2_function(self, pos):
        """`hist.pow2 (v)`: the largest power of two not above v (0 for 0), by smearing its top bit down."""
        if self.pow2 is None:
            v = Sym("param", "v", T.VPINT, pos)
            self.pow2 = self._function("hist.pow2", [v], pos)
            body = [["setint", v, op("|", v, op(">>", v, shift))] for shift in (1, 2, 4, 8, 16, 32)]
            self.bodies.append((self.pow2, body + [op("^", v, op(">>", v, 1))]))
        return self.pow2

    def _function(self, name, params, pos):
        fs = FuncSym(name, T.FuncType(T.VPINT, [(p.name, p.type, pos) for p in params]), pos)
        fs.ctx = Ctx("func", name, self.lower.p.model, False)
        fs.ctx.params = params
        fs.reachable = True
        return fs

