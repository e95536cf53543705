"""Reachability: which functions the output needs, and which are recursive.

Computes: `FuncSym.reachable` for every function a probe calls, directly or
through other functions (in a library, every function it defines and those they call) (only those are emitted, and a guest preload's other
functions are not even lowered); `FuncSym.recursive` for every function on a
call-graph cycle (its locals must become parameters: see `frames`).
Needs: the call graph resolution records (`Ctx.calls`).
"""

from vprobes_shared.graphs import nodes_on_cycles


def mark_reachable(program):
    """Functions reachable from a probe (in a library, a program without probes: from each of
    its own functions), and functions on call-graph cycles (recursive)."""
    stack = []
    for probe in program.probes:
        stack.extend(probe.ctx.calls)
    if not program.probes:
        stack.extend(library_functions(program))
    while stack:
        fs = stack.pop()
        if fs.reachable:
            continue
        fs.reachable = True
        if fs.ctx is not None:
            stack.extend(fs.ctx.calls)
    defined = [fs for fs in program.functions if fs.ctx is not None]
    graph = {id(fs): [id(c) for c in fs.ctx.calls if c.ctx is not None] for fs in defined}
    by_id = {id(fs): fs for fs in defined}
    for fid in nodes_on_cycles(graph):
        by_id[fid].recursive = True


def library_functions(program):
    """The functions a program defines itself (not its guest preload's)."""
    return [fs for fs in program.functions if fs.ctx is not None and not fs.preload]
