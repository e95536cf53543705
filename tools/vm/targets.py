"""The VM a `vprobe` command works on: one in this process, or one running in the background.

Both offer the same operations: list probes and globals, give the guest's
symbols and Emmett preload, and run a script (its VP sources) with its log
going to a sink until -d expires, Ctrl-C, or the VM stops.  `run` returns the
exit status; `close` powers off a VM this process powered on.

The VM in this process is whichever machine its configuration describes
(`machine.vms`): the simulated machine, whose time is paced to the wall clock
(or runs as fast as it can for -d), or a real VM under QEMU, which runs in
real time (-d is real seconds).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from ..errors import LoadFailed, ToolError, machine_failure
from ..output import Tee
from ..scripts.sources import SourceFile, cost_rows, load_program, machine_library, probe_summary, vp_program
from . import control
from .control import STALL_S, TIMEOUT_S, LineReader, VMPaths, encode
from .log_file import open_log_file
from .machine_info import global_rows, probe_rows, read_symbol_file, vm_symbol_text
from .pacing import NS_PER_S, Pacer

Sink = Callable[[str], None]
Warn = Callable[[str], None]
Progress = Callable[[float], None]  # told the seconds of -d reached so far

REALTIME_SLICE_S = 1.0  # a real VM runs in slices this long; Ctrl-C is acted upon between them
PROGRESS_SLICE_NS = 100_000_000  # a -d run with progress reports it every 0.1 simulated seconds


def power_on(config):
    """The machine `config` describes, powered on (a QEMU VM boots, or is attached to)."""
    from machine.vms import open_machine

    try:
        return open_machine(config)
    except OSError as e:  # e.g. no qemu-system-x86_64 on this host
        raise ToolError(f"cannot power on the VM: {e.strerror or e}") from None


def machine_warnings(machine) -> list[str]:
    """What powering `machine` on found worth telling (a QEMU VM: KVM that made no progress, a placeholder
    System.map); machines without any have no `warnings`."""
    return list(getattr(machine, "warnings", ()))


def close_quietly(machine, warn: Warn | None = None) -> None:
    """Power off (or detach from) `machine`; a failure is only reported (to `warn`, if given)."""
    try:
        machine.close()
    except Exception as e:
        if warn is not None:
            message = machine_failure(e) or f"internal error: {type(e).__name__}: {e}"
            warn(f"while powering the VM off: {message}")


class EmbeddedVM:
    """A machine in this process, powered on for this command (and off again by `close`)."""

    def __init__(self, config, *, write_out_file: bool):
        self.config = config
        self.machine = power_on(config)
        self.write_out_file = write_out_file  # a .vmx machine also writes its vprobe.outFile
        self._library: SourceFile | None = None
        self.probes: list[dict] = []  # after `run`: the script's probes and their firings (probe_summary)
        self.guest_s: float | None = None  # after `run` on a simulated machine: the guest time it ran
        self._loaded = None  # (program, script, guest time or None) of the last script loaded

    @property
    def realtime(self) -> bool:
        """Whether -d counts real seconds (a QEMU VM) rather than simulated ones."""
        return self.machine.realtime

    def close(self, warn: Warn | None = None) -> None:
        """Power the machine off (a QEMU VM booted here; one attached to is detached from and runs on)."""
        close_quietly(self.machine, None if warn is None else lambda message: warn(f"vprobe: {message}"))

    def probe_rows(self) -> list:
        return probe_rows(self.machine)

    def global_rows(self) -> list:
        return global_rows(self.machine)

    def symbols_text(self) -> str:
        return vm_symbol_text(self.machine)

    def kallsyms(self) -> str:
        """The guest kernel's own symbols, in its format (what `vprobe --kallsyms` prints)."""
        return self.machine.symbol_text

    def preload_text(self) -> str | None:
        """The guest's Emmett preload (None: the compiler's default is this guest's)."""
        return self.machine.guest_preload_emmett()

    def syscall_names(self) -> dict[int, str]:
        """System call numbers' names (vprobe.syscalls, or the guest kernel's own table)."""
        return self.machine.syscall_names()

    def library(self) -> SourceFile:
        if self._library is None:
            self._library = machine_library(self.machine)
        return self._library

    def load(self, files: list[SourceFile], sink: Sink, warn: Warn):
        """The loaded script, and the program it was loaded from (its files, for locations)."""
        program = vp_program(files, library=self.library)
        script, warnings = load_program(program, self.machine, sink)
        for w in warnings:
            warn(w)
        self._loaded = (program, script, None if self.machine.realtime else self.machine.now_ns)
        return script, program

    def load_only(self, files: list[SourceFile], warn: Warn) -> tuple[str, list]:
        """Check that the script loads: a message, and its probes with their bounds (cost rows)."""
        script, program = self.load(files, lambda text: None, warn)
        return ("the script loads; no VM runs in the background for it, so nothing was left running",
                cost_rows(program, script))

    def run(self, files: list[SourceFile], sink: Sink, duration: float | None, warn: Warn,
            progress: Progress | None = None) -> int:
        """Run the script until -d `duration` (told to `progress` as it goes), Ctrl-C or the VM stops."""
        log_file = None
        if self.write_out_file:
            log_file = open_log_file(self.config.out_file, lambda message: warn(f"vprobe: warning: {message}"))
            sink = Tee(sink, log_file.write)
        try:
            script, program = self.load(files, sink, warn)
            status = 0
            try:
                self.machine.attach(script)
                if self.machine.realtime:
                    self._run_realtime(duration, progress)
                else:
                    self._run(duration, progress)
            except KeyboardInterrupt:
                pass
            except Exception as e:  # the VM failed, or a defect of the machine: report it plainly, keep the log
                status = self._failed(e, warn)
            try:
                self.machine.detach()  # the unload probes fire; the log is flushed
                script.log_unlogged_aggregates()  # what the script collected and never logged
            except Exception as e:
                if status == 0:
                    status = self._failed(e, warn)
            if script.exited is not None:
                warn(exit_note(program.map_where(script.exited)))
            lost = log_file.take_losses() if log_file is not None else None
            if lost is not None:  # the lines are complete on this command's output
                warn(f"vprobe: {lost}")
                status = status or 1
        finally:
            if log_file is not None:
                log_file.close()
        program, script, loaded_ns = self._loaded
        self.probes = probe_summary(program, script)
        if loaded_ns is not None:
            self.guest_s = (self.machine.now_ns - loaded_ns) / 1e9
        return status

    def _failed(self, error: Exception, warn: Warn) -> int:
        message = machine_failure(error)
        if message is not None:
            warn(f"vprobe: {message}")
            return 1
        warn(f"vprobe: internal error in the {self._kind()} machine: {type(error).__name__}: {error}")
        return 2

    def _kind(self) -> str:
        return "QEMU" if self.machine.realtime else "simulated"

    def _run(self, duration: float | None, progress: Progress | None) -> None:
        """`duration` simulated seconds as fast as possible (in slices when `progress` is told how
        far it got), or paced to the wall clock until Ctrl-C."""
        machine = self.machine
        if duration is not None and progress is None:
            machine.run(duration)
            return
        if duration is not None:
            start = machine.now_ns
            end = start + int(duration * NS_PER_S)  # as machine.run(duration) ends
            while True:
                target = min(machine.now_ns + PROGRESS_SLICE_NS, end)
                machine.run_until_ns(target)
                progress((target - start) / NS_PER_S)
                if target >= end:
                    return
        pacer = Pacer()
        while self.machine.script is not None:  # until the script exits (or Ctrl-C)
            wait = pacer.wait()
            if wait > 0:
                time.sleep(wait)
            self.machine.run(pacer.slice_s)
            pacer.ran(pacer.slice_s)

    def _run_realtime(self, duration: float | None, progress: Progress | None) -> None:
        """A real VM: `duration` real seconds (or until Ctrl-C), in slices, with no pacing."""
        started = time.monotonic()
        deadline = None if duration is None else started + duration
        with DeferredInterrupts() as interrupts:
            while not interrupts.noted and self.machine.script is not None:
                slice_s = REALTIME_SLICE_S
                if deadline is not None:
                    slice_s = min(slice_s, deadline - time.monotonic())
                    if slice_s <= 0:
                        break
                self.machine.run(slice_s)
                if progress is not None and duration is not None:
                    progress(min(duration, time.monotonic() - started))


def exit_note(where: str) -> str:
    """What vprobe says when a script ends itself."""
    return f"vprobe: the script called exit() at {where}; it is unloaded"


class DeferredInterrupts:
    """Ctrl-C (and a SIGTERM that would interrupt) noted rather than raised while a real VM runs.

    An exception in the middle of an exchange with QEMU's gdbstub would leave
    the VM stopped half-way; noted, the interrupt is acted upon between slices
    (the script is unloaded cleanly).  A second one interrupts at once.
    Only signals whose handler raises (Python handlers) are deferred, and
    only in the main thread; the handlers are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.count = 0
        self._saved: dict[int, object] = {}

    @property
    def noted(self) -> bool:
        return self.count > 0

    def _note(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            raise KeyboardInterrupt

    def __enter__(self) -> "DeferredInterrupts":
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                current = signal.getsignal(signum)
                if callable(current):
                    self._saved[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()


class RunningVM:
    """A VM `vmrun start` runs in the background, reached through its control socket."""

    def __init__(self, paths: VMPaths):
        self.paths = paths
        self.probes: list[dict] = []  # after `run`: the script's probes and their firings (probe_summary)
        self.guest_s: float | None = None  # the guest time a run took: not told by the VM

    def _ask(self, message: dict) -> dict:
        return control.checked(control.request(self.paths, message))

    def probe_rows(self) -> list:
        return self._ask({"op": "probes"})["rows"]

    def global_rows(self) -> list:
        return self._ask({"op": "globals"})["rows"]

    def symbols_text(self) -> str:
        return self._ask({"op": "symbols"})["text"]

    def kallsyms(self) -> str:
        return self.symbols_text()

    def preload_text(self) -> str | None:
        """The VM's Emmett preload (None: the compiler's default)."""
        answer = control.request(self.paths, {"op": "preload"})
        if not answer.get("ok") and str(answer.get("error", "")).startswith("unknown request"):
            return None  # a VM started by an older vmrun: it knows only the default guest
        text = control.checked(answer).get("text")
        return text if isinstance(text, str) else None

    def syscall_names(self) -> dict[int, str]:
        """System call numbers' names, as the VM knows them (none from a VM started by an older vmrun)."""
        answer = control.request(self.paths, {"op": "syscalls"})
        if not answer.get("ok") and str(answer.get("error", "")).startswith("unknown request"):
            return {}
        names = control.checked(answer).get("names", [])
        return {int(number): str(name) for number, name in names}

    def close(self, warn: Warn | None = None) -> None:
        """Nothing to do: the VM runs on in the background."""

    def reset(self, warn: Warn) -> bool:
        """Unload the VM's script; whether one was loaded.  What its log lost goes to `warn`."""
        answer = self._ask({"op": "reset"})
        if answer.get("lost"):
            warn(f"vprobe: {answer['lost']}")
        return bool(answer.get("unloaded"))

    @staticmethod
    def _load_request(files: list[SourceFile], **fields) -> dict:
        sources = [{"name": f.name, "text": f.text.decode("latin-1")} for f in files]
        return {"op": "load", "sources": sources, **fields}

    @staticmethod
    def _check_loaded(answer: dict | None, warn: Warn) -> None:
        if answer is None:
            raise ToolError("the VM closed the connection without answering")
        if not answer.get("ok"):
            if answer.get("diagnostics"):
                raise LoadFailed(answer["diagnostics"])
            raise ToolError(str(answer.get("error", "the VM refused the script")))
        for w in answer.get("warnings", ()):
            warn(w)

    def load_only(self, files: list[SourceFile], warn: Warn) -> tuple[str, list]:
        answer = control.request(self.paths, self._load_request(files))
        self._check_loaded(answer, warn)
        return (f"loaded into {self.paths.vmx.name}; its output goes to the VM's vprobe.out",
                answer.get("costs", []))

    realtime = True  # its -d counts the seconds it streams, paced to the wall clock

    def run(self, files: list[SourceFile], sink: Sink, duration: float | None, warn: Warn,
            progress: Progress | None = None) -> int:
        """Load with a stream; show the log until the script is unloaded (`progress` is not told:
        the VM runs paced to the wall clock, its stream says nothing of how far it got)."""
        sock = control.connect(self.paths)
        try:
            return self._stream(sock, files, sink, duration, warn)
        finally:
            sock.close()

    def _stream(self, sock: socket.socket, files, sink: Sink, duration, warn: Warn) -> int:
        name = self.paths.vmx.name
        reader = LineReader(sock)
        try:
            sock.sendall(encode(self._load_request(files, stream=True, duration=duration)))
            self._check_loaded(reader.read(TIMEOUT_S), warn)
        except socket.timeout:
            raise ToolError(f"the VM {name} does not answer (timed out)") from None
        except (OSError, ValueError) as e:
            raise ToolError(f"lost the connection to the VM {name}: {e}") from None
        unloading = False
        while True:
            try:
                message = reader.read(STALL_S)
                if message is None:
                    raise ToolError(f"lost the connection to the VM {name}")
                event = message.get("event")
                if event == "log":
                    sink(str(message.get("data", "")))
                elif event == "unloaded":
                    return self._unloaded(message, warn)
            except KeyboardInterrupt:  # Ctrl-C (or SIGTERM): unload, and show the rest of the log
                if unloading:
                    warn(f"vprobe: left without waiting; the VM {name} unloads the script by itself")
                    return 1
                unloading = True
                try:
                    sock.settimeout(TIMEOUT_S)
                    sock.sendall(encode({"op": "unload"}))
                except OSError:
                    pass
            except socket.timeout:
                raise ToolError(f"the VM {name} stopped responding") from None
            except (OSError, ValueError) as e:
                raise ToolError(f"lost the connection to the VM {name}: {e}") from None

    def _unloaded(self, message: dict, warn: Warn) -> int:
        probes = message.get("probes")
        if isinstance(probes, list):
            self.probes = probes
        reason = message.get("reason")
        name = self.paths.vmx.name
        if reason == "crashed":
            warn(f"vprobe: the VM {name} failed: {message.get('error', '')}")
            return 2
        if reason == "exited":
            warn(exit_note(message.get("where", "?")))
            return 0
        notes = {"stopped": f"the VM {name} was powered off",
                 "replaced": f"another script was loaded into {name}",
                 "reset": f"the script was unloaded from {name} (vprobeReset)"}
        if reason in notes:
            warn(f"vprobe: {notes[reason]}")
        if message.get("lost"):  # the VM's log file lost lines this stream carried
            warn(f"vprobe: {message['lost']}")
            return 1
        return 0


def find_vm(vmx: str | None):
    """The running VM for `vmx`, or None when it is not running (or no .vmx is given)."""
    if vmx is None:
        return None
    paths = control.vm_paths(Path(vmx))
    try:
        control.checked(control.request(paths, {"op": "ping"}))
    except control.NotRunning:
        return None
    return RunningVM(paths)


def default_symbol_text(vmx: str | None = None) -> str:
    """The symbols of the VM `vmx` describes, or of the embedded default machine.

    A VM running in the background is asked for them; a .vmx with
    vprobe.guestSyms is read without powering anything on; otherwise the
    machine is powered on (a QEMU VM only to read its kernel's symbols) and off.
    """
    return _ask_vm(vmx, RunningVM.symbols_text, lambda config: read_symbol_file(config.guest_syms)
                   if config.guest_syms else None, vm_symbol_text)


def default_syscall_names(vmx: str | None = None) -> dict[int, str]:
    """The system call names of the VM `vmx` describes, or of the embedded default machine, found
    as `default_symbol_text` finds symbols (a .vmx's vprobe.syscalls is read without a machine)."""
    from machine.syscall_names import read_syscalls_file

    return _ask_vm(vmx, RunningVM.syscall_names, lambda config: read_syscalls_file(config.syscalls)
                   if config.syscalls else None, lambda machine: machine.syscall_names())


def _ask_vm(vmx: str | None, of_running: Callable, of_config: Callable, of_machine: Callable):
    """What a VM tells: asked of it if it runs in the background, read from its configuration if
    that says (`of_config` gives None when it does not), else from its machine powered on and off."""
    from machine.vms import read_vm_config
    from machine.vmx import VmxError

    running = find_vm(vmx)
    if running is not None:
        return of_running(running)
    try:
        config = read_vm_config(vmx)
        found = of_config(config)
        if found is not None:
            return found
        machine = power_on(config)
        try:
            return of_machine(machine)
        finally:
            close_quietly(machine)
    except VmxError as e:
        raise ToolError(e.format()) from None
    except Exception as e:
        message = machine_failure(e)
        if message is None:
            raise
        raise ToolError(message) from None
