"""Bounded before anything else (core/proxy/limits.py): a huge request head to the data plane or to the admin
endpoint, a huge admin body and a member's huge answer head are each refused promptly (431/413/502) while
the balancer's RSS stays flat and the data plane keeps serving other clients; a connection that never sends
a byte is closed after the head timeout. Every test runs on both L7 data planes.

The payloads are "100 MB" as an upper bound: they go in bounded chunks and the sender stops as soon as the
other side has answered or closed — the point is that nobody reads them whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from balancedesk.core.proxy import limits
from lbkit import DEADLINE, Balancer, Members, StartBalancer, connect, group_config, read_response, request, wait_until

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes

HUGE = 100 * 1024 * 1024  # the attack's size: never sent whole
CHUNK = 64 * 1024
RSS_GROWTH_MAX_KB = 20 * 1024
ATTACKS = 5  # attacks per test, one after the other


def rss_kb(pid: int) -> int:
    """VmRSS of the balancer process, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class Flood:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int


def flood(addr: tuple[str, int], first: bytes, filler: bytes, *, total: int = HUGE) -> Flood:
    """Send ``first``, then ``filler`` again and again up to ``total`` bytes, stopping as soon as the peer has
    answered or closed; then read its answer (status 0: closed without one)."""
    s = socket.create_connection(addr, timeout=DEADLINE)
    sent = 0
    try:
        s.sendall(first)
        sent = len(first)
        while sent < total:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break
            try:
                sent += s.send(filler)  # blocks at most DEADLINE: a peer that stops reading fails the test
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            status, headers, body = read_response(s)
        except ConnectionResetError:
            status, headers, body = 0, {}, b""
        return Flood(status, headers, body, sent)
    finally:
        s.close()


class Traffic:
    """Other clients meanwhile: requests through the data plane, one after the other, in a thread."""

    def __init__(self, addr: tuple[str, int], path: str = "/") -> None:
        self.addr = addr
        self.path = path
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 120  # bounded however the test goes
        s: socket.socket | None = None
        for _ in range(100_000):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            try:
                if s is None:
                    s = connect(self.addr)
                status, _, _ = request(s, "GET", self.path)
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"status {status}")
                # The clients' own pace (at most ~500 requests/s), not a wait for the balancer: unpaced, the native
                # plane served all 100,000 requests before a 10 s attack ended, and "a request after the attack"
                # then never came.
                self._stop.wait(0.002)
            except OSError as exc:
                self.failed.append(repr(exc))
                s = None
        if s is not None:
            s.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[Traffic]:
        self._thread.start()
        wait_until(lambda: self.ok or self.failed, what="the first request of the other clients")
        try:
            yield self
            after = self.ok  # and one more once the attacks are done (their connections may still linger)
            wait_until(lambda: self.ok > after or self.failed, what="a request of the other clients after the attack")
        finally:
            self._stop.set()
            self._thread.join(DEADLINE)
        assert not self.failed, f"other clients failed during the attack: {self.failed[:5]}"


def attacked(bal: Balancer, attack: Callable[[], Flood], *, traffic_path: str = "/") -> list[Flood]:
    """Run ``attack()`` ATTACKS times while other clients use the data plane; the balancer's RSS must stay
    flat (measured after one attack and a few requests warmed it up)."""
    results = [attack()]
    s = connect(bal.addr)
    for _ in range(20):
        assert request(s, "GET", traffic_path)[0] == 200
    s.close()
    before = rss_kb(bal.child.pid)
    with Traffic(bal.addr, traffic_path).running():
        for _ in range(ATTACKS):
            results.append(attack())
    grown = rss_kb(bal.child.pid) - before
    assert grown < RSS_GROWTH_MAX_KB, f"the balancer's RSS grew by {grown} kB during the attacks"
    return results


def admin_addr(bal: Balancer) -> tuple[str, int]:
    assert bal.admin_url is not None
    host, port = bal.admin_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_huge_request_head_to_the_data_plane_431(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")

    def attack() -> Flood:
        return flood(bal.addr, b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: ", b"v" * CHUNK)

    for f in attacked(bal, attack):
        assert f.status == 431, f
        assert f.sent < 16 * 1024 * 1024, f"{f.sent} bytes went in before the answer"


def test_huge_request_head_to_the_admin_endpoint_431_before_the_token(balancer: StartBalancer,
                                                                       members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    addr = admin_addr(bal)

    def attack() -> Flood:  # no token at all: the bound comes first
        return flood(addr, b"GET /admin/snapshot HTTP/1.1\r\nHost: t\r\nX-Big: ", b"v" * CHUNK)

    for f in attacked(bal, attack):
        assert f.status == 431, f
        assert f.headers["content-type"] == "application/json" and f.headers["connection"] == "close"
        assert "head larger than" in json.loads(f.body)["error"]["message"]
        assert f.sent < 16 * 1024 * 1024
    assert bal.snapshot()["mode"] == "http"  # and the endpoint still serves


def test_huge_admin_body_413_before_it_is_read(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    addr = admin_addr(bal)
    auth = f"Authorization: Bearer {bal.token}\r\n".encode()

    def by_length() -> Flood:  # announced by Content-Length, without a token: 413 at the end of the head
        return flood(addr, b"PUT /admin/config HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % HUGE,
                     b"{" * CHUNK)

    def chunked() -> Flood:  # chunked, with the token: 413 once the limit is passed
        piece = b"%x\r\n%s\r\n" % (CHUNK, b"{" * CHUNK)
        return flood(addr, b"PUT /admin/config HTTP/1.1\r\nHost: t\r\n" + auth
                     + b"Transfer-Encoding: chunked\r\n\r\n", piece)

    for attack in (by_length, chunked):
        for f in attacked(bal, attack):
            assert f.status == 413, f
            assert "body larger than" in json.loads(f.body)["error"]["message"]
            assert f.sent < 16 * 1024 * 1024
    # a body within the limit is still read (and judged: not a config)
    r = bal.admin("PUT", "/admin/config", content=b" " * (limits.ADMIN_BODY_MAX_BYTES // 2) + b"{}")
    assert r.status_code == 400 and r.json()["error"]


class HugeHeadMember(asyncio.Protocol):
    """A member answering ``/huge`` with an endless head (up to HUGE bytes, written as fast as the balancer
    reads; it stops when the balancer closes), anything else with ``200 ok``. ``sent`` collects, per huge
    answer, the bytes written when it stopped."""

    def __init__(self, sent: list[int]) -> None:
        self.sent = sent
        self.t: asyncio.Transport | None = None
        self.buf = b""
        self.n = -1  # bytes of the huge head written; -1: not writing one
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.n < 0 and b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            assert self.t is not None
            if head.split(b" ", 2)[1].startswith(b"/huge"):
                self.t.write(b"HTTP/1.1 200 OK\r\nX-Huge: ")
                self.n = 0
                self._more()
            else:
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def _more(self) -> None:
        chunk = b"a" * CHUNK
        while self.t is not None and not self.t.is_closing() and not self.paused and 0 <= self.n < HUGE:
            self.t.write(chunk)
            self.n += CHUNK

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._more()

    def connection_lost(self, exc: Exception | None) -> None:
        self.t = None
        if self.n >= 0:
            self.sent.append(self.n)


def test_huge_answer_head_from_a_member_502_and_counted(balancer: StartBalancer, members: Members) -> None:
    sent: list[int] = []

    async def start() -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(lambda: HugeHeadMember(sent), "127.0.0.1", 0)

    server = members.bg.run(start())
    members.servers.append(server)
    port = server.sockets[0].getsockname()[1]
    bal = balancer(group_config([("big", f"127.0.0.1:{port}", 1)]), mode="http")

    def attack() -> Flood:
        s = connect(bal.addr)
        try:
            status, headers, body = request(s, "GET", "/huge")
        finally:
            s.close()
        return Flood(status, headers, body, 0)

    results = attacked(bal, attack, traffic_path="/ok")
    for f in results:
        assert f.status == 502 and b"bad response from member big" in f.body, f
    wait_until(lambda: len(sent) >= len(results), what="the member to see every huge answer cut off")
    assert max(sent) < 16 * 1024 * 1024, f"the balancer read {max(sent)} bytes of an answer head"
    # a failed request on that member: counted in the totals, and a failed route naming it
    assert bal.snapshot()["totals"]["failed"] >= len(results)
    failed = [e for e in bal.events() if e["kind"] == "route" and e["outcome"] == "failed"]
    assert failed and all(e["attempts"][-1]["memberID"] == "big" for e in failed)


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_head_timeout(
        balancer: StartBalancer, members: Members) -> None:
    timeout = 1.0
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http",
                   args=["--header-timeout", str(timeout)])
    t0 = time.monotonic()
    silent = connect(bal.addr)
    partial = connect(bal.addr)
    partial.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # a head started and never finished
    kept = connect(bal.addr)  # a kept-alive connection is timed by the idle timeout between requests
    assert request(kept, "GET", "/")[0] == 200
    assert silent.recv(1024) == b"", "a silent connection got an answer"  # the socket's DEADLINE bounds it
    assert time.monotonic() - t0 >= timeout - 0.1
    status, _, body = read_response(partial)
    assert status == 408 and b"not complete" in body
    assert request(kept, "GET", "/")[0] == 200
    for s in (silent, partial, kept):
        s.close()


def test_admin_connections_silent_or_slow_are_timed_from_the_accept(balancer: StartBalancer,
                                                                     members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    addr = admin_addr(bal)
    t0 = time.monotonic()
    silent = socket.create_connection(addr, timeout=limits.ADMIN_HEAD_TIMEOUT_S + DEADLINE)
    slow = socket.create_connection(addr, timeout=limits.ADMIN_HEAD_TIMEOUT_S + DEADLINE)
    slow.sendall(b"GET /admin/snapshot HTTP/1.1\r\nHost: t\r\n")
    with Traffic(bal.addr).running():
        status, headers, body = read_response(slow)
        assert status == 408 and headers["content-type"] == "application/json"
        assert "not complete" in json.loads(body)["error"]["message"]
        assert silent.recv(1024) == b""
    assert time.monotonic() - t0 >= limits.ADMIN_HEAD_TIMEOUT_S - 0.1
    silent.close()
    slow.close()


def test_the_engine_has_no_limits_of_its_own(http_plane: str) -> None:
    """The C engine's one compile-time size is the one in limits.py; its HTTP mode takes every limit as an
    argument and has no defaults."""
    from balancedesk.core.proxy import native

    if not native.available():
        pytest.skip(native.MISSING)
    from balancedesk.core.proxy import _engine

    assert _engine.IO_CHUNK_BYTES == limits.IO_CHUNK_BYTES

    def nothing(*_a: object) -> int:
        return -1

    with pytest.raises(TypeError, match="HTTP mode needs head_limit"):
        _engine.Engine(nothing, nothing, on_request=nothing, on_fail=nothing, on_handoff=nothing)
