"""Formatted stacks (`vprobe -s`, `vprobe-stacks`): every guest stack in a log, symbolized and counted.

Stack strings (`GUEST_0x..._0x...`, innermost frame first) are found in log
lines and in the string keys of aggregate blocks.  A stack in a log line
counts once; a stack that is an aggregate key counts as often as its entry's
count, summed over every block of that aggregate (right for aggregates that
are cleared after each `logaggr`, as `emmettc -a` and `vprobe -a` do; with
`--cumulative` only each aggregate's last block counts, for aggregates that
are never cleared).  Identical stacks are counted together.

Outputs, once the log ends:

* text (default): the stacks by count, largest first, one frame per line
  (`symbol+0xOFFSET`, innermost first, unresolvable addresses in hex)::

      stack 1: count 5 (62.5%)
        sys_read+0x0
        system_call+0x26
        0x4005b3

* `--folded`: the flame-graph folded format, one line per distinct stack,
  outermost frame first: `frame;frame;frame COUNT`, frames as function names
  (`--offsets` keeps `+0xOFFSET`), lines sorted;
* `--dot`: a Graphviz call graph (caller -> callee) of the hottest stacks;
* `-f json`: one `{"type": "stack", ...}` object per distinct stack.

Run-time fault lines of the log are reported on stderr.
"""

from __future__ import annotations

from collections import Counter

from ..log.json_lines import dumps
from ..log.parse import AggrBlock, Event, Fault, LogText
from ..output import log_text_as_message
from .symbolize import Symbolizer, find_stacks

Stack = tuple[int, ...]
DOT_DEFAULT_TOP = 20


def stack_text(stack: Stack) -> str:
    return "GUEST" + "".join(f"_0x{a:x}" for a in stack)


class StackCounter:
    """Counts of distinct stacks, with the aggregate rules of the module's description."""

    def __init__(self, cumulative: bool = False):
        self.cumulative = cumulative
        self.counts: Counter[Stack] = Counter()
        self.last_block: dict[str, Counter[Stack]] = {}

    def add_text(self, text: str) -> None:
        self.counts.update(find_stacks(text))

    def add_block(self, block: AggrBlock) -> None:
        found: Counter[Stack] = Counter()
        for entry in block.entries:
            for key in entry.keys[block.int_keys:]:
                for stack in find_stacks(key):
                    found[stack] += entry.count
        if self.cumulative:
            self.last_block[block.name] = found
        else:
            self.counts.update(found)

    def ranked(self) -> list[tuple[Stack, int]]:
        """Distinct stacks, largest count first (ties: by address)."""
        total = Counter(self.counts)
        for found in self.last_block.values():
            total.update(found)
        return sorted(((s, c) for s, c in total.items() if c > 0), key=lambda sc: (-sc[1], sc[0]))


def render_text(ranked: list[tuple[Stack, int]], symbolizer: Symbolizer, top: int | None = None) -> str:
    total = sum(c for _, c in ranked)
    shown = ranked[:top] if top else ranked
    out = []
    for n, (stack, count) in enumerate(shown, 1):
        out.append(f"stack {n}: count {count} ({100.0 * count / total:.1f}%)\n")
        out.extend(f"  {symbolizer.frame(a)}\n" for a in stack)
        out.append("\n")
    if len(shown) < len(ranked):
        rest = ranked[len(shown):]
        out.append(f"({len(rest)} more stack{'' if len(rest) == 1 else 's'} not shown, "
                   f"count {sum(c for _, c in rest)})\n")
    return "".join(out)


def _namer(symbolizer: Symbolizer, offsets: bool):
    return symbolizer.frame if offsets else symbolizer.function


def folded_counts(ranked: list[tuple[Stack, int]], symbolizer: Symbolizer, *, offsets: bool = False,
                  top: int | None = None) -> list[tuple[str, int]]:
    """The folded stacks (`frame;frame;frame`, outermost first) and their counts, sorted: stacks
    that name the same functions are one (the flame graphs of the HTML report are drawn from these)."""
    name = _namer(symbolizer, offsets)
    folded: Counter[str] = Counter()
    for stack, count in ranked[:top] if top else ranked:
        folded[";".join(name(a) for a in reversed(stack))] += count
    return sorted(folded.items())


def render_folded(ranked: list[tuple[Stack, int]], symbolizer: Symbolizer, *, offsets: bool = False,
                  top: int | None = None) -> str:
    return "".join(f"{line} {count}\n" for line, count in folded_counts(ranked, symbolizer, offsets=offsets, top=top))


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(ranked: list[tuple[Stack, int]], symbolizer: Symbolizer, *, offsets: bool = False,
               top: int | None = None) -> str:
    """A call graph of the `top` hottest stacks: nodes are functions, edges caller -> callee."""
    name = _namer(symbolizer, offsets)
    shown = ranked[:top or DOT_DEFAULT_TOP]
    total = sum(c for _, c in shown) or 1
    ids: dict[str, str] = {}
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    edges: Counter[tuple[str, str]] = Counter()
    for stack, count in shown:
        frames = [name(a) for a in reversed(stack)]  # outermost first
        for f in frames:
            ids.setdefault(f, f"n{len(ids)}")
        for f in dict.fromkeys(frames):
            inclusive[f] += count
        if frames:
            own[frames[-1]] += count
        for edge in dict.fromkeys(zip(frames, frames[1:])):
            edges[edge] += count
    heaviest = max(edges.values(), default=1)
    lines = ["digraph stacks {", '  node [shape=box, fontname="monospace"];']
    for f, ident in ids.items():
        label = f"{_dot_escape(f)}\\n{inclusive[f]} ({100.0 * inclusive[f] / total:.1f}%)"
        if own[f]:
            label += f"\\nself {own[f]}"
        lines.append(f'  {ident} [label="{label}"];')
    for (caller, callee), count in edges.items():
        lines.append(f"  {ids[caller]} -> {ids[callee]} [label=\"{count}\", "
                     f"penwidth={1 + 4 * count / heaviest:.2f}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def stack_json(stack: Stack, count: int, symbolizer: Symbolizer) -> dict:
    frames = []
    for a in stack:
        found = symbolizer.resolve(a)
        frames.append({"address": a, "symbol": found[0] if found else None, "offset": found[1] if found else None})
    return {"type": "stack", "count": count, "stack": stack_text(stack), "frames": frames}


class StackView:
    """The -s view: collects stacks, prints them when the log ends."""

    def __init__(self, out, err, symbolizer: Symbolizer, *, shape: str = "text", fmt: str = "text",
                 top: int | None = None, offsets: bool = False, cumulative: bool = False):
        self.out, self.err = out, err
        self.symbolizer = symbolizer
        self.shape = shape
        self.json = fmt == "json"
        self.top, self.offsets = top, offsets
        self.counter = StackCounter(cumulative)

    def event(self, event: Event) -> None:
        if isinstance(event, AggrBlock):
            self.counter.add_block(event)
        elif isinstance(event, Fault):
            self.err.write(log_text_as_message(event.text.rstrip("\n")) + "\n")
        elif isinstance(event, LogText):
            self.counter.add_text(event.text)

    def idle(self) -> None:
        pass

    def render(self) -> str:
        ranked = self.counter.ranked()
        if self.json:
            shown = ranked[:self.top] if self.top else ranked
            return "".join(dumps(stack_json(s, c, self.symbolizer)) for s, c in shown)
        if self.shape == "folded":
            return render_folded(ranked, self.symbolizer, offsets=self.offsets, top=self.top)
        if self.shape == "dot":
            return render_dot(ranked, self.symbolizer, offsets=self.offsets, top=self.top)
        return render_text(ranked, self.symbolizer, self.top)

    def finish(self) -> None:
        text = self.render()
        if text:
            self.out.write(text)
        else:
            self.err.write("no guest stacks in the log\n")
