"""The time probes take, as the guest's clocks see it (vprobe.chargeProbeTime, vprobe --charge).

The default, "model", charges each VP operation a firing executes a fixed
cost (`machine.simulated.NS_PER_VP_OPERATION`), counted by the translated
code itself (`LoadConfig.count_operations`; `vp_runtime.cost` defines the
operation): two runs give the same log, whatever the host does meanwhile.
"host" charges the host time the runtime took; "off" nothing.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from machine import SimulatedMachine, default_config
from machine.simulated import NS_PER_VP_OPERATION
from vp_runtime import LoadConfig, load

from conftest import FakeBackend
from test_machine_support import run_script
from test_tools_vprobe import vprobe, write

FIB = "(defun fib (n) (cond ((< n 2) n) (1 (+ (fib (- n 1)) (fib (- n 2))))))\n"


def counted(text: str, probe: str = "VMXLoad", times: int = 1) -> int:
    script = load(text, LoadConfig(count_operations=True), backend=FakeBackend(), filename="t.vp")
    handler = script.handler(probe)
    for _ in range(times):
        handler()
    return script.operations()


# ---- the count ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["1", "(logint (+ 1 2 3))", "(setint x (+ x 1)) (logint x)",
                                  "(aggr a (1) () 1)", '(printf "%d %d\\n" x RIP)', "(getguest RSP)"])
def test_straight_line_code_counts_its_bound_each_firing(body):
    text = f"(definteger x)\n(defaggr a 1 0)\n(vprobe VMXLoad {body})"
    (cost,) = load(text, filename="t.vp").costs
    assert counted(text, times=3) == 3 * cost.operations


def test_a_cond_counts_the_way_it_takes():
    # cond 1, test (== x 1) 3; taken: (logint 5) 2; not taken: test (== x 2) 3 and (logint 6) 2.
    text = "(definteger x {})\n(vprobe VMXLoad (cond ((== x 1) (logint 5)) ((== x 2) (logint 6))))"
    assert counted(text.format(1)) == 1 + 3 + 2
    assert counted(text.format(2)) == 1 + 3 + 3 + 2
    assert counted(text.format(3)) == 1 + 3 + 3  # no clause true: both tests
    # A constant test is decided at load, but still counts as evaluated.
    assert counted("(vprobe VMXLoad (cond (0 (logint 1)) (1 (logint 2))))") == 1 + 1 + 1 + 2


def test_a_cond_inside_an_expression_counts_the_way_it_takes():
    text = "(definteger x {})\n(vprobe VMXLoad (logint (cond ((== x 1) (+ 1 2)) (1 7))))"
    assert counted(text.format(1)) == 1 + 1 + 3 + 3
    assert counted(text.format(0)) == 1 + 1 + 3 + 1 + 1


def test_and_or_count_the_operands_they_evaluate():
    assert counted("(vprobe VMXLoad (&& 0 (logint 1)))") == 1 + 1  # && and its first operand
    assert counted("(vprobe VMXLoad (&& 1 (logint 1)))") == 1 + 1 + 2
    assert counted("(vprobe VMXLoad (|| 1 (logint 1) 2))") == 2 + 1
    assert counted("(vprobe VMXLoad (|| 0 0 (logint 1)))") == 2 + 1 + 1 + 2


def test_calls_count_the_callee_body_as_it_runs():
    # fib's activation: cond 1 and (< n 2) 3; a leaf adds n (1); an inner one the constant test (1)
    # and (+ (fib (- n 1)) (fib (- n 2))) (1 + 2 x 4).  fib(10): 89 leaves, 88 inner activations.
    per_leaf, per_inner = 4 + 1, 4 + 1 + 9
    assert counted(FIB + "(vprobe VMXLoad (logint (fib 10)))") == 3 + 89 * per_leaf + 88 * per_inner


def test_code_that_does_not_count_pays_nothing():
    text = "(definteger x)\n(vprobe VMXLoad (cond ((== x 1) (logint 5))) (&& x 1))"
    assert "_ops" not in load(text).python_source
    script = load(text)
    script.handler("VMXLoad")()
    assert script.operations() == 0


def test_straight_line_code_counts_with_one_addition():
    source = load("(definteger x)\n(vprobe VMXLoad (setint x (+ x 1)) (logint x))",
                  LoadConfig(count_operations=True)).python_source
    assert source.count("_ops") == 2  # `global _ops` and `_ops += 6`
    assert "_ops += 6" in source


def test_the_counting_does_not_count_against_the_translation_cache():
    text = "(definteger x)\n(vprobe VMXLoad " + " ".join(
        f"(cond ((== x {i}) (logint {i})))" for i in range(40)) + ")"
    size = load(text).code_bytes
    plain = LoadConfig(max_code_bytes=size)
    load(text, plain)
    script = load(text, dataclasses.replace(plain, count_operations=True))
    assert script.code_bytes > size  # the counting is there, and the script still loads


# ---- the machine's clocks -------------------------------------------------------------------------------

def clock_diff_script() -> str:
    # A probe reads TSC, runs fib(5) (15 activations), reads TSC again.
    return FIB + ("(definteger t)\n(vprobe VMXLoad (setint t TSC) (fib 5) "
                  "(printf \"%d %d\\n\" (- TSC t) (- (getsystemtime) 0)))")


def test_the_modelled_charge_moves_the_clocks_by_the_operations_executed():
    run = run_script(clock_diff_script(), 0.001, charge_probe_time="model", library=False)
    ticks = int(run.lines[0].split()[0])
    # Between the reads: fib(5)'s 8 leaf and 7 inner activations (the probe's own straight line,
    # the call of fib included, is charged when the firing starts, before the first read).
    operations = 8 * 5 + 7 * 14
    hz = run.machine.config.tsc_hz
    assert abs(ticks - operations * NS_PER_VP_OPERATION * hz / 1e9) <= 1


def test_without_a_charge_the_clocks_stand_still_inside_a_probe():
    run = run_script(clock_diff_script(), 0.001, charge_probe_time="off", library=False)
    assert run.lines[0].split()[0] == "0"


def test_the_modelled_charge_accumulates_over_firings_and_scripts():
    machine = SimulatedMachine(default_config())
    text = "(vprobe VMM1Hz (logint (+ 1 2 3)))"
    for _ in range(2):
        script = load(text, machine.load_config, backend=machine)
        machine.attach(script)
        machine.run(3)
        machine.detach()
    # 2 scripts x 3 seconds x 2 VCPUs x 6 operations.
    assert machine.modelled_charge_ns() == 2 * 3 * 2 * 6 * NS_PER_VP_OPERATION


def test_two_runs_with_the_modelled_charge_give_identical_logs(tmp_path):
    script = write(tmp_path / "lat.emt", """
int start;
aggr lat[0][1];
Disk_IOStart { start = TSC; }
Disk_IOFinish { lat["usec"] <- (TSC - start) * 1000000 / TSC_HZ; printf("%d %d\\n", TSC, PTSC); }
VMM1Hz { if (VCPUID == 0) { logaggr(lat); } }
""")
    first = vprobe("-d", "3", script)
    assert first.status == 0 and first.text.count("\n") > 50
    assert vprobe("-d", "3", script).out == first.out
    assert vprobe("--charge", "model", "-d", "3", script).out == first.out
    assert vprobe("--charge", "off", "-d", "3", script).out != first.out


def test_charge_overrides_the_vmx(tmp_path):
    vmx = write(tmp_path / "vm.vmx", 'vprobe.enable = "TRUE"\nvprobe.chargeProbeTime = "FALSE"\n')
    script = write(tmp_path / "t.vp", FIB + "(definteger t)\n(vprobe VMXLoad (setint t TSC) (fib 5) "
                                            "(logint (- TSC t)) (logstr \"\\n\"))")
    assert vprobe("-d", "0", vmx, script).text == "0\n"
    assert int(vprobe("--charge", "model", "-d", "0", vmx, script).text) > 0


def test_charge_is_refused_where_it_cannot_apply(tmp_path):
    vmx = write(tmp_path / "q.vmx", 'vprobe.enable = "TRUE"\nqemu.attach = "127.0.0.1:1"\n')
    result = vprobe("--charge", "off", "-d", "1", vmx, "-c", "VMM1Hz { }")
    assert result.status == 1
    assert re.search(r"--charge applies to simulated VMs", result.err)
