"""The VM a `vprobe` command works on: one in this process, or one running in the background.

Both offer the same operations: list probes and globals, give the guest's
symbols, and run a script (its VP sources) with its log going to a sink until
-d expires, Ctrl-C, or the VM stops.  `run` returns the exit status.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

from machine import SimulatedMachine

from . import control
from .control import STALL_S, TIMEOUT_S, LineReader, VMPaths, encode
from .errors import LoadFailed, ToolError
from .listings import global_rows, probe_rows
from .output import LogFile, Tee
from .pacing import Pacer
from .sources import SourceFile, load_program, vp_program
from .symbolize import vm_symbol_text

Sink = Callable[[str], None]
Warn = Callable[[str], None]


class EmbeddedVM:
    """A fresh simulated machine in this process, powered on for this command."""

    def __init__(self, config, *, write_out_file: bool):
        self.config = config
        self.machine = SimulatedMachine(config)
        self.write_out_file = write_out_file  # a .vmx machine also writes its vprobe.outFile

    def probe_rows(self) -> list:
        return probe_rows(self.machine)

    def global_rows(self) -> list:
        return global_rows(self.machine)

    def symbols_text(self) -> str:
        return vm_symbol_text(self.machine)

    def kallsyms(self) -> str:
        return self.machine.kallsyms_text

    def load(self, files: list[SourceFile], sink: Sink, warn: Warn):
        script, warnings = load_program(vp_program(files), self.machine, sink)
        for w in warnings:
            warn(w)
        return script

    def load_only(self, files: list[SourceFile], warn: Warn) -> str:
        self.load(files, lambda text: None, warn)
        return "the script loads; no VM runs in the background for it, so nothing was left running"

    def run(self, files: list[SourceFile], sink: Sink, duration: float | None, warn: Warn) -> int:
        log_file = None
        if self.write_out_file:
            try:
                log_file = LogFile(self.config.out_file)
            except OSError as e:
                raise ToolError(f"cannot write {self.config.out_file}: {e.strerror or e}") from None
            sink = Tee(sink, log_file.write)
        try:
            script = self.load(files, sink, warn)
            status = 0
            try:
                self.machine.attach(script)
                self._run(duration)
            except KeyboardInterrupt:
                pass
            except Exception as e:  # a defect of the machine model: report it plainly, keep the log
                warn(f"vprobe: internal error in the simulated machine: {type(e).__name__}: {e}")
                status = 2
            self.machine.detach()
        finally:
            if log_file is not None:
                log_file.close()
        return status

    def _run(self, duration: float | None) -> None:
        """`duration` simulated seconds as fast as possible, or paced to the wall clock until Ctrl-C."""
        import time

        if duration is not None:
            self.machine.run(duration)
            return
        pacer = Pacer()
        while True:
            wait = pacer.wait()
            if wait > 0:
                time.sleep(wait)
            self.machine.run(pacer.slice_s)
            pacer.ran(pacer.slice_s)


class RunningVM:
    """A VM `vmrun start` runs in the background, reached through its control socket."""

    def __init__(self, paths: VMPaths):
        self.paths = paths

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

    def reset(self) -> bool:
        return bool(self._ask({"op": "reset"}).get("unloaded"))

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

    def load_only(self, files: list[SourceFile], warn: Warn) -> str:
        answer = control.request(self.paths, self._load_request(files))
        self._check_loaded(answer, warn)
        return f"loaded into {self.paths.vmx.name}; its output goes to the VM's vprobe.out"

    def run(self, files: list[SourceFile], sink: Sink, duration: float | None, warn: Warn) -> int:
        """Load with a stream; show the log until the script is unloaded."""
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
        reason = message.get("reason")
        name = self.paths.vmx.name
        if reason == "crashed":
            warn(f"vprobe: the VM {name} failed: {message.get('error', '')}")
            return 2
        notes = {"stopped": f"the VM {name} was powered off",
                 "replaced": f"another script was loaded into {name}",
                 "reset": f"the script was unloaded from {name} (vprobeReset)"}
        if reason in notes:
            warn(f"vprobe: {notes[reason]}")
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
