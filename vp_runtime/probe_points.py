"""Probe point names as a script writes them, read by the spec's name grammar.

`parse_probe_spec("GUEST:sys_open")` gives the `ProbeSpec` a machine is asked
about (`check_probe`) and attaches: a static probe's name, or a parametric
kind (`spec.PROBE_KINDS`) and its parameter.  Whether a machine can fire it is
the machine's business; whether it is a probe point at all is the language's.

Besides the reference's names (`VMM1Hz`, `GUEST:0x7c00`, `USEC:1000`) the
later releases' are read, and given as the reference's kind they mean:
`VMM:VMM1Hz` is VMM1Hz, `GUEST:ENTER:sym` and `ENTER:sym` are GUEST:sym,
`GUEST:OFFSET:sym:4` is GUEST:sym with offset 4, `GUEST:READ:x` is
GUEST_READ:x, `VMM:TIMER:10msec` and `PROFILE:10msec` are USEC:10000.  The
spec's `text` stays as written (it is PROBENAME).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from . import spec
from .reader import parse_integer

_INTERVAL = re.compile(r"[0-9]+\Z")
_DURATION = re.compile(r"([0-9]+)(" + "|".join(spec.DURATION_UNITS_US) + r")\Z")
_ESX_DOMAIN = re.compile(spec.ESX_DOMAIN_PATTERN)
_SEP = spec.PROBE_KIND_SEPARATOR


@dataclass(frozen=True)
class ProbeSpec:
    """A probe point as a script names it: `kind` is the static name or the reference kind."""

    text: str
    kind: str
    param: str | None = None  # the address, symbol or interval after the kind
    offset: int = 0  # bytes past the address or symbol (OFFSET:sym:n)

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

    @property
    def point(self) -> tuple:
        """What fires it, whatever the spelling: VMM:VMM1Hz and VMM1Hz are one point."""
        return (self.kind, self.param, self.offset)

    def address(self, resolve: Callable[[str], int | None]) -> int | None:
        """The guest address a GUEST-type probe watches: `resolve(param)` plus the offset."""
        base = resolve(self.param)
        return None if base is None else (base + self.offset) & spec.MASK64


def parse_probe_spec(text: str) -> ProbeSpec | str:
    """The ProbeSpec for `text`, or an error message saying what is wrong with it."""
    if text in spec.STATIC_PROBES:
        return ProbeSpec(text, text)
    parts = text.split(_SEP)
    head = parts[0]
    if len(parts) > 1 and _ESX_DOMAIN.match(head):
        where = spec.ESX_DOMAINS.get(head, spec.NUMBERED_DOMAIN)
        return f"probe point '{text}' is ESX only: '{head}:' names {where}, which only an ESX host runs"
    if head in spec.DOMAINS and len(parts) >= 2:
        later = _with_domain(text, head, parts[1:])
        if later is not None:
            return later
    kind_name, _, param = text.partition(_SEP)
    info = spec.PROBE_KINDS.get(kind_name)
    if info is not None and info.domains:  # a later release's kind, without its domain
        return _later_kind(text, None, info, parts[1:])
    if len(parts) == 1:
        return f"unknown probe point '{text}'"
    if info is None:
        return f"unknown probe point '{text}': no probe kind '{kind_name}:'"
    if info.param == spec.INTERVAL:
        if not param:
            return f"probe point '{kind_name}:' needs an interval in microseconds"
        if not _INTERVAL.match(param) or int(param) == 0:
            return f"probe point '{text}': the interval must be a positive number of microseconds"
    elif not param:
        return f"probe point '{text}' needs an address or symbol after '{kind_name}:'"
    return ProbeSpec(text, kind_name, param)


def _with_domain(text: str, domain: str, rest: list[str]) -> ProbeSpec | str | None:
    """`DOMAIN:STATIC` or `DOMAIN:KIND:...`; None when `text` is a reference name (GUEST:symbol)."""
    static = spec.STATIC_PROBES.get(rest[0])
    if len(rest) == 1 and static is not None and domain != spec.GUEST:
        if static.context != domain:
            where = "in the VMM (on each VCPU)" if static.context == spec.VMM else "in the VMX (once for the VM)"
            return (f"probe point '{text}': {static.name} fires {where}, not in the {domain}; "
                    f"write {static.context}:{static.name} or {static.name}")
        return ProbeSpec(text, static.name)
    info = spec.PROBE_KINDS.get(rest[0])
    if info is not None and info.domains and len(rest) >= 2:
        return _later_kind(text, domain, info, rest[1:])
    if domain == spec.GUEST:
        return None
    return (f"unknown probe point '{text}': after '{domain}:' comes a static probe of the {domain} "
            f"({domain}:{'VMM1Hz' if domain == spec.VMM else 'VMX1Hz'}) or a kind such as {domain}:TIMER:1sec")


def _later_kind(text: str, domain: str | None, info: spec.ProbeKind, params: list[str]) -> ProbeSpec | str:
    """A later release's kind, with its domain (or None) and the parts after the kind."""
    if info.refused:
        return f"probe point '{text}': {info.refused}"
    if domain is not None and domain not in info.domains:
        if spec.GUEST in info.domains:
            owner = "VMware's monitor" if domain == spec.VMM else "the VM's VMX process"
            return (f"probe point '{text}': {domain}:{info.name}: would probe code of {owner}, which this VM "
                    f"does not expose; for the guest's own code write GUEST:{info.name}:{_SEP.join(params)}")
        where = "the guest" if domain == spec.GUEST else f"the {domain}"
        return f"probe point '{text}': {info.name}: probes fire in the {' or the '.join(info.domains)}, not in {where}"
    usage = f"probe point '{text}' is written {info.syntax}"
    if info.param == spec.DURATION:
        match = _DURATION.match(params[0]) if len(params) == 1 else None
        if match is None or int(match.group(1)) == 0:
            return f"{usage}: a positive number and a unit, e.g. {info.name}:10msec"
        us = int(match.group(1)) * spec.DURATION_UNITS_US[match.group(2)]
        if domain == spec.VMX:
            if us != spec.STATIC_PROBES["VMX1Hz"].period_us:
                return f"probe point '{text}': a VMX timer fires once a second: write VMX:TIMER:1sec (VMX1Hz)"
            return ProbeSpec(text, "VMX1Hz")
        return ProbeSpec(text, info.same_as, str(us))
    if info.param == spec.ADDRESS_AND_OFFSET:
        offset = _offset(params[1]) if len(params) == 2 and params[0] else None
        if offset is None:
            return f"{usage}, the offset a number of bytes (decimal or 0x hex)"
        return ProbeSpec(text, info.same_as, params[0], offset)
    if len(params) != 1 or not params[0]:
        return f"{usage}: one address or symbol after '{info.name}:'"
    return ProbeSpec(text, info.same_as or info.name, params[0])


def _offset(token: str) -> int | None:
    try:
        value = parse_integer(token)
    except ValueError:
        return None
    return value if value is not None and token[:1] not in "+-" else None
