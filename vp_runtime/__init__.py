"""The VP runtime: load VP text, check it, translate it, and fire its probes.

Entry point: `load(vp_text, config, backend=..., log_sink=...) -> Script`.
See docs/architecture.md for how the runtime meets the machine.

The names below load on first use, so that importing the language
specification (`vp_runtime.spec`, which the compiler reads) does not load the
runtime itself.
"""

from importlib import import_module

_EXPORTS = {
    "Annotations": "annotations", "Position": "annotations", "annotations_of": "annotations",
    "Backend": "backend", "CatalogBackend": "backend",
    "ALL_GLOBALS": "catalog", "STATIC_PROBES": "catalog", "GlobalInfo": "catalog", "ProbeInfo": "catalog",
    "ProbeSpec": "probe_points", "parse_probe_spec": "probe_points",
    "Diagnostic": "errors", "GuestMemoryFault": "errors", "UnknownSymbolFault": "errors", "VPFault": "errors",
    "VPLoadError": "errors",
    "LoadConfig": "limits",
    "Script": "script", "load": "script",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vp_runtime' has no attribute '{name}'")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
