"""Probe names: the VP probe point each Emmett probe name stands for.

An Emmett probe name is a list of parts separated by ':' (`VMM1Hz`,
`GUEST:sys_open`, `VMM:TIMER:10msec`, `OFFSET:sym:0x10`...).  A single part
is a static probe; otherwise the first part (after an optional domain, VMM:,
VMX: or GUEST:, before the later forms) is the kind, and each kind has its
method here, `k_KIND`, that checks its parts and gives the VP point: `ENTER:`
is `GUEST:`, `READ:`/`WRITE:` are `GUEST_READ:`/`GUEST_WRITE:`, `OFFSET:` a
`GUEST:` address from the symbol file, timers `USEC:` (or `VMX1Hz`).  A static
probe may carry the domain it fires in (`VMM:VMM1Hz`, `VMX:VMX1Hz`); the VP point
is then its plain name.
A name that is not a probe point is reported, and `CompileError` raised.
"""

from .language import (ADDRESS_PROBE_KINDS, INTERVAL_PROBE_KIND, LATER_GUEST_KINDS, LATER_PROBE_KINDS, MASK64,
                       REFUSED_PROBE_KINDS, STATIC_PROBES)
from .lexer import shown_literal

DOMAINS = ("VMM", "VMX", "GUEST")
LATER_FORMS = LATER_PROBE_KINDS
# Emmett's guest-address kinds, and the VP kind each is: VP's own, and ENTER: READ: WRITE:.
_GUEST_KINDS = {**{vp: vp for vp in ADDRESS_PROBE_KINDS.values()}, **LATER_GUEST_KINDS}


def probe_spec(probe, program):
    """The VP probe point for an Emmett probe name, or a CompileError after reporting why not."""
    return ProbeName(probe.node.parts, program).vp_point()


def _part_text(part):
    value, kind, _ = part
    if kind == "ID":
        return value
    return value[1]  # INT and TIME keep their spelling


class ProbeName:
    """One probe name being read: its parts, its text for messages, and where it is."""

    def __init__(self, parts, program):
        self.parts = parts
        self.program = program
        self.fail = program.reporter.fail
        self.pos = parts[0][2]
        self.text = shown_literal(":".join(_part_text(p) for p in parts), 60)

    def vp_point(self):
        parts = self.parts
        first = parts[0]
        if len(parts) == 1:
            return self.static(first[0])
        if len(parts) == 2 and first[1] == "ID" and first[0] in DOMAINS[:2] and parts[1][1] == "ID" \
                and parts[1][0] not in KINDS:
            return self.static_in(first[0], parts[1][0])
        domain = None
        if first[1] == "ID" and first[0] in DOMAINS and len(parts) >= 3 and parts[1][1] == "ID" \
                and parts[1][0] in LATER_FORMS:
            domain = first[0]
            parts = parts[1:]
            first = parts[0]
        kind = first[0] if first[1] == "ID" else None
        if kind in REFUSED_PROBE_KINDS:
            self.fail(self.pos, f"probe '{self.text}': {REFUSED_PROBE_KINDS[kind]}")
        method = KINDS.get(kind)
        if method is not None:
            return method(self, kind, parts[1:], domain)
        if kind is not None and first[0] in STATIC_PROBES:
            self.fail(self.pos, f"probe '{first[0]}' takes no ':' parameter")
        self.fail(self.pos, f"unknown probe point '{self.text}'")

    def static(self, name):
        if name not in STATIC_PROBES:
            hint = ""
            for known in STATIC_PROBES:
                if known.lower() == name.lower():
                    hint = f" (did you mean {known}?)"
            self.fail(self.pos, f"unknown probe '{name}'{hint}")
        return name

    def static_in(self, domain, name):
        """`VMM:VMM1Hz`, `VMX:VMX1Hz`: a static probe with the domain it fires in (checked)."""
        context = STATIC_PROBES[self.static(name)].context
        if context != domain:
            self.fail(self.pos, f"probe '{self.text}': {name} fires in the {context}, not in the {domain}; "
                                f"write {context}:{name} or {name}")
        return name

    def need(self, kind, args, count):
        if len(args) != count:
            self.fail(self.pos, f"probe '{self.text}': {kind}: takes {count} part{'s' if count != 1 else ''} after it")

    # ---- one method per kind -----------------------------------------------------------------

    def k_interval(self, kind, args, domain):
        self.need(kind, args, 1)
        value, k, apos = args[0]
        if k != "INT" or value[0] == 0:
            self.fail(apos, f"probe '{self.text}': {kind}: needs a positive number of microseconds")
        return f"{INTERVAL_PROBE_KIND}:{value[0]}"

    def k_guest(self, kind, args, domain):
        self.need(kind, args, 1)
        if kind == "ENTER" and domain not in (None, "GUEST"):
            self.fail(self.pos, f"probe '{self.text}': ENTER probes are guest probes (GUEST:ENTER:symbol)")
        return f"{_GUEST_KINDS[kind]}:{self.guest_location(args[0])}"

    def k_EXIT(self, kind, args, domain):
        """A return probe: the toolkit's VP name for it (its one parameter is the return value, ARG0)."""
        self.need(kind, args, 1)
        if domain not in (None, "GUEST"):
            self.fail(self.pos, f"probe '{self.text}': EXIT probes are guest probes (GUEST:EXIT:symbol)")
        return f"GUEST:EXIT:{self.guest_location(args[0])}"

    def k_OFFSET(self, kind, args, domain):
        self.need(kind, args, 2)
        sym, k, spos = args[0]
        offset, k2, _ = args[1]
        if k != "ID" or k2 != "INT":
            self.fail(self.pos, f"probe '{self.text}': OFFSET: is written OFFSET:symbol:offset")
        symbols = self.program.guest_symbols
        if symbols is None:
            self.fail(spos, f"probe '{self.text}' needs the address of '{sym}': compile with -s SYMFILE")
        if sym not in symbols:
            self.fail(spos, f"unknown guest symbol '{sym}' (not in the symbol file)")
        return f"GUEST:0x{(symbols[sym] + offset[0]) & MASK64:x}"

    def k_TIMER(self, kind, args, domain):
        self.need(kind, args, 1)
        value, k, apos = args[0]
        if k not in ("TIME", "INT") or value[0] == 0:
            self.fail(apos, f"probe '{self.text}': {kind}: needs an interval such as 10msec, 1sec or 500usec")
        usec = value[0]
        if domain == "VMX":
            if usec == 1000000:
                return "VMX1Hz"
            self.fail(apos, f"probe '{self.text}': VMX timers run once a second only (VMX:TIMER:1sec)")
        if domain == "GUEST":
            self.fail(self.pos, f"probe '{self.text}': timers run in the VMM (VMM:TIMER:...) or the VMX")
        return f"{INTERVAL_PROBE_KIND}:{usec}"

    k_PROFILE = k_TIMER

    def guest_location(self, part):
        value, kind, pos = part
        if kind == "INT":
            return value[1].lower() if value[1].lower().startswith("0x") else f"0x{value[0]:x}"
        if kind == "TIME":
            self.fail(pos, f"probe '{self.text}': expected a guest address or symbol")
        symbols = self.program.guest_symbols
        if symbols is not None and value not in symbols:
            self.fail(pos, f"unknown guest symbol '{value}' (not in the symbol file)")
        return value


# The kinds of probe point a name can start with, and the method that reads each:
# VP's own kinds (from the language's specification) and Emmett's.
KINDS = {name[2:]: method for name, method in vars(ProbeName).items() if name[2:].isupper()}
KINDS.update(dict.fromkeys(_GUEST_KINDS, ProbeName.k_guest))
KINDS[INTERVAL_PROBE_KIND] = ProbeName.k_interval
