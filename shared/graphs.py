"""Which functions of a program are on a cycle of its call graph (and so recursive).

Both the compiler (locals of recursive functions become parameters) and the
runtime (recursive functions count their depth) need the same answer: the
strongly connected components of the call graph, by Tarjan's algorithm,
without Python recursion because call chains may be long.
"""


def strongly_connected(graph):
    """The strongly connected components of `graph` (node -> its successors), as lists of
    nodes, each component after every component it reaches."""
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
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def nodes_on_cycles(graph):
    """The nodes of `graph` that lie on a cycle: in a component of several nodes, or calling themselves."""
    found = []
    for component in strongly_connected(graph):
        if len(component) > 1 or component[0] in graph[component[0]]:
            found.extend(component)
    return found
