"""The configuration a load runs under, made of the language's limits.

The numbers themselves are the language's (`spec/limits.py`); they are
re-exported here for the runtime's modules.  `LoadConfig` holds the ones a VM
may set in its `.vmx` (Table 3-2 keys, parsed by the machine).
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec.limits import (  # noqa: F401 - re-exported
    BAG_PAIR_BYTES, DEFAULT_BAG_BYTES, DEFAULT_MAX_CALL_DEPTH, DEFAULT_MAX_CALLS_PER_FIRING, DEFAULT_MAX_CODE_BYTES,
    DEFAULT_MAX_OPS_PER_FIRING, MAX_ARGS, MAX_CODE_BYTES_LIMIT, MAX_DECODE_BYTES, MAX_KEYS, MAX_NAME_BYTES, MAX_PROBES,
    MAX_STACK_FRAMES, MAX_STRING_BYTES,
)
from .spec.limits import VERSION as CURRENT_VERSION  # noqa: F401


@dataclass(frozen=True)
class LoadConfig:
    """Per-VM settings a script loads under (Table 3-2 keys, parsed by the machine)."""

    max_code_bytes: int = DEFAULT_MAX_CODE_BYTES
    bag_bytes: int = DEFAULT_BAG_BYTES
    max_call_depth: int = DEFAULT_MAX_CALL_DEPTH
    max_ops_per_firing: int = DEFAULT_MAX_OPS_PER_FIRING
    max_calls_per_firing: int = DEFAULT_MAX_CALLS_PER_FIRING
    # Whether the translated code counts the VP operations it executes (`Script.operations`):
    # for a machine that charges probes a modelled cost per operation (vprobe.chargeProbeTime).
    count_operations: bool = False

    def __post_init__(self):
        if not 0 < self.max_code_bytes <= MAX_CODE_BYTES_LIMIT:
            raise ValueError(f"vprobe.maxCodeBytes must be between 1 and {MAX_CODE_BYTES_LIMIT}")
        if self.bag_bytes < 0:
            raise ValueError("vprobe.bagBytes must not be negative")
        if self.max_call_depth < 1:
            raise ValueError("the VP call depth must be at least 1")
        if self.max_ops_per_firing < 1:
            raise ValueError("vprobe.maxOpsPerFiring must be at least 1")
        if self.max_calls_per_firing < 1:
            raise ValueError("vprobe.maxCallsPerFiring must be at least 1")
