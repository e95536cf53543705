"""Starting and stopping a QEMU process for a VM the machine boots itself."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ..owned_files import open_truncated
from .config import QemuConfig
from .rsp import Address

__all__ = ["QemuProcess", "find_qemu", "kvm_usable"]


def find_qemu(binary: str = "qemu-system-x86_64") -> str | None:
    return shutil.which(binary)


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def _ended_with(parent: int):
    """What the child runs before QEMU: ask Linux to send it SIGTERM when `parent` dies, however it
    dies (a SIGKILLed `vprobe` must not leave a VM running).  Everything is looked up before the fork.

    Linux ties this to the thread that started QEMU, not the process: machines must be powered on
    by a thread that lives as long as they do (the commands and the VM daemon use their main thread).
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: QEMU outlives a killed parent there
        return None
    pr_set_pdeathsig = 1

    def in_child() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
    return in_child


class QemuProcess:
    """`qemu-system-x86_64` booting `config.kernel`, paused at reset (-S).

    Its gdbstub listens on a Unix socket in a directory only this user can
    enter (anyone who reaches a gdbstub controls the VM; a loopback TCP port is
    open to every local user, and answers more slowly), or on the TCP port
    `qemu.gdbPort` names.
    """

    def __init__(self, config: QemuConfig, accel: str | None = None):
        """`accel` overrides `config.accel` (auto is resolved here: kvm when /dev/kvm is usable)."""
        binary = find_qemu(config.binary)
        if binary is None:
            raise FileNotFoundError(f"{config.binary} is not installed (Debian: apt-get install qemu-system-x86)")
        self.console = Path(config.console) if config.console else None
        if self.console is not None:
            self.console.parent.mkdir(parents=True, exist_ok=True)
            # Emptied here, and only if it is this user's file (a link planted in a shared
            # directory must not make QEMU truncate what it points to); QEMU then opens it by name.
            os.close(open_truncated(self.console, "the VM's console log"))
        self._socket_dir = None
        if config.gdb_port:
            self.gdb_address: Address = ("127.0.0.1", config.gdb_port)
            gdb = ["-gdb", f"tcp:127.0.0.1:{config.gdb_port}"]
        else:
            self._socket_dir = tempfile.mkdtemp(prefix="vprobe-qemu-")  # mode 0700
            self.gdb_address = os.path.join(self._socket_dir, "gdb.sock")
            path = self.gdb_address.replace(",", ",,")  # QEMU's option syntax
            gdb = ["-chardev", f"socket,id=vprobe-gdb,path={path},server=on,wait=off", "-gdb", "chardev:vprobe-gdb"]
        accel = accel or config.accel
        if accel == "auto":
            accel = "kvm" if kvm_usable() else "tcg"
        self.accel = accel
        accel_arg = f"tcg,tb-size={config.tb_size_mb}" if accel == "tcg" and config.tb_size_mb else accel
        args = [binary, "-accel", accel_arg, "-m", str(config.memsize_mb), "-smp", str(config.numvcpus),
                "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
                "-kernel", str(config.kernel), "-append", config.command_line,
                *gdb, "-S"]
        if config.initrd:
            args += ["-initrd", str(config.initrd)]
        args += ["-serial", f"file:{self.console}" if self.console is not None else "null"]
        args += list(config.extra_args)
        self.args = args
        # QEMU's messages go to an unlinked file, not a pipe: nobody reads them while
        # it runs, and a full pipe would stall the VM.
        self.messages = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.messages, start_new_session=True,
                                         preexec_fn=_ended_with(os.getpid()))
        except BaseException:
            self._remove_socket_dir()
            self.messages.close()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self) -> str:
        """What QEMU said when it exited early."""
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        if self.messages.closed:
            return ""
        self.messages.seek(0)
        return self.messages.read().decode("utf-8", "replace").strip()

    def console_text(self) -> str:
        if self.console is None or not self.console.exists():
            return ""
        return self.console.read_bytes().decode("utf-8", "replace")

    def kill(self) -> None:
        """Power off: end QEMU (SIGTERM, then SIGKILL) and reap it."""
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.messages.close()
        self._remove_socket_dir()

    def _remove_socket_dir(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
