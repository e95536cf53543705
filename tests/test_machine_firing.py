"""What a firing does, chosen once at attach, and the event queue that runs periodic points.

The cheap paths must be the same run as the general ones: a periodic series run from the
event loop (its ticks back to back while nothing else is due) keeps the order of scheduling
at every instant; a breakpoint of a script that reads nothing of where the VCPU executes
skips setting the probed function's registers and changes nothing else; the host charge of
a VMM point fired on every VCPU reads the clock once between two firings.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.events import EventQueue
from vp_runtime import load

from test_machine_support import machine_for, run_script


def test_series_and_events_at_one_instant_run_in_the_order_they_were_scheduled():
    q = EventQueue()
    ran: list[tuple[int, str]] = []

    def note(name):
        return lambda: ran.append((q.now_ns, name))

    def a_tick() -> None:
        ran.append((q.now_ns, "a"))
        if q.now_ns == 20:  # scheduled for the instant of a's next tick: before it
            q.at(30, note("from a"))
    q.at(30, note("early"))  # scheduled before a's tick at 30 was
    q.every(10, a_tick)
    q.every(25, note("b"))
    q.run_until(50)
    assert ran == [(10, "a"), (20, "a"), (25, "b"), (30, "early"), (30, "from a"), (30, "a"), (40, "a"),
                   (50, "b"), (50, "a")]
    assert q.now_ns == 50


def test_a_series_cancelled_by_its_own_tick_ticks_no_more():
    q = EventQueue()
    ran: list[int] = []

    def tick() -> None:
        ran.append(q.now_ns)
        if len(ran) == 3:
            cancel()
    cancel = q.every(7, tick)
    q.at(100, lambda: ran.append(-1))
    q.run_until(200)
    assert ran == [7, 14, 21, -1] and q.now_ns == 200


def test_a_series_runs_to_the_end_of_the_run_and_goes_on_from_there():
    q = EventQueue()
    ran: list[int] = []
    q.every(10, lambda: ran.append(q.now_ns), first_ns=5)
    q.run_until(35)
    assert ran == [5, 15, 25, 35]
    q.run_until(36)
    q.run_until(55)
    assert ran == [5, 15, 25, 35, 45, 55]


@settings(max_examples=60, deadline=None)
@given(periods=st.lists(st.integers(1, 40), min_size=1, max_size=4),
       events=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 3)), max_size=25),
       step=st.integers(1, 9))
def test_run_until_and_a_run_that_gives_way_run_the_same_events(periods, events, step):
    """`run_until` runs a series' ticks back to back; `run_until_or` one event at a time."""
    def order(run) -> list[tuple[int, str]]:
        q = EventQueue()
        ran: list[tuple[int, str]] = []

        def tick(i):
            def run_tick() -> None:
                ran.append((q.now_ns, f"s{i}"))
                if (q.now_ns + i) % 3 == 0:  # a tick that schedules work at its own instant, or later
                    q.at(q.now_ns + (q.now_ns % 4), lambda: ran.append((q.now_ns, f"from s{i}")))
            return run_tick
        for i, period in enumerate(periods):
            q.every(period, tick(i))
        for n, (when, _) in enumerate(events):
            q.at(when, lambda n=n: ran.append((q.now_ns, f"e{n}")))
        run(q)
        return ran

    def in_pieces(q: EventQueue) -> None:
        count = [0]

        def give_way() -> bool:
            count[0] += 1
            return count[0] % step == 0
        while not q.run_until_or(320, give_way):
            pass
    whole = order(lambda q: q.run_until(320))
    assert whole == order(in_pieces)
    assert [when for when, _ in whole] == sorted(when for when, _ in whole)


def place_of(text: str) -> bool:
    m = machine_for()
    m.attach(load(text, m.load_config, backend=m, log_sink=lambda _: None))
    return m.probes.needs_place


def test_a_breakpoint_sets_the_functions_registers_only_for_a_script_that_can_see_them():
    assert not place_of('(defaggr a 1 0) (vprobe GUEST:schedule (aggr a (VCPUID) () TSC))')
    assert not place_of('(vprobe GUEST:schedule (printf "%d %d %d\\n" ARG0 PTSC THREADID))')
    for reads in ("RIP", "RSP", "GSBASE", "CSBASE", "SELSTATE", "(getguest 0)", "(getgpr 4)",
                  "(readmsr 0xc0000101)"):
        assert place_of(f'(vprobe GUEST:schedule (logint {reads}))'), reads
    assert place_of('(defstring s) (vprobe GUEST:schedule (gueststack s))')


def test_a_breakpoint_that_sets_no_registers_leaves_the_same_run():
    counted = '(defaggr a 1 0) (vprobe GUEST:schedule (aggr a (VCPUID) () 1)) (vprobe GUEST:do_page_fault (aggr a (VCPUID) () 2))'
    reading = counted.replace("() 1)", "() (+ 1 (- RIP RIP)))").replace("() 2)", "() (+ 2 (- RSP RSP)))")
    assert not place_of(counted) and place_of(reading)
    quiet, busy = (run_script(text, 2, hook=None) for text in (counted, reading))
    assert len(quiet.firings) > 300
    assert [(f.probe, f.vcpu, f.time_ns) for f in quiet.firings] == [(f.probe, f.vcpu, f.time_ns) for f in busy.firings]
    assert quiet.log == busy.log
    assert [v.regs for v in quiet.machine.vcpus] == [v.regs for v in busy.machine.vcpus]


# Probes along the timer interrupt's paths (the handler's, the timekeeping on CPU 0, the tick's
# accounting), set by two scripts in turn: the second sets none the first did.
ON_THE_HANDLER = ('(defaggr a 1 0) (vprobe GUEST:apic_timer_interrupt (aggr a (VCPUID) () 1))'
                  ' (vprobe GUEST:do_timer (printf "%x %x\\n" RIP RSP))'
                  ' (vprobe GUEST:EXIT:hrtimer_interrupt (printf "%x %d\\n" RIP ARG0))')
ON_THE_TICK = ('(vprobe GUEST:scheduler_tick (printf "%x %x %x\\n" RIP RSP RBP))'
               ' (vprobe GUEST:EXIT:update_process_times (printf "%x %d\\n" RIP ARG0))')
# One probe on the handler's entry and nothing the probed function's registers would change: the
# walk calls its firing directly (`FixedPath.fire`).
ON_THE_ENTRY_ALONE = '(defaggr a 1 0) (vprobe GUEST:apic_timer_interrupt (aggr a (VCPUID) () 1))'


def test_the_timer_paths_fire_what_a_walk_down_them_fires_as_the_probe_set_changes():
    def runs(m):
        m.run(1.0)  # past the boot: the timer ticks with no probe set, then with each script's
        return [run_script(text, 0.5, machine=m) for text in (ON_THE_HANDLER, ON_THE_TICK, ON_THE_ENTRY_ALONE)]
    kept = machine_for()
    looked_up = machine_for()
    contexts = looked_up.guest.contexts
    contexts.walk_fixed = lambda cpu, task, fixed: contexts.walk(cpu, task, list(fixed.path), start=fixed.start)
    expected = [{"GUEST:apic_timer_interrupt", "GUEST:do_timer", "GUEST:EXIT:hrtimer_interrupt"},
                {"GUEST:scheduler_tick", "GUEST:EXIT:update_process_times"}, {"GUEST:apic_timer_interrupt"}]
    kept_runs = runs(kept)
    assert kept.guest.interrupts.timer_path.fire is not None  # the last script's firing, called directly
    assert kept.guest.interrupts.tick_path.fire is None  # (a path that fires nothing)
    for fixed, walked, probes in zip(kept_runs, runs(looked_up), expected):
        assert {f.probe for f in fixed.firings} == probes
        assert all(len(fixed.of(probe)) > 50 for probe in probes)
        assert fixed.firings == walked.firings
        assert fixed.log == walked.log


def test_a_breakpoint_sees_the_entry_of_its_function():
    m = machine_for()
    schedule = m.lookup_symbol("schedule")
    run = run_script('(vprobe GUEST:schedule (printf "%x\\n" RIP))', 1)
    assert len(run.lines) > 10 and set(run.lines) == {f"{schedule:x}"}


def test_host_time_charged_on_every_vcpu_keeps_the_clocks_monotonic():
    text = ('(definteger last) (definteger back) (definteger within)'
            '(vprobe USEC:500 (setint within TSC) (cond ((< PTSC last) (setint back (+ back 1)))) (setint last PTSC)'
            ' (cond ((< TSC within) (setint back (+ back 1)))))')
    m = machine_for(charge_probe_time="host")
    script = load(text, m.load_config, backend=m, log_sink=lambda _: None)
    m.attach(script)
    m.run(0.5)
    assert script.firings == [2000] and script.variable("back") == 0
    assert m.probes.charged_ns > 0 and m.probes.in_probe_ns() == 0
    quiet = machine_for(charge_probe_time="host")
    quiet.run(0.5)
    assert m.ptsc() > quiet.ptsc()  # the firings' host time moved the clocks on


def test_the_vcpus_fields_registers_and_argn_are_read_where_the_machine_keeps_them():
    m = machine_for()
    text = '(vprobe Guest_IRQ (printf "%d %d %d %x %d %d\\n" VCPUID PCPUID THREADID RIP ARG0 TSC))'
    script = load(text, m.load_config, backend=m, log_sink=lambda _: None)
    source = script.python_source
    assert ".current.index" in source and ".current.regs['RIP']" in source and "[0]," in source
    assert len(re.findall(r"\br\d+\(\)", source)) == 1  # only TSC's reader is called
    lines = run_script(text, 2).lines
    assert len(lines) > 50
    for line in lines:
        vcpu, pcpu, thread, rip, vector, _ = line.split()
        assert pcpu == vcpu and int(thread) == 1000 + int(vcpu) and int(rip, 16) > 0 and int(vector) > 0


def test_a_path_that_is_not_attributes_and_a_key_is_refused():
    class Odd:
        def __init__(self, path):
            self.machine, self.path = machine_for(), path

        def __getattr__(self, name):
            return getattr(self.machine, name)

        def global_path(self, name):
            return self.machine, *self.path
    for path in ((("__class__",), None), (("current",), 1.5), (("current.index",), None)):
        with pytest.raises(ValueError, match="not one of attributes and a key"):
            load("(vprobe Guest_IRQ (logint VCPUID))", backend=Odd(path))
