"""What every machine does alike when a script attaches: periodic probe points, and the
load and unload probes in the order their contexts give them.

The language says how each point fires (vp_runtime.spec: a static probe's `fires`,
`period_us` and `context`, a parametric kind's); a machine only provides the clock
and the VCPUs.
"""

from __future__ import annotations

from vp_runtime import ProbeSpec, Script, spec


def periodic(point: ProbeSpec) -> tuple[int, str] | None:
    """A periodic probe point's period in microseconds and its context (VMM: on each
    VCPU, VMX: once for the VM); None for a point that is not periodic."""
    info = point.static or point.parametric
    if info.fires != spec.PERIODIC:
        return None
    return (info.period_us if point.static else point.interval_us), info.context


def fire_load_probes(machine, script: Script) -> None:
    """VMXLoad, then VMMLoad on each VCPU (whichever the script has)."""
    _fire(machine, script, spec.LOAD, (spec.VMX, spec.VMM))


def fire_unload_probes(machine, script: Script) -> None:
    """VMMUnload on each VCPU, then VMXUnload (whichever the script has)."""
    _fire(machine, script, spec.UNLOAD, (spec.VMM, spec.VMX))


def _fire(machine, script: Script, fires: str, contexts: tuple[str, ...]) -> None:
    points = [p for p in script.probe_specs() if p.static is not None and p.static.fires == fires]
    for context in contexts:
        for point in points:
            if point.static.context == context:
                fire = machine.fire_vmx if context == spec.VMX else machine.fire_each_vcpu
                fire(script.handler(point.text))
