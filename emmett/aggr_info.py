"""What the printers are told about each aggregate: column headers, key kinds, how it is updated.

Lowering records every update of an aggregate in an emitted function or
probe (`AggregateUses.record`); the output's annotations carry one record
per aggregate (`record_of`), as docs/architecture.md describes.

* A key's header is its Emmett source text (`syscalls[RAX, curprocname()]`:
  `RAX`, `curprocname()`); updates that spell a key differently give the
  distinct spellings joined with ` | `.
* A key's kind says how to show its values (the first rule that applies):
  `string` (a string key); `syscall` (a system call number: `RAX` as a key
  in a probe on the guest kernel's system-call entry point, SYSCALL_ENTRIES);
  `address` (a pointer-typed expression, `&symbol` among them, or a built-in
  global that holds a guest linear address, such as RIP: hex, symbolized);
  `hex` (a built-in global best read in hex: control registers, flags,
  physical addresses); otherwise `integer` (decimal).  The built-in globals'
  readings are the language specification's (`GlobalInfo.shown_as`).  Updates that disagree make an integer key `integer`.
* `counted`: every update is `++`.  `value`: the source text of the value
  added, when every `<-` update adds the same expression.
* Histograms (`hist`, `lhist`) add their record: the kind, the bucket key
  and the unit (`histograms.py`).
"""

from . import ctype as T
from . import syntax as S
from .language import ADDRESS_GLOBALS, HEX_GLOBALS

# The guest kernel's system-call entry points (the VP probe points), where RAX holds
# the system call's number: the simulated guest's and older Linux kernels'
# system_call, and x86-64 Linux's entry_SYSCALL_64 since 4.2.
SYSCALL_ENTRIES = frozenset(f"GUEST:{name}" for name in (
    "system_call", "system_call_fastpath", "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe"))
SYSCALL_REGISTER = "RAX"

STRING, SYSCALL, ADDRESS, HEX, INTEGER, BUCKET = "string", "syscall", "address", "hex", "integer", "bucket"
_HEADER_SEPARATOR = " | "


def key_kind(node, probe_point):
    """The kind of an aggregate key (see the module docstring); `probe_point` is the VP point
    of the probe whose body holds the update (None in a function)."""
    t = node.type
    if isinstance(t, T.StringType) or T.is_char_pointer(t):
        return STRING
    name = _builtin_name(node)
    if name == SYSCALL_REGISTER and probe_point in SYSCALL_ENTRIES:
        return SYSCALL
    if isinstance(t, T.PointerType) or name in ADDRESS_GLOBALS:
        return ADDRESS
    if name in HEX_GLOBALS:
        return HEX
    return INTEGER


def _builtin_name(node):
    if type(node) is S.Name and node.sym is not None and getattr(node.sym, "kind", None) == "builtin":
        return node.name
    return None


def source_text(node, files):
    """The Emmett source of an expression, its whitespace runs made single spaces."""
    fid, line, col, end_line, end_col = S.source_range(node, files)
    if end_line == line:
        text = files.line_text(fid, line)[col - 1:end_col - 1]
    else:
        parts = [files.line_text(fid, line)[col - 1:]]
        parts += [files.line_text(fid, n) for n in range(line + 1, end_line)]
        parts.append(files.line_text(fid, end_line)[:end_col - 1])
        text = " ".join(parts)
    return " ".join(text.split())


class _Uses:
    __slots__ = ("headers", "kinds", "updates", "values", "hist")

    def __init__(self, count):
        self.headers = [[] for _ in range(count)]  # distinct spellings of each key, in order
        self.kinds = [None] * count
        self.updates = set()  # "count", "value", "hist"
        self.values = []  # distinct texts of the values added with <-
        self.hist = None


class AggregateUses:
    """Every update of each aggregate, as lowering sees them."""

    def __init__(self, files):
        self.files = files
        self.uses = {}  # id(Sym) -> _Uses

    def record(self, sym, keys, probe_point, update, value=None, hist=None):
        """One update of aggregate `sym`: its key nodes in the log's order (integer keys, then
        string keys), `update` "count" (++), "value" (<- value) or "hist"."""
        uses = self.uses.get(id(sym))
        if uses is None:
            uses = self.uses[id(sym)] = _Uses(len(keys))
        if len(keys) != len(uses.headers):
            return  # a key count the lowering has refused
        for i, node in enumerate(keys):
            text = source_text(node, self.files)
            if text not in uses.headers[i]:
                uses.headers[i].append(text)
            kind = key_kind(node, probe_point)
            old = uses.kinds[i]
            uses.kinds[i] = kind if old in (None, kind) else INTEGER
        uses.updates.add(update)
        if value is not None:
            text = source_text(value, self.files)
            if text not in uses.values:
                uses.values.append(text)
        if hist is not None and uses.hist is None:
            uses.hist = hist  # the first update's unit, when updates say different ones

    def record_of(self, sym):
        """The annotation record of aggregate `sym` (its VP name known), as JSON-ready data."""
        record = {"name": sym.vpname}
        if sym.vpname != sym.name:
            record["source"] = sym.name
        uses = self.uses.get(id(sym))
        if uses is None:
            return record
        keys = [{"header": _HEADER_SEPARATOR.join(h), "kind": k} for h, k in zip(uses.headers, uses.kinds)]
        if uses.hist is not None:
            keys[uses.hist["bucket"]]["kind"] = BUCKET
        record["keys"] = keys
        record["counted"] = uses.updates == {"count"}
        if len(uses.values) == 1:
            record["value"] = uses.values[0]
        if uses.hist is not None:
            record["hist"] = uses.hist
        return record
