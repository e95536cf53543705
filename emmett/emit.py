"""VP emission: probe points, VP names for everything, and the program text.

Naming.  A user name that VP accepts is kept.  A name VP reserves (its
keywords and builtins such as `do`, `cond`, `logint`, `add`; built-in
globals; names made only of upper-case letters, digits and underscores) gets
a leading underscore (`cond` -> `_cond`, `MAX` -> `_MAX`); a clash with a name
already taken gets a numeric suffix (`_2`, `_3`...); names are cut to VP's 63
bytes.  Locals of probes and of non-recursive functions become globals named
`FUNCTION.LOCAL` (`.` cannot appear in an Emmett name, so these never clash
with user names); locals of recursive functions become extra parameters, so
every activation has its own (see lower.py and driver.py).  Parameters are
named apart from every top-level name, so a parameter never hides a function
or a global the body uses.
"""

from . import ctype as T
from .sema import STATIC_PROBES, FuncSym, Sym
from .vp import Namer, Printer, VStr, valid_name, walk

DOMAINS = ("VMM", "VMX", "GUEST")
LATER_FORMS = ("ENTER", "EXIT", "OFFSET", "READ", "WRITE", "TIMER", "PROFILE")


def _part_text(part):
    value, kind, _ = part
    if kind == "ID":
        return value
    return value[1]  # INT and TIME keep their spelling


def probe_spec(probe, program):
    """The VP probe point for an Emmett probe name, or a CompileError after reporting why not."""
    parts = probe.node.parts
    reporter = program.reporter
    first = parts[0]
    pos = first[2]
    text = ":".join(_part_text(p) for p in parts)
    if len(parts) == 1:
        name = first[0]
        if name not in STATIC_PROBES:
            hint = ""
            for known in STATIC_PROBES:
                if known.lower() == name.lower():
                    hint = f" (did you mean {known}?)"
            reporter.fail(pos, f"unknown probe '{name}'{hint}")
        return name
    domain = None
    if first[1] == "ID" and first[0] in DOMAINS and len(parts) >= 3 and parts[1][1] == "ID" \
            and parts[1][0] in LATER_FORMS:
        domain = first[0]
        parts = parts[1:]
        first = parts[0]
    kind = first[0] if first[1] == "ID" else None
    args = parts[1:]

    def need(count):
        if len(args) != count:
            reporter.fail(pos, f"probe '{text}': {kind}: takes {count} part{'s' if count != 1 else ''} after it")

    if kind == "USEC":
        need(1)
        value, k, apos = args[0]
        if k != "INT" or value[0] == 0:
            reporter.fail(apos, f"probe '{text}': USEC: needs a positive number of microseconds")
        return f"USEC:{value[0]}"
    if kind in ("GUEST", "GUEST_READ", "GUEST_WRITE", "ENTER", "READ", "WRITE"):
        need(1)
        if kind == "ENTER" and domain not in (None, "GUEST"):
            reporter.fail(pos, f"probe '{text}': ENTER probes are guest probes (GUEST:ENTER:symbol)")
        vp_kind = {"ENTER": "GUEST", "READ": "GUEST_READ", "WRITE": "GUEST_WRITE"}.get(kind, kind)
        return f"{vp_kind}:{guest_location(args[0], program, text)}"
    if kind == "EXIT":
        reporter.fail(pos, f"probe '{text}': function-return probes (EXIT:) are not supported by this VP runtime; "
                           f"probe the function's return instruction with GUEST:0xADDRESS instead")
    if kind == "OFFSET":
        need(2)
        sym, k, spos = args[0]
        offset, k2, opos = args[1]
        if k != "ID" or k2 != "INT":
            reporter.fail(pos, f"probe '{text}': OFFSET: is written OFFSET:symbol:offset")
        symbols = program.guest_symbols
        if symbols is None:
            reporter.fail(spos, f"probe '{text}' needs the address of '{sym}': compile with -s SYMFILE")
        if sym not in symbols:
            reporter.fail(spos, f"unknown guest symbol '{sym}' (not in the symbol file)")
        return f"GUEST:0x{(symbols[sym] + offset[0]) & 0xFFFFFFFFFFFFFFFF:x}"
    if kind in ("TIMER", "PROFILE"):
        need(1)
        value, k, apos = args[0]
        if k not in ("TIME", "INT") or value[0] == 0:
            reporter.fail(apos, f"probe '{text}': {kind}: needs an interval such as 10msec, 1sec or 500usec")
        usec = value[0]
        if domain == "VMX":
            if usec == 1000000:
                return "VMX1Hz"
            reporter.fail(apos, f"probe '{text}': VMX timers run once a second only (VMX:TIMER:1sec)")
        if domain == "GUEST":
            reporter.fail(pos, f"probe '{text}': timers run in the VMM (VMM:TIMER:...) or the VMX")
        return f"USEC:{usec}"
    if kind is not None and first[0] in STATIC_PROBES:
        reporter.fail(pos, f"probe '{first[0]}' takes no ':' parameter")
    reporter.fail(pos, f"unknown probe point '{text}'")


def guest_location(part, program, text):
    value, kind, pos = part
    if kind == "INT":
        return value[1].lower() if value[1].lower().startswith("0x") else f"0x{value[0]:x}"
    if kind == "TIME":
        program.reporter.fail(pos, f"probe '{text}': expected a guest address or symbol")
    symbols = program.guest_symbols
    if symbols is not None and value not in symbols:
        program.reporter.fail(pos, f"unknown guest symbol '{value}' (not in the symbol file)")
    return value


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
            base = sym.name if valid_name(sym.name) or len(sym.name.encode("utf-8")) > 63 else "_" + sym.name
            candidate = base
            n = 1
            while not valid_name(candidate) or candidate in namer.taken or candidate in local_taken:
                n += 1
                suffix = f"_{n}"
                candidate = base.encode("utf-8")[:63 - len(suffix)].decode("utf-8", "ignore") + suffix
            sym.vpname = candidate
            local_taken.add(candidate)
            fs.param_names.append(candidate)


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


def render(defs, functions, probes, indent):
    printer = Printer(indent)
    out = ['(version "1.0")']
    if defs:
        out.append("")
        out.extend(printer.form(d) for d in defs)
    for form in functions + probes:
        out.append("")
        out.append(printer.form(form))
    return "\n".join(out) + "\n"
