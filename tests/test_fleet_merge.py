"""The exact merge of a fleet's results: the same result whatever the tree, the rule for `latest`,
the line bound, and the runtime's run totals and stamps it starts from."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vp_runtime import load
from vprobe_tools.fleet.merge import Aggregate, Line, Partial, VMOutcome, failed_vm, merge, merge_entry
from vprobe_tools.fleet.result import FleetResult

MAX_LINES = 5


def partial(order: int, entries: dict, lines=(), *, max_lines=MAX_LINES) -> Partial:
    """One VM's result: `entries` key -> (count, sum, min, max, latest, stamp)."""
    table = Aggregate(1, 0, {k: (*e, order) for k, e in entries.items()})
    stamped = sorted((Line(stamp, order, i, f"{order}:{stamp}\n") for i, stamp in enumerate(lines)),
                     key=Line.sort_key)
    kept = tuple(stamped[:max_lines])
    return Partial({"a": table}, kept, len(stamped) - len(kept), (VMOutcome(order, f"vm-{order}"),), max_lines,
                   {order: {"a": table.entries}})


def merged(parts: list[Partial], rng: random.Random) -> FleetResult:
    """`parts` merged in a random tree, as the runner does when results come in any order."""
    pool = list(parts)
    rng.shuffle(pool)
    while len(pool) > 1:
        a = pool.pop(rng.randrange(len(pool)))
        b = pool.pop(rng.randrange(len(pool)))
        pool.append(merge(a, b) if rng.random() < 0.5 else merge(b, a))
    return FleetResult.from_partial(pool[0], 1.0)


entry_st = st.tuples(st.integers(1, 5), st.integers(0, 2**70), st.integers(0, 9), st.integers(10, 20),
                     st.integers(0, 99), st.integers(0, 3))
vm_st = st.tuples(st.dictionaries(st.integers(0, 4), entry_st, max_size=4),
                  st.lists(st.integers(0, 6), max_size=8))


@settings(max_examples=60, deadline=None)
@given(st.lists(vm_st, min_size=1, max_size=7), st.integers(0, 2**32))
def test_any_merge_tree_gives_the_same_result(vms, seed):
    parts = [partial(i, entries, lines) for i, (entries, lines) in enumerate(vms)]
    first = merged(parts, random.Random(seed))
    assert merged(parts, random.Random(seed + 1)) == first
    # ... and it is the plain fold of them all, in fleet order
    fold = parts[0]
    for p in parts[1:]:
        fold = merge(fold, p)
    assert FleetResult.from_partial(fold, 1.0) == first


@settings(max_examples=40, deadline=None)
@given(st.lists(vm_st, min_size=1, max_size=6))
def test_merged_entries_add_up_exactly(vms):
    parts = [partial(i, entries, lines) for i, (entries, lines) in enumerate(vms)]
    result = merged(parts, random.Random(0))
    table = {e.keys[0]: e for e in result.aggregates[0].entries}
    keys = {k for entries, _ in vms for k in entries}
    assert set(table) == keys
    for key in keys:
        have = [(i, entries[key]) for i, (entries, _) in enumerate(vms) if key in entries]
        e = table[key]
        assert e.count == sum(x[0] for _, x in have)
        assert e.sum == sum(x[1] for _, x in have)
        assert e.avg == e.sum // e.count
        assert e.min == min(x[2] for _, x in have) and e.max == max(x[3] for _, x in have)
        last_order, last = max(have, key=lambda item: (item[1][5], item[0]))
        assert (e.latest, e.latest_vm) == (last[4], f"vm-{last_order}")
    # the breakdown keeps each VM's own entries
    assert {name: tables[0].entries for name, tables in result.by_vm.items()} == {
        f"vm-{i}": tuple(e for e in FleetResult.from_partial(parts[i], 1.0).aggregates[0].entries)
        for i in range(len(parts))}


def test_latest_is_the_vm_whose_update_came_last_in_its_own_guest_time():
    # vm-0 updated at guest 900 ns, vm-1 at 500 ns: vm-0's latest wins although it comes first
    early, late = (1, 7, 7, 7, 7, 500, 1), (1, 3, 3, 3, 3, 900, 0)
    assert merge_entry(early, late)[4] == 3 and merge_entry(late, early)[4] == 3
    # the same guest nanosecond: the VM later in the fleet's order wins, either way round
    a, b = (1, 1, 1, 1, 11, 700, 0), (1, 2, 2, 2, 22, 700, 1)
    assert merge_entry(a, b)[4] == merge_entry(b, a)[4] == 22


def test_the_line_bound_keeps_the_first_lines_in_guest_time_order():
    parts = [partial(0, {}, [5, 1, 9]), partial(1, {}, [1, 2, 3, 4, 8]), partial(2, {}, [0, 7])]
    result = merged(parts, random.Random(3))
    assert [(line.stamp, line.order) for line in result.lines] == [(0, 2), (1, 0), (1, 1), (2, 1), (3, 1)]
    assert result.dropped_lines == 10 - MAX_LINES
    assert [line.text for line in result.lines][:2] == ["2:0\n", "0:1\n"]


def test_a_failed_vm_is_listed_by_name_and_makes_the_result_incomplete():
    ok = partial(0, {1: (2, 4, 1, 3, 3, 10)})
    result = FleetResult.from_partial(merge(failed_vm(1, "web02", "no such file", MAX_LINES), ok), 1.0)
    assert result.incomplete
    assert [(vm.name, vm.error) for vm in result.failed] == [("web02", "no such file")]
    assert [vm.name for vm in result.vms] == ["vm-0", "web02"]
    assert result.aggregates[0].entries[0].count == 2
    assert not FleetResult.from_partial(ok, 1.0).incomplete


# ---- what the runtime keeps for the merge ------------------------------------------------

RUN_TOTALS = b"""(defaggr a 1 0)
(defaggr b 0 0)
(definteger x)
(vprobe VMM1Hz (aggr a (1) () 0) (setint x (aggr b () () 5)))
(vprobe VMM10Hz (setint x (clearaggr a)) (aggr a (2) () 1) (clearaggr b))
"""


def test_the_runtime_stamps_entries_and_keeps_what_clearaggr_clears():
    now = [0]
    script = load(RUN_TOTALS, aggregate_clock=lambda: now[0])
    probe = {e.spec.text: e.handler for e in script.entries}
    now[0] = 100
    probe["VMM1Hz"]()
    now[0] = 200
    probe["VMM10Hz"]()  # clears a[1]; a[2] is new
    now[0] = 300
    probe["VMM1Hz"]()
    totals = script.run_totals()
    assert totals["a"] == {1: [2, 0, 0, 0, 0, 300], 2: [1, 1, 1, 1, 1, 200]}
    assert totals["b"] == {(): [2, 10, 5, 5, 5, 300]}  # updated where its value is used, cleared inline
    # what the script itself sees is unchanged: the clear took a[1] away, then it came back
    assert script.aggregates["a"].format().splitlines()[1:] == [
        "a[0x2] == avg 1 count 1 min 1 max 1 latest 1", "a[0x1] == avg 0 count 1 min 0 max 0 latest 0"]


def test_without_a_clock_the_runtime_keeps_no_run_totals():
    script = load(RUN_TOTALS)
    {e.spec.text: e.handler for e in script.entries}["VMM1Hz"]()
    assert script.aggregates["a"].entries == {1: [1, 0, 0, 0, 0]}
    try:
        script.run_totals()
    except ValueError as e:
        assert "aggregate clock" in str(e)
    else:
        raise AssertionError("run totals without a clock")
