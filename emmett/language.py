"""The VP language as the compiler sees it: read from the language's specification.

`vp_runtime.spec` is the one place the language's names are written (the
compiler imports nothing else of the runtime).  Here they take the shapes the
passes use: built-in globals with their Emmett types, static probes, the VP
builtins and the special forms an Emmett program calls like functions, the
names VP reserves, the limits.  Emmett adds the guest helper functions its
preload library defines.
"""

from vp_runtime import spec

from . import ctype as T


def _emmett_type(vp_type):
    return T.STRING if vp_type == spec.STR else T.VPINT


# Built-in global -> its Emmett type (RIP, TSC, ARG0... integers; PROBENAME a string).
BUILTIN_GLOBALS = {name: _emmett_type(g.type) for name, g in spec.GLOBALS.items()}
STATIC_PROBES = spec.STATIC_PROBES
# Built-in globals whose values read best as guest linear addresses (hex, symbolized),
# and those best read in hex (bits, physical addresses).
ADDRESS_GLOBALS = frozenset(name for name, g in spec.GLOBALS.items() if g.shown_as == spec.AS_ADDRESS)
HEX_GLOBALS = frozenset(name for name, g in spec.GLOBALS.items() if g.shown_as == spec.AS_HEX)

# VP's special forms that an Emmett program calls like functions: those whose
# first argument names an aggregate or a bag (logaggr, clearaggr, baginsert, bagremove).
def _first_operand(form):
    """What a special form's usage names its first operand: `(logaggr AGGREGATE...)` -> AGGREGATE."""
    return form.usage.split()[1].rstrip(")").rstrip(".")


CONTAINER_BUILTINS = frozenset(name for name, form in spec.SPECIAL_FORMS.items()
                               if _first_operand(form) in ("AGGREGATE", "BAG"))
# Those that take any number of aggregates: (logaggr AGGREGATE...).
AGGREGATE_LIST_BUILTINS = frozenset(name for name, form in spec.SPECIAL_FORMS.items()
                                    if form.usage.split()[1:] == ["AGGREGATE...)"])
# Emmett's built-in functions: VP's builtins and those forms.
BUILTINS = frozenset(spec.BUILTINS) | CONTAINER_BUILTINS
# Those a program may define a function of the same name instead (the toolkit's Emmett does
# not declare them): the program's function hides the builtin.
HIDEABLE_BUILTINS = BUILTINS & spec.TOOLKIT_EMMETT_UNDECLARED
# The builtins that can be called without arguments (getsystemtime(), exit()).
BUILTINS_WITHOUT_ARGUMENTS = frozenset(
    name for name, b in spec.BUILTINS.items() if all(p.optional for p in b.params))
# Builtins whose first argument is a variable they write, and its type.
DEST_BUILTINS = {name: _emmett_type(b.params[0].type) for name, b in spec.BUILTINS.items()
                 if b.params and b.params[0].destination}

# Builtins that take only values (integers, strings), none left out, none written: lowered
# alike from their signature, name -> each parameter's (usage name, Emmett type, role).
VALUE_BUILTINS = {name: tuple((p.name, _emmett_type(p.type), p.role) for p in b.params)
                  for name, b in spec.BUILTINS.items()
                  if all(p.type in (spec.INT, spec.STR) and not p.optional and not p.destination
                         for p in b.params)}

# Builtins and forms whose first operand is what they write or name, or their format:
# the VP printer keeps it beside the head when a form spans lines.
FIRST_OPERAND_NAMED = frozenset(
    [name for name, b in spec.BUILTINS.items() if b.params and (b.params[0].destination or b.params[0].type == spec.FORMAT)]
    + [name for name, form in spec.SPECIAL_FORMS.items()
       if _first_operand(form) in ("VARIABLE", "NAME", "AGGREGATE", "BAG")])

# The special forms that take any number of operands (do, cond): VP's limit of 32 applies.
VARIADIC_FORMS = frozenset(name for name, form in spec.SPECIAL_FORMS.items() if form.usage.endswith("...)"))

# The top-level forms with a body (defun, vprobe): the printer always gives them lines of their own.
BODY_FORMS = frozenset(name for name, form in spec.TOP_LEVEL_FORMS.items() if "BODY..." in form.usage)

# Probe kinds: the VP kind of each guest-address probe by what fires it (execute, read,
# write), and the periodic kind with its interval.
# (The reference's kinds: the later releases' are other spellings of them, with domains.)
ADDRESS_PROBE_KINDS = {k.fires: name for name, k in spec.PROBE_KINDS.items()
                       if k.param == spec.ADDRESS and not k.domains}
INTERVAL_PROBE_KIND = next(name for name, k in spec.PROBE_KINDS.items() if k.param == spec.INTERVAL)
# The later releases' kinds, written after an optional domain (GUEST:ENTER:sym, VMM:TIMER:1sec),
# and the guest-address ones among them with the VP kind each is another spelling of.
LATER_PROBE_KINDS = tuple(name for name, k in spec.PROBE_KINDS.items() if k.domains)
LATER_GUEST_KINDS = {name: k.same_as for name, k in spec.PROBE_KINDS.items()
                     if k.domains and k.param == spec.ADDRESS and k.same_as}
# The later kinds no machine here fires (STEP:), and why.
REFUSED_PROBE_KINDS = {name: k.refused for name, k in spec.PROBE_KINDS.items() if k.refused}

# The toolkit's predefined constants: NULL, getgpr's register numbers (REG_RAX...) and
# getvmcs's field encodings (VT_EXIT_REASON...).  A program's own declaration of a name hides it.
CONSTANTS = {"NULL": 0, **{f"REG_{name}": n for n, name in enumerate(spec.GPR_ORDER)},
             **{f.constant: code for code, f in spec.VMCS_FIELDS.items() if f.constant}}

# Functions a guest preload library provides.
GUEST_HELPERS = frozenset("curpid curprocname curtid curppid curthrptr".split())

# Names a VP script may not define: forms, operators, builtins, built-in globals.
VP_RESERVED = spec.RESERVED_WORDS | frozenset(spec.GLOBALS)

# printf directives: the grammar (a regular expression), conversion -> argument type, refused conversions.
PRINTF_DIRECTIVES = spec.printf.directives  # the grammar's reader, which the runtime uses too
PRINTF_BAD_DIRECTIVE = spec.printf.BadDirective
PRINTF_CONVERSIONS = {conv: "str" if t == spec.STR else "int" for conv, t in spec.printf.CONVERSIONS.items()}

MASK64 = spec.MASK64
MAX_PROBE_PARAMS = spec.PROBE_ARGS  # ARG0 to ARG9
MAX_PROBES = spec.MAX_PROBES
MAX_PARAMS = spec.MAX_ARGS  # of a VP function
MAX_ARGS = spec.MAX_ARGS  # of a call
MAX_STRING_BYTES = spec.MAX_STRING_BYTES
MAX_NAME_BYTES = spec.MAX_NAME_BYTES
MAX_NESTING = spec.MAX_NESTING
MAX_KEYS = spec.MAX_KEYS  # of an aggregate
