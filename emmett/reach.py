"""Reachability: which functions the output needs, and which are recursive.

Computes: `FuncSym.reachable` for every function a probe calls, directly or
through other functions (only those are emitted, and a guest preload's other
functions are not even lowered); `FuncSym.recursive` for every function on a
call-graph cycle (its locals must become parameters: see `frames`).
Needs: the call graph resolution records (`Ctx.calls`).
"""


def mark_reachable(program):
    """Functions reachable from a probe, and functions on call-graph cycles (recursive)."""
    stack = []
    for probe in program.probes:
        stack.extend(probe.ctx.calls)
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
    for scc in strongly_connected(graph):
        if len(scc) > 1 or scc[0] in graph[scc[0]]:
            for fid in scc:
                by_id[fid].recursive = True


def strongly_connected(graph):
    """Tarjan's algorithm without recursion; returns lists of node ids."""
    index = {}
    low = {}
    on_stack = set()
    stack = []
    result = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    scc.append(member)
                    if member == node:
                        break
                result.append(scc)
    return result
