"""`vmrun createGuest` without booting: the files it writes, the workloads' contents, its refusals."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from machine.qemu import read_qemu_vmx
from machine.qemu.guest_builder import WORKLOADS, GuestBuildError, create_guest
from vprobe_tools.commands.vmrun import command as vmrun


def cpio_names(path: Path) -> dict[str, int]:
    """name -> mode of each entry of a gzip-compressed newc archive."""
    data = gzip.decompress(path.read_bytes())
    names, at = {}, 0
    while True:
        fields = [int(data[at + 6 + 8 * i:at + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        start = at + 110
        name = data[start:start + name_size - 1].decode()
        if name == "TRAILER!!!":
            return names
        names[name] = mode
        at = start + name_size
        at += -at % 4
        at += size + (-(at + size) % 4)


@pytest.fixture
def host(tmp_path):
    """A stand-in kernel and busybox (nothing boots here)."""
    kernel = tmp_path / "vmlinuz-test"
    kernel.write_bytes(b"not really a kernel")
    return kernel


needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None and not Path("/bin/busybox").exists(),
                                   reason="no busybox (apt-get install busybox-static)")


@needs_busybox
@pytest.mark.parametrize("workload", ["idle", "files", "server"])
def test_a_guest_is_a_vmx_and_an_initramfs_with_its_workload(tmp_path, host, workload):
    vmx, initrd = create_guest(tmp_path / "vms" / "web.vmx", workload=workload, kernel=host, vcpus=1, memory_mb=256)
    assert initrd == tmp_path / "vms" / "web.initramfs.gz"
    config = read_qemu_vmx(vmx)
    assert (config.display_name, config.numvcpus, config.memsize_mb) == ("web", 1, 256)
    assert config.kernel == host.resolve() and config.initrd == initrd
    assert config.load_at == "running" and config.accel == "tcg" and config.vprobe_enable
    names = cpio_names(initrd)
    assert {"init", "loop.sh", "bin/busybox", "bin/sh", "proc", "sys", "dev"} <= set(names)
    loop = gzip.decompress(initrd.read_bytes())
    assert WORKLOADS[workload].loop.encode() in loop
    for name, _ in WORKLOADS[workload].files:
        assert name in names and name.rsplit("/", 1)[0] in names  # with its directory
    if workload == "server":
        assert {"bin/httpd", "bin/wget", "bin/ifconfig"} <= set(names)


@needs_busybox
def test_the_compile_workload_brings_tcc_and_its_shared_libraries(tmp_path, host):
    if shutil.which("tcc") is None:
        pytest.skip("no tcc (apt-get install tcc)")
    _, initrd = create_guest(tmp_path / "c.vmx", workload="compile", kernel=host)
    names = cpio_names(initrd)
    assert "bin/tcc" in names and "src/work.c" in names
    assert any(name.endswith("/libc.so.6") for name in names)
    assert any("ld-linux" in name for name in names)


@needs_busybox
def test_what_is_in_the_way_or_missing_is_a_plain_error(tmp_path, host, monkeypatch):
    create_guest(tmp_path / "a.vmx", kernel=host)
    with pytest.raises(GuestBuildError, match=r"a.vmx exists \(--force replaces it\)"):
        create_guest(tmp_path / "a.vmx", kernel=host)
    create_guest(tmp_path / "a.vmx", kernel=host, workload="idle", force=True)
    with pytest.raises(GuestBuildError, match="unknown workload 'busy'"):
        create_guest(tmp_path / "b.vmx", kernel=host, workload="busy")
    with pytest.raises(GuestBuildError, match="no kernel at"):
        create_guest(tmp_path / "b.vmx", kernel=tmp_path / "none")
    with pytest.raises(GuestBuildError, match="ends in .vmx"):
        create_guest(tmp_path / "b.txt", kernel=host)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GuestBuildError, match=r"needs tcc on this host \(Debian: apt-get install tcc\)"):
        create_guest(tmp_path / "c.vmx", kernel=host, workload="compile")
    assert not (tmp_path / "b.vmx").exists() and not (tmp_path / "c.vmx").exists()


@needs_busybox
def test_vmrun_create_guest_prints_the_two_paths_or_an_error(tmp_path, host):
    runner = CliRunner()
    vmx = tmp_path / "g.vmx"
    made = runner.invoke(vmrun, ["createGuest", str(vmx), "--kernel", str(host), "--workload", "IDLE"])
    assert made.exit_code == 0, made.output
    assert made.stdout.split() == [str(vmx), str(tmp_path / "g.initramfs.gz")]
    again = runner.invoke(vmrun, ["createGuest", str(vmx), "--kernel", str(host)])
    assert again.exit_code == 1 and "vmrun: Error: " in again.stderr and "--force" in again.stderr
    bad = runner.invoke(vmrun, ["createGuest", str(vmx), "--vcpus", "0"])
    assert bad.exit_code == 2
