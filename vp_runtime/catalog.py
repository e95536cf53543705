"""The reference's tables of globals and static probes, as views of the language spec.

Tables 2-1 to 2-4 (registers, hardware data, VMCS and VMCB fields), the probe
arguments and Table 3-3, under the names the runtime has always exported.
Everything here is `spec`'s; nothing is listed twice.
"""

from __future__ import annotations

from .spec import (  # noqa: F401 - re-exported
    HARDWARE_GLOBALS, PROBE_GLOBALS, REGISTER_GLOBALS, STATIC_PROBES, VMCB_GLOBALS, VMCS_GLOBALS, GlobalInfo,
    ProbeInfo,
)
from .spec import GLOBALS as ALL_GLOBALS  # noqa: F401
