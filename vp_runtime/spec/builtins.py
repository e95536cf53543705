"""VP's built-in functions and their signatures.

Each parameter has a type (values.py): INT or STR; ADDRESS (an integer
address, or a string naming a guest symbol: the call's form is chosen by the
argument's type); FORMAT (a printf format: the arguments its directives ask
for follow it).  A *destination* parameter is a variable the builtin writes
(a string or integer variable, named, not an expression).  When a builtin's
destination is optional and left out, the builtin returns the value it would
have written instead of 1.  `role` names the parameter in messages
("the destination of sprintf must be a string variable").  `guest_words` is
the most 8-byte words of guest memory one call may read (the cost model,
vp_runtime/cost.py, counts them as operations).  `reads_registers`: a call reads the
firing VCPU's registers (the machine then gives a breakpoint's firing the registers of
where it is; a builtin that reads guest memory needs them too).
"""

from .limits import MAX_DECODE_BYTES, MAX_STACK_FRAMES, MAX_STRING_BYTES
from .records import Record
from .values import ADDRESS, FORMAT, INT, STR

_WORD = 8
_STRING_WORDS = -(-(MAX_STRING_BYTES + 1) // _WORD)  # a string and its NUL
_STACK_WORDS = 2 * MAX_STACK_FRAMES  # each frame: the saved frame pointer and the return address
_CODE_WORDS = MAX_DECODE_BYTES // _WORD  # the function's code, decoded


class Param(Record):
    """One parameter: NAME as usage shows it, its type, its role in messages, whether it
    may be left out, whether it is a destination variable."""

    __slots__ = ("name", "type", "role", "optional", "destination")
    defaults = {"optional": False, "destination": False}


class Builtin(Record):
    """A builtin: its parameters, its result type, what it does, how it is called, the guest
    memory one call may read (in 8-byte words), and whether it reads the VCPU's registers."""

    __slots__ = ("name", "params", "result", "description", "usage", "guest_words", "reads_registers")


def _usage(name: str, params) -> str:
    words = [name]
    for p in params:
        words.append(f"[{p.name}]" if p.optional else p.name)
        if p.type == FORMAT:
            words.append("ARGS...")
    return f"({' '.join(words)})"


def _builtin(name, result, params, description, usage=None, guest_words=0, reads_registers=False) -> Builtin:
    return Builtin(name, tuple(params), result, description, usage or _usage(name, params), guest_words,
                   reads_registers or guest_words > 0)


def _dest(name: str, type_: str, optional: bool = False) -> Param:
    return Param(name, type_, "the destination", optional, True)


BUILTINS = {b.name: b for b in (
    _builtin("logstr", INT, [Param("STRING", STR, "the argument")], "print a string to the log"),
    _builtin("logint", INT, [Param("INTEGER", INT, "the argument")], "print an integer to the log"),
    _builtin("printf", INT, [Param("FORMAT", FORMAT, "the format")],
             "print formatted data to the log, as C's printf"),
    _builtin("sprintf", INT, [_dest("STRING-VARIABLE", STR), Param("FORMAT", FORMAT, "the format")],
             "store formatted data in a string variable, as C's sprintf (at most 255 bytes)"),
    _builtin("strcmp", INT, [Param("STRING", STR, "an argument"), Param("STRING", STR, "an argument")],
             "compare two strings: 0 if equal, 1 if the first is greater, 2^64-1 if it is less"),
    _builtin("getguest", INT, [Param("ADDRESS", ADDRESS, "the argument")],
             "eight bytes of guest memory at a linear address or a guest symbol",
             usage='(getguest ADDRESS) or (getguest "SYMBOL")', guest_words=1),
    _builtin("getgueststr", INT,
             [_dest("STRING-VARIABLE", STR), Param("ADDRESS", ADDRESS, "an argument"),
              Param("OFFSET", INT, "the last argument", optional=True)],
             "copy a NUL-terminated string (at most 255 bytes) from a guest linear address, from a "
             "guest symbol plus an optional offset, or of at most MAX-LENGTH bytes, into a string variable",
             usage='(getgueststr STRING-VARIABLE ADDRESS), (getgueststr STRING-VARIABLE "SYMBOL" [OFFSET]) '
                   'or (getgueststr STRING-VARIABLE MAX-LENGTH ADDRESS)', guest_words=_STRING_WORDS),
    _builtin("gueststack", INT, [_dest("STRING-VARIABLE", STR, optional=True)],
             "the guest's stack from a frame-pointer walk, as GUEST_0xADDR_0xADDR..., innermost first",
             guest_words=_STACK_WORDS),
    _builtin("getguestphys", INT, [Param("PHYSICAL-ADDRESS", INT, "the address")],
             "eight bytes of guest memory at a physical address", guest_words=1),
    _builtin("getguestphysstr", INT,
             [_dest("STRING-VARIABLE", STR), Param("MAX-LENGTH", INT, "the length"),
              Param("PHYSICAL-ADDRESS", INT, "the address")],
             "copy a NUL-terminated string of at most MAX-LENGTH bytes (and 255) from a guest physical "
             "address into a string variable", guest_words=_STRING_WORDS),
    _builtin("getsystemtime", INT, [_dest("INTEGER-VARIABLE", INT, optional=True)],
             "host time in microseconds"),
    _builtin("offatret", INT, [Param("FUNCTION", ADDRESS, "the function")],
             "the structure offset a guest function (a symbol or its address) loads its return value from "
             "(or whose address it returns)",
             usage='(offatret "SYMBOL") or (offatret ADDRESS)', guest_words=_CODE_WORDS),
    _builtin("offatstrcpy", INT,
             [Param("FUNCTION", ADDRESS, "the function"),
              Param("COPY-ROUTINE", ADDRESS, "the copy routine", optional=True)],
             "the structure offset a guest function copies a string from: the source of its first "
             "adjusted copy, or of its call to the given copy routine",
             usage='(offatstrcpy "SYMBOL" ["COPY-ROUTINE"]) or (offatstrcpy ADDRESS [ADDRESS])',
             guest_words=_CODE_WORDS),
    _builtin("offatseg", INT, [Param("FUNCTION", ADDRESS, "the function")],
             "the displacement of the first %fs:/%gs: memory operand of a guest function",
             usage='(offatseg "SYMBOL") or (offatseg ADDRESS)', guest_words=_CODE_WORDS),
    _builtin("assert", INT,
             [Param("CONDITION", INT, "the condition"), Param("MESSAGE", STR, "the message", optional=True)],
             "abort the firing, logging MESSAGE, when CONDITION is 0"),
    _builtin("getgpr", INT, [Param("REGISTER", INT, "the register number")],
             "general-purpose register N of the firing VCPU, numbered as in a ModR/M byte "
             "(GPR_ORDER: 0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8-15 R8-R15)", reads_registers=True),
    _builtin("readmsr", INT, [Param("MSR", INT, "the MSR number")],
             "the firing VCPU's model-specific register with this number (a fault for one it lacks)", reads_registers=True),
    _builtin("readpmc", INT, [Param("COUNTER", INT, "the counter number")],
             "the firing VCPU's performance counter, numbered as RDPMC does (0x40000000 + N: fixed counter N)"),
    _builtin("getmeminfo", INT, [], "the VM's memory size in megabytes (its memsize)"),
    _builtin("exit", INT, [],
             "end the script: no probe fires after this firing, and the script is unloaded (its "
             "unload probes fire)"),
    _builtin("getvmcs", INT, [Param("FIELD", INT, "the field encoding")],
             "the VMCS field with this encoding (VMCS_FIELDS), as the firing VCPU's last exit left it", reads_registers=True),
)}

# The builtins and special forms the toolkit's Emmett compiler does not declare: a program of
# its dialect may define functions of these names, which its VP then names otherwise.
TOOLKIT_EMMETT_UNDECLARED = frozenset(("logint", "logstr", "strcmp", "setstr", "baginsert", "bagremove"))
