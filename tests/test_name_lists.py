"""The language specification (vp_runtime/spec) is the one place the language's names are listed.

The scan below reads the source of every package and fails on a collection
written out in code — a set, list, tuple or dict display, or a string of words
such as "RIP RAX".split() — that holds two or more of the language's names
(builtins, forms, alphabetic operators, built-in globals, static probes, probe
kinds, guest faults) anywhere but in the spec.  A list that starts with a VP
form or builtin is VP code being built (`["vprobe", "VMM1Hz", ...]`), not a
list of names.  A table of *values* keyed by such names (a machine's reader
of each global it offers, the translator's code for each builtin) is fine:
those tables are listed in VALUE_TABLES with the kind of name they are keyed
by, and their keys are checked against the spec instead.  Naming one point
where it is fired (`fire_static(vcpu, "Guest_PF")`) is not a list.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from vp_runtime import spec

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("vp_runtime", "emmett", "machine", "tools", "shared")
SPEC_DIR = ROOT / "vp_runtime" / "spec"

NAMES = {
    "builtin": set(spec.BUILTINS),
    "form": set(spec.TOP_LEVEL_FORMS) | set(spec.SPECIAL_FORMS),
    "operator": {o.word for o in spec.OPERATORS if o.word},
    "global": set(spec.GLOBALS),
    "probe": set(spec.STATIC_PROBES),
    "probe kind": set(spec.PROBE_KINDS),
    "fault": set(spec.GUEST_FAULTS),
}
ALL_NAMES = set().union(*NAMES.values())
VP_HEADS = NAMES["builtin"] | NAMES["form"]  # what a VP form built as a list starts with

# Tables of values keyed by the language's names: (file, owner) -> the kind of name
# every key must be.  `owner` is the variable a module- or class-level display is
# assigned to, or the function a display is written in.
VALUE_TABLES = {
    ("vp_runtime/translate.py", "BUILTIN_CODE"): "builtin",  # the code of each builtin call
    ("vp_runtime/translate.py", "RUNTIME_VALUES"): "global",  # the code of each global the runtime supplies
    ("vp_runtime/builtins.py", "PLAIN_BUILTINS"): "builtin",  # the implementation of the plain ones
    ("vp_runtime/checker.py", "_CONSTANT_ARGUMENT_CHECKS"): "builtin",  # what a constant argument must name
    ("machine/simulated.py", "SimulatedMachine.global_reader"): "global",
    ("machine/simulated.py", "_VCPU_FIELDS"): "global",  # the firing VCPU's field each is
    ("machine/guest/hv.py", "intel_fields"): "global",  # VMCS fields of an exit
    ("machine/guest/hv.py", "amd_fields"): "global",  # VMCB fields of an exit
    ("machine/guest/hv.py", "entry_fields"): "global",  # the fields of the entry after it
    ("machine/guest/linux.py", "_FAULT_HANDLERS"): "probe",  # the kernel's handler of each fault
    ("machine/guest/linux.py", "SYSCALL_ABI"): "global",  # the registers of a system call's first arguments
    ("machine/guest/windows.py", "_FAULT_HANDLERS"): "probe",
    ("machine/guest/windows.py", "SYSCALL_ABI"): "global",
    ("machine/guest/programs.py", "PROGRAMS"): "probe",  # how often a program provokes a fault
    ("machine/guest/windows_programs.py", "WINDOWS_PROGRAMS"): "probe",
    ("machine/qemu/kernel.py", "FAULT_ENTRIES"): "fault",  # the kernel's IDT entry of each fault
    ("machine/qemu/reads.py", "GDB_REGISTERS"): "global",  # the gdbstub's name of each register
    ("machine/qemu/reads.py", "_STATE_READERS"): "global",  # the state globals a QEMU VM gives
    ("machine/qemu/machine.py", "BUILTIN_REFUSALS"): "builtin",  # why QEMU cannot run a builtin
    ("machine/qemu/reads.py", "_QEMU_DESCRIPTIONS"): "global",
    ("machine/qemu/reads.py", "Reads.global_reader"): "global",
    ("machine/qemu/static_probes.py", "StaticProbes._frame_action.action"): "global",  # registers from a frame
    ("machine/qemu/static_probes.py", "REFUSED"): "probe",  # why QEMU cannot fire a probe
}

# Emmett's own words, which include some that are also VP names ("do", "aggr").
EMMETT_WORDS = {
    ("emmett/lexer.py", "KEYWORDS"),
    ("machine/qemu/guestlib.py", "_RESERVED"),  # the Emmett keywords a generated member name avoids
}

def _sources():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if SPEC_DIR not in path.parents:
                yield path


class _Scan(ast.NodeVisitor):
    """Collect (owner, line, strings) for every display of two or more language names in one module."""

    def __init__(self):
        self.scope: list[str] = []  # the enclosing classes and functions
        self.functions = 0  # how many of them are functions
        self.target: str | None = None  # the module- or class-level variable being assigned
        self.found: list[tuple[str, int, list[str]]] = []  # the display's strings, names or not
        self.docstrings: set[int] = set()
        self.split_strings: set[int] = set()

    def owner(self) -> str:
        return ".".join(self.scope + ([self.target] if self.target else []))

    def _note_docstring(self, node):
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            self.docstrings.add(id(node.body[0].value))

    def visit_Module(self, node):
        self._note_docstring(node)
        self.generic_visit(node)

    def _scoped(self, node, is_function: bool):
        self._note_docstring(node)
        self.scope.append(node.name)
        self.functions += is_function
        saved, self.target = self.target, None
        self.generic_visit(node)
        self.scope.pop()
        self.functions -= is_function
        self.target = saved

    def visit_FunctionDef(self, node):
        self._scoped(node, True)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._scoped(node, False)

    def visit_Assign(self, node):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if names and not self.functions:
            saved, self.target = self.target, names[0]
            self.generic_visit(node)
            self.target = saved
        else:
            self.generic_visit(node)

    visit_AnnAssign = visit_Assign

    def _record(self, node, strings: list[str]):
        if sum(s in ALL_NAMES for s in strings) >= 2:
            self.found.append((self.owner(), node.lineno, strings))

    def visit_Set(self, node):
        self._record(node, _strings(node.elts))
        self.generic_visit(node)

    visit_Tuple = visit_Set

    def visit_List(self, node):
        head = node.elts[0] if node.elts else None
        if not (isinstance(head, ast.Constant) and head.value in VP_HEADS):
            self._record(node, _strings(node.elts))
        self.generic_visit(node)

    def visit_Dict(self, node):
        self._record(node, _strings(node.keys))
        self.generic_visit(node)

    def visit_Call(self, node):
        # "A B C".split(): a list of words
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "split" and isinstance(func.value, ast.Constant) \
                and isinstance(func.value.value, str):
            self._record(node, func.value.value.split())
            self.split_strings.add(id(func.value))
        self.generic_visit(node)

    def visit_Constant(self, node):
        # A string of nothing but names is a list of them too.
        if isinstance(node.value, str) and id(node) not in self.docstrings | self.split_strings:
            words = node.value.split()
            if all(w in ALL_NAMES for w in words):
                self._record(node, words)


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _scan(path: Path) -> list[tuple[str, int, list[str]]]:
    scan = _Scan()
    scan.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return scan.found


def _name_lists():
    """Every display of language names outside the spec: (file, owner, line, its strings)."""
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        for owner, line, strings in _scan(path):
            yield rel, owner, line, strings


def test_no_module_but_the_spec_lists_the_languages_names():
    stray = [f"{rel}:{line} ({owner or 'module'}): {', '.join(n for n in strings if n in ALL_NAMES)}"
             for rel, owner, line, strings in _name_lists()
             if (rel, owner) not in VALUE_TABLES.keys() | EMMETT_WORDS]
    assert not stray, ("the language's names are listed outside vp_runtime/spec (read them from the spec, "
                       "or key a table of values by them and add it to VALUE_TABLES):\n" + "\n".join(stray))


def test_value_tables_are_keyed_by_the_specs_names():
    seen = set()
    for rel, owner, line, strings in _name_lists():
        kind = VALUE_TABLES.get((rel, owner))
        if kind is None:
            continue
        seen.add((rel, owner))
        unknown = [n for n in strings if n not in NAMES[kind]]
        assert not unknown, f"{rel}:{line} ({owner}) is keyed by {kind} names, but {unknown} are not"
    # A table that moved or went must leave this list too (a stale entry would exempt a new list).
    assert seen == set(VALUE_TABLES), set(VALUE_TABLES) - seen


def test_the_exemptions_name_lists_that_exist():
    found = {(rel, owner) for rel, owner, _, _ in _name_lists()}
    assert EMMETT_WORDS <= found, EMMETT_WORDS - found


def test_a_value_table_with_a_key_the_spec_lacks_fails(tmp_path, monkeypatch):
    path = tmp_path / "machine" / "table.py"
    path.parent.mkdir()
    path.write_text('READERS = {"TSC": 1, "PTSC": 2, "TSCC": 3}\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "VALUE_TABLES", {("machine/table.py", "READERS"): "global"})
    with pytest.raises(AssertionError, match="TSCC"):
        test_value_tables_are_keyed_by_the_specs_names()


def test_the_scan_finds_a_stray_list(tmp_path):
    """The scan is not blind: each shape a name list takes is found, and prose and VP code are not."""
    path = tmp_path / "stray.py"
    path.write_text('"""RIP RAX: a docstring is prose."""\n'
                    'A = {"getguest", "logint"}\n'
                    'B = "RIP RAX RBX".split()\n'
                    'C = {"Guest_PF": 14, "Guest_GP": 13}\n'
                    'def f(kind):\n'
                    '    return kind in ("GUEST", "USEC")\n'
                    'D = ("VMM1Hz",)\n'
                    'E = "only version and vprobe are allowed"\n'
                    'F = ["vprobe", "VMM1Hz", ["logint", 1]]\n'
                    'G = "TSC PTSC"\n'
                    'class K:\n'
                    '    T = ["In", "Out"]\n')
    found = {(owner, line) for owner, line, _ in _scan(path)}
    assert found == {("A", 2), ("B", 3), ("C", 4), ("f", 6), ("G", 10), ("K.T", 12)}
