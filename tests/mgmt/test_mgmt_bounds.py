"""Bounded before authentication: a real server process, real client sockets, its RSS read from /proc.

A 100 MB head gets 431 and a 100 MB body 413 as soon as the limit is passed, the server's memory stays
flat, it answers other clients meanwhile, and a head that never completes is timed out from the accept.
"""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from balancedesk.core.mgmt.limits import BODY_MAX_BYTES, HEAD_MAX_BYTES, HEAD_TIMEOUT_S, LINGER_S
from mgmt_helpers import ADMIN_PASSWORD, Server, error_of

HUNDRED_MB = 100 * 1024 * 1024
PIECE = b"a" * 65536
AUTH = b"Authorization: Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()) + b"\r\n"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RssWatch:
    """The highest VmRSS of a process, sampled every 10 ms by a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = rss_kib(pid)
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self) -> int:
        """Growth in KiB over the start."""
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_kib(self.pid))
        return self.peak - self.start


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    sent: int  # bytes the client had sent when the answer came
    seconds: float  # from the connect to the answer
    closed_after: float  # from the answer to the server's close


def send_until_answered(url: str, head: bytes, payload_size: int, *, chunked: bool = False) -> Answer:
    """Send ``head`` and then ``payload_size`` bytes (chunked if asked) as fast as the server takes them,
    stopping the moment an answer arrives; read it, then wait for the server to close."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.setblocking(False)
    t0 = time.monotonic()
    out = bytearray(head)
    left = payload_size
    sent = 0
    got = b""
    deadline = t0 + 60
    while b"\r\n\r\n" not in got:
        assert time.monotonic() < deadline, "no answer within 60 s"
        want_write = bool(out) or left > 0
        readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 1.0)
        if readable:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
            continue
        if writable:
            if not out and left > 0:
                piece = PIECE[: min(left, len(PIECE))]
                left -= len(piece)
                out += (b"%x\r\n" % len(piece) + piece + b"\r\n") if chunked else piece
            try:
                n = sock.send(out)
            except (BlockingIOError, InterruptedError):
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += n
            del out[:n]
    answered = time.monotonic()
    sock.setblocking(True)
    sock.settimeout(LINGER_S + 10)
    try:
        while data := sock.recv(65536):
            got += data
    except ConnectionResetError:
        pass
    closed = time.monotonic()
    sock.close()
    head_part, _, body = got.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return Answer(status, json.loads(body), sent, answered - t0, closed - answered)


class Others:
    """Another client asking ``whoami`` again and again while an attack runs; each answer is recorded."""

    def __init__(self, server: Server) -> None:
        self.client = httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=10)
        self.answers: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for _ in range(20_000):
            if self._stop.is_set():
                return
            self.answers.append((time.monotonic(), self.client.get("/api/mgmt/whoami").status_code))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(15)
        self.client.close()
        return self.answers


def _warm(server: Server) -> None:
    """Log the admin in once (argon2 takes its 19 MiB then) so the RSS baseline is the steady one."""
    for _ in range(3):
        assert server.admin.get("/api/mgmt/whoami").status_code == 200


ATTACKS: dict[str, tuple[bytes, bool, int]] = {  # head, chunked, the status expected
    "head": (b"GET /api/mgmt/whoami HTTP/1.1\r\nHost: x\r\nX-Big: ", False, 431),
    "content-length body": (
        b"POST /api/admin/connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % HUNDRED_MB,
        False,
        413,
    ),
    "chunked body": (
        b"POST /api/admin/connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + AUTH
        + b"Transfer-Encoding: chunked\r\n\r\n",
        True,
        413,
    ),
    "chunked body, no credentials": (
        b"POST /api/admin/connectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        True,
        401,
    ),
}
ROUNDS = 3


def test_a_100_mb_head_and_a_100_mb_body_are_refused_at_once_with_flat_rss(server: Server) -> None:
    _warm(server)
    watch = RssWatch(server.child.pid)
    others = Others(server)
    deadline = time.monotonic() + 15
    while not others.answers and time.monotonic() < deadline:
        time.sleep(0.01)  # the other client is being answered before the attacks start
    started = time.monotonic()
    results = [
        (name, send_until_answered(server.url, head, HUNDRED_MB, chunked=chunked), status)
        for _ in range(ROUNDS)
        for name, (head, chunked, status) in ATTACKS.items()
    ]
    finished = time.monotonic()
    answers = others.stop()
    growth_kib = watch.stop()

    for name, a, status in results:
        assert a.status == status, (name, a)
        assert error_of_body(a)["message"]["value"], (name, a)
        # promptly, with most of the 100 MB never sent (the rest is what socket buffers took in)
        assert a.seconds < 10 and a.sent < 40 * 1024 * 1024, (name, a)
        # and the connection closed by the server soon after (it lingers at most LINGER_S)
        assert a.closed_after < LINGER_S + 5, (name, a)
        if name == "content-length body":
            assert a.sent < 8 * 1024 * 1024  # answered at the end of the head, before any body was read
    assert growth_kib < 20 * 1024, f"RSS grew by {growth_kib} KiB"
    during = [s for t, s in answers if started <= t <= finished]
    assert during and all(s == 200 for _, s in answers), answers[-5:]
    assert server.admin.get("/api/mgmt/whoami").status_code == 200


def error_of_body(a: Answer) -> dict[str, Any]:
    err = a.body["error"]
    assert len(err["code"]) == 9 and err["message"]["lang"] == "en-US" and isinstance(err["problems"], list), a.body
    return dict(err)


def test_limits_are_exact_at_their_edges(server: Server) -> None:
    _warm(server)
    client = server.admin
    ok_head = client.get("/api/mgmt/whoami", headers={"X-Pad": "p" * (HEAD_MAX_BYTES - 1024)})
    assert ok_head.status_code == 200
    big = client.get("/api/mgmt/whoami", headers={"X-Pad": "p" * (HEAD_MAX_BYTES + 1)})
    assert big.status_code == 431 and error_of(big)["problems"][0]["field"] == "head"
    # a body of exactly the limit is read (and judged by the rules: a label that long is a 400), one byte more is 413
    label = "l" * (BODY_MAX_BYTES - len('{"label":"","owner":"admin"}'))
    body = json.dumps({"label": label, "owner": "admin"}, separators=(",", ":")).encode()
    assert len(body) == BODY_MAX_BYTES
    at = client.post("/api/admin/connectors", content=body, headers={"Content-Type": "application/json"})
    assert at.status_code == 400 and {p["field"] for p in error_of(at)["problems"]} == {"label"}
    over = client.post("/api/admin/connectors", content=body + b" ", headers={"Content-Type": "application/json"})
    assert over.status_code == 413 and error_of(over)["problems"][0]["field"] == "body"
    # not valid HTTP at all: 400, also in the JSON envelope
    raw = send_until_answered(server.url, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n", 0)
    assert raw.status == 400 and error_of_body(raw)["problems"][0]["field"] == "request"
    assert client.get("/api/mgmt/whoami").status_code == 200


def test_a_head_that_never_completes_is_closed_after_the_head_timeout(server: Server) -> None:
    """From the accept for a first request (silent, partial, trickling); from its first byte for a later one
    on a kept-alive connection (kept: a whole request, its answer, a pause, then half a head)."""
    _warm(server)
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    socks = {name: socket.create_connection((host, int(port))) for name in ("silent", "partial", "trickle", "kept")}
    opened = time.monotonic()
    socks["partial"].sendall(b"GET /api/mgmt/whoami HTTP/1.1\r\nHost: x\r\n")
    socks["trickle"].sendall(b"GET /api/mgmt/whoami HTTP/1.1\r\n")
    socks["kept"].sendall(b"GET /api/mgmt/whoami HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n")
    start = dict.fromkeys(socks, opened)
    got = {name: b"" for name in socks}
    closed: dict[str, float] = {}
    others = Others(server)
    next_drip = opened
    kept_answered_at: float | None = None
    start_sent: set[str] = set()
    while len(closed) < len(socks):
        now = time.monotonic()
        assert now - opened < HEAD_TIMEOUT_S + 15, f"still open after {now - opened:.1f} s: {set(socks) - set(closed)}"
        if now >= next_drip and "trickle" not in closed:
            with contextlib.suppress(OSError):
                socks["trickle"].send(b"X-Drip: 1\r\n")  # a header line every half second: the head never ends
            next_drip = now + 0.5
        if kept_answered_at is None and b'"user":"admin"' in got["kept"]:
            kept_answered_at = now
        if kept_answered_at is not None and "kept" not in start_sent and now >= kept_answered_at + 2:
            socks["kept"].sendall(b"GET /api/mgmt/whoami HTTP/1.1\r\nHost: x\r\n")
            start["kept"] = time.monotonic()
            start_sent.add("kept")
        live = [s for n, s in socks.items() if n not in closed]
        readable, _, _ = select.select(live, [], [], 0.1)
        for sock in readable:
            name = next(n for n, s in socks.items() if s is sock)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                got[name] += data
            else:
                closed[name] = time.monotonic() - start[name]
    answers = others.stop()
    for sock in socks.values():
        sock.close()
    assert "kept" in start_sent, got["kept"]
    for name, at in closed.items():
        assert HEAD_TIMEOUT_S - 0.5 <= at <= HEAD_TIMEOUT_S + 5, (name, at)
    assert got["silent"] == b""  # not a byte came: closed without an answer
    got["kept"] = got["kept"].split(b"HTTP/1.1 200 OK", 1)[1].split(b"}", 1)[1]  # after its first answer
    for name in ("partial", "trickle", "kept"):
        head, _, body = got[name].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), (name, got[name])
        assert json.loads(body)["error"]["problems"][0]["field"] == "head"
    assert answers and all(s == 200 for _, s in answers)


def test_an_answer_sent_before_the_body_arrived_says_connection_close(server: Server) -> None:
    """A 401 ahead of an unread body: the server will read no more of it and close, so the answer says so —
    a keep-alive client must not send its next request on that connection."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"PUT /api/mgmt/connectors/x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")  # the head alone: the body is never sent
        got = b""
        while b"\r\n\r\n" not in got:
            data = sock.recv(65536)
            assert data, "closed without an answer"
            got += data
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 401") and b"\r\nconnection: close" in head, head
