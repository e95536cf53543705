"""A client for the GDB remote serial protocol, as QEMU's gdbstub speaks it.

Framing (the protocol's own description, "Overview" and "Packets"):

* a packet is `$` payload `#` and two hex digits: the sum of the payload's
  bytes modulo 256;
* in acknowledgement mode each side answers every packet with `+` (received)
  or `-` (checksum mismatch: send it again);
* in a payload, `}` escapes the next byte (which is XORed with 0x20): binary
  data escapes `$`, `#`, `}` and `*`;
* a reply may be run-length encoded: `X*n` stands for X followed by
  `ord(n) - 29` more copies of X;
* a single byte 0x03 outside any packet asks the target to stop.

QEMU specifics the client is careful about (all seen with QEMU 7.2):

* any byte that reaches the stub while the VM runs stops the VM and is
  dropped, so packets are only ever sent while the VM is stopped, and the
  only byte sent while it runs is the interrupt;
* the stub never waits for our acknowledgements, so ours are sent together
  with our next packet (one write, one TCP segment per request) -- and Nagle's
  algorithm is off, or every request waits for a delayed ACK;
* a stop caused by someone else (the connection itself pauses the VM) arrives
  as an unsolicited stop reply; `request` keeps such replies for the caller.

Every read has a deadline: a stub that stops answering raises `RSPTimeout`
instead of hanging the tools.
"""

from __future__ import annotations

import select
import socket
import time

from ..errors import MachineError

__all__ = ["RSPError", "RSPTimeout", "RemoteSerial", "StubError", "checksum", "decode_payload",
           "encode_binary", "is_stop_reply"]

INTERRUPT = b"\x03"
Address = tuple[str, int] | str  # (host, port) of a TCP stub, or a Unix socket's path
_ESCAPED = frozenset(b"$#}*")


class RSPError(MachineError):
    """The connection to the stub failed or the stub broke the protocol."""


class RSPTimeout(RSPError):
    """The stub did not answer in time."""


class StubError(RSPError):
    """The stub answered `Exx`: the request failed (`code` is xx)."""

    def __init__(self, request: str, code: int):
        self.request = request
        self.code = code
        super().__init__(f"the gdbstub refused '{request[:40]}' (error E{code:02x})")


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFF


def encode_binary(data: bytes) -> bytes:
    """Escape `data` for a binary packet payload."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPED:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def decode_payload(raw: bytes) -> bytes:
    """Undo escapes and run-length encoding of a received payload."""
    if b"}" not in raw and b"*" not in raw:
        return raw
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x7D and i + 1 < n:  # '}'
            out.append(raw[i + 1] ^ 0x20)
            i += 2
        elif byte == 0x2A and out and i + 1 < n:  # '*'
            out += bytes((out[-1],)) * (raw[i + 1] - 29)
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def is_stop_reply(payload: bytes) -> bool:
    """Whether `payload` is a stop reply (`S`, `T`, `W`, `X` packets)."""
    return bool(payload) and payload[:1] in (b"S", b"T", b"W", b"X") and (
        len(payload) >= 3 and all(c in b"0123456789abcdefABCDEF" for c in payload[1:3]))


class RemoteSerial:
    """One connection to a gdbstub: framed packets with checksums, acks and deadlines."""

    def __init__(self, address: Address, *, timeout: float = 10.0, connect_timeout: float = 10.0):
        """`address`: (host, port) of a TCP gdbstub, or the path of a Unix socket one."""
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._pending_ack = b""
        self.ack_mode = True
        # How long to poll for an answer that is due at once (a request's reply, a single step's
        # stop, a busy probe's next hit) before sleeping in select: waking up from select costs more
        # than QEMU takes to answer.
        self.spin_s = 0.0005
        self.unsolicited: list[bytes] = []  # stop replies that arrived before an awaited reply
        self.where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                sock = _connect(address, max(0.1, deadline - time.monotonic()))
                break
            except OSError as e:  # the stub may not listen yet: QEMU is starting
                if time.monotonic() >= deadline:
                    raise RSPError(f"cannot connect to the gdbstub at {self.where}: {e.strerror or e}") from None
                time.sleep(0.05)
        sock.setblocking(False)
        self._sock = sock

    # ---- raw bytes ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise RSPError("the connection to the gdbstub is closed")
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                self._lost(e)
            view = view[sent:]
            if view:
                if time.monotonic() >= deadline:
                    raise RSPTimeout("the gdbstub does not take our data")
                select.select([], [sock], [], 0.05)

    def _fill(self, deadline: float | None, spin: float = 0.0) -> bool:
        """Read what the socket has; wait until `deadline` (None: forever), polling for the first
        `spin` seconds. False on timeout."""
        sock = self._sock
        if sock is None:
            raise RSPError("the connection to the gdbstub is closed")
        if spin:
            until = time.perf_counter() + spin
            while True:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    if time.perf_counter() >= until:
                        break
                    continue
                except OSError as e:
                    self._lost(e)
                if not data:
                    self._lost(None)
                self._buffer += data
                return True
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                data = None
            except OSError as e:
                self._lost(e)
            if data is not None:
                if not data:
                    self._lost(None)
                self._buffer += data
                return True
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return False
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready and deadline is not None and time.monotonic() >= deadline:
                return False

    def _lost(self, error: OSError | None) -> None:
        self._close_socket()
        why = f": {error.strerror or error}" if error is not None else ""
        raise RSPError(f"the gdbstub closed the connection{why}")

    # ---- packets ----------------------------------------------------------------------

    def send_packet(self, payload: bytes | str) -> None:
        """Frame and send one packet (with any acknowledgement we owe)."""
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        frame = b"%s$%s#%02x" % (self._pending_ack, payload, checksum(payload))
        self._pending_ack = b""
        self._last_sent = frame.lstrip(b"+")
        self._send(frame)

    def send_packets(self, payloads: list[bytes | str]) -> None:
        """Several packets in one write (the stub answers them in order)."""
        frames = [self._pending_ack]
        self._pending_ack = b""
        for payload in payloads:
            if isinstance(payload, str):
                payload = payload.encode("latin-1")
            frames.append(b"$%s#%02x" % (payload, checksum(payload)))
        self._last_sent = b"".join(frames[1:])
        self._send(b"".join(frames))

    def interrupt(self) -> None:
        """Ask a running target to stop (the reply is a stop reply)."""
        self._send(self._pending_ack + INTERRUPT)
        self._pending_ack = b""

    def flush_ack(self) -> None:
        """Send an acknowledgement we still owe (before the VM runs, or before closing)."""
        if self._pending_ack:
            ack, self._pending_ack = self._pending_ack, b""
            self._send(ack)

    def read_packet(self, timeout: float | None = -1.0, *, prompt: bool = False) -> bytes | None:
        """The next packet's decoded payload; None if `timeout` (seconds) passes first.

        `timeout` -1 means the connection's default deadline, which raises
        RSPTimeout instead of returning None; None waits forever.  `prompt`:
        the answer is due at once, so poll for it a little before sleeping.
        """
        raise_on_timeout = timeout == -1.0
        if raise_on_timeout:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        buffer = self._buffer
        while True:
            start = buffer.find(b"$")
            if start < 0:
                # Only acks (and noise) so far: a '-' asks for our last packet again.
                if b"-" in buffer and getattr(self, "_last_sent", None):
                    buffer.clear()
                    self._send(self._last_sent)
                buffer.clear()
            else:
                if start and b"-" in buffer[:start] and getattr(self, "_last_sent", None):
                    self._send(self._last_sent)
                end = buffer.find(b"#", start)
                if end >= 0 and len(buffer) >= end + 3:
                    raw = bytes(buffer[start + 1:end])
                    sent_sum = bytes(buffer[end + 1:end + 3])
                    del buffer[:end + 3]
                    try:
                        good = int(sent_sum, 16) == checksum(raw)
                    except ValueError:
                        good = False
                    if not good:
                        if self.ack_mode:
                            self._send(b"-")
                            continue
                        raise RSPError(f"bad checksum on a packet from the gdbstub: {raw[:40]!r}")
                    if self.ack_mode:
                        self._pending_ack += b"+"
                    return decode_payload(raw)
            if not self._fill(deadline, self.spin_s if prompt else 0.0):
                if raise_on_timeout:
                    raise RSPTimeout(f"the gdbstub at {self.where} did not answer within "
                                     f"{self.timeout:g} s")
                return None

    def request(self, payload: bytes | str, timeout: float | None = -1.0) -> bytes:
        """Send a packet and return its reply; stop replies that come first are kept aside."""
        self.send_packet(payload)
        while True:
            reply = self.read_packet(timeout, prompt=True)
            if reply is None:
                raise RSPTimeout(f"no reply to '{payload[:40]!r}'")
            if is_stop_reply(reply) and not _expects_stop(payload):
                self.unsolicited.append(reply)
                continue
            return reply

    def request_ok(self, payload: bytes | str) -> bytes:
        """`request`, raising StubError for an `Exx` reply."""
        reply = self.request(payload)
        if reply[:1] == b"E" and len(reply) == 3:
            text = payload if isinstance(payload, str) else payload.decode("latin-1")
            try:
                code = int(reply[1:], 16)
            except ValueError:
                return reply
            raise StubError(text, code)
        return reply

    # ---- closing ------------------------------------------------------------------------

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        if self._sock is not None:
            try:
                self.flush_ack()
            except RSPError:
                pass
        self._close_socket()


def _connect(address: Address, timeout: float) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _expects_stop(payload: bytes | str) -> bool:
    head = payload[:1] if isinstance(payload, bytes) else payload[:1].encode()
    text = payload if isinstance(payload, bytes) else payload.encode()
    return head in (b"?", b"c", b"s", b"C", b"S") or text.startswith(b"vCont;")
