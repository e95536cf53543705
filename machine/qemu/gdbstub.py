"""QEMU's gdbstub as a debugging target: threads (VCPUs), registers, memory, stops.

Built on `rsp.RemoteSerial`.  The target description (`qXfer:features:read`)
names and sizes the registers; `g` returns them all for the selected thread
in that order.  One thread is one VCPU.  The class keeps track of whether the
VM runs, because QEMU's stub drops (and stops the VM for) any byte it gets
while the VM runs: packets go out only while it is stopped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .rsp import Address, RemoteSerial, RSPError, RSPTimeout, StubError, is_stop_reply

__all__ = ["GdbStub", "Register", "StopReply", "parse_stop_reply", "parse_target_description"]

# The largest `m` read QEMU answers (its packets hold 4096 characters, two per byte).
MAX_READ = 2048
_COMMENT = re.compile(rb"<!--.*?-->", re.S)


@dataclass(frozen=True)
class Register:
    name: str
    regnum: int
    size: int  # bytes
    offset: int  # byte offset in the `g` reply


@dataclass(frozen=True)
class StopReply:
    signal: int
    thread: int | None
    watch: tuple[str, int] | None  # ("watch" | "rwatch" | "awatch", address)
    raw: bytes
    exited: bool = False


def parse_stop_reply(payload: bytes) -> StopReply:
    """`T05thread:02;watch:ffffffff82a05000;` and friends."""
    kind = payload[:1]
    signal = int(payload[1:3], 16)
    if kind in (b"W", b"X"):
        return StopReply(signal, None, None, payload, exited=True)
    thread = None
    watch = None
    if kind == b"T":
        for field in payload[3:].split(b";"):
            key, _, value = field.partition(b":")
            if key == b"thread":
                text = value.split(b".")[-1] if value.startswith(b"p") else value
                thread = int(text, 16)
            elif key in (b"watch", b"rwatch", b"awatch"):
                watch = (key.decode(), int(value, 16))
    return StopReply(signal, thread, watch, payload)


def parse_target_description(fetch) -> list[Register]:
    """The registers of a target description; `fetch(annex)` returns an XML document's bytes.

    Comments are stripped before anything is numbered (QEMU's i386-64bit.xml
    carries commented-out registers); `xi:include`d documents are read in
    place; a `reg` without `regnum` follows the previous one.
    """
    registers: list[Register] = []
    state = {"next": 0, "offset": 0}

    def walk_document(annex: str, depth: int) -> None:
        if depth > 8:
            raise RSPError("the target description includes itself too deeply")
        text = _COMMENT.sub(b"", fetch(annex))
        text = re.sub(rb"<!DOCTYPE[^>]*>", b"", text)
        text = re.sub(rb"<(/?)[A-Za-z_][\w.-]*:", rb"<\1", text)  # xi:include, undeclared prefix
        root = ET.fromstring(text)
        walk_element(root, depth)

    def walk_element(element, depth: int) -> None:
        for child in element:
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "include":
                href = child.get("href")
                if href:
                    walk_document(href, depth + 1)
            elif tag == "reg":
                regnum = int(child.get("regnum", state["next"]))
                size = int(child.get("bitsize", "0")) // 8
                registers.append(Register(child.get("name", ""), regnum, size, state["offset"]))
                state["offset"] += size
                state["next"] = regnum + 1
            else:
                walk_element(child, depth)

    walk_document("target.xml", 0)
    registers.sort(key=lambda r: r.regnum)
    offset = 0
    ordered = []
    for reg in registers:  # `g` carries the registers in register-number order
        ordered.append(Register(reg.name, reg.regnum, reg.size, offset))
        offset += reg.size
    return ordered


class GdbStub:
    """A connection to a gdbstub, with the VM's run state and our breakpoints."""

    def __init__(self, address: Address, *, timeout: float = 10.0, connect_timeout: float = 10.0):
        self.rsp = RemoteSerial(address, timeout=timeout, connect_timeout=connect_timeout)
        self.running = False
        self.breakpoints: set[int] = set()
        self.watchpoints: set[tuple[int, int, int]] = set()  # (type 2/3/4, address, length)
        self._selected: int | None = None
        self._phys_mode = False
        self._pending_replies = 0  # replies to requests pipelined ahead of a 'c'
        self.closed = False
        try:
            self.features = self._supported()
            self.registers = parse_target_description(self._read_feature)
            self.by_name = {r.name: r for r in self.registers}
            self.threads = self._thread_list()
        except BaseException:
            self.rsp.close()
            raise

    # ---- setup --------------------------------------------------------------------

    def _supported(self) -> dict[str, str]:
        reply = self.rsp.request("qSupported:xmlRegisters=i386;vContSupported+;swbreak+").decode("latin-1")
        features = {}
        for item in reply.split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                features[key] = value
            elif item:
                features[item[:-1]] = item[-1]
        return features

    def _read_feature(self, annex: str) -> bytes:
        data = bytearray()
        while True:
            reply = self.rsp.request(f"qXfer:features:read:{annex}:{len(data):x},ffb")
            if reply[:1] not in (b"m", b"l"):
                raise RSPError(f"the gdbstub does not describe its registers ({annex}: {reply[:20]!r})")
            data += reply[1:]
            if reply[:1] == b"l":
                return bytes(data)

    def _thread_list(self) -> list[int]:
        threads: list[int] = []
        reply = self.rsp.request("qfThreadInfo")
        while reply[:1] == b"m":
            for item in reply[1:].split(b","):
                text = item.split(b".")[-1] if item.startswith(b"p") else item
                threads.append(int(text, 16))
            reply = self.rsp.request("qsThreadInfo")
        if not threads:
            raise RSPError("the gdbstub reports no threads (VCPUs)")
        return threads

    # ---- run control ----------------------------------------------------------------

    def take_unsolicited(self) -> list[StopReply]:
        stops = [parse_stop_reply(p) for p in self.rsp.unsolicited]
        self.rsp.unsolicited.clear()
        return stops

    def cont(self) -> None:
        """Resume every VCPU (no reply until the next stop)."""
        self._require_stopped("c")
        self.rsp.send_packet("c")
        self.running = True

    def wait_stop(self, timeout: float | None, *, prompt: bool = False) -> StopReply | None:
        """The next stop reply, or None if the VM is still running after `timeout` seconds
        (`prompt`: it is likely soon, as after a single step: poll a little before sleeping)."""
        while True:
            payload = self.rsp.read_packet(timeout, prompt=prompt)
            if payload is None:
                return None
            if is_stop_reply(payload):
                self.running = False
                self._selected = None  # the stub selects the stopped VCPU
                return parse_stop_reply(payload)
            if payload.startswith(b"O") and payload != b"OK":
                continue  # console output
            if self._pending_replies:
                self._pending_replies -= 1
                if payload != b"OK":
                    raise RSPError(f"the gdbstub refused a request sent before 'c' ({payload[:20]!r})")
            # Anything else is a stray reply; keep waiting.

    def stop(self, timeout: float | None = None, *, prompt: bool = False) -> StopReply:
        """Interrupt a running VM and wait for it to stop (`prompt`: poll for the stop first)."""
        if not self.running:
            raise RSPError("the VM is not running")
        self.rsp.interrupt()
        reply = self.wait_stop(timeout if timeout is not None else self.rsp.timeout, prompt=prompt)
        if reply is None:
            raise RSPTimeout("the VM did not stop after an interrupt")
        return reply

    def step(self, thread: int) -> StopReply:
        """Single-step one VCPU; the others stay stopped."""
        self._require_stopped("vCont;s")
        self.rsp.send_packet(f"vCont;s:{thread:x}")
        self.running = True
        reply = self.wait_stop(self.rsp.timeout, prompt=True)
        if reply is None:
            raise RSPTimeout("a single step did not finish")
        return reply

    def selected_by_stop(self, reply: StopReply) -> None:
        """QEMU selects the VCPU a stop reply names for the requests that follow: no `Hg` for it."""
        self._selected = reply.thread

    def _require_stopped(self, what: str) -> None:
        if self.running:
            raise RSPError(f"'{what}' sent while the VM runs")

    # ---- threads, registers, memory -----------------------------------------------

    def select(self, thread: int) -> None:
        if self._selected != thread:
            reply = self.rsp.request(f"Hg{thread:x}")
            if reply != b"OK":
                raise RSPError(f"the gdbstub cannot select thread {thread}: {reply[:20]!r}")
            self._selected = thread

    def read_registers(self, thread: int) -> bytes:
        """The raw `g` block of `thread` (decode with `self.by_name`)."""
        self._require_stopped("g")
        self.select(thread)
        reply = self.rsp.request("g")
        if reply[:1] == b"E" and len(reply) == 3:
            raise StubError("g", int(reply[1:], 16))
        return bytes.fromhex(reply.decode("latin-1"))

    def register(self, block: bytes, name: str) -> int:
        reg = self.by_name[name]
        return int.from_bytes(block[reg.offset:reg.offset + reg.size], "little")

    def read_memory(self, thread: int, addr: int, size: int, physical: bool = False) -> bytes:
        """`size` bytes at `addr` through `thread`'s page tables (or physical); StubError if unmapped."""
        self._require_stopped("m")
        if physical != self._phys_mode:
            self._set_phys_mode(physical)
        if not physical:
            self.select(thread)
        out = bytearray()
        while size > 0:
            step = min(size, MAX_READ)
            reply = self.rsp.request(f"m{addr:x},{step:x}")
            if reply[:1] == b"E" and len(reply) == 3:
                raise StubError(f"m{addr:x},{step:x}", int(reply[1:], 16))
            chunk = bytes.fromhex(reply.decode("latin-1"))
            if not chunk:
                raise StubError(f"m{addr:x},{step:x}", 0x0E)
            out += chunk
            addr += len(chunk)
            size -= len(chunk)
        return bytes(out)

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        """Write `data` at `addr` through `thread`'s page tables (QEMU writes read-only pages too)."""
        self._require_stopped("M")
        if self._phys_mode:
            self._set_phys_mode(False)
        self.select(thread)
        reply = self.rsp.request_ok(f"M{addr:x},{len(data):x}:{data.hex()}")
        if reply != b"OK":
            raise RSPError(f"the gdbstub cannot write guest memory at {addr:#x} "
                           f"({reply.decode('latin-1') or 'unsupported'})")

    def _set_phys_mode(self, on: bool) -> None:
        reply = self.rsp.request(f"Qqemu.PhyMemMode:{1 if on else 0}")
        if reply != b"OK":
            raise RSPError("this gdbstub cannot read physical memory (Qqemu.PhyMemMode)")
        self._phys_mode = on

    def monitor(self, command: str, timeout: float | None = None) -> str:
        """A QEMU monitor command through `qRcmd`; its output text."""
        self._require_stopped("qRcmd")
        self.rsp.send_packet("qRcmd," + command.encode().hex())
        out = bytearray()
        while True:
            reply = self.rsp.read_packet(timeout if timeout is not None else -1.0)
            if reply is None:
                raise RSPTimeout(f"no answer to monitor command '{command}'")
            if is_stop_reply(reply):
                self.rsp.unsolicited.append(reply)
                continue
            if reply.startswith(b"O") and reply != b"OK":
                out += bytes.fromhex(reply[1:].decode("latin-1"))
                continue
            if reply == b"OK" or reply == b"":
                return out.decode("utf-8", "replace")
            if reply[:1] == b"E":
                raise RSPError(f"monitor command '{command}' failed ({reply.decode('latin-1')})")
            out += bytes.fromhex(reply.decode("latin-1"))  # some stubs answer with hex output
            return out.decode("utf-8", "replace")

    # ---- breakpoints and watchpoints -------------------------------------------------

    def insert_breakpoint(self, addr: int) -> None:
        self._require_stopped("Z0")
        reply = self.rsp.request(f"Z0,{addr:x},1")
        if reply != b"OK":
            raise RSPError(f"the gdbstub cannot set a breakpoint at {addr:#x} ({reply.decode('latin-1') or 'unsupported'})")
        self.breakpoints.add(addr)

    def remove_breakpoint(self, addr: int) -> None:
        self._require_stopped("z0")
        self.rsp.request(f"z0,{addr:x},1")
        self.breakpoints.discard(addr)

    def insert_watchpoint(self, kind: int, addr: int, length: int) -> None:
        self._require_stopped(f"Z{kind}")
        reply = self.rsp.request(f"Z{kind},{addr:x},{length:x}")
        if reply != b"OK":
            raise RSPError(f"the gdbstub cannot watch {addr:#x} ({reply.decode('latin-1') or 'unsupported'})")
        self.watchpoints.add((kind, addr, length))

    def remove_watchpoint(self, kind: int, addr: int, length: int) -> None:
        self._require_stopped(f"z{kind}")
        self.rsp.request(f"z{kind},{addr:x},{length:x}")
        self.watchpoints.discard((kind, addr, length))

    def set_register_and_continue(self, thread: int, name: str, value: int) -> None:
        """`P` then `c` in one write, without waiting between them: the `P` reply is checked
        when the next stop is awaited (it arrives before any stop reply)."""
        self._require_stopped("P")
        reg = self.by_name[name]
        self.select(thread)
        data = value.to_bytes(reg.size, "little").hex()
        self.rsp.send_packets([f"P{reg.regnum:x}={data}", "c"])
        self._pending_replies += 1
        self.running = True

    def write_register(self, thread: int, name: str, value: int) -> None:
        """Only used to move RIP past an instruction the backend has emulated (a no-op)."""
        reg = self.by_name[name]
        self.select(thread)
        data = value.to_bytes(reg.size, "little").hex()
        reply = self.rsp.request(f"P{reg.regnum:x}={data}")
        if reply != b"OK":
            raise RSPError(f"the gdbstub cannot write {name} ({reply.decode('latin-1') or 'unsupported'})")

    # ---- leaving --------------------------------------------------------------------

    def remove_all(self) -> None:
        """Remove every breakpoint and watchpoint we set (the VM must be stopped)."""
        for addr in sorted(self.breakpoints):
            self.remove_breakpoint(addr)
        for kind, addr, length in sorted(self.watchpoints):
            self.remove_watchpoint(kind, addr, length)

    def detach(self) -> None:
        """Leave the VM running without our breakpoints, and close the connection.

        Safe on every exit path: a running VM is stopped first so the
        breakpoints can be removed; errors on a dead connection are ignored.
        """
        if self.closed:
            return
        try:
            if self.rsp.connected:
                if self.running:
                    self.stop(timeout=5.0)
                if self._phys_mode:
                    self._set_phys_mode(False)
                self.remove_all()
                self.rsp.send_packet("D")
                self.rsp.read_packet(2.0)
        except (RSPError, OSError):
            pass
        finally:
            self.closed = True
            self.running = False
            self.rsp.close()

