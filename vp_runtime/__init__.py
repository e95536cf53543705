"""The VP runtime: load VP text, check it, translate it, and fire its probes.

Entry point: `load(vp_text, config, backend=..., log_sink=...) -> Script`.
See docs/architecture.md for how the runtime meets the machine.
"""

from .backend import Backend, CatalogBackend
from .catalog import ALL_GLOBALS, STATIC_PROBES, GlobalInfo, ProbeInfo, ProbeSpec, parse_probe_spec
from .errors import Diagnostic, GuestMemoryFault, UnknownSymbolFault, VPFault, VPLoadError
from .limits import LoadConfig
from .script import Script, load

__all__ = [
    "ALL_GLOBALS", "STATIC_PROBES", "Backend", "CatalogBackend", "Diagnostic", "GlobalInfo",
    "GuestMemoryFault", "LoadConfig", "ProbeInfo", "ProbeSpec", "Script", "UnknownSymbolFault",
    "VPFault", "VPLoadError", "load", "parse_probe_spec",
]
