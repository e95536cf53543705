"""A VM that keeps running in the background (`vmrun start`): simulated, or real under QEMU.

    python -m vprobe_tools.vm.daemon [--ready-fd FD] [--host-config FILE] VM.vmx

One process, one thread: the machine runs in slices -- a simulated machine's
paced to the wall clock, a QEMU VM's in real time (`REALTIME_SLICE_S`; the VM
keeps running between them) -- and between slices the daemon serves its
control socket (protocol in `control`), so a request waits at most one
slice.  No socket operation can block it: connections are non-blocking,
every connection has a deadline, and a client that does not read its stream
is dropped.  A load's `duration` is simulated seconds on a simulated machine,
real seconds on a QEMU VM.  Scripts that call the guest helpers get the VM's
own VP library; `preload` answers the VM's own Emmett preload.

A script's log is appended to the VM's vprobe.out (or vprobe.outFile),
flushed line by line, and sent to the client that loaded it with a stream.
A load replaces the running script atomically: the new script is checked
and translated first, and only a script that loads replaces the old one
(whose unload probes fire, its last output going to its own client).
SIGTERM, SIGINT and SIGHUP power the VM off cleanly, as `stop` does (a QEMU
VM the daemon booted is powered off; one it attached to runs on).  The pid
file also names the QEMU process, so that `vmrun stop` can end it should the
daemon itself have to be killed.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback

from machine.vms import read_vm_config
from machine.vmx import VmxError, host_allows_vprobes

from ..errors import LoadFailed, ToolError, machine_failure
from ..scripts.sources import (SourceFile, cost_rows, load_program, machine_library, probe_summary, read_sources,
                               vp_program)
from . import control
from .control import TICK_S, TIMEOUT_S, VMPaths, encode
from .log_file import open_log_file
from .machine_info import global_rows, probe_rows, vm_symbol_text, vp_version
from .pacing import NS_PER_S, Pacer
from .targets import close_quietly, machine_warnings, power_on

MAX_BUFFERED = 32 << 20  # bytes a client may leave unread before it is dropped
DRAIN_S = 2.0  # how long a stopping VM waits to send what it still owes
REALTIME_SLICE_S = 0.05  # a QEMU VM runs this long between two looks at the socket
SERVE_S = 0.05  # a simulated machine runs at most this long (and one firing) between two looks at it


def log(message: str) -> None:
    """A line of the daemon's own log (its stderr, NAME.vmrun.log); a log that cannot be written
    (a full disk) loses the line, never the VM."""
    try:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} vm_daemon[{os.getpid()}]: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class Conn:
    """One control connection."""

    def __init__(self, daemon: "Daemon", sock: socket.socket):
        self.daemon = daemon
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        now = time.monotonic()
        self.deadline = now + TIMEOUT_S  # for the request (and, later, for unsent output)
        self.last_sent = now
        self.streaming = False  # follows a loaded script
        self.answered = False
        self.closing = False  # close once everything is sent
        self.closed = False

    def send(self, message: dict) -> None:
        if self.closed:
            return
        self.outbuf += encode(message)
        if len(self.outbuf) > MAX_BUFFERED:
            log("a client does not read its stream: dropped")
            self.close()
            return
        self.flush()

    def flush(self) -> None:
        if self.closed:
            return
        try:
            while self.outbuf:
                sent = self.sock.send(self.outbuf)
                if sent <= 0:
                    break
                del self.outbuf[:sent]
                self.last_sent = time.monotonic()
                self.deadline = self.last_sent + TIMEOUT_S
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close()
            return
        if not self.outbuf and self.closing:
            self.close()
            return
        self.daemon.watch(self, writing=bool(self.outbuf))

    def finish(self) -> None:
        """Close once the output is sent."""
        self.closing = True
        self.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.daemon.forget(self)
        try:
            self.sock.close()
        except OSError:
            pass


class Session:
    """A loaded script: where its log goes, and when it ends."""

    def __init__(self, daemon: "Daemon", conn: Conn | None, description: str):
        self.daemon = daemon
        self.conn = conn
        self.description = description
        self.loaded = None  # (program, script) once loaded: the unloaded event tells its firings
        self.until_ns: int | None = None
        self.costs: list = []  # its probes and their bounds (sources.cost_rows)
        self.script = None  # the loaded Script (whether it called exit())
        self.program = None  # its sources (where that call is in the user's files)

    def sink(self, text: str) -> None:
        self.daemon.log_file.write(text)
        if self.conn is not None:
            self.conn.send({"event": "log", "data": text})

    def end(self, reason: str, error: str | None = None, lost: str | None = None, where: str | None = None) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            message = {"event": "unloaded", "reason": reason}
            if error:
                message["error"] = error
            if where:
                message["where"] = where
            if lost:
                message["lost"] = lost
            if self.loaded is not None:
                message["probes"] = probe_summary(*self.loaded)
            conn.send(message)
            conn.finish()


class Daemon:
    def __init__(self, config, paths: VMPaths, host_config: str | None):
        self.config = config
        self.paths = paths
        self.host_config = host_config
        self.machine = power_on(config)
        self.realtime = bool(self.machine.realtime)
        self.started = time.monotonic()
        self._library: SourceFile | None = None
        self.machine_closed = False
        try:
            self.log_file = open_log_file(config.out_file, log)
        except ToolError:
            self.close_machine()
            raise
        self.selector = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.conns: set[Conn] = set()
        self.session: Session | None = None
        self.pacer = Pacer()
        self.stopping = False
        self.status = 0

    # ---- the socket ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Create the control socket, mode 0600 (from the umask: a chmod by name could follow a link)."""
        path = self.paths.socket
        if control.check_owned(path, "the control socket") is not None:  # no link, no other user's file
            control.remove_quietly(path)  # we hold the pid file: a socket here is stale
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with control.socket_address(path) as address:
                sock.bind(address)  # never follows a link: fails if anything is there
        except OSError as e:
            sock.close()
            raise ToolError(f"cannot create the control socket {path}: {e.strerror or e}") from None
        finally:
            os.umask(old_umask)
        sock.listen(16)
        sock.setblocking(False)
        self.listener = sock
        self.selector.register(sock, selectors.EVENT_READ, None)

    def watch(self, conn: Conn, writing: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
        try:
            self.selector.modify(conn.sock, events, conn)
        except (KeyError, ValueError):
            pass

    def forget(self, conn: Conn) -> None:
        self.conns.discard(conn)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        if self.session is not None and self.session.conn is conn:
            self.session.conn = None
            if not self.stopping:
                self.unload("disconnected")

    def accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError, OSError):
            return
        if not _peer_is_us(sock):
            sock.close()
            return
        sock.setblocking(False)
        conn = Conn(self, sock)
        self.conns.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        self.readable(conn)  # the request often came with the connection: answer it before the next slice

    def readable(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            conn.close()  # a streaming client that goes away unloads its script (forget)
            return
        conn.inbuf += data
        if len(conn.inbuf) > control.MAX_MESSAGE:
            conn.send({"ok": False, "error": "request too long"})
            conn.finish()
            return
        while b"\n" in conn.inbuf and not conn.closed and not conn.closing:
            line, conn.inbuf = conn.inbuf.split(b"\n", 1)
            self.request(conn, line)

    def request(self, conn: Conn, line: bytes) -> None:
        try:
            message = control.decode(line)
        except ValueError as e:
            conn.send({"ok": False, "error": f"bad request: {e}"})
            conn.finish()
            return
        op = message.get("op")
        if conn.streaming:
            if op == "unload" and self.session is not None and self.session.conn is conn:
                self.unload("unload")
            return
        if conn.answered:
            return
        conn.answered = True
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            conn.send({"ok": False, "error": f"unknown request {op!r}"})
            conn.finish()
            return
        try:
            answer = handler(conn, message)
        except ToolError as e:
            answer = {"ok": False, "error": e.message}
        except Exception as e:  # a defect: answer it plainly and keep the VM running
            log("internal error:\n" + traceback.format_exc())
            answer = {"ok": False, "error": f"internal error in the VM: {type(e).__name__}: {e}"}
        if answer is not None:
            conn.send(answer)
            conn.finish()

    # ---- requests -------------------------------------------------------------------------------

    def enabled(self) -> tuple[bool, str]:
        if not self.config.vprobe_enable:
            return False, (f'VProbes are not enabled for this VM: add vprobe.enable = "TRUE" '
                           f'to {self.paths.vmx}')
        try:
            return host_allows_vprobes(self.host_config)
        except VmxError as e:
            return False, e.format()

    def op_ping(self, conn, message) -> dict:
        script = self.session.description if self.session else None
        answer = {"ok": True, "pid": os.getpid(), "vmx": str(self.paths.vmx), "script": script,
                  "realtime": self.realtime}
        if self.realtime:
            answer["running_s"] = time.monotonic() - self.started
        else:
            answer["simulated_s"] = self.machine.now_ns / NS_PER_S
        return answer

    def op_version(self, conn, message) -> dict:
        return {"ok": True, "version": vp_version(), "enabled": self.enabled()[0]}

    def op_probes(self, conn, message) -> dict:
        return {"ok": True, "rows": probe_rows(self.machine)}

    def op_globals(self, conn, message) -> dict:
        return {"ok": True, "rows": global_rows(self.machine)}

    def op_symbols(self, conn, message) -> dict:
        return {"ok": True, "text": vm_symbol_text(self.machine)}

    def op_syscalls(self, conn, message) -> dict:
        return {"ok": True, "names": sorted(self.machine.syscall_names().items())}

    def op_preload(self, conn, message) -> dict:
        return {"ok": True, "text": self.machine.guest_preload_emmett()}

    def op_load(self, conn, message) -> dict | None:
        allowed, why = self.enabled()
        if not allowed:
            return {"ok": False, "error": why}
        try:
            files = [SourceFile(str(s["name"]), str(s["text"]).encode("latin-1")) for s in message["sources"]]
        except (KeyError, TypeError, UnicodeEncodeError):
            return {"ok": False, "error": "bad load request: sources must be [{name, text}]"}
        stream = bool(message.get("stream"))
        names = " ".join(f.name for f in files)
        session = Session(self, conn if stream else None, names)
        program = vp_program(files, library=self.library if message.get("library", True) is not False else None)
        try:
            script, warnings = load_program(program, self.machine, session.sink)
        except LoadFailed as e:
            return {"ok": False, "error": "the script did not load", "diagnostics": e.text}
        duration = message.get("duration")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not 0 <= duration < 1e9:
            duration = None
        session.loaded = (program, script)
        session.costs = cost_rows(program, script)
        session.script, session.program = script, program
        conn.send({"ok": True, "warnings": warnings, "costs": session.costs})
        if stream:
            conn.streaming = True
        else:
            conn.finish()
        old, self.session = self.session, session
        log(f"loaded {names}")
        self.detach()
        self.guarded(lambda: self.machine.attach(script))
        if duration is not None:  # counted from the attach: a QEMU VM's timers start there
            session.until_ns = self.now_ns() + round(duration * NS_PER_S)
        if old is not None:
            old.end("replaced")
        if stream and conn.closed and self.session is session:
            self.unload("disconnected")  # its client left before the script was attached
        if session.until_ns is not None and session.until_ns <= self.now_ns() and self.session is session:
            self.unload("duration")
        return None

    def op_reset(self, conn, message) -> dict:
        loaded = self.session is not None
        lost = self.unload("reset") if loaded else None
        answer = {"ok": True, "unloaded": loaded}
        if lost:
            answer["lost"] = lost
        return answer

    def op_loaded(self, conn, message) -> dict:
        """The loaded script: its description and its probes with their bounds."""
        if self.session is None:
            return {"ok": False, "error": f"no script is loaded in {self.paths.vmx.name}"}
        return {"ok": True, "script": self.session.description, "costs": self.session.costs}

    def op_stop(self, conn, message) -> dict:
        self.stopping = True
        return {"ok": True}

    # ---- the machine ------------------------------------------------------------------------------

    def library(self) -> SourceFile:
        """The VM's own guest VP library (made once, when a script first needs it)."""
        if self._library is None:
            self._library = machine_library(self.machine)
        return self._library

    def now_ns(self) -> int:
        """The clock a load's duration counts on: simulated time, or real time for a QEMU VM."""
        return time.monotonic_ns() if self.realtime else self.machine.now_ns

    def guarded(self, action) -> None:
        """Run a machine action; a failure of the VM (or a defect of the machine model) powers it off."""
        try:
            action()
        except Exception as e:
            failure = machine_failure(e)
            if failure is not None:
                log(f"the VM failed: {failure}")
                error = failure
                self.status = 1
            else:
                log("the machine failed:\n" + traceback.format_exc())
                kind = "QEMU backend" if self.realtime else "simulated machine"
                error = f"internal error in the {kind}: {type(e).__name__}: {e}"
                self.status = 2
            if self.session is not None:
                session, self.session = self.session, None
                session.end("crashed", error)
            self.stopping = True

    def close_machine(self) -> None:
        """Power the VM off (a QEMU VM this daemon booted; one it attached to is left running)."""
        if self.machine_closed:
            return
        self.machine_closed = True
        close_quietly(self.machine, log)

    def detach(self) -> None:
        """Detach the machine's script, if one is attached: its unload probes fire, then the
        aggregates it never logged are logged (nothing it collected is lost from view)."""
        script = self.machine.script
        if script is not None:
            self.guarded(self.machine.detach)
            self.guarded(script.log_unlogged_aggregates)

    def unload(self, reason: str, where: str | None = None) -> str | None:
        """Unload the script (its unload probes fire); returns what its log lost, if anything.
        `where`: the exit() call that ended it (reason "exited")."""
        session, self.session = self.session, None
        if session is None:
            return None
        self.detach()
        lost = self.log_file.take_losses()
        log(f"unloaded {session.description} ({reason})" + (f"; {lost}" if lost else ""))
        session.end(reason, lost=lost, where=where)
        return lost

    def run_slice(self) -> None:
        """Run the machine a slice of simulated time, or less: it gives way after `SERVE_S` of
        wall time (between two events, so at most one firing later), and the socket is served."""
        if self.realtime:
            self.run_real_slice()
            return
        machine = self.machine
        start_ns = machine.now_ns
        end_ns = start_ns + round(self.pacer.slice_s * NS_PER_S)
        session = self.session
        if session is not None and session.until_ns is not None:
            end_ns = min(end_ns, session.until_ns)
        give_way_at = time.monotonic() + SERVE_S
        reached = [False]

        def run() -> None:
            reached[0] = machine.run_until_or(end_ns, lambda: time.monotonic() >= give_way_at)
        self.guarded(run)
        self.unload_if_exited(session)
        if reached[0] and session is not None and self.session is session and session.until_ns == end_ns:
            self.unload("duration")
        self.pacer.ran((machine.now_ns - start_ns) / NS_PER_S)

    def run_real_slice(self) -> None:
        """A QEMU VM: let it run `REALTIME_SLICE_S` (less when a script's duration ends sooner)."""
        machine = self.machine
        seconds = REALTIME_SLICE_S
        session = self.session
        if session is not None and session.until_ns is not None:
            left = (session.until_ns - time.monotonic_ns()) / NS_PER_S
            if left <= seconds:
                if left > 0:
                    self.guarded(lambda: machine.run(left))
                self.unload_if_exited(session)
                if self.session is session:
                    self.unload("duration")
                return
        self.guarded(lambda: machine.run(seconds))
        self.unload_if_exited(session)

    def unload_if_exited(self, session: "Session | None") -> None:
        """The script called exit() in the slice just run: the machine has detached it; end its session."""
        if session is not None and self.session is session and self.machine.script is None:
            self.unload("exited", where=session.program.map_where(session.script.exited))

    # ---- the loop ---------------------------------------------------------------------------------------

    def serve(self) -> int:
        while not self.stopping:
            wait = 0.0 if self.realtime else self.pacer.wait()  # a real VM waits in its slices
            for key, mask in self.selector.select(timeout=min(wait, 0.1)):
                if key.data is None:
                    self.accept()
                elif mask & selectors.EVENT_WRITE:
                    key.data.flush()
                if key.data is not None and mask & selectors.EVENT_READ and not key.data.closed:
                    self.readable(key.data)
            self.housekeeping()
            if not self.stopping and (self.realtime or self.pacer.wait() <= 0):
                self.run_slice()
        self.shutdown()
        return self.status

    def housekeeping(self) -> None:
        now = time.monotonic()
        for conn in list(self.conns):
            if conn.streaming and not conn.closing:
                if conn.outbuf and now > conn.deadline:
                    log("a client stopped reading its stream: dropped")
                    conn.close()
                elif now - conn.last_sent >= TICK_S:
                    conn.send({"event": "tick"})
            elif now > conn.deadline:
                conn.close()

    def shutdown(self) -> None:
        """Power off: unload the script, send what is owed (bounded), remove the VM's files."""
        self.stopping = True
        if self.session is not None:
            self.unload("stopped")
        deadline = time.monotonic() + DRAIN_S
        while any(c.outbuf for c in self.conns) and time.monotonic() < deadline:
            for key, mask in self.selector.select(timeout=0.05):
                if key.data is not None and mask & selectors.EVENT_WRITE:
                    key.data.flush()
        for conn in list(self.conns):
            conn.close()
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
        self.log_file.close()
        self.close_machine()
        log("powered off")


def _peer_is_us(sock: socket.socket) -> bool:
    """Whether the peer of a connection runs as this user (SO_PEERCRED where there is one)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return True  # the socket's 0600 mode is the guard
    try:
        _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return False
    return uid == os.getuid()


# ---- the process -------------------------------------------------------------------------------------

def _claim(paths: VMPaths) -> None:
    """Create the pid file, replacing a stale one; ToolError if the VM already runs."""
    for _ in range(2):
        try:
            control.write_pidfile(paths.pidfile)
            return
        except FileExistsError:
            pid = control.daemon_pid(paths)  # removes a stale pid file
            if pid is not None:
                raise ToolError(f"the VM {paths.vmx.name} is already running (pid {pid})") from None
    raise ToolError(f"cannot create the pid file {paths.pidfile}")


def _release(paths: VMPaths) -> None:
    """Remove the VM's socket, pid file and entry in the list of running VMs (if they are ours)."""
    control.unregister(paths)
    found = None
    try:
        found = control.read_pidfile(paths.pidfile)
    except ToolError:
        pass
    if found is not None and found[0] == os.getpid():
        control.remove_quietly(paths.socket)
        control.remove_quietly(paths.pidfile)


def start(vmx: str, host_config: str | None) -> tuple[Daemon, list[str]]:
    """Claim the VM, power it on, open its socket; returns the daemon and warnings."""
    paths = control.vm_paths(vmx)
    try:
        config = read_vm_config(str(paths.vmx))
    except VmxError as e:
        raise ToolError(e.format()) from None
    warnings: list[str] = []  # the .vmx's own warnings are vmrun's to show
    try:
        host_allows_vprobes(host_config)  # a bad host configuration fails the start, not the first load
    except VmxError as e:
        raise ToolError(e.format()) from None
    control.check_vm_directory(paths)
    _claim(paths)
    daemon = None
    try:
        try:
            daemon = Daemon(config, paths, host_config)
            _record_vm_process(daemon)
            daemon.bind()
            warnings += machine_warnings(daemon.machine)  # what powering on found (a QEMU VM: KVM fell back)
            # A QEMU VM with qemu.loadAt = "running" is ready once its guest's init has started.
            wait_until_running = getattr(daemon.machine, "wait_until_running", None)
            if wait_until_running is not None:
                wait_until_running()
            if config.vp_file is not None and daemon.enabled()[0]:
                warnings += _load_vp_file(daemon, str(config.vp_file))
        except Exception as e:
            failure = machine_failure(e)
            if failure is None:
                raise
            raise ToolError(f"the VM does not power on: {failure}") from None
        control.register(paths)
    except BaseException:
        if daemon is not None:
            daemon.close_machine()
        _release(paths)
        raise
    return daemon, warnings


def _record_vm_process(daemon: Daemon) -> None:
    """Name the QEMU process the daemon booted in the pid file (`vmrun stop` ends it if the daemon cannot)."""
    process = getattr(getattr(daemon.machine, "process", None), "proc", None)
    pid = getattr(process, "pid", None)
    if isinstance(pid, int) and pid > 0:
        control.record_vm_process(daemon.paths, pid)


def _load_vp_file(daemon: Daemon, path: str) -> list[str]:
    """vprobe.vpFile: the script the VM loads at power-on (a failure is a warning: the VM runs)."""
    try:
        program = vp_program(read_sources([path]), library=daemon.library)
        session = Session(daemon, None, path)
        script, warnings = load_program(program, daemon.machine, session.sink)
    except (LoadFailed, ToolError) as e:
        return [f"vprobe.vpFile {path} did not load:\n{e.message}"]
    session.costs = cost_rows(program, script)
    session.script, session.program = script, program
    daemon.session = session
    daemon.machine.attach(script)
    return warnings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="vm_daemon", description="Run a VM (simulated, or under QEMU) in the background.")
    parser.add_argument("vmx")
    parser.add_argument("--ready-fd", type=int, help="write one JSON line here once running (or failed)")
    parser.add_argument("--host-config", help="the host configuration that holds vprobe.allow")
    args = parser.parse_args(argv)
    ready = os.fdopen(args.ready_fd, "w") if args.ready_fd is not None else None

    def report(message: dict) -> None:
        if ready is not None:
            try:
                ready.write(encode(message).decode("ascii"))
                ready.close()
            except OSError:
                pass

    try:
        daemon, warnings = start(args.vmx, args.host_config)
    except ToolError as e:
        log(f"not started: {e.message}")
        report({"ok": False, "error": e.message})
        sys.exit(1)
    except Exception as e:
        log("not started:\n" + traceback.format_exc())
        report({"ok": False, "error": f"internal error starting the VM: {type(e).__name__}: {e}"})
        sys.exit(2)

    def stop(signum, frame) -> None:
        daemon.stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    log(f"powered on {daemon.paths.vmx}")
    report({"ok": True, "pid": os.getpid(), "warnings": warnings})
    status = 0
    try:
        status = daemon.serve()
    except Exception:
        log("internal error:\n" + traceback.format_exc())
        status = 2
    finally:
        daemon.close_machine()
        _release(daemon.paths)
    sys.exit(status)


if __name__ == "__main__":
    main()
