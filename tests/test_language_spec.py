"""The language specification (vp_runtime/spec): consistent, complete, importable by the compiler.

The runtime's tables of implementations cover the spec's names exactly; the
spec itself imports nothing of the runtime, and the compiler loads nothing of
the runtime but the spec.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vp_runtime import spec

SPEC_DIR = Path(__file__).resolve().parent.parent / "vp_runtime" / "spec"
NAMES = {
    "builtin": set(spec.BUILTINS),
    "form": set(spec.TOP_LEVEL_FORMS) | set(spec.SPECIAL_FORMS),
    "operator": {o.word for o in spec.OPERATORS if o.word},
    "global": set(spec.GLOBALS),
}


# ---- the tables of implementations cover the spec exactly -------------------------------------

def test_every_builtin_has_exactly_one_implementation():
    from vp_runtime.builtins import PLAIN_BUILTINS
    from vp_runtime.translate import BUILTIN_CODE

    assert not BUILTIN_CODE.keys() & PLAIN_BUILTINS.keys()
    assert BUILTIN_CODE.keys() | PLAIN_BUILTINS.keys() == spec.BUILTINS.keys()


def test_every_builtin_the_compiler_calls_has_its_lowering():
    """The compiler takes its builtins from the spec; one without a lowering would make
    every compilation fail, so a builtin added to the spec that takes anything but values
    needs its `b_NAME` too."""
    from emmett.language import BUILTINS, VALUE_BUILTINS
    from emmett.lower_calls import CallLowering

    assert set(spec.BUILTINS) <= BUILTINS
    assert not sorted(n for n in BUILTINS
                      if n not in VALUE_BUILTINS and not callable(getattr(CallLowering, "b_" + n, None)))


def test_builtins_that_take_only_values_are_lowered_from_their_signature():
    """logint, strcmp, getgpr...: the compiler converts each argument to the type the spec
    gives it and says the signature when the count is wrong."""
    import emmett
    from emmett.language import VALUE_BUILTINS

    assert {"logstr", "logint", "strcmp", "getguestphys", "getgpr"} <= set(VALUE_BUILTINS)
    assert "getguest" not in VALUE_BUILTINS and "sprintf" not in VALUE_BUILTINS  # an address, a destination
    ok = emmett.compile('VMM1Hz { logint(getgpr(3)); logint(strcmp("a", PROBENAME)); }', "t.emt")
    assert ok.ok, ok.format_diagnostics()
    assert "(logint (getgpr 3))" in ok.vp and '(strcmp "a" PROBENAME)' in ok.vp
    wrong = emmett.compile('VMM1Hz { logint(strcmp("a")); }', "t.emt")
    assert [d.message for d in wrong.errors] == ["wrong number of arguments: strcmp(STRING, STRING)"]
    typed = emmett.compile('VMM1Hz { logint(getgpr("RAX")); }', "t.emt")
    assert len(typed.errors) == 1 and "the register number of getgpr" in typed.errors[0].message


def test_the_runtime_supplies_the_globals_the_spec_says_it_does():
    from vp_runtime.translate import RUNTIME_VALUES

    assert set(RUNTIME_VALUES) == {g.name for g in spec.GLOBALS.values() if g.supplied_by == spec.RUNTIME}


def test_every_special_form_is_checked():
    from vp_runtime.checker import Checker

    for name in spec.SPECIAL_FORMS:
        assert callable(getattr(Checker, "form_" + name, None)), name
    for name in spec.TOP_LEVEL_FORMS:
        assert callable(getattr(Checker, "declare_" + name, None)), name


# ---- the spec is data the compiler may import (test_emmett_cli checks what it loads) --------------------------------------------------

def test_the_spec_imports_nothing_of_the_runtime():
    for path in sorted(SPEC_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 1 or node.module in ("collections", "re"), (path.name, node.module)
            elif isinstance(node, ast.Import):
                assert all(a.name in ("re",) for a in node.names), (path.name, [a.name for a in node.names])


# ---- the spec's own consistency --------------------------------------------------------------

def test_names_are_unique_across_the_kinds_a_script_can_write():
    script_names = [NAMES["builtin"], NAMES["form"], NAMES["operator"], NAMES["global"]]
    for i, a in enumerate(script_names):
        for b in script_names[i + 1:]:
            assert not a & b, a & b


def test_every_guest_fault_has_its_probe():
    for fault in spec.GUEST_FAULTS.values():
        probe = spec.STATIC_PROBES[spec.GUEST_FAULT_PREFIX + fault.name]
        assert probe.fault is fault and probe.args


@pytest.mark.parametrize("name", sorted(spec.BUILTINS))
def test_builtin_signatures_are_well_formed(name):
    b = spec.BUILTINS[name]
    types = [p.type for p in b.params]
    assert all(t in (spec.INT, spec.STR, spec.ADDRESS, spec.FORMAT) for t in types)
    assert spec.FORMAT not in types[:-1], "a format takes the rest of the arguments: it comes last"
    optional = [p.optional for p in b.params]
    assert optional == sorted(optional), "optional parameters come last"
    assert all(p.type in (spec.INT, spec.STR) for p in b.params if p.destination)
    assert b.usage.startswith(f"({name}") and b.result in (spec.INT, spec.STR)


def test_periodic_probes_have_a_period_and_only_they():
    for p in spec.STATIC_PROBES.values():
        assert (p.period_us > 0) == (p.fires == spec.PERIODIC), p.name
        assert p.context in (spec.VMM, spec.VMX) and len(p.args) <= spec.PROBE_ARGS


def test_the_tables_that_name_globals_name_the_spec_s():
    for field in spec.VMCS_FIELDS.values():
        assert field.global_name is None or field.global_name in spec.GLOBALS, field
    assert set(spec.MSR_GLOBALS.values()) <= spec.GLOBALS.keys()
    assert all(a in spec.GLOBALS and b in spec.GLOBALS for a, b in spec.GLOBAL_ALIASES.items())
    assert all(f"{r}AR" in spec.GLOBALS for r in spec.SEGMENT_REGISTERS + spec.SYSTEM_SEGMENTS)
    assert len(spec.GPR_ORDER) == 16 and set(spec.GPR_ORDER) <= spec.GLOBALS.keys()


def test_foreign_names_are_not_the_languages():
    foreign = (spec.ESX_ONLY_BUILTINS.keys() | spec.MONITOR_BUILTINS.keys() | spec.ESX_ONLY_GLOBALS.keys()
               | spec.MONITOR_GLOBALS.keys())
    assert not foreign & (spec.BUILTINS.keys() | spec.GLOBALS.keys())


def test_later_kinds_are_other_spellings_of_reference_kinds_or_their_own():
    for kind in spec.PROBE_KINDS.values():
        if kind.same_as is not None:
            assert kind.domains and spec.PROBE_KINDS[kind.same_as].same_as is None, kind.name
        assert set(kind.domains) <= set(spec.DOMAINS)
