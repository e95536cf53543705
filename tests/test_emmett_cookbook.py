"""The cookbook's Emmett programs: each compiles, its VP is pinned by a snapshot,
loads in the VP runtime, and the ones that need only periodic and load probes
run on the simulated machine with the output they promise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import emmett
from machine import SimulatedMachine
from vp_runtime import CatalogBackend, load

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"
PROGRAMS = sorted(p.name for p in COOKBOOK.glob("*.emt"))


def compile_program(name: str, **options) -> str:
    path = COOKBOOK / name
    result = emmett.compile(path.read_text(), f"cookbook/{name}", emmett.CompileOptions(**options))
    assert result.ok, "\n".join(d.format() for d in result.diagnostics)
    return result.vp


def run_on_machine(vp: str, seconds: float = 2) -> tuple[str, SimulatedMachine]:
    m = SimulatedMachine()
    config = getattr(m, "load_config", None) or m.config.vprobe
    out: list[str] = []
    script = load(vp, config, backend=m, log_sink=out.append)
    m.attach(script)
    m.run(seconds)
    m.detach()
    return "".join(out), m


def test_the_cookbook_has_the_reference_samples_and_the_classics():
    expected = {
        # the reference's sample scripts
        "hello.emt", "logstr.emt", "logint-cr3.emt", "sprintf-rip.emt", "printf-rip.emt", "strcmp-event.emt",
        "tsc-khz.emt", "command-line.emt", "guest-stack.emt", "apic-version.emt", "tsc-frequency.emt",
        "curpid-irq.emt", "page-faults.emt", "irqs.emt", "disk-latency.emt", "boot-device.emt",
        "vga-writes.emt", "elapsed-seconds.emt", "vptop.emt", "pagefault-stack.emt", "system-call.emt",
        "user-probe.emt", "appendix-curprocname.emt",
        # toolkit-style classics
        "hello-math.emt", "guest-prof.emt", "guest-top.emt", "strace.emt", "vt-exit.emt", "vt-exit-fast.emt",
        "vprobe-bench.emt", "pagefault-stacks.emt", "disk-latency-histogram.emt",
    }
    assert expected <= set(PROGRAMS)


@pytest.mark.parametrize("name", PROGRAMS)
def test_cookbook_program_starts_with_a_header_comment(name):
    first = (COOKBOOK / name).read_text().lstrip().splitlines()[0]
    assert first.startswith(("//", "/*")), f"{name} should say what it shows in a header comment"
    assert name.removesuffix(".emt") in first or len(first) > 20


@pytest.mark.parametrize("name", PROGRAMS)
def test_cookbook_vp_matches_snapshot(name, snapshot):
    assert compile_program(name) == snapshot


@pytest.mark.parametrize("name", PROGRAMS)
def test_cookbook_vp_loads_in_the_runtime(name):
    script = load(compile_program(name), backend=CatalogBackend(), filename=name.replace(".emt", ".vp"))
    assert script.entries


def test_the_appendix_program_is_the_reference_text():
    text = (COOKBOOK / "appendix-curprocname.emt").read_text()
    for line in ("int guestload(int addr)", "_rval = 0;", "return addr & 0xffffffff;",
                 "void guestloadstr(string dest, int addr)", "int curthrptr()",
                 "_nameOffset = offatstrcpy(\"get_task_comm\");", "_gsb = KERNELGSBASE;",
                 "guestloadstr(_procName, _nameOffset + guestload(curthrptr()));",
                 "return guestload32(_pidOffset + guestload(curthrptr()));"):
        assert line in text


def test_the_appendix_definitions_replace_the_preload():
    vp = compile_program("appendix-curprocname.emt")
    assert "(defun guestload32 (addr)\n  (& addr 0xffffffff))" in vp
    assert "linux64_" not in vp


# ---- runs on the simulated machine ------------------------------------------------------------

def test_hello_says_hello_on_every_vcpu_every_second():
    out, m = run_on_machine(compile_program("hello.emt"))
    assert out == "hello!\n" * (2 * len(m.vcpus))


def test_logstr_logs_hello_world():
    out, m = run_on_machine(compile_program("logstr.emt"))
    assert out == "Hello world!\n" * (2 * len(m.vcpus))


@pytest.mark.parametrize("name", ["printf-rip.emt", "sprintf-rip.emt"])
def test_rip_samples_print_ten_times_a_second_per_vcpu(name):
    out, m = run_on_machine(compile_program(name))
    lines = out.splitlines()
    assert len(lines) == 20 * len(m.vcpus)
    assert all(re.fullmatch(r"Current RIP is 0x[0-9a-f]{16}", line) for line in lines)


def test_strcmp_event_reports_ok():
    out, m = run_on_machine(compile_program("strcmp-event.emt"))
    assert out == "Guest status is OK!\n" * (2 * len(m.vcpus))


def test_tsc_frequency_converges_on_tsc_hz():
    out, _ = run_on_machine(compile_program("tsc-frequency.emt"), 3)
    lines = out.splitlines()
    assert len(lines) == 3
    m = re.fullmatch(r"Calculated TSC HZ (\d+), Actual TSC HZ (\d+) \(difference (-?\d+)\)", lines[-1])
    assert m, lines[-1]
    calculated, actual, difference = map(int, m.groups())
    assert actual - calculated == difference
    assert abs(difference) < actual // 1000


def test_elapsed_seconds_count_up_in_thirds_of_a_second():
    out, _ = run_on_machine(compile_program("elapsed-seconds.emt"), 2)
    assert out.splitlines() == [f"{n} seconds have elapsed." for n in (0, 0, 0, 1, 1, 1)]


def test_hello_math_prints_its_results_once():
    out, _ = run_on_machine(compile_program("hello-math.emt"), 1)
    assert out == (
        "10! = 3628800\n"
        "fib(10) = 55\n"
        "gcd(1071, 462) = 21\n"
        "1 << 10 | 0x5 = 1029, 7 / 2 = 3, 7 % 2 = 1\n"
        "hello, math: 42 is even\n"
        "all is well\n"
    )


def test_guest_prof_logs_rip_counts_once_a_second():
    out, _ = run_on_machine(compile_program("guest-prof.emt"), 2)
    assert out.count("aggr: prof (1 integer key) (0 string keys)\n") == 2
    assert re.search(r"^prof\[0x[0-9a-f]+\] == avg 1 count \d+ min 1 max 1 latest 1$", out, re.M)


def test_vprobe_bench_measures_every_operation():
    out, _ = run_on_machine(compile_program("vprobe-bench.emt"), 1)
    assert "aggr: cost (0 integer keys) (1 string key)\n" in out
    for name in ("arithmetic", "aggregate update", "sprintf", "bag insert+remove", "function call"):
        assert f'cost["{name}"] == avg ' in out
