"""VP emission: VP names for everything, and the program text.

Naming.  A user name that VP accepts is kept.  A name VP reserves (its
keywords and builtins such as `do`, `cond`, `logint`, `add`; built-in
globals; names made only of upper-case letters, digits and underscores) gets
a leading underscore (`cond` -> `_cond`, `MAX` -> `_MAX`); a clash with a name
already taken gets a numeric suffix (`_2`, `_3`...); names are cut to VP's 63
bytes.  Locals of probes and of non-recursive functions become globals named
`FUNCTION.LOCAL` (`.` cannot appear in an Emmett name, so these never clash
with user names); locals of recursive functions become extra parameters, so
every activation has its own (see output.py).  Parameters are
named apart from every top-level name, so a parameter never hides a function
or a global the body uses.
"""

from . import ctype as T
from .language import MAX_NAME_BYTES
from .symbols import FuncSym, Sym
from .vp import Namer, Printer, VStr, valid_name, walk

# ---- the program ------------------------------------------------------------------------------------

def assign_names(program, globals_, functions, ctxs):
    """Give every symbol of the output its VP name (see the module docstring)."""
    namer = Namer()
    for sym in globals_:
        sym.vpname = namer.claim(sym.name)
    for fs in functions:
        fs.vpname = namer.claim(fs.name)
    for ctx, prefix in ctxs:
        for local in ctx.locals:
            if not local.hidden:
                local.vpname = namer.claim(f"{prefix}.{local.name}")
    if program.temp is not None:
        program.temp.vpname = namer.claim(program.temp.name)
    for fs in functions:
        local_taken = set()
        for sym in fs.ctx.params + [s for s in fs.ctx.locals if s.hidden]:
            base = sym.name if valid_name(sym.name) or len(sym.name.encode("utf-8")) > MAX_NAME_BYTES else "_" + sym.name
            candidate = base
            n = 1
            while not valid_name(candidate) or candidate in namer.taken or candidate in local_taken:
                n += 1
                suffix = f"_{n}"
                candidate = base.encode("utf-8")[:MAX_NAME_BYTES - len(suffix)].decode("utf-8", "ignore") + suffix
            sym.vpname = candidate
            local_taken.add(candidate)


def global_def(sym):
    t = sym.type
    if sym.kind == "aggr":
        return ["defaggr", sym, t.int_keys or 0, t.str_keys or 0]
    if sym.kind == "bag":
        return ["defbag", sym, t.capacity]
    if isinstance(t, T.StringType):
        init = sym.init
        return ["defstring", sym] + ([VStr(init)] if init else [])
    init = sym.init or 0
    return ["definteger", sym] + ([init] if init else [])


def auto_aggr_probe(aggregates):
    body = []
    for a in aggregates:
        body.append(["logaggr", a])
        body.append(["clearaggr", a])
    inner = body[0] if len(body) == 1 else ["do"] + body
    return ["vprobe", "VMM1Hz", ["cond", [["==", "VCPUID", 0], inner]]]


def referenced_syms(forms):
    seen = {}
    for form in forms:
        for x in walk(form):
            if isinstance(x, (Sym, FuncSym)) and id(x) not in seen:
                seen[id(x)] = x
    return seen


def render(defs, functions, probes, indent, origins):
    """(the VP text, the printer's source-map segments: see `vp.Printer`)."""
    printer = Printer(indent, origins=origins)
    out = ['(version "1.0")']
    line = 1

    def add(form):
        nonlocal line
        printer.start(line)
        text = printer.form(form)
        out.append(text)
        line += text.count("\n") + 1

    if defs:
        out.append("")
        line += 1
        for d in defs:
            add(d)
    for form in functions + probes:
        out.append("")
        line += 1
        add(form)
    return "\n".join(out) + "\n", printer.segments
