"""Determinism (a configuration and seed give one log) and "free when disabled"."""

from __future__ import annotations

from machine.guest import layout as L
from vp_runtime import load

from test_machine_support import machine_for, run_script, sample, with_guest_library

# Reads the clocks, registers, guest memory and stacks, from many kinds of probe.
BUSY = """
(defstring s)
(defaggr calls 1 1)
(vprobe Guest_IRQ (printf "irq %d %x %d %d %s\\n" VCPUID ARG0 TSC PTSC (curprocname)))
(vprobe GUEST:system_call (aggr calls (RAX) ((curprocname)) 1))
(vprobe Guest_PF (printf "pf %x %x\\n" CR2 RIP))
(vprobe Disk_IOFinish (printf "disk %d %d\\n" ARG4 TSC))
(vprobe HV_Exit (cond ((== VMCS_EXIT_REASON 48) (printf "npf %x\\n" VMCS_GUEST_PHYS_ADDR))))
(definteger now)
(vprobe VMM1Hz (gueststack s) (getsystemtime now) (printf "%s %d\\n" s now) (logaggr calls))
"""
# Reads no clock: its log cannot depend on how long probes take on the host.
CLOCKLESS = sample("vptop.vp") + sample("page_faults.vp") + sample("logint_cr3.vp")


def test_same_config_and_seed_give_the_same_log():
    first = run_script(BUSY, 3, seed=7)
    assert len(first.log) > 10_000
    assert run_script(BUSY, 3, seed=7).log == first.log


def test_a_clockless_script_gives_the_same_log_with_host_time_charged():
    first = run_script(CLOCKLESS, 3, charge_probe_time="host")
    assert "running[0xef, " in first.log
    assert run_script(CLOCKLESS, 3, charge_probe_time="host").log == first.log


def test_with_the_modelled_charge_a_script_reading_clocks_gives_the_same_log():
    first = run_script(BUSY, 3, seed=7, charge_probe_time="model")
    assert run_script(BUSY, 3, seed=7, charge_probe_time="model").log == first.log
    # ... and the charge is there: the clocks differ from a run that charges nothing.
    assert run_script(BUSY, 3, seed=7, charge_probe_time="off").log != first.log


def test_another_seed_gives_another_log():
    logs = {run_script(CLOCKLESS, 3, seed=seed).log for seed in (1, 2, 3)}
    assert len(logs) == 3


def test_with_no_script_no_probe_point_is_registered():
    m = machine_for()
    m.run(3)
    probes = m.probes
    assert (probes.static, probes.breakpoints, probes.watch_reads, probes.watch_writes) == ({}, {}, {}, {})
    assert not probes.track_hv
    assert all(not vcpu.hv for vcpu in m.vcpus)  # no VMCS/VMCB description was built
    # Kernel stack frames are computed as register values but never written to guest memory.
    guest = m.guest
    tasks = list(guest.tasks.values()) + [cpu.idle for cpu in guest.cpus]
    assert len(tasks) > 10
    for task in tasks:
        first = guest._phys(task.stack) >> 12
        assert not any(p in m.memory.pages for p in range(first, first + L.THREAD_SIZE // 4096)), task.comm


def test_a_script_registers_only_the_points_it_enables():
    m = machine_for()
    text = ('(vprobe Guest_IRQ (logint ARG0)) (vprobe GUEST:schedule (logint RIP))'
            '(vprobe GUEST_WRITE:jiffies (logint 1)) (vprobe VMM1Hz (logint 2))')
    script = load(text, m.load_config, backend=m, log_sink=lambda _: None)
    m.attach(script)
    probes = m.probes
    assert set(probes.static) == {"Guest_IRQ"}
    assert set(probes.breakpoints) == {m.lookup_symbol("schedule")}
    assert set(probes.watch_writes) == {m.lookup_symbol("jiffies")} and not probes.watch_reads
    assert not probes.track_hv
    m.run(1)
    m.detach()
    assert (probes.static, probes.breakpoints, probes.watch_reads, probes.watch_writes) == ({}, {}, {}, {})


def test_probes_do_not_change_what_the_guest_does():
    quiet = machine_for()
    quiet.run(4)
    busy = run_script(BUSY, 4).machine
    assert busy.guest.rng.getstate() == quiet.guest.rng.getstate()
    assert (busy.guest.next_pid, busy.guest.next_io_id) == (quiet.guest.next_pid, quiet.guest.next_io_id)
    assert [c.current.pid for c in busy.guest.cpus] == [c.current.pid for c in quiet.guest.cpus]
    assert [v.regs for v in busy.vcpus] == [v.regs for v in quiet.vcpus]


def test_a_run_that_gives_way_between_events_is_the_same_run():
    """The background VM gives way to its socket between two events (EventQueue.run_until_or):
    stopping anywhere and going on changes nothing a script sees."""
    def log_of(step) -> str:
        m = machine_for()
        out: list[str] = []
        script = load(with_guest_library(CLOCKLESS.encode(), m.guest_library_vp().encode()), m.load_config,
                      backend=m, filename="t.vp", log_sink=out.append)
        m.attach(script)
        step(m, 2 * 10 ** 9)
        m.detach()
        return "".join(out)

    def in_pieces(m, end_ns: int) -> None:
        count = [0]

        def every_seventh() -> bool:
            count[0] += 1
            return count[0] % 7 == 0
        pieces = 1
        while not m.events.run_until_or(end_ns, every_seventh):
            pieces += 1
        assert pieces > 100 and m.now_ns == end_ns

    whole = log_of(lambda m, end_ns: m.events.run_until(end_ns))
    assert len(whole) > 1000 and log_of(in_pieces) == whole
