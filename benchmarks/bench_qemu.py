"""Benchmark: probes on a real guest under QEMU, measured side by side in one run.

    python benchmarks/bench_qemu.py [--seconds S] [--windows N] [--sites F,G,...]

Boots Debian's kernel with a busybox initramfs whose loop reads
/proc/kallsyms over and over (the kernel formats each of its ~100,000 lines
with `seq_printf`) and prints a progress line after every read.  It reports

1. probe firings per second at hot kernel functions against the bare
   stop/resume rate of the same gdbstub (interrupt, stop reply, continue,
   no probe loaded; waiting for the stop in select or polling for it,
   whichever is faster).  A bare cycle lets the guest run for no time at
   all, so a probe's rate also pays for the guest's way from one hit to the
   next: the sites are functions the guest reaches again soon after each
   firing (`seq_printf`, once a line; `__rcu_read_lock`, all over the
   kernel).  Each is probed through its patched ftrace site (the
   default, see machine/qemu/callsites.py) with a probe that only counts and
   with one that reads RSP and the 8 bytes it points to; the first also
   through a gdbstub breakpoint (`qemu.callSites = "FALSE"`) with the
   reading probe.  Then `Guest_PF`, `Guest_IRQ` and `Guest_CR3Write` with a
   counting probe, before (breakpoints on the entry code, as with
   `qemu.callSites = "FALSE"`) and after (call sites on the entry stubs'
   `call error_entry` and on CR3-writing functions), with the guest's loop
   rate meanwhile against a window with no probe.  The bare rate is measured before and after, and the mean
   is used; the time the stopped VM's gdbstub takes to answer a register
   read and a memory read shows what reading costs;
2. the guest's slowdown with a 1 Hz probe loaded (`VMM1Hz` printing RIP on
   each VCPU): the guest's loop rate, measured from its console on the host
   clock, in alternating windows with and without the probe (ABBA order),
   and the share of the time the probe held the VM stopped.

Needs qemu-system-x86_64, /boot/vmlinuz-* and busybox-static.
"""

from __future__ import annotations

import argparse
import glob
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import vp_runtime  # noqa: E402
from machine.qemu import QemuMachine, read_qemu_vmx  # noqa: E402
from machine.qemu.initramfs import build_initramfs  # noqa: E402

LOOP = """#!/bin/sh
n=0
while true; do
  n=$((n+1))
  cat /proc/kallsyms > /dev/null
  echo "progress $n"
done
"""

COUNTING_PROBE = "(definteger hits) (vprobe GUEST:SITE (setint hits (+ hits 1)))"
READING_PROBE = """
(definteger hits)
(definteger word)
(vprobe GUEST:SITE (setint hits (+ hits 1)) (setint word (getguest RSP)))
"""
ONE_HZ_PROBE = '(vprobe VMM1Hz (printf "vcpu %d rip %x\\n" VCPUID RIP))'


class Progress:
    """Watches the guest's console: (host time, iteration) for each progress line."""

    def __init__(self, path: Path):
        self.path = path
        self.samples: list[tuple[float, int]] = []
        self._stop = False
        self._offset = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        pattern = re.compile(rb"progress (\d+)\r?\n")
        pending = b""
        while not self._stop:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
            if data:
                now = time.monotonic()
                self._offset += len(data)
                pending += data
                for match in pattern.finditer(pending):
                    self.samples.append((now, int(match.group(1))))
                pending = pending[pending.rfind(b"\n") + 1:]
            time.sleep(0.02)

    def rate(self, start: float, end: float) -> float:
        """Iterations per host second between `start` and `end` (least squares over the lines)."""
        points = [(t, n) for t, n in self.samples if start <= t <= end]
        if len(points) < 3:
            return 0.0
        mt = statistics.fmean(t for t, _ in points)
        mn = statistics.fmean(n for _, n in points)
        num = sum((t - mt) * (n - mn) for t, n in points)
        den = sum((t - mt) ** 2 for t, _ in points)
        return num / den if den else 0.0

    def stop(self) -> None:
        self._stop = True
        self._thread.join()


def bare_cycles(machine: QemuMachine, seconds: float, poll: bool) -> float:
    """Interrupt, stop reply, continue, as often as the gdbstub allows; waiting for the stop reply in
    select, or polling for it first as the backend does for a busy probe's next hit."""
    stub = machine.stub
    if not stub.running:
        stub.cont()
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        stub.stop(prompt=poll)
        stub.cont()
        count += 1
    return count / (time.monotonic() - start)


def request_times(machine: QemuMachine, count: int = 1000) -> tuple[float, float]:
    """Seconds the stopped VM's gdbstub takes to answer `g` (all registers) and an 8-byte `m`."""
    machine._ensure_stopped()
    stub, thread = machine.stub, machine.vcpus[0].thread
    stack = stub.register(stub.read_registers(thread), "rsp")
    times = []
    for request in (lambda: stub.read_registers(thread), lambda: stub.read_memory(thread, stack, 8)):
        start = time.perf_counter()
        for _ in range(count):
            request()
        times.append((time.perf_counter() - start) / count)
    return times[0], times[1]


def probe_rate(machine: QemuMachine, seconds: float, text: str, site: str,
               call_sites: bool) -> tuple[float, float, str]:
    """Firings per second of the probe script `text` at GUEST:`site`, the host time the backend spends
    per firing (everything but waiting for the guest to reach the probe point), and how the point was set."""
    enabled, machine.call_sites_enabled = machine.call_sites_enabled, call_sites
    script = vp_runtime.load(text.replace("SITE", site), machine.load_config, backend=machine)
    machine.attach(script)
    how = "call site" if machine.call_site_trampoline(machine.lookup_symbol(site)) else "breakpoint"
    stub = machine.stub
    waiting = [0.0]
    wait_stop = stub.wait_stop

    def timed_wait(*args, **kwargs):
        began = time.perf_counter()
        try:
            return wait_stop(*args, **kwargs)
        finally:
            waiting[0] += time.perf_counter() - began
    stub.wait_stop = timed_wait
    try:
        start = time.monotonic()
        machine.run(seconds)
        elapsed = time.monotonic() - start
    finally:
        del stub.wait_stop
        machine.call_sites_enabled = enabled
    hits = script.variable("hits")
    machine.detach()
    return hits / elapsed, (elapsed - waiting[0]) / max(1, hits), how


STATIC_POINTS = ("Guest_PF", "Guest_IRQ", "Guest_CR3Write")
STATIC_PROBE = "(definteger hits) (vprobe POINT (setint hits (+ hits 1)))"


def static_rate(machine: QemuMachine, progress: Progress, seconds: float, point: str,
                call_sites: bool) -> tuple[float, str, float]:
    """Firings per second of a counting probe on static probe `point`, how its sites were set, and the
    guest's loop rate meanwhile."""
    enabled, machine.call_sites_enabled = machine.call_sites_enabled, call_sites
    script = vp_runtime.load(STATIC_PROBE.replace("POINT", point), machine.load_config, backend=machine)
    try:
        machine.attach(script)
    finally:
        machine.call_sites_enabled = enabled
    how = f"{len(machine.breakpoints.called)} call sites, {len(machine.stub.breakpoints)} breakpoints"
    start = time.monotonic()
    machine.run(seconds)
    elapsed = time.monotonic() - start
    hits = script.variable("hits")
    machine.detach()
    return hits / elapsed, how, progress.rate(start + 0.2, start + elapsed)


def boot(vm: Path, kernel: str, append: str) -> QemuMachine:
    (vm / "bench.vmx").write_text(
        f'numvcpus = "2"\nmemsize = "512"\nqemu.kernel = "{kernel}"\nqemu.initrd = "initramfs.gz"\n'
        f'qemu.append = "{append}"\nvprobe.enable = "TRUE"\n')
    machine = QemuMachine(read_qemu_vmx(vm / "bench.vmx"))
    while "progress" not in machine.console_text():
        machine.run(0.25)
    return machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each measurement window")
    parser.add_argument("--windows", type=int, default=4, help="pairs of slowdown windows (ABBA order)")
    parser.add_argument("--sites", default="seq_printf,__rcu_read_lock",
                        help="the probed kernel functions, comma-separated")
    args = parser.parse_args()
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels:
        sys.exit("bench_qemu: no kernel in /boot (apt-get install linux-image-amd64)")
    with tempfile.TemporaryDirectory() as tmp:
        vm = Path(tmp)
        build_initramfs(vm / "initramfs.gz", loop=LOOP)
        machine = boot(vm, kernels[-1], "console=ttyS0 nokaslr quiet")
        try:
            progress = Progress(machine.config.console)
            machine.run(1.0)

            # 1. Firings against bare stop/resume cycles, side by side.
            waits = [[bare_cycles(machine, args.seconds / 2, poll) for poll in (False, True)]]
            sites = args.sites.split(",")
            runs = []
            for site in sites:
                runs.append((site, "counting", *probe_rate(machine, args.seconds, COUNTING_PROBE, site, True)))
                runs.append((site, "RSP + 8 bytes", *probe_rate(machine, args.seconds, READING_PROBE, site, True)))
            runs.append((sites[0], "RSP + 8 bytes", *probe_rate(machine, args.seconds, READING_PROBE, sites[0], False)))
            start = time.monotonic()
            machine.run(args.seconds)
            unprobed_loop = progress.rate(start + 0.2, time.monotonic()) or float("nan")
            statics = [(point, call_sites, *static_rate(machine, progress, args.seconds, point, call_sites))
                       for point in STATIC_POINTS for call_sites in (False, True)]
            waits.append([bare_cycles(machine, args.seconds / 2, poll) for poll in (False, True)])
            bare = [max(pair) for pair in waits]
            registers, memory = request_times(machine)
            mean_bare = statistics.fmean(bare)
            selecting, polling = (statistics.fmean(w[i] for w in waits) for i in (0, 1))
            print(f"gdbstub bare stop/resume cycles:  {mean_bare:8.0f} /s  ({1e6 / mean_bare:.0f} us a cycle; "
                  f"before {bare[0]:.0f}, after {bare[1]:.0f}; waiting in select {selecting:.0f} /s, "
                  f"polling {polling:.0f} /s)")
            for site, body, rate, service, how in runs:
                target = "; target at least 50%" if how == "call site" else ""
                cycle = 1 / rate
                print(f"GUEST:{site:16s} {how + ',':11s} {body:13s} {rate:6.0f} /s  "
                      f"({rate / mean_bare:.0%} of the bare rate{target}); a firing {cycle * 1e6:.0f} us: backend "
                      f"{service * 1e6:.0f}, QEMU and the guest's way to the next hit {(cycle - service) * 1e6:.0f}")
            for point, call_sites, rate, how, loop in statics:
                before = "after: call sites" if call_sites else "before: breakpoints"
                per_loop = f"{rate / loop:.0f} a loop" if loop > 0 else "the loop stalled"
                print(f"{point:22s} {before:20s} {rate:6.0f} /s  ({rate / mean_bare:.1%} of the bare rate; {how}; "
                      f"guest loop {loop:.2f}/s, {loop / unprobed_loop:.0%} of its {unprobed_loop:.2f}/s unprobed; "
                      f"{per_loop})")
            print("  a static probe fires only as often as the guest faults, is interrupted or switches address "
                  "space (the same events a loop either way); under breakpoints each stop's translation flush "
                  "slows the guest down")
            print(f"  reading costs two gdbstub requests: registers (g) {registers * 1e6:.0f} us, 8 bytes (m) "
                  f"{memory * 1e6:.0f} us, answered one at a time by QEMU's main loop while the VM is stopped")
            print("  a breakpoint stop makes QEMU 7.2 flush its whole translation cache (the guest re-translates "
                  "before it reaches the probe point again); a call site's watchpoint stop does not")

            # 2. The guest's slowdown with a 1 Hz probe.
            machine.run(1.0)
            base_rates, probe_rates = [], []
            paused = [0.0, 0.0]  # total seconds the VM was held stopped, and the time measured
            stub = machine.stub
            stop, cont = stub.stop, stub.cont

            def timed_stop(*a, **k):
                paused.append(time.perf_counter())
                return stop(*a, **k)

            def timed_cont(*a, **k):
                if len(paused) > 2:
                    paused[0] += time.perf_counter() - paused.pop()
                return cont(*a, **k)
            def base_window() -> None:
                start = time.monotonic()
                machine.run(args.seconds)
                base_rates.append(progress.rate(start + 0.2, time.monotonic()))

            def probe_window() -> None:
                script = vp_runtime.load(ONE_HZ_PROBE, machine.load_config, backend=machine)
                machine.attach(script)
                start = time.monotonic()
                stub.stop, stub.cont = timed_stop, timed_cont
                machine.run(args.seconds)
                del stub.stop, stub.cont
                del paused[2:]  # a stop at the window's end is not followed by a continue in it
                paused[1] += time.monotonic() - start
                probe_rates.append(progress.rate(start + 0.2, time.monotonic()))
                machine.detach()
            for pair in range(args.windows):  # ABBA order, so a drift in the guest's speed cancels out
                for window in ((base_window, probe_window) if pair % 2 == 0 else (probe_window, base_window)):
                    window()
            progress.stop()
        finally:
            machine.close()
        base, probed = statistics.fmean(base_rates), statistics.fmean(probe_rates)
        slowdown = (base - probed) / base if base else float("nan")
        print(f"guest loop without probes:       {base:8.1f} iterations/s "
              f"(windows: {', '.join(f'{r:.1f}' for r in base_rates)})")
        print(f"guest loop with VMM1Hz loaded:   {probed:8.1f} iterations/s "
              f"(windows: {', '.join(f'{r:.1f}' for r in probe_rates)})")
        print(f"slowdown with a 1 Hz probe:      {slowdown:8.2%}  (target under 1%; loop-rate windows are noisy)")
        print(f"  VM held stopped by the probe:  {paused[0] / paused[1]:8.3%} of the time "
              f"({paused[0] * 1e3 / paused[1]:.2f} ms a second: interrupt, both VCPUs' registers, printf, continue)")


if __name__ == "__main__":
    main()
