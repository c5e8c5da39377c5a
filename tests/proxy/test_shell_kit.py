"""Helpers for the proxy shell's own tests (no tests here): in-process members on 127.0.0.1:0 running in a
background event loop, a balancer started through the real CLI, raw-socket HTTP helpers.

Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]
READY_RX = r"balancedesk: balancing (\S+):(\d+)(?: admin (http://\S+))?"
DEADLINE = 10.0


def wait_until(probe: Callable[[], Any], *, timeout: float = DEADLINE, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last {got!r})")
        time.sleep(0.02)  # polling interval of a condition wait


class Loop:
    """An asyncio loop in a daemon thread, for members the tests run in-process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = DEADLINE) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        async def _cancel() -> None:
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

        self.run(_cancel())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# members --------------------------------------------------------------------------------------------
@dataclass
class HttpMember:
    """An HTTP/1.1 member. Answers ``200`` with its name, or with JSON describing what it received when
    the path starts with ``/echo`` (head, body length and sha256); ``/chunked`` answers in chunks."""

    name: str
    port: int = 0
    server: Any = None
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    first_body_at: list[float] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


class _HttpMemberProto(asyncio.Protocol):
    def __init__(self, m: HttpMember) -> None:
        self.m = m
        self.parser = httptools.HttpRequestParser(self)
        self.t: asyncio.Transport | None = None
        self.drop_next = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]
        self.m.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.t is not None
            self.t.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.h = hashlib.sha256()
        self.n = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode(), value.decode()))

    def on_body(self, body: bytes) -> None:
        if not self.n:
            self.m.first_body_at.append(time.monotonic())
        self.n += len(body)
        self.h.update(body)

    def on_message_complete(self) -> None:
        assert self.t is not None
        url = self.url.decode()
        method = self.parser.get_method().decode()
        info = {"member": self.m.name, "method": method, "url": url, "headers": self.headers,
                "length": self.n, "sha256": self.h.hexdigest()}
        self.m.requests.append(info)
        if self.drop_next:  # as if the member closed this keep-alive connection just as the request came
            self.t.close()
            return
        self.drop_next = url.startswith("/drop-next")
        body = json.dumps(info).encode() if url.startswith("/echo") else self.m.name.encode()
        if url.startswith("/chunked"):
            parts = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
            for piece in (body, b"-", body):
                parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            parts.append(b"0\r\n\r\n")
            self.t.writelines(parts)
        elif url.startswith("/close"):  # no length: the body ends with the connection
            self.t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
            self.t.close()
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.t.write(head if method == "HEAD" else head + body)


class _EchoProto(asyncio.Protocol):
    """TCP echo that passes a half-close on: after the client's EOF, echo what is left, then EOF."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.t.write(data)

    def eof_received(self) -> bool:
        self.t.write_eof()
        return True


class Members:
    def __init__(self) -> None:
        self.bg = Loop()
        self.servers: list[Any] = []

    def http(self, name: str) -> HttpMember:
        m = HttpMember(name)

        async def start() -> Any:
            return await asyncio.get_running_loop().create_server(lambda: _HttpMemberProto(m), "127.0.0.1", 0)

        m.server = self.bg.run(start())
        self.servers.append(m.server)
        m.port = m.server.sockets[0].getsockname()[1]
        return m

    def echo(self) -> str:
        async def start() -> Any:
            return await asyncio.get_running_loop().create_server(_EchoProto, "127.0.0.1", 0)

        server = self.bg.run(start())
        self.servers.append(server)
        return f"127.0.0.1:{server.sockets[0].getsockname()[1]}"

    def close(self) -> None:
        async def stop() -> None:
            for s in self.servers:
                s.close()

        self.bg.run(stop())
        self.bg.close()


def refused_endpoint() -> str:
    """A loopback port nobody listens on (connects are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"127.0.0.1:{port}"


class BlackHole:
    """A listener whose accept queue is full, so new connects hang (→ connect timeout)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.fillers: list[socket.socket] = []
        port = self.sock.getsockname()[1]
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            self.fillers.append(c)
        self.endpoint = f"127.0.0.1:{port}"

    def close(self) -> None:
        for c in self.fillers:
            c.close()
        self.sock.close()


# config and balancer ----------------------------------------------------------------------------------
def group_config(endpoints: dict[str, str], *, round_robin: bool = True, timeout: int = 2,
                 retry: int = 30, weights: dict[str, int] | None = None, label: str = "shell group") -> dict[str, Any]:
    members = [{"memberID": mid, "sequence": i + 1, "weight": (weights or {}).get(mid, 1)}
               for i, mid in enumerate(endpoints)]
    group: dict[str, Any] = {"connectionTimeout": timeout, "retryDelay": retry, "members": members}
    if round_robin:
        group["loadBalancing"] = "Round Robin"
    return {"connectorID": "grp-1", "owner": "alice", "label": label, "connectorGroup": group, "authUser": [],
            "endpoints": endpoints}


@dataclass
class Running:
    child: Any
    host: str
    port: int
    admin_url: str | None
    token: str
    config_path: Path

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.admin_url is not None
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.request(method, self.admin_url + path, headers=headers, timeout=DEADLINE, **kw)

    def snapshot(self) -> dict[str, Any]:
        r = self.admin("GET", "/admin/snapshot")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def member(self, mid: str) -> dict[str, Any]:
        return next(m for m in self.snapshot()["members"] if m["memberID"] == mid)


def start_balancer(spawn: Callable[..., Any], tmp: Path, cfg: dict[str, Any], *, mode: str,
                   args: list[str] | None = None, admin: bool = True) -> Running:
    path = tmp / "balancer.json"
    path.write_text(json.dumps(cfg))
    token_file = tmp / "admin.token"
    cmd = [*BALANCEDESK, "balance", "--config", str(path), "--listen", "127.0.0.1:0", "--mode", mode,
           *(args or [])]
    if admin:
        cmd += ["--admin", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    child = spawn(cmd)
    m = child.wait_for(READY_RX, timeout=20)
    token = token_file.read_text().strip() if admin else ""
    return Running(child, m.group(1), int(m.group(2)), m.group(3), token, path)


# raw HTTP client helpers -------------------------------------------------------------------------------
def connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr, timeout=DEADLINE)
    s.settimeout(DEADLINE)
    return s


_LEFTOVER: weakref.WeakKeyDictionary[socket.socket, bytes] = weakref.WeakKeyDictionary()


class _Response:
    """Parser callbacks collecting one final (non-1xx) response; interim 100 answers are skipped."""

    def __init__(self, *, head_request: bool) -> None:
        self.head_request = head_request
        self.parser = httptools.HttpResponseParser(self)
        self.complete = False
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        if self.head_request and self.parser.get_status_code() != 100:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if self.parser.get_status_code() == 100:
            self.headers, self.body = {}, []
        else:
            self.complete = True


def read_response(sock: socket.socket, *, head_request: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length, chunked, or until close) from ``sock``.

    Pipelined answers may arrive in one segment: bytes past the end of this response are kept for the
    next call on the same socket (the chunk where it ends is re-fed byte by byte to find that end)."""
    chunks: list[bytes] = []
    watch = _Response(head_request=head_request)
    data = _LEFTOVER.pop(sock, b"")
    while not watch.complete:
        if not data:
            data = sock.recv(1 << 16)
        if not data:
            if "content-length" not in watch.headers and "transfer-encoding" not in watch.headers:
                return (watch.parser.get_status_code() if chunks else 0), watch.headers, b"".join(watch.body)
            raise AssertionError("connection closed mid-response")
        chunks.append(data)
        watch.parser.feed_data(data)
        data = b""
    exact = _Response(head_request=head_request)
    for chunk in chunks[:-1]:
        exact.parser.feed_data(chunk)
    last = chunks[-1]
    for i in range(len(last)):
        exact.parser.feed_data(last[i:i + 1])
        if exact.complete:
            if last[i + 1:]:
                _LEFTOVER[sock] = last[i + 1:]
            break
    return exact.parser.get_status_code(), exact.headers, b"".join(exact.body)


def request(sock: socket.socket, method: str, path: str, *, headers: dict[str, str] | None = None,
            body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    h = {"Host": "test", **(headers or {})}
    if body and "Transfer-Encoding" not in h:
        h["Content-Length"] = str(len(body))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    sock.sendall(head.encode() + body)
    return read_response(sock, head_request=method == "HEAD")


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
