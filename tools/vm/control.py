"""Talking to a VM that runs in the background: its files, its control socket, the protocol.

Files, in the VM's directory beside NAME.vmx:

    NAME.vmrun.sock   the control socket (a Unix socket, mode 0600)
    NAME.vmrun.pid    the daemon's "PID STARTTIME" (STARTTIME from /proc: a reused pid is not it),
                      and for a QEMU VM a second line "vm PID STARTTIME": the QEMU process
    NAME.vmrun.log    the daemon's own messages

Only the user who started a VM can control it: the socket is 0600, the client
refuses a socket or pid file another user owns, and the daemon checks each
peer's uid.  A pid file or socket left by a daemon that died is stale: it is
detected (the pid is gone, or is another process) and removed.

The protocol: newline-delimited JSON objects over the socket, one request per
connection.  The client sends `{"op": OP, ...}`; the daemon answers one
`{"ok": true, ...}` or `{"ok": false, "error": MESSAGE}` line.  Strings that
carry script text or log text hold bytes as Latin-1 characters.

    ping                        -> pid, vmx, script (a description or null)
    version                     -> version, enabled
    probes / globals            -> rows (lists of strings)
    symbols                     -> text (the guest symbols: /proc/kallsyms or WinDbg x format)
    preload                     -> text (the guest's Emmett preload, or null: the compiler's default)
    syscalls                    -> names ([[NUMBER, NAME], ...]: vprobe.syscalls, or the guest kernel's table)
    load  sources=[{name,text}] [stream] [duration] [library]
                                -> warnings, costs (a failed load: error, diagnostics)
    loaded                      -> script (its description), costs (a script must be loaded)
    reset                       -> unloaded (whether a script was loaded) [lost]
    stop                        -> the VM powers off after answering

`costs` are rows [probe, FILE:LINE:COL, the most VP operations a firing of it
executes]; `lost` says how many lines of the script's log the VM's log file
could not take (a full disk), when there were any.

A `load` with `"stream": true` keeps the connection: the daemon then sends
`{"event": "log", "data": TEXT}` for each write of the script's log,
`{"event": "tick"}` every second of silence, and finally
`{"event": "unloaded", "reason": R}` (R: "unload", "duration", "reset",
"replaced", "stopped", "disconnected", "crashed"; and `lost`, as above) once
the script is unloaded and its last output sent.  The client may send `{"op": "unload"}` on that
connection; closing it unloads the script too.  With `duration` the daemon
unloads the script after that many simulated seconds (real seconds on a
QEMU VM).

Every socket operation has a timeout (`TIMEOUT_S`; a stream that is silent
for `STALL_S`, ticks included, is dead).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

TIMEOUT_S = 10.0
STALL_S = 10.0
TICK_S = 1.0
MAX_MESSAGE = 16 << 20
_SHORT_SOCKET_PATH = 100  # sun_path holds 108 bytes


class NotRunning(ToolError):
    """The VM is not running (any stale files it left have been removed)."""


class NotResponding(ToolError):
    """The VM's daemon is alive but does not answer."""


@dataclass(frozen=True)
class VMPaths:
    vmx: Path  # absolute

    @property
    def directory(self) -> Path:
        return self.vmx.parent

    def _beside(self, suffix: str) -> Path:
        return self.directory / f"{self.vmx.stem}.vmrun.{suffix}"

    @property
    def socket(self) -> Path:
        return self._beside("sock")

    @property
    def pidfile(self) -> Path:
        return self._beside("pid")

    @property
    def logfile(self) -> Path:
        return self._beside("log")


def vm_paths(vmx: str | Path) -> VMPaths:
    return VMPaths(Path(os.path.abspath(vmx)))


# ---- messages ------------------------------------------------------------------------------------

def encode(message: dict) -> bytes:
    return (json.dumps(message, ensure_ascii=True) + "\n").encode("ascii")


def decode(line: bytes) -> dict:
    message = json.loads(line.decode("utf-8", "replace"))
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message


class LineReader:
    """JSON lines from a socket, each read bounded by a timeout and `MAX_MESSAGE` bytes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = b""

    def read(self, timeout: float) -> dict | None:
        """The next message; None when the peer closed.  Raises socket.timeout, OSError, ValueError."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_MESSAGE:
                raise ValueError("message too long")
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return decode(line)


# ---- processes -------------------------------------------------------------------------------------

def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def process_start_time(pid: int) -> str:
    """The kernel's start time of process `pid` ("" where /proc cannot tell)."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def pid_alive(pid: int, start: str) -> bool:
    """Whether process `pid` runs and is the one that started at `start` (not a reused pid)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # gone, or another user's process: not our daemon
    fields = _proc_stat(pid)
    if fields is None:
        return not os.path.isdir("/proc/self")
    if fields[0] in ("Z", "X"):
        return False
    return not start or (len(fields) > 19 and fields[19] == start)


def check_vm_directory(paths: VMPaths) -> None:
    """The VM's directory must be this user's and not writable by everyone, unless it is sticky:
    it holds the socket, and other users must not be able to replace the VM's files there.
    (In a sticky directory they can still plant files under the VM's names before it starts;
    every one of them is opened as `machine.owned_files` opens, which refuses what was planted.)"""
    directory = paths.directory
    try:
        st = os.stat(directory)
    except OSError as e:
        raise ToolError(f"cannot use the VM directory {directory}: {e.strerror or e}") from None
    if st.st_uid != os.getuid():
        raise ToolError(f"the VM directory {directory} belongs to another user (uid {st.st_uid}): "
                        f"a VM runs in the background only from a directory of yours")
    if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
        raise ToolError(f"the VM directory {directory} is writable by every user: "
                        f"its control socket would not be safe there (chmod o-w {directory})")


def write_pidfile(path: Path) -> None:
    """Create the pid file for this process; FileExistsError if there is one (or a link)."""
    from machine.owned_files import create_new  # the commands' help does not load the machine

    fd = create_new(path, "the pid file")
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()} {process_start_time(os.getpid())}\n")


def record_vm_process(paths: VMPaths, pid: int) -> None:
    """Add the VM's own process (QEMU) to this daemon's pid file, as its second line."""
    from machine.owned_files import create_new

    path = paths.pidfile
    first = _pidfile_lines(path)[0]
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    check_owned(tmp, "a temporary pid file")
    remove_quietly(tmp)  # one of ours, left by a daemon that had this pid
    fd = create_new(tmp, "a temporary pid file")
    with os.fdopen(fd, "w") as f:
        f.write(f"{first}\nvm {pid} {process_start_time(pid)}\n")
    os.replace(tmp, path)


def _pidfile_lines(path: Path) -> list[str] | None:
    """The lines of a pid file, None if there is none; ToolError if it is not one of ours."""
    from machine.owned_files import UnusableFile, read_owned

    try:
        data = read_owned(path, "the pid file")
    except UnusableFile as e:
        raise ToolError(str(e)) from None
    return None if data is None else data.decode("ascii", "replace").splitlines() or [""]


def read_vm_process(path: Path) -> tuple[int, str] | None:
    """The VM process (QEMU) a pid file names: (pid, start time), or None."""
    try:
        lines = _pidfile_lines(path) or []
    except ToolError:
        return None
    for line in lines[1:]:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "vm" and parts[1].isdigit() and int(parts[1]) > 0:
            return int(parts[1]), parts[2] if len(parts) > 2 else ""
    return None


def end_process(pid: int, start: str, timeout: float) -> bool:
    """End process `pid` (if it is still the one that started at `start`): SIGTERM, then SIGKILL.

    True once it is gone."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not pid_alive(pid, start):
            return True
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if wait_gone(pid, start, timeout / 2):
            return True
    return not pid_alive(pid, start)


def read_pidfile(path: Path) -> tuple[int, str] | None:
    """(pid, start time) from a pid file ((0, "") if it holds no pid); None if there is none."""
    lines = _pidfile_lines(path)
    if lines is None:
        return None
    parts = lines[0].split()
    if not parts or not parts[0].isdigit():
        return (0, "")
    return int(parts[0]), parts[1] if len(parts) > 1 else ""


def check_owned(path: Path, what: str) -> os.stat_result | None:
    """lstat `path` (None if absent); it must be this user's, and no symbolic link."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ToolError(cannot_look(path, what, e)) from None
    if stat.S_ISLNK(st.st_mode):
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        raise ToolError(f"{what} {path} is a symbolic link{target}, not a file a VM made: refusing to use it "
                        f"(remove it; another user may have planted it)")
    if st.st_uid != os.getuid():
        raise ToolError(f"{what} {path} belongs to another user (uid {st.st_uid}): only the user who started "
                        f"a VM can control it, and no VM of yours can run under that name there")
    return st


def cannot_look(path: Path, what: str, error: OSError) -> str:
    """Why `path` cannot be looked at, saying whose its directory is when that is the reason."""
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        try:
            st = os.stat(path.parent)
            reason += (f": its directory {path.parent} is uid {st.st_uid}'s, mode {stat.S_IMODE(st.st_mode):04o} "
                       f"(only the user who started a VM can control it)")
        except OSError:
            pass
    return f"cannot look at {what} {path}: {reason}"


def daemon_pid(paths: VMPaths) -> int | None:
    """The pid of the VM's live daemon; a stale pid file is removed."""
    if check_owned(paths.pidfile, "the pid file") is None:
        return None
    found = read_pidfile(paths.pidfile)
    if found is not None and found[0] > 0 and pid_alive(*found):
        return found[0]
    remove_quietly(paths.pidfile)
    return None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def clean_stale(paths: VMPaths) -> bool:
    """Remove what a dead daemon left; True if the VM's daemon is alive."""
    if daemon_pid(paths) is not None:
        return True
    st = check_owned(paths.socket, "the control socket")
    if st is not None and stat.S_ISSOCK(st.st_mode):
        remove_quietly(paths.socket)
    return False


# ---- the socket --------------------------------------------------------------------------------------

@contextlib.contextmanager
def socket_address(path: Path):
    """An address for the socket at `path` that fits in sun_path (via /proc/self/fd when it is long)."""
    if len(os.fsencode(str(path))) < _SHORT_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def connect(paths: VMPaths, timeout: float = TIMEOUT_S) -> socket.socket:
    """A connection to the VM's daemon.  Raises NotRunning or NotResponding."""
    name = paths.vmx.name
    st = check_owned(paths.socket, "the control socket")
    if st is not None and not stat.S_ISSOCK(st.st_mode):
        raise ToolError(f"the control socket {paths.socket} is not a socket but a "
                        f"{_file_kind(st)}: no VM made it (remove it)")
    if st is None:
        if clean_stale(paths):
            raise NotResponding(f"the VM {name} is starting or stopping (no control socket yet)")
        raise NotRunning(f"the VM {name} is not running")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with socket_address(paths.socket) as address:
            sock.connect(address)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        if clean_stale(paths):
            raise NotResponding(f"the VM {name} does not accept connections on {paths.socket}") from None
        raise NotRunning(f"the VM {name} is not running (removed the files it left behind)") from None
    except socket.timeout:
        sock.close()
        raise NotResponding(f"the VM {name} does not answer (timed out connecting)") from None
    except OSError as e:
        sock.close()
        raise ToolError(f"cannot connect to the VM {name}: {e.strerror or e}") from None
    return sock


def _file_kind(st: os.stat_result) -> str:
    mode = st.st_mode
    for test, kind in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "file of another kind"


def request(paths: VMPaths, message: dict, timeout: float = TIMEOUT_S) -> dict:
    """Send one request, return the answer (whose "ok" the caller checks)."""
    sock = connect(paths, timeout)
    try:
        sock.sendall(encode(message))
        answer = LineReader(sock).read(timeout)
    except socket.timeout:
        raise NotResponding(f"the VM {paths.vmx.name} does not answer (timed out)") from None
    except (OSError, ValueError) as e:
        raise ToolError(f"lost the connection to the VM {paths.vmx.name}: {e}") from None
    finally:
        sock.close()
    if answer is None:
        raise ToolError(f"the VM {paths.vmx.name} closed the connection without answering")
    return answer


def checked(answer: dict) -> dict:
    """`answer` if it says ok; else a ToolError with its message."""
    if answer.get("ok"):
        return answer
    raise ToolError(str(answer.get("error", "the VM refused the request")))


# ---- the list of running VMs -----------------------------------------------------------------------

def registry_dir() -> Path:
    """Where running VMs are listed for `vmrun list` ($VMRUN_STATE_DIR overrides)."""
    explicit = os.environ.get("VMRUN_STATE_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "vprobes-vmrun"


def _registry(create: bool) -> Path | None:
    directory = registry_dir()
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ToolError(f"the list of running VMs {directory} must be a directory of yours that only you can write")
    return directory


def _entry(directory: Path, paths: VMPaths) -> Path:
    return directory / (hashlib.sha256(os.fsencode(str(paths.vmx))).hexdigest()[:20] + ".vm")


def register(paths: VMPaths) -> None:
    directory = _registry(create=True)
    entry = _entry(directory, paths)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(str(paths.vmx) + "\n", encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, entry)


def unregister(paths: VMPaths) -> None:
    with contextlib.suppress(OSError, ToolError):
        directory = _registry(create=False)
        if directory is not None:
            remove_quietly(_entry(directory, paths))


def running_vms() -> list[Path]:
    """The .vmx files of the VMs running now; entries of VMs that died are removed."""
    directory = _registry(create=False)
    if directory is None:
        return []
    found = []
    for entry in sorted(directory.glob("*.vm")):
        try:
            vmx = Path(entry.read_text(encoding="utf-8", errors="surrogateescape").strip())
        except OSError:
            continue
        paths = vm_paths(vmx)
        try:
            alive = clean_stale(paths)
        except ToolError:
            alive = False
        if alive:
            found.append(vmx)
        else:
            remove_quietly(entry)
    return sorted(found)


def wait_gone(pid: int, start: str, timeout: float) -> bool:
    """Wait up to `timeout` seconds for process `pid` to end; True if it did."""
    import time

    deadline = time.monotonic() + timeout
    while pid_alive(pid, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

