"""Returns: the pass that makes every `return` end its path, as VP requires.

Computes: each block rewritten so that `if (c) return a; rest` becomes
`if (c) return a; else { rest }` (VP has no early exit; this lets the common C
idiom of returning early compile), warnings for statements after a return
that ends every path (unreachable), and whether a body returns on every path
(`always_returns`: a function with a value must).
Needs: a parsed body; runs on each body just before it is lowered.
"""

from . import syntax as S


def always_returns(s):
    if type(s) is S.Return:
        return True
    if type(s) is S.Block:
        return bool(s.items) and always_returns(s.items[-1])
    if type(s) is S.If:
        return s.other is not None and always_returns(s.then) and always_returns(s.other)
    return False


def restructure_block(block, reporter):
    """Rewrite every block of `block` so that each return ends its path (see the module docstring)."""
    block.items = _restructure(block.items, reporter)


def end_of_body(body):
    """Where a body that does not return on every path ends (its last statement, or its '{')."""
    return body.items[-1].pos if body.items else body.pos


def _restructure(items, reporter):
    out = []
    n = len(items)
    for i, s in enumerate(items):
        _restructure_inner(s, reporter)
        if i < n - 1:
            if type(s) is S.Return:
                reporter.warning(items[i + 1].pos, "unreachable code after 'return'")
                out.append(s)
                return out
            if type(s) is S.If:
                then_ret = always_returns(s.then)
                other_ret = s.other is not None and always_returns(s.other)
                if then_ret and other_ret:
                    reporter.warning(items[i + 1].pos, "unreachable code: every path above returns")
                    out.append(s)
                    return out
                if then_ret or other_ret:
                    rest = items[i + 1:]
                    if then_ret:
                        other = _restructure(([s.other] if s.other is not None else []) + rest, reporter)
                        s = S.If(s.pos, s.test, s.then, S.Block(rest[0].pos, other))
                    else:
                        s = S.If(s.pos, s.test, S.Block(s.then.pos, _restructure([s.then] + rest, reporter)), s.other)
                    out.append(s)
                    return out
        out.append(s)
    return out


def _restructure_inner(s, reporter):
    if type(s) is S.Block:
        s.items = _restructure(s.items, reporter)
    elif type(s) is S.If:
        _restructure_inner(s.then, reporter)
        if s.other is not None:
            _restructure_inner(s.other, reporter)
