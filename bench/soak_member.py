"""A checksum-verifying member for ``bench/soak.py``: HTTP/1.1 (``--mode http``) or a framed TCP echo (``--mode tcp``).

    python bench/soak_member.py --name m1 --mode http|tcp [--port 0]

Prints ``member NAME listening 127.0.0.1:PORT pid PID`` once it accepts connections (``--port`` lets the soak
restart a killed member on the port the balancer's config names; SO_REUSEADDR).

HTTP routes (every answer carries ``X-Member: NAME`` and echoes the request's ``X-Req`` header):

* ``POST /echo`` with ``X-Sha256: <hex of the body>``: the member hashes what it received; a mismatch answers
  ``422`` (the soak counts it as a corrupted request), otherwise ``200`` with the very body it received and
  ``X-Sha256`` of it. ``X-Chunked: 1`` answers in chunks instead of with a Content-Length.
* ``GET /gen/N/SEED``: ``200`` with N bytes of ``shake_128(SEED)`` (the client regenerates and compares);
  chunked when N is odd.
* ``GET /slow/N/SEED``: as ``/gen`` but the answer stops halfway for ``--slow-s`` seconds, ``paused REQ``
  printed as it stops (a request the soak catches in flight with a SIGKILL).
* ``X-Announce: 1`` on any request: ``upload REQ`` is printed when its head is in, before its body is read
  (the soak kills the member that is receiving an upload).

TCP frames: the client sends ``b"F" + len (4 bytes, big-endian) + sha256 (32) + payload``; the member answers
``b"K" + len(name) (1) + name + the same frame's len, sha256 and payload`` — or ``b"X"`` and the same when the
digest does not match what arrived (corruption on the way in).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import struct
import sys

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]


def gen(n: int, seed: int) -> bytes:
    """The body of ``/gen/N/SEED`` (shared with the soak's client, which regenerates it)."""
    return hashlib.shake_128(b"%d" % seed).digest(n) if n else b""


class HttpMember(asyncio.Protocol):
    def __init__(self, name: bytes, slow_s: float) -> None:
        self.name = name
        self.slow_s = slow_s
        self.parser = httptools.HttpRequestParser(self)
        self.t: asyncio.Transport | None = None
        self.busy: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close()
        except httptools.HttpParserError:
            assert self.t is not None
            self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self._close()

    def _close(self) -> None:
        if self.t is not None:
            self.t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy is not None:
            self.busy.cancel()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if self.headers.get(b"x-announce") == b"1":
            print(f"upload {self.headers.get(b'x-req', b'-').decode()}", flush=True)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.t is not None
        req = self.headers.get(b"x-req", b"-")
        parts = self.url.decode().split("/")
        keep = self.parser.should_keep_alive()
        base = [b"X-Member: " + self.name, b"X-Req: " + req]
        if not keep:
            base.append(b"Connection: close")
        if parts[1:2] == ["echo"]:
            body = b"".join(self.body)
            digest = hashlib.sha256(body).hexdigest().encode()
            if digest != self.headers.get(b"x-sha256"):
                self._answer(422, base, b"corrupt request body: sha256 " + digest, chunked=False, keep=keep)
                return
            self._answer(200, [*base, b"X-Sha256: " + digest], body,
                         chunked=self.headers.get(b"x-chunked") == b"1", keep=keep)
        elif parts[1:2] in (["gen"], ["slow"]) and len(parts) == 4:
            n, seed = int(parts[2]), int(parts[3])
            body = gen(n, seed)
            if parts[1] == "gen":
                self._answer(200, base, body, chunked=n % 2 == 1, keep=keep)
            else:
                self.busy = asyncio.get_running_loop().create_task(self._slow(base, body, keep))
        else:
            self._answer(404, base, b"no route", chunked=False, keep=keep)

    def _answer(self, status: int, headers: list[bytes], body: bytes, *, chunked: bool, keep: bool) -> None:
        assert self.t is not None
        if chunked:
            mid = len(body) // 2
            pieces = [p for p in (body[:mid], body[mid:]) if p]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
            headers = [*headers, b"Transfer-Encoding: chunked"]
        else:
            payload = body
            headers = [*headers, b"Content-Length: %d" % len(body)]
        self.t.write(b"HTTP/1.1 %d X\r\n" % status + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + payload)
        if not keep:
            self.t.close()

    async def _slow(self, headers: list[bytes], body: bytes, keep: bool) -> None:
        assert self.t is not None
        mid = len(body) // 2
        self.t.write(b"HTTP/1.1 200 X\r\n" + b"".join(h + b"\r\n" for h in headers)
                     + b"Content-Length: %d\r\n\r\n" % len(body) + body[:mid])
        print(f"paused {self.headers.get(b'x-req', b'-').decode()}", flush=True)
        await asyncio.sleep(self.slow_s)  # the pause in which the soak's SIGKILL lands
        self.t.write(body[mid:])
        self.busy = None
        if not keep:
            self.t.close()


FRAME_HEAD = struct.Struct(">cI32s")


class TcpMember(asyncio.Protocol):
    def __init__(self, name: bytes) -> None:
        self.prefix = bytes([len(name)]) + name
        self.buf = bytearray()
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.t is not None
        self.buf += data
        while len(self.buf) >= FRAME_HEAD.size:
            kind, n, digest = FRAME_HEAD.unpack_from(self.buf)
            if kind != b"F":
                self.t.abort()
                return
            end = FRAME_HEAD.size + n
            if len(self.buf) < end:
                return
            payload = bytes(self.buf[FRAME_HEAD.size:end])
            del self.buf[:end]
            ok = hashlib.sha256(payload).digest() == digest
            self.t.write((b"K" if ok else b"X") + self.prefix + struct.pack(">I32s", n, digest) + payload)

    def eof_received(self) -> bool:
        return False  # close


async def serve(args: argparse.Namespace) -> None:
    name = args.name.encode()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    loop = asyncio.get_running_loop()
    if args.mode == "http":
        server = await loop.create_server(lambda: HttpMember(name, args.slow_s), sock=sock, backlog=1024)
    else:
        server = await loop.create_server(lambda: TcpMember(name), sock=sock, backlog=1024)
    print(f"member {args.name} listening 127.0.0.1:{sock.getsockname()[1]} pid {os.getpid()}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--mode", choices=("http", "tcp"), required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--slow-s", type=float, default=5.0, help="the pause inside a /slow answer")
    args = ap.parse_args()
    try:
        (uvloop.run if uvloop is not None else asyncio.run)(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
