"""Benchmark: probes on a real guest under QEMU, measured side by side in one run.

    python benchmarks/bench_qemu.py [--seconds S]

Boots Debian's kernel with a busybox initramfs whose loop opens /dev/null
over and over (each `echo > /dev/null` goes through do_filp_open) and
prints a progress line every 100 iterations.  It reports

1. breakpoint probe firings per second (`GUEST:do_filp_open`, reading a
   register and 8 bytes of guest memory each time) against the bare
   stop/resume rate of the same gdbstub (interrupt, stop reply, continue),
   with no probe loaded;
2. the guest's slowdown with a 1 Hz probe loaded (`VMM1Hz` printing RIP on
   each VCPU): the guest's loop rate, measured from its console on the host
   clock, in alternating windows with and without the probe.

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
  echo x > /dev/null
  if [ $((n % 100)) = 0 ]; then echo "progress $n"; fi
done
"""

BREAKPOINT_PROBE = """
(definteger hits)
(definteger word)
(vprobe GUEST:do_filp_open (setint hits (+ hits 1)) (setint word (getguest RSP)))
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


def bare_cycles(machine: QemuMachine, seconds: float) -> float:
    stub = machine.stub
    if not stub.running:
        stub.cont()
    count = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        stub.stop()
        stub.cont()
        count += 1
    return count / (time.monotonic() - start)


def idle_poll_pause(machine: QemuMachine) -> int:
    """The `pause` in the kernel's polling idle loop (idle=poll): hit again right after each resume."""
    import capstone
    name = next(n for n in machine.kernel.symbols if n == "cpu_idle_poll" or n.startswith("cpu_idle_poll."))
    start = machine.lookup_symbol(name)
    end = machine.kernel.function_end(name)
    machine._ensure_stopped()
    code = machine.stub.read_memory(machine.vcpus[0].thread, start, end - start)
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for insn in cs.disasm(code, start):
        if insn.mnemonic == "pause":
            return insn.address
    raise SystemExit("bench_qemu: no pause instruction in cpu_idle_poll")


def probe_rate(machine: QemuMachine, seconds: float, where: str = "do_filp_open") -> tuple[float, float]:
    """Firings per second of a breakpoint probe at `where`, and the host time the backend spends
    per firing (everything but waiting for the guest to reach the breakpoint)."""
    script = vp_runtime.load(BREAKPOINT_PROBE.replace("do_filp_open", where), machine.load_config, backend=machine)
    machine.attach(script)
    stub = machine.stub
    waiting = [0.0]
    wait_stop = stub.wait_stop

    def timed_wait(timeout):
        began = time.perf_counter()
        try:
            return wait_stop(timeout)
        finally:
            waiting[0] += time.perf_counter() - began
    stub.wait_stop = timed_wait
    try:
        start = time.monotonic()
        machine.run(seconds)
        elapsed = time.monotonic() - start
    finally:
        del stub.wait_stop
    hits = script.variable("hits")
    machine.detach()
    return hits / elapsed, (elapsed - waiting[0]) / max(1, hits)


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
    parser.add_argument("--windows", type=int, default=3, help="pairs of slowdown windows")
    args = parser.parse_args()
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels:
        sys.exit("bench_qemu: no kernel in /boot (apt-get install linux-image-amd64)")
    with tempfile.TemporaryDirectory() as tmp:
        vm = Path(tmp)
        build_initramfs(vm / "initramfs.gz", loop=LOOP)

        # 1. Breakpoint firings against bare stop/resume cycles, on a guest whose idle
        #    VCPU polls (idle=poll), so the probe point is reached again at once.
        machine = boot(vm, kernels[-1], "console=ttyS0 nokaslr quiet idle=poll")
        try:
            bare = bare_cycles(machine, args.seconds)
            pause = idle_poll_pause(machine)
            hot, service = probe_rate(machine, args.seconds, f"{pause:#x}")
        finally:
            machine.close()
        print(f"gdbstub bare stop/resume cycles: {bare:8.0f} /s  ({1e6 / bare:.0f} us a cycle)")
        print(f"breakpoint probe firings:        {hot:8.0f} /s  ({hot / bare:.0%} of the bare rate; target at "
              f"least 50%) at GUEST:{pause:#x}, the pause in the polling idle loop")
        capacity = 1 / (1 / bare + service)
        print(f"  backend time per firing:       {service * 1e6:8.0f} us (registers, 8 bytes of memory, RIP past "
              f"the no-op, continue); with it alone a firing cycle would run {capacity:.0f} /s = "
              f"{capacity / bare:.0%} of the bare rate")
        print("  the rest is QEMU 7.2: every breakpoint stop flushes its whole translation cache, and the guest "
              "re-translates before it reaches the probe point again")

        # 2. A realistic probe, and the guest's slowdown with a 1 Hz probe (ordinary idle).
        machine = boot(vm, kernels[-1], "console=ttyS0 nokaslr quiet")
        try:
            progress = Progress(machine.config.console)
            machine.run(1.0)
            start = time.monotonic()
            fired, service = probe_rate(machine, args.seconds)
            loop_rate = progress.rate(start + 0.2, time.monotonic())
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
            for _ in range(args.windows):
                start = time.monotonic()
                machine.run(args.seconds)
                base_rates.append(progress.rate(start + 0.2, time.monotonic()))
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
            progress.stop()
        finally:
            machine.close()
        base, probed = statistics.fmean(base_rates), statistics.fmean(probe_rates)
        print(f"GUEST:do_filp_open firings:      {fired:8.0f} /s  on the guest's open loop ({loop_rate:.0f} "
              f"iterations/s while probed, {base:.0f} without); backend time {service * 1e6:.0f} us a firing")
        slowdown = (base - probed) / base if base else float("nan")
        print(f"guest loop without probes:       {base:8.0f} iterations/s "
              f"(windows: {', '.join(f'{r:.0f}' for r in base_rates)})")
        print(f"guest loop with VMM1Hz loaded:   {probed:8.0f} iterations/s "
              f"(windows: {', '.join(f'{r:.0f}' for r in probe_rates)})")
        print(f"slowdown with a 1 Hz probe:      {slowdown:8.2%}  (target under 1%; loop-rate windows are noisy)")
        print(f"  VM held stopped by the probe:  {paused[0] / paused[1]:8.3%} of the time "
              f"({paused[0] * 1e3 / paused[1]:.2f} ms a second: interrupt, both VCPUs' registers, printf, continue)")


if __name__ == "__main__":
    main()
