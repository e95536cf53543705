"""The numbers of the language: the reference's limits and the implementation's.

The reference fixes some (32 probes, 64-byte names and 256-byte strings, both
counting the terminating NUL, a translation cache of at most 64 KiB) and
leaves the others to the implementation; those are the project's choices.
`vp_runtime.limits.LoadConfig` is the per-VM configuration made of them.
"""

# Table 3-1: the version this engine implements, (major, minor).
VERSION = (1, 0)

# VP integers are unsigned 64-bit: every result is kept in 0 .. MASK64.
MASK64 = (1 << 64) - 1

MAX_PROBES = 32
MAX_NAME_BYTES = 63  # "64 bytes, including the terminating null byte"
MAX_STRING_BYTES = 255  # "256 bytes, including the terminating null byte"
MAX_ARGS = 32  # arguments to any one call, parameters of any one function
MAX_KEYS = 16  # integer plus string keys of one aggregate
MAX_NESTING = 64  # how deeply VP expressions may nest
PROBE_ARGS = 10  # ARG0 .. ARG9: the arguments a static probe passes

# The translation cache: the size of the translated code (Python bytecode of
# every probe and function) must fit.  vprobe.maxCodeBytes raises it to 64 KiB.
MAX_CODE_BYTES_LIMIT = 65536
DEFAULT_MAX_CODE_BYTES = 32768

# Bags: each key/value pair takes 16 bytes of the VM's bag storage.
BAG_PAIR_BYTES = 16
DEFAULT_BAG_BYTES = 65536

# The VP stack: how deep user functions may call each other at run time.
DEFAULT_MAX_CALL_DEPTH = 128

# How many frames `gueststack` asks the machine for (the string is cut to 255 bytes).
MAX_STACK_FRAMES = 32

# How many bytes of a function offatret, offatstrcpy and offatseg decode at most.
MAX_DECODE_BYTES = 512

# The work of one probe firing, in VP operations (vp_runtime/cost.py).  A probe
# may execute at most DEFAULT_MAX_OPS_PER_FIRING by its bound at load
# (vprobe.maxOpsPerFiring); calls of functions on a call-graph cycle, which no
# bound at load covers, are counted as the probe runs, and a firing that makes
# more than DEFAULT_MAX_CALLS_PER_FIRING of them is aborted (vprobe.maxCallsPerFiring).
DEFAULT_MAX_OPS_PER_FIRING = 1_000_000
DEFAULT_MAX_CALLS_PER_FIRING = 10_000
