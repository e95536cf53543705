""".vmx settings as the machine and the `vprobe` command honour them (the parser is tests/test_vmx.py's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from machine import SimulatedMachine, read_vmx
from machine.guest.kernel_image import SYSCALLS
from vp_runtime import VPLoadError, load
from vp_runtime.catalog import ALL_GLOBALS, STATIC_PROBES, VMCB_GLOBALS, VMCS_GLOBALS

from test_machine_support import run_script

VPROBE = Path(sys.executable).parent / "vprobe"
NUMVCPUS_SCRIPT = '(vprobe VMMLoad (printf "%d/%d\\n" VCPUID NUMVCPUS))\n'


def vprobe(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([str(VPROBE), *argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def write_vmx(directory: Path, name: str = "vm.vmx", **settings: str) -> Path:
    lines = ['.encoding = "UTF-8"', 'displayName = "test"', 'guestOS = "ubuntu-64"']
    lines += [f'{key} = "{value}"' for key, value in settings.items()]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


def vmx(tmp_path: Path, **settings: str) -> Path:
    return write_vmx(tmp_path, **{k.replace("__", "."): v for k, v in settings.items()})


def test_numvcpus_and_memsize_take_effect(tmp_path):
    config = read_vmx(vmx(tmp_path, numvcpus="3", memsize="256", vprobe__enable="TRUE"))
    m = SimulatedMachine(config)
    assert len(m.vcpus) == 3 and m.memory.size == 256 << 20
    text = NUMVCPUS_SCRIPT + '(vprobe VMXLoad (logint (getguestphys 0x10000000)))'
    run = run_script(text, 0.01, machine=m)
    assert "beyond the VM's memory" in run.lines[0]  # VMXLoad fires first, then VMMLoad per VCPU
    assert run.lines[1:] == ["0/3", "1/3", "2/3"]
    m.run(2)  # the guest boots and runs in that memory with three CPUs
    assert all(cpu.online for cpu in m.guest.cpus)


@pytest.mark.parametrize("vendor, offered, hidden", [("intel", VMCS_GLOBALS, VMCB_GLOBALS),
                                                      ("amd", VMCB_GLOBALS, VMCS_GLOBALS)])
def test_hv_vendor_chooses_vmcs_or_vmcb_globals(tmp_path, vendor, offered, hidden):
    m = SimulatedMachine(read_vmx(vmx(tmp_path, sim__hvVendor=vendor)))
    names = set(m.globals())
    assert {g.name for g in offered} <= names
    assert not {g.name for g in hidden} & names
    assert names | {g.name for g in hidden} == set(ALL_GLOBALS)


def test_guest_syms_file_overrides_symbol_resolution(tmp_path):
    probe = SimulatedMachine(read_vmx(vmx(tmp_path)))
    real = probe.guest.kernel.symbols
    (tmp_path / "syms.txt").write_text(
        f"{real['system_call']:016x} T entry_SYSCALL_64\n"
        f"{real['jiffies']:016x} D my_jiffies\n"
        f"{real['sys_getpid']:016x} T sys_getpid\n")
    m = SimulatedMachine(read_vmx(vmx(tmp_path, vprobe__guestSyms="syms.txt")))
    assert m.lookup_symbol("entry_SYSCALL_64") == real["system_call"]
    assert m.lookup_symbol("system_call") is None
    # `vprobe -p` offers the names the file gives.
    offered = {name for name, _ in m.probe_points() if name.startswith("GUEST")}
    assert offered == {"GUEST:entry_SYSCALL_64", "GUEST:sys_getpid", "GUEST_WRITE:my_jiffies",
                       "GUEST_READ:my_jiffies"}
    text = ('(vprobe GUEST:entry_SYSCALL_64 (printf "%d\\n" RAX))'
            '(vprobe VMX1Hz (printf "j %d\\n" (- (getguest "my_jiffies") (getguest "my_jiffies"))))')
    run = run_script(text, 2, machine=m)
    calls = [line for line in run.lines if not line.startswith("j ")]
    assert calls and all(int(n) in SYSCALLS for n in calls)
    assert run.lines.count("j 0") == 2
    # A name the file does not list is unknown, though the kernel has it.
    with pytest.raises(VPLoadError) as info:
        load("(vprobe GUEST:system_call (logint RAX))", m.load_config, backend=m)
    assert "system_call" in info.value.diagnostics[0].message
    out = []
    script = load('(vprobe VMX1Hz (logint (getguest "jiffies")))', m.load_config, backend=m, log_sink=out.append)
    m.attach(script)
    m.run(1)
    m.detach()
    assert "jiffies" in "".join(out) and "vprobe error" in "".join(out)


# ---- the vprobe command ------------------------------------------------------------------

def test_vprobe_writes_the_log_to_the_out_file(tmp_path):
    (tmp_path / "s.vp").write_text(NUMVCPUS_SCRIPT)
    path = vmx(tmp_path, numvcpus="4", vprobe__enable="TRUE", vprobe__outFile="logs.txt")
    result = vprobe("-d", "1", str(path), "s.vp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = "".join(f"{i}/4\n" for i in range(4))
    assert result.stdout == expected
    assert (tmp_path / "logs.txt").read_text() == expected
    assert not (tmp_path / "vprobe.out").exists()


def test_vprobe_runs_the_vp_file_when_no_script_is_given(tmp_path):
    (tmp_path / "boot.vp").write_text('(vprobe GUEST:0x7c00 (printf "dl=%x\\n" (& RDX 0xff)))\n')
    path = vmx(tmp_path, vprobe__enable="TRUE", vprobe__vpFile="boot.vp")
    result = vprobe("-d", "1", str(path), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "dl=80\n"), result.stderr
    assert (tmp_path / "vprobe.out").read_text() == "dl=80\n"  # the default log, beside the .vmx


def test_vprobe_refuses_a_vm_without_vprobe_enable(tmp_path):
    (tmp_path / "s.vp").write_text(NUMVCPUS_SCRIPT)
    path = vmx(tmp_path, vprobe__enable="FALSE")
    result = vprobe("-d", "1", str(path), "s.vp", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "not enabled" in result.stderr and 'vprobe.enable = "TRUE"' in result.stderr


def test_vprobe_refuses_when_the_host_does_not_allow_vprobes(tmp_path):
    (tmp_path / "s.vp").write_text(NUMVCPUS_SCRIPT)
    (tmp_path / "config").write_text('vprobe.allow = "FALSE"\n')
    result = vprobe("-d", "1", "--host-config", "config", "s.vp", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "not allowed" in result.stderr and "vprobe.allow" in result.stderr
    (tmp_path / "config").write_text('vprobe.allow = "TRUE"\n')
    result = vprobe("-d", "0.01", "--host-config", "config", "s.vp", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "0/2\n1/2\n")


@pytest.mark.parametrize("with_vmx", [False, True])
def test_vprobe_lists_probes_and_globals(tmp_path, with_vmx):
    argv = [str(vmx(tmp_path, sim__hvVendor="amd", vprobe__enable="TRUE"))] if with_vmx else []
    result = vprobe("-p", "-g", *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines()}
    # Table 3-3, VMX1Hz, and dynamic probes on the kernel's functions.
    assert set(STATIC_PROBES) | {"VMX1Hz", "GUEST:system_call", "GUEST:schedule", "GUEST:sys_getpid",
                                 "GUEST_WRITE:jiffies"} <= names
    assert "Guest_TripleFault" in names and "Disk_IOFinish" in names and "SMM_RSMPost" in names
    globals_ = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(\S+)\s+(integer|string)\s+(per-VCPU|per-PCPU|per-thread|per-probe|global)\s+.+",
                             line)
        if match:
            globals_[match.group(1)] = (match.group(2), match.group(3))
    vendor_hidden = {g.name for g in (VMCS_GLOBALS if with_vmx else VMCB_GLOBALS)}
    assert set(globals_) == set(ALL_GLOBALS) - vendor_hidden
    for name, (type_, scope) in globals_.items():
        assert (type_, scope) == (ALL_GLOBALS[name].type, ALL_GLOBALS[name].scope)
    assert globals_["TSC"] == ("integer", "per-PCPU") and globals_["PROBENAME"] == ("string", "per-probe")
