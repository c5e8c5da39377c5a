"""Protocol upgrades on both L7 data planes: a WebSocket echo through the balancer (a real RFC 6455 handshake and
framing, masked client frames, a large frame under flow control, the close handshake), an upgrade the member
refuses, and a WebSocket connection left idle past the idle timeout."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
import struct
from typing import Any

import pytest
from lbkit import Loop, StartBalancer, connect, group_config, read_response

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE = 1, 2, 8


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def unmask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 §5.3: XOR with the 4-byte key repeated (big integers: fast enough for megabytes)."""
    n = len(payload)
    if not n:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final WebSocket frame (RFC 6455 §5.2); a client masks, a server does not."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 1 << 16:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + unmask(payload, key)


def parse_frame(buf: bytes) -> tuple[int, bytes, int] | None:
    """(opcode, unmasked payload, frame length) of the first complete frame in ``buf``, or None."""
    if len(buf) < 2:
        return None
    opcode, n, masked, at = buf[0] & 0x0F, buf[1] & 0x7F, buf[1] & 0x80, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    key = b""
    if masked:
        key, at = buf[at:at + 4], at + 4
    if len(buf) < at + n:
        return None
    payload = buf[at:at + n]
    if masked:
        payload = unmask(payload, key)
    return opcode, payload, at + n


class _WsEcho(asyncio.Protocol):
    """A WebSocket echo member: checks the handshake, answers 101 with the accept key, echoes every data frame
    (unmasked) and answers a close with a close. ``/refuse`` is answered 403 instead."""

    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen
        self.buf = b""
        self.open = False
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.t is not None
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            self.seen.append(head)
            lines = head.split(b"\r\n")
            fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
            key = fields.get(b"sec-websocket-key", b"")
            if (lines[0].split(b" ")[1] == b"/refuse" or fields.get(b"upgrade", b"").lower() != b"websocket"
                    or b"upgrade" not in fields.get(b"connection", b"").lower() or not key):
                self.t.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
                return
            self.t.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
            self.open = True
        while (f := parse_frame(self.buf)) is not None:
            opcode, payload, n = f
            self.buf = self.buf[n:]
            self.t.write(frame(opcode, payload, mask=False))
            if opcode == OP_CLOSE:
                self.t.close()
                return


class WsMember:
    def __init__(self) -> None:
        self.bg = Loop()
        self.seen: list[bytes] = []

        async def serve() -> Any:
            return await asyncio.get_running_loop().create_server(lambda: _WsEcho(self.seen), "127.0.0.1", 0)

        self.server = self.bg.run(serve())
        self.endpoint = f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        self.bg.close()


@pytest.fixture
def ws_member() -> Any:
    m = WsMember()
    yield m
    m.close()


def handshake(s: socket.socket, path: str = "/chat") -> tuple[bytes, bytes]:
    """Send a WebSocket opening handshake; return the answer's head and the bytes read after it."""
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, f"closed during the handshake after {buf!r}"
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 101"):
        assert b"Sec-WebSocket-Accept: " + accept_key(key) in head
    return head, rest


def read_frame(s: socket.socket, buf: bytes) -> tuple[int, bytes, bytes]:
    while (f := parse_frame(buf)) is None:
        chunk = s.recv(1 << 16)
        assert chunk, "closed before a whole frame"
        buf += chunk
    opcode, payload, n = f
    return opcode, payload, buf[n:]


def test_websocket_echo_both_ways(balancer: StartBalancer, ws_member: WsMember) -> None:
    bal = balancer(group_config([("ws", ws_member.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    head, buf = handshake(s)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    assert b"Upgrade: websocket" in head and b"Connection: Upgrade" in head
    seen = ws_member.seen[0]
    assert b"Upgrade: websocket" in seen and b"Connection: Upgrade" in seen and b"X-Forwarded-For: 127.0.0.1" in seen
    s.sendall(frame(OP_TEXT, b"hello", mask=True))
    opcode, payload, buf = read_frame(s, buf)
    assert (opcode, payload) == (OP_TEXT, b"hello")
    big = os.urandom(4 << 20)  # more than the socket buffers hold: the relay's flow control carries it
    s.sendall(frame(OP_BINARY, big, mask=True))
    opcode, payload, buf = read_frame(s, buf)
    assert opcode == OP_BINARY and payload == big
    s.sendall(frame(OP_CLOSE, struct.pack("!H", 1000), mask=True))
    opcode, payload, buf = read_frame(s, buf)
    assert (opcode, payload) == (OP_CLOSE, struct.pack("!H", 1000))
    assert buf == b"" and s.recv(10) == b""  # the member closed: so does the balancer
    s.close()
    snap = bal.snapshot()
    ws = next(m for m in snap["members"] if m["memberID"] == "ws")
    assert ws["bytesIn"] > len(big) and ws["bytesOut"] > len(big)


def test_refused_upgrade_is_forwarded_then_closed(balancer: StartBalancer, ws_member: WsMember) -> None:
    bal = balancer(group_config([("ws", ws_member.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    head, rest = handshake(s, "/refuse")
    assert head.startswith(b"HTTP/1.1 403") and b"Connection: close" in head
    assert rest == b"no" and s.recv(10) == b""
    s.close()


def test_idle_websocket_is_closed_after_the_idle_timeout(balancer: StartBalancer, ws_member: WsMember) -> None:
    bal = balancer(group_config([("ws", ws_member.endpoint, 1)]), mode="http", args=["--idle-timeout", "1"])
    s = connect(bal.addr)
    head, _ = handshake(s)
    assert head.startswith(b"HTTP/1.1 101")
    s.settimeout(15)
    with contextlib.suppress(ConnectionResetError):  # nothing said for the idle timeout: the tunnel ends
        assert s.recv(10) == b""
    s.close()


def test_h2c_offer_is_answered_over_http11(balancer: StartBalancer, ws_member: WsMember) -> None:
    """The member speaks HTTP/1.1 only as far as the balancer is concerned: the offer never reaches it."""
    bal = balancer(group_config([("ws", ws_member.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"GET /refuse HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
              b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 403 and body == b"no" and "upgrade" not in headers
    seen = ws_member.seen[0].lower()
    assert b"upgrade" not in seen and b"http2-settings" not in seen
    s.close()
