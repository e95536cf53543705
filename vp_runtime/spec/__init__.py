"""The VP language as data: the one place each of its names and rules is written.

Forms and operators (forms.py), builtins and their signatures (builtins.py),
built-in globals (globals.py), probe points, their kinds and guest faults
(probes.py), the printf directive grammar (printf.py), limits and the version
(limits.py), value types (values.py), the formats of guest symbol files
(symbol_files.py, imported by its readers only), and the names of other VProbes
environments a hosted VM refuses with the reason (foreign.py).  The checker, the translator, the
builtins, the machines and the Emmett compiler read these tables instead of
listing names of their own (tests/test_language_spec.py keeps it so).

Nothing here imports the runtime: the compiler may import this package and
nothing else of `vp_runtime`.  Adding a global is one GlobalInfo here (and a
value on each machine); a builtin, one Builtin here (and its implementation);
a static probe, one ProbeInfo here (and the machines that fire it).
"""

from . import printf  # the directive grammar, as spec.printf
from .builtins import BUILTINS, TOOLKIT_EMMETT_UNDECLARED, Builtin, Param
from .forms import OPERATOR_NAMES, OPERATORS, RESERVED_UPPER_PATTERN, SPECIAL_FORMS, TOP_LEVEL_FORMS, Form, Operator
from .globals import (
    AS_ADDRESS, AS_HEX, AS_NUMBER, GLOBAL, GLOBAL_ALIASES, GLOBALS, GPR_ORDER, HARDWARE, HARDWARE_GLOBALS, MACHINE,
    MSR_BASED_SEGMENTS, MSR_GLOBALS, PER_PCPU, PER_PROBE, PER_THREAD, PER_VCPU, PROBE, PROBE_ARG_INDEX,
    PROBE_GLOBALS, REGISTER, REGISTER_GLOBALS, RUNTIME, SEGMENT, SEGMENT_GLOBALS, SEGMENT_REGISTERS, STATE,
    STATE_GLOBALS, SYSTEM_SEGMENTS, VMCB, VMCB_GLOBALS, VMCS, VMCS_FIELDS, VMCS_GLOBALS, GlobalInfo, VmcsField,
)
from .limits import (
    BAG_PAIR_BYTES, DEFAULT_BAG_BYTES, DEFAULT_MAX_CALL_DEPTH, DEFAULT_MAX_CODE_BYTES, MASK64, MAX_ARGS,
    MAX_CODE_BYTES_LIMIT, MAX_KEYS, MAX_NAME_BYTES, MAX_NESTING, MAX_PROBES, MAX_STACK_FRAMES, MAX_STRING_BYTES,
    PROBE_ARGS, VERSION,
)
from .foreign import (
    ESX_DOMAIN_PATTERN, ESX_DOMAINS, ESX_ONLY_BUILTINS, ESX_ONLY_GLOBALS, MONITOR_BUILTINS, MONITOR_GLOBALS,
    NUMBERED_DOMAIN, TARGET_LINE_PREFIX,
)
from .probes import (
    ADDRESS_AND_OFFSET, DOMAINS, DURATION, DURATION_UNITS_US, EVENT, EXECUTE, GUEST, GUEST_FAULT_PREFIX,
    GUEST_FAULTS, INTERVAL, LOAD, PERIODIC, PROBE_KIND_SEPARATOR, PROBE_KINDS, READ, RETURN, STATIC_PROBES, UNLOAD,
    VMM, VMX, WRITE, GuestFault, ProbeInfo, ProbeKind,
)
from .values import ADDRESS, FORMAT, INT, STR

# The names of the language's own functions and forms.  A script may define none
# of these, no built-in global (GLOBALS) and no name RESERVED_UPPER_PATTERN matches.
RESERVED_WORDS = frozenset(TOP_LEVEL_FORMS) | frozenset(SPECIAL_FORMS) | frozenset(OPERATOR_NAMES) \
    | frozenset(BUILTINS)

