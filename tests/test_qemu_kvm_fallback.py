"""A /dev/kvm that does not run guests: `auto` boots under TCG with a warning, `kvm` fails saying why.

QEMU and its gdbstub are stand-ins here: a VM "under KVM" whose VCPU stays at
the reset vector (what such a host shows: nothing ever runs), or one that
reaches the kernel's code.  The machine decides from the VCPU's RIP alone.
"""

from __future__ import annotations

import pytest

from machine.qemu import QemuError, machine as qemu_machine
from machine.qemu.config import parse_qemu_vmx
from machine.qemu.gdbstub import StopReply
from machine.qemu.kernel import KERNEL_SPACE

RESET_RIP = 0xFFF0


class FakeStub:
    threads = [1]

    def __init__(self, runs: bool):
        self.rip = RESET_RIP
        self.runs = runs
        self.continued = 0
        self.closed = False
        self.rsp = self

    def take_unsolicited(self) -> None:
        pass

    def cont(self) -> None:
        self.continued += 1
        if self.runs and self.continued >= 3:  # the kernel's code after a few looks
            self.rip = KERNEL_SPACE + 0x1000

    def stop(self) -> StopReply:
        return StopReply(signal=2, thread=1, watch=None, raw=b"T02")

    def read_registers(self, thread: int) -> bytes:
        return self.rip.to_bytes(8, "little")

    def register(self, block: bytes, name: str) -> int:
        assert name == "rip"
        return int.from_bytes(block, "little")

    def close(self) -> None:
        self.closed = True


class FakeProcess:
    started: list[str] = []

    def __init__(self, config, accel: str | None = None):
        self.accel = accel or ("kvm" if config.accel in ("kvm", "auto") else "tcg")
        self.gdb_address = self.accel
        self.killed = False
        FakeProcess.started.append(self.accel)

    def kill(self) -> None:
        self.killed = True


def boot(monkeypatch, tmp_path, accel: str, kvm_runs: bool, load_at: str = "running"):
    """Run the machine's boot step alone: (the machine, the stubs it connected to)."""
    (tmp_path / "bzImage").write_bytes(b"")
    config = parse_qemu_vmx(f'qemu.kernel = "bzImage"\nqemu.accel = "{accel}"\nqemu.loadAt = "{load_at}"\n',
                            tmp_path / "vm.vmx")
    FakeProcess.started = []
    stubs = []

    def connect(self, address, timeout):
        stubs.append(FakeStub(runs=kvm_runs and address == "kvm"))
        return stubs[-1]

    monkeypatch.setattr("machine.qemu.process.QemuProcess", FakeProcess)
    monkeypatch.setattr(qemu_machine.QemuMachine, "_connect", connect)
    monkeypatch.setattr(qemu_machine, "KVM_PROGRESS_S", 0.05)
    monkeypatch.setattr(qemu_machine, "KVM_POLL_S", 0.001)
    machine = qemu_machine.QemuMachine.__new__(qemu_machine.QemuMachine)
    machine.config, machine.warnings = config, []
    machine._boot(1.0)
    return machine, stubs


def test_auto_falls_back_to_tcg_with_a_warning_when_the_guest_never_runs_under_kvm(monkeypatch, tmp_path):
    machine, stubs = boot(monkeypatch, tmp_path, "auto", kvm_runs=False)
    assert FakeProcess.started == ["kvm", "tcg"]
    assert machine.process.accel == "tcg" and machine.stub is stubs[-1]
    assert stubs[0].closed and stubs[0].continued >= 2  # the KVM VM was given its time, then dropped
    assert len(machine.warnings) == 1
    assert "KVM made no progress in 0.05 s" in machine.warnings[0] and "under TCG" in machine.warnings[0]


def test_kvm_asked_for_fails_with_a_message_saying_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(QemuError) as err:
        boot(monkeypatch, tmp_path, "kvm", kvm_runs=False)
    message = str(err.value)
    assert message.startswith('qemu.accel = "kvm": the guest made no progress under KVM in 0.05 s')
    assert 'use qemu.accel = "tcg"' in message
    assert FakeProcess.started == ["kvm"]


@pytest.mark.parametrize("load_at, started", [("running", ["kvm"]), ("reset", ["kvm", "kvm"])])
def test_a_working_kvm_is_kept_and_booted_again_from_reset_to_trace_the_boot(monkeypatch, tmp_path, load_at,
                                                                           started):
    machine, stubs = boot(monkeypatch, tmp_path, "auto", kvm_runs=True, load_at=load_at)
    assert FakeProcess.started == started
    assert machine.process.accel == "kvm" and not machine.warnings


def test_tcg_is_not_checked(monkeypatch, tmp_path):
    machine, stubs = boot(monkeypatch, tmp_path, "tcg", kvm_runs=False)
    assert FakeProcess.started == ["tcg"] and stubs[0].continued == 0 and not machine.warnings


def test_vprobe_shows_what_powering_the_vm_on_found(monkeypatch):
    import io

    from vprobe_tools.commands.vprobe import run as vprobe_run
    from vprobe_tools.vm import targets

    power_on = targets.power_on

    def with_a_warning(config):
        machine = power_on(config)
        machine.warnings = ["KVM made no progress in 15 s (the guest's kernel never ran): booting under TCG"]
        return machine

    monkeypatch.setattr(targets, "power_on", with_a_warning)
    out, err = io.BytesIO(), io.BytesIO()
    status = vprobe_run(["-d", "1", "-c", 'VMMLoad { printf("loaded\\n"); }'], io.BytesIO(), out, err)
    assert status == 0 and set(out.getvalue().splitlines()) == {b"loaded"}  # on each VCPU
    assert err.getvalue().decode() == ("vprobe: warning: KVM made no progress in 15 s (the guest's kernel never "
                                       "ran): booting under TCG\n")
