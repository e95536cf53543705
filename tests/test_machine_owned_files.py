"""A VM's files in a directory others may write: never through a link, never another
user's file, never a FIFO; and the log file that survives a write error."""

from __future__ import annotations

import os
import stat

import pytest

from machine import owned_files
from machine.owned_files import UnusableFile
from machine.qemu.config import QemuConfig
from machine.qemu.process import QemuProcess
from vprobe_tools.errors import ToolError
from vprobe_tools.vm import control
from vprobe_tools.vm.log_file import LogFile


def test_a_new_log_is_created_private_and_appended_to(tmp_path):
    path = tmp_path / "vprobe.out"
    fd = owned_files.open_append(path, "the log")
    os.write(fd, b"one\n")
    os.close(fd)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    fd = owned_files.open_append(path, "the log")
    os.write(fd, b"two\n")
    os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"


def test_a_link_is_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = tmp_path / "vprobe.out"
    link.symlink_to(victim)
    with pytest.raises(UnusableFile, match=f"the log {link} is a symbolic link \\(to {victim}\\): refusing"):
        owned_files.open_append(link, "the log")
    with pytest.raises(UnusableFile, match="is a symbolic link"):
        owned_files.read_owned(link, "the pid file")
    with pytest.raises(UnusableFile, match="is a symbolic link"):
        owned_files.open_truncated(link, "the console log")
    with pytest.raises(FileExistsError):
        owned_files.create_new(link, "the pid file")
    assert victim.read_text() == "precious\n"


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "vprobe.out"
    os.mkfifo(fifo)
    for open_it in (lambda: owned_files.open_append(fifo, "the log"), lambda: owned_files.read_owned(fifo, "x")):
        with pytest.raises(UnusableFile, match="is not a regular file"):
            open_it()


def test_another_users_file_and_a_hard_link_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "vprobe.out"
    path.write_text("")
    os.link(path, tmp_path / "other-name")
    with pytest.raises(UnusableFile, match="has 2 hard links"):
        owned_files.open_append(path, "the log")
    os.unlink(tmp_path / "other-name")
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 1)  # every file now looks like another user's
    with pytest.raises(UnusableFile, match=f"belongs to another user \\(uid {me}\\)"):
        owned_files.open_append(path, "the log")
    with pytest.raises(ToolError, match="belongs to another user"):
        control.check_owned(path, "the pid file")


def test_a_character_device_is_a_log_but_not_a_pid_file():
    os.close(owned_files.open_append("/dev/null", "the log"))
    with pytest.raises(UnusableFile, match="is not a regular file"):
        owned_files.read_owned("/dev/null", "the pid file")


def test_a_pid_file_that_is_not_ours_is_refused_by_name(tmp_path):
    paths = control.vm_paths(tmp_path / "vm.vmx")
    paths.pidfile.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ToolError, match=f"the pid file {paths.pidfile} is a symbolic link"):
        control.daemon_pid(paths)
    assert paths.pidfile.is_symlink()  # left for its owner to see, not silently removed


def test_the_log_file_survives_a_device_that_is_full():
    reports = []
    log = LogFile("/dev/full", reports.append)
    for _ in range(3):
        log.write("a line\n")
    log.write("two\nlines\n")
    log.write("part")
    assert reports == ["cannot write the VM's log /dev/full: No space left on device; its lines are dropped "
                       "(and counted) while writing fails"]
    assert log.take_losses() == "6 lines of the log could not be written to /dev/full (No space left on device)"
    assert log.take_losses() is None
    log.write("again\n")
    assert len(reports) == 2  # the next script is told again
    log.close()


def test_a_file_is_emptied_only_once_it_is_known_to_be_ours(tmp_path):
    path = tmp_path / "console.log"
    path.write_text("old boot\n")
    os.close(owned_files.open_truncated(path, "the console log"))
    assert path.read_text() == ""
    os.close(owned_files.open_truncated(tmp_path / "new.log", "the console log"))
    assert (tmp_path / "new.log").exists()


def test_a_qemu_vm_does_not_truncate_through_a_planted_console_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "guest.console.log").symlink_to(victim)
    config = QemuConfig(path=tmp_path / "guest.vmx", directory=tmp_path, display_name="guest",
                        kernel=tmp_path / "vmlinuz", binary="true")
    with pytest.raises(UnusableFile, match="the VM's console log .* is a symbolic link"):
        QemuProcess(config)
    assert victim.read_text() == "precious\n"
