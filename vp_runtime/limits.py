"""The reference's limits, and the configuration a load runs under.

The reference fixes some numbers (32 probes, 64-byte names and 256-byte
strings, both counting the terminating NUL, a translation cache of at most
64 KiB) and leaves others to the implementation; those are documented here and
settable from the `.vmx`.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PROBES = 32
MAX_NAME_BYTES = 63  # "64 bytes, including the terminating null byte"
MAX_STRING_BYTES = 255  # "256 bytes, including the terminating null byte"
MAX_ARGS = 32  # arguments to any one call, parameters of any one function
MAX_KEYS = 16  # integer plus string keys of one aggregate

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

CURRENT_VERSION = (1, 0)


@dataclass(frozen=True)
class LoadConfig:
    """Per-VM settings a script loads under (Table 3-2 keys, parsed by the machine)."""

    max_code_bytes: int = DEFAULT_MAX_CODE_BYTES
    bag_bytes: int = DEFAULT_BAG_BYTES
    max_call_depth: int = DEFAULT_MAX_CALL_DEPTH

    def __post_init__(self):
        if not 0 < self.max_code_bytes <= MAX_CODE_BYTES_LIMIT:
            raise ValueError(f"vprobe.maxCodeBytes must be between 1 and {MAX_CODE_BYTES_LIMIT}")
        if self.bag_bytes < 0:
            raise ValueError("vprobe.bagBytes must not be negative")
        if self.max_call_depth < 1:
            raise ValueError("the VP call depth must be at least 1")
