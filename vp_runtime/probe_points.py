"""Probe point names as a script writes them, read by the spec's name grammar.

`parse_probe_spec("GUEST:sys_open")` gives the `ProbeSpec` a machine is asked
about (`check_probe`) and attaches: a static probe's name, or a parametric
kind (`spec.PROBE_KINDS`) and its parameter.  Whether a machine can fire it is
the machine's business; whether it is a probe point at all is the language's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import spec

_INTERVAL = re.compile(r"[0-9]+\Z")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe point as a script names it: `kind` is the static name or the prefix."""

    text: str
    kind: str
    param: str | None = None  # the text after the colon, for parametric probes

    @property
    def interval_us(self) -> int:
        return int(self.param)

    @property
    def static(self) -> spec.ProbeInfo | None:
        """The static probe this names, or None for a parametric probe."""
        return spec.STATIC_PROBES.get(self.kind)

    @property
    def parametric(self) -> spec.ProbeKind | None:
        """The parametric kind this names, or None for a static probe."""
        return spec.PROBE_KINDS.get(self.kind) if self.param is not None else None


def parse_probe_spec(text: str) -> ProbeSpec | str:
    """The ProbeSpec for `text`, or an error message saying what is wrong with it."""
    if text in spec.STATIC_PROBES:
        return ProbeSpec(text, text)
    kind, colon, param = text.partition(spec.PROBE_KIND_SEPARATOR)
    if not colon:
        return f"unknown probe point '{text}'"
    info = spec.PROBE_KINDS.get(kind)
    if info is None:
        return f"unknown probe point '{text}': no probe kind '{kind}:'"
    if info.param == spec.INTERVAL:
        if not param:
            return f"probe point '{kind}:' needs an interval in microseconds"
        if not _INTERVAL.match(param) or int(param) == 0:
            return f"probe point '{text}': the interval must be a positive number of microseconds"
    elif not param:
        return f"probe point '{text}' needs an address or symbol after '{kind}:'"
    return ProbeSpec(text, kind, param)
