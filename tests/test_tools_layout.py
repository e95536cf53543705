"""The layout of `tools/` (package `vprobe_tools`): each folder's imports go one way, with no cycle.

Every import counts, those inside functions too (a lazy import is still a
dependency), so the groups stay what `vprobe_tools/__init__.py` says they are.
"""

from __future__ import annotations

import ast
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"
PACKAGE = "vprobe_tools"

# What each group may import of the tools, besides its own modules.
ALLOWED = {
    "log": {"errors"},
    "scripts": {"errors"},
    "views": {"errors", "output", "log"},
    "vm": {"errors", "output", "scripts"},
    "fleet": {"errors", "scripts", "log"},
    "commands": {"errors", "output", "scripts", "vm", "log", "views", "fleet"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(TOOLS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in TOOLS.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that module `name` imports (at any depth in the file)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [origin] + [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def group(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_group_or_is_shared():
    loose = {group(n) for n in modules()} - set(ALLOWED) - {"", "errors", "output"}
    assert not loose, f"modules outside the groups: {sorted(loose)}"


def test_each_group_imports_only_what_it_may():
    wrong = []
    for name, deps in graph().items():
        mine = group(name)
        if mine not in ALLOWED:
            continue
        wrong += [f"{name} imports {dep}" for dep in deps if group(dep) not in ALLOWED[mine] | {mine}]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_imports_inside_functions():
    # The graph must count lazy imports, or a cycle through one would pass unseen.
    edges = graph()
    assert "vprobe_tools.vm.targets" in edges["vprobe_tools.commands.saved_log"]
    assert "vprobe_tools.views.symbolize" in edges["vprobe_tools.views.aggr"]
