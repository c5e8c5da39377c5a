"""The kit for the proxy tests: a ``balancedesk balance`` child and its admin endpoint, upstream processes,
in-process members on 127.0.0.1:0, group configs, and bounded clients (async L4, raw-socket HTTP/1.1).

The fixtures in ``conftest.py`` bind :func:`start_balancer` and :func:`start_upstream` to ``spawn`` (which kills
every child by its PID at teardown) and to ``tmp_path``. Waiting is always on a condition with a deadline,
never a bare sleep; every client call has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httptools
import httpx

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]
Child = Any  # tests/conftest.py's Child: .pid, .proc, .wait_for(pattern), .kill(), .lines
Spawn = Callable[..., Child]  # tests/conftest.py's ``spawn`` fixture: spawn(cmd, env=None) → Child
UPSTREAMS = Path(__file__).parent / "upstreams"
UPSTREAM_READY_RX = r"upstream (\S+) listening 127\.0\.0\.1:(\d+)"
# the balancer's readiness line (core/proxy/server.py's ready_line): listen address [admin URL]
BALANCING_RX = r"balancedesk: balancing (127\.0\.0\.1):(\d+)(?: admin (http://127\.0\.0\.1:\d+))?"
DEADLINE = 10.0

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], *, what: str, timeout: float = DEADLINE, every: float = 0.02) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")
        time.sleep(every)  # polling interval of a condition wait, not a wait for time to pass


async def async_wait_until(probe: Callable[[], Awaitable[Any]], *, deadline_s: float, what: str,
                           every: float = 0.05) -> Any:
    """:func:`wait_until` for an async probe, inside a running event loop."""
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {deadline_s}s: {what} (last: {last!r})")
        await asyncio.sleep(every)  # polling interval of a condition wait


# group configs ------------------------------------------------------------------------------------------
def group_config(members: list[tuple[str, str, int]], *, round_robin: bool = True, connection_timeout: int = 2,
                 retry_delay: int = 30, label: str = "shell group", connector_id: str = "grp-1") -> dict[str, Any]:
    """A balancer config file's content. members: (memberID, endpoint, weight); sequence = listing order."""
    group: dict[str, Any] = {
        "connectionTimeout": connection_timeout,
        "retryDelay": retry_delay,
        "members": [{"memberID": m, "sequence": i + 1, "weight": w} for i, (m, _, w) in enumerate(members)],
    }
    if round_robin:
        group["loadBalancing"] = "Round Robin"
    return {"connectorID": connector_id, "owner": "alice", "label": label, "connectorGroup": group, "authUser": [],
            "endpoints": {m: ep for m, ep, _ in members}}


def refused_endpoint() -> str:
    """A loopback endpoint nobody listens on (connects to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# the balancer -----------------------------------------------------------------------------------------
@dataclass
class Balancer:
    """A running ``balancedesk balance`` child, with what its readiness line said."""

    child: Child
    host: str
    port: int
    admin_url: str | None
    token: str
    token_file: Path | None
    config_path: Path | None  # None when the balancer pulls its group from a management server (--api)

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request to the admin endpoint with the bearer token (``kw`` as for ``httpx.request``)."""
        assert self.admin_url is not None, "this balancer was started without an admin endpoint"
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return httpx.request(method, self.admin_url + path, headers=headers, timeout=DEADLINE, **kw)

    def admin_json(self, method: str, path: str, **kw: Any) -> Any:
        """An admin request that must answer 200 with JSON: the decoded body."""
        r = self.admin(method, path, **kw)
        assert r.status_code == 200, f"admin {method} {path}: {r.status_code} {r.text[:500]}"
        try:
            return r.json()
        except ValueError:
            raise AssertionError(f"admin {method} {path}: {r.status_code}, {len(r.content)} bytes, "
                                 f"headers {dict(r.headers)}, not JSON: {r.content[:200]!r}…{r.content[-200:]!r}"
                                 ) from None

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = self.admin_json("GET", "/admin/snapshot")
        return out

    def events(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Every event after the cursor ``after``, page by page."""
        evs: list[dict[str, Any]] = []
        while True:
            page = self.admin_json("GET", "/admin/events", params={"after": after, "limit": limit})
            evs += page["events"]
            if not page["events"] or page["cursor"] == after:
                return evs
            after = page["cursor"]

    def member(self, member_id: str) -> dict[str, Any]:
        return next(m for m in self.snapshot()["members"] if m["memberID"] == member_id)

    def write_config(self, config: dict[str, Any]) -> int:
        """Replace the config file atomically and wait until the balancer serves the new version."""
        assert self.config_path is not None, "this balancer has no config file"
        before = self.snapshot()["version"]
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        os.replace(tmp, self.config_path)
        version: int = wait_until(lambda: (v := self.snapshot()["version"]) != before and v,
                                  timeout=15, what="the balancer to load the edited config file")
        return version


StartBalancer = Callable[..., Balancer]  # the ``balancer`` fixture: start_balancer bound to spawn and a folder


def balance_cmd(source: Sequence[str], *, mode: str, args: Sequence[str] = (),
                token_file: Path | None = None) -> list[str]:
    """The ``balancedesk balance`` command line, listening on 127.0.0.1:0. ``source`` is ``["--config", FILE]``
    or ``["--api", URL, "--group", ID, …]``; with ``token_file``, an admin endpoint on 127.0.0.1:0 (the balancer
    creates the token file, 0600 with a random token, if it does not exist)."""
    cmd = [*BALANCEDESK, "balance", *source, "--listen", "127.0.0.1:0", "--mode", mode, *args]
    if token_file is not None:
        cmd += ["--admin", "127.0.0.1:0", "--admin-token-file", str(token_file)]
    return cmd


def start_balancer(spawn: Spawn, folder: Path, source: dict[str, Any] | Sequence[str], *, mode: str = "tcp",
                   args: Sequence[str] = (), admin: bool = True, env: dict[str, str] | None = None,
                   timeout: float = 20.0) -> Balancer:
    """Start a balancer and wait for its readiness line. ``source`` is a config (written to
    ``folder/config.json``) or the CLI's group source arguments (``--api URL --group ID …``); its files
    (config, admin token) go to ``folder``."""
    config_path: Path | None = None
    if isinstance(source, dict):
        config_path = folder / "config.json"
        config_path.write_text(json.dumps(source))
        source = ["--config", str(config_path)]
    token_file = folder / "admin.token" if admin else None
    child = spawn(balance_cmd(source, mode=mode, args=args, token_file=token_file), env=env)
    m = child.wait_for(BALANCING_RX, timeout=timeout)
    assert (m[3] is not None) == admin, f"readiness line {m[0]!r} for a balancer with admin={admin}"
    token = token_file.read_text().strip() if token_file is not None else ""
    return Balancer(child, m[1], int(m[2]), m[3], token, token_file, config_path)


# upstream processes (upstreams/*.py) --------------------------------------------------------------------
@dataclass
class Upstream:
    name: str
    port: int
    child: Child
    script: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


StartUpstream = Callable[..., Upstream]  # the ``upstream`` fixture: start_upstream bound to spawn


def start_upstream(spawn: Spawn, kind: str, name: str, port: int = 0) -> Upstream:
    """An ``upstreams/KIND.py`` process (tcp_name / http_backend / blackhole) once it announces its port."""
    script = str(UPSTREAMS / f"{kind}.py")
    cmd = [sys.executable, script, "--name", name]
    if port:
        cmd += ["--port", str(port)]
    child = spawn(cmd)
    m = child.wait_for(UPSTREAM_READY_RX, timeout=15)
    return Upstream(name, int(m[2]), child, script)


# in-process members -------------------------------------------------------------------------------------
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


@dataclass
class HttpMember:
    """An HTTP/1.1 member. Answers ``200`` with its name, or with JSON describing what it received when
    the path starts with ``/echo`` (head, body length and sha256); ``/status/NNN`` answers status NNN with
    its name; ``/chunked`` answers in chunks,
    ``/close`` ends the body by closing; ``/garbage`` answers with no HTTP, ``/cut`` dies 10 bytes into a
    100-byte body, ``/hang`` never answers."""

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
        elif url.startswith("/both"):  # Content-Length beside chunked (RFC 9112: the length is ignored)
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        elif url.startswith("/garbage"):  # not HTTP at all
            self.t.write(b"SPAM SPAM SPAM\r\n\r\n")
        elif url.startswith("/cut"):  # announces 100 bytes, sends 10, dies
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            self.t.abort()
        elif url.startswith("/hang"):  # never answers
            pass
        elif url.startswith("/status/"):  # answers with the status the path names
            head = b"HTTP/1.1 %s X\r\nContent-Length: %d\r\n\r\n" % (url[8:11].encode(), len(body))
            self.t.write(head + body)
        elif url.startswith("/close"):  # no length: the body ends with the connection
            self.t.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
            self.t.close()
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.t.write(head if method == "HEAD" else head + body)


class _EchoProto(asyncio.Protocol):
    """TCP echo that passes a half-close on: after the client's EOF, echo what is left, then EOF. With flow
    control: while its peer does not read, it does not read either (as a real server would)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.t.write(data)

    def pause_writing(self) -> None:
        self.t.pause_reading()

    def resume_writing(self) -> None:
        self.t.resume_reading()

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


# async L4 clients --------------------------------------------------------------------------------------
async def ask(addr: tuple[str, int], line: bytes = b"hi\n", *, deadline_s: float = 10.0) -> str | None:
    """One new L4 connection: send a line, read the answering upstream's name. None if the balancer
    closed or reset the connection without an answer."""
    async with asyncio.timeout(deadline_s):
        try:
            reader, writer = await asyncio.open_connection(*addr)
        except OSError:
            return None
        try:
            writer.write(line)
            reply = await reader.readline()
        except OSError:
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return reply.split(b" ", 1)[0].decode() if reply else None


class Held:
    """A long-lived L4 connection through the balancer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.member: str | None = None

    @classmethod
    async def open(cls, addr: tuple[str, int]) -> Held:
        reader, writer = await asyncio.open_connection(*addr)
        held = cls(reader, writer)
        held.member = await held.ask(b"hello\n")
        assert held.member is not None, "a new long-lived connection got no answer"
        return held

    async def ask(self, line: bytes, *, deadline_s: float = 10.0) -> str | None:
        try:
            async with asyncio.timeout(deadline_s):
                self.writer.write(line)
                reply = await self.reader.readline()
        except TimeoutError:
            raise AssertionError(f"no answer and no close within {deadline_s}s on a held connection") from None
        except OSError:
            return None
        if not reply:
            return None
        name, _, echoed = reply.partition(b" ")
        assert echoed == line, (echoed, line)
        return name.decode()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def bounded_gather(n: int, limit: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """Run ``make(i)`` for i in range(n), at most ``limit`` at a time."""
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> T:
        async with sem:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


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
