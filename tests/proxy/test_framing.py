"""HTTP/1.1 request framing on both L7 data planes: every case of ``framing_cases.CASES`` behind a strict member
that records the exact bytes of every request it parsed (and refuses anything not canonical), so a request the
balancer frames differently from its member — a smuggled second request — shows up; the same tricks in front
of a lenient member (Python's ``http.server``); and the rules' one shared limit (C and Python)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from balancedesk.core.proxy import limits
from framing_cases import CASES, XFF, Case
from lbkit import Loop, StartBalancer, connect, group_config, read_response, refused_endpoint, wait_until

_TCHARS = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP/1\.1")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SENTINEL = b"GET /sentinel HTTP/1.1\r\nHost: sentinel\r\n\r\n"


class Violation(Exception):
    pass


def parse_one(buf: bytes) -> int:
    """The length of the first request in ``buf`` if it is complete (0 if not yet); :class:`Violation` if it is
    not a canonical HTTP/1.1 request: CRLF lines, ``Name: value`` fields, one Host, one framing, a strict body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if b"\n" in buf.replace(b"\r\n", b"") or re.search(rb"\r(?!\n|$)", buf):
            raise Violation("a bare CR or LF")
        return 0
    lines = buf[:end].split(b"\r\n")
    if any(b"\r" in ln or b"\n" in ln for ln in lines):
        raise Violation("a bare CR or LF in the head")
    if not _REQUEST_LINE.fullmatch(lines[0]):
        raise Violation(f"request line {lines[0]!r}")
    fields: list[tuple[bytes, bytes]] = []
    for ln in lines[1:]:
        name, colon, value = ln.partition(b":")
        if not colon or not _TCHARS.fullmatch(name):
            raise Violation(f"header line {ln!r}")
        if value != b" " and (value[:1] != b" " or value[1:2] in (b" ", b"\t") or value[-1:] in (b" ", b"\t")):
            raise Violation(f"header line not 'Name: value': {ln!r}")
        if _BAD_VALUE.search(value):
            raise Violation(f"control character in {ln!r}")
        fields.append((name.lower(), value[1:]))
    hosts = [v for n, v in fields if n == b"host"]
    cls = [v for n, v in fields if n == b"content-length"]
    tes = [v for n, v in fields if n == b"transfer-encoding"]
    if len(hosts) != 1:
        raise Violation(f"{len(hosts)} Host headers")
    if len(cls) > 1 or (cls and tes) or (cls and not cls[0].isdigit()) or tes not in ([], [b"chunked"]):
        raise Violation(f"framing: Content-Length {cls}, Transfer-Encoding {tes}")
    at = end + 4
    if cls:
        n = int(cls[0])
        return at + n if len(buf) >= at + n else 0
    if not tes:
        return at
    while True:  # chunked: hex size CRLF data CRLF … 0 CRLF CRLF, nothing else
        e = buf.find(b"\r\n", at)
        if e < 0:
            return 0
        size = buf[at:e]
        if not re.fullmatch(rb"[0-9a-f]+", size):
            raise Violation(f"chunk size {size!r}")
        n = int(size, 16)
        at = e + 2
        if n == 0:
            if len(buf) < at + 2:
                return 0
            if buf[at:at + 2] != b"\r\n":
                raise Violation("trailer fields or junk after the last chunk")
            return at + 2
        if len(buf) < at + n + 2:
            return 0
        if buf[at + n:at + n + 2] != b"\r\n":
            raise Violation("chunk data not followed by CRLF")
        at += n + 2


@dataclass
class StrictMember:
    """A member that parses strictly (:func:`parse_one`), records each request's exact bytes, answers ``200 ok``,
    and records and closes on anything else."""

    bg: Loop
    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    partial: dict[int, bytes] = field(default_factory=dict)  # connection → bytes of a request not complete yet
    server: Any = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> StrictMember:
        async def serve() -> Any:
            return await asyncio.get_running_loop().create_server(lambda: _StrictProto(self), "127.0.0.1", 0)

        self.server = self.bg.run(serve())
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def take(self) -> tuple[list[bytes], list[str], list[bytes]]:
        """What arrived since the last call: requests, violations, and bytes of requests never completed."""
        async def grab() -> tuple[list[bytes], list[str], list[bytes]]:
            out = (self.requests, self.violations, [b for b in self.partial.values() if b])
            self.requests, self.violations = [], []
            return out

        got: tuple[list[bytes], list[str], list[bytes]] = self.bg.run(grab())
        return got


class _StrictProto(asyncio.Protocol):
    def __init__(self, m: StrictMember) -> None:
        self.m = m
        self.buf = b""
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.t is not None
        self.buf += data
        while self.buf:
            try:
                n = parse_one(self.buf)
            except Violation as exc:
                self.m.violations.append(f"{exc} in {self.buf[:300]!r}")
                self.buf = b""
                self.t.close()
                break
            if not n:
                break
            head_only = self.buf.startswith(b"HEAD ")
            self.m.requests.append(self.buf[:n])
            self.buf = self.buf[n:]
            self.t.write(_ANSWER[:-2] if head_only else _ANSWER)
        self.m.partial[id(self)] = self.buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.m.partial.pop(id(self), None)


def ask(addr: tuple[str, int], data: bytes, answers: int) -> list[int | str]:
    """Send ``data`` on a new connection, read up to ``answers`` answers: their statuses (an error's text if the
    connection broke); then the connection must close or stay silent — never a further answer."""
    s = connect(addr)
    got: list[int | str] = []
    try:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)  # refused while sending (a huge head): the answer is still to be read
        for _ in range(answers):
            try:
                status, _, _ = read_response(s)
            except (OSError, AssertionError) as exc:
                got.append(f"error: {exc}")
                break
            got.append(status)
            if not status:
                break
    finally:
        s.close()
    return got


def check(addr: tuple[str, int], member: StrictMember, case: Case) -> str | None:
    """What went wrong with ``case`` (None: the outcome is the rule's)."""
    statuses = ask(addr, case.send, len(case.statuses))
    # a sentinel on a new connection: whatever the case made the balancer forward has arrived before its answer
    sentinel = ask(addr, SENTINEL, 1)
    requests, violations, partial = member.take()
    if sentinel != [200] or not requests or requests[-1] != SENTINEL[:-2] + XFF + b"\r\n":
        return f"sentinel request: {sentinel}, member got {requests[-1:]!r}"
    got = b"".join(requests[:-1])
    problems = []
    if tuple(statuses) != case.statuses:
        problems.append(f"client got {statuses}, expected {list(case.statuses)}")
    if violations:
        problems.append(f"the strict member saw {violations}")
    if partial and not case.cut:
        problems.append(f"bytes of an incomplete request reached the member: {partial!r}")
    if got != case.member:
        problems.append(f"member got {len(requests) - 1} request(s) {got[:400]!r}, expected {case.member[:400]!r}")
    return "; ".join(problems) or None


def test_table_has_the_cases_it_must() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) and len(CASES) >= 58
    assert {c.statuses[-1] for c in CASES} >= {200, 400, 417, 431, 501, 505}


def test_framing_table(balancer: StartBalancer, http_plane: str) -> None:
    bg = Loop()
    try:
        member = StrictMember(bg).start()
        bal = balancer(group_config([("strict", member.endpoint, 1)]), mode="http")
        assert bal.snapshot()["dataPlane"] == http_plane
        failures = [f"{c.name}: {why}" for c in CASES if (why := check(bal.addr, member, c)) is not None]
        assert not failures, f"{len(failures)} of {len(CASES)} cases on {http_plane}:\n" + "\n".join(failures)
    finally:
        bg.close()


# a lenient member -----------------------------------------------------------------------------------------
class _Lenient(BaseHTTPRequestHandler):
    """Python's http.server: it splits header lines on a bare CR or LF alike (email.parser) — the kind of member
    a balancer that forwarded a bare CR would desynchronise."""

    protocol_version = "HTTP/1.1"
    seen: list[str]  # set on the class by LenientMember

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _any(self) -> None:
        self.seen.append(self.requestline)
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _any


class LenientMember:
    def __init__(self) -> None:
        handler = type("Handler", (_Lenient,), {"seen": []})
        self.seen: list[str] = handler.seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


LENIENT_TRICKS = [
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nX-A: a\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\nContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n Content-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\nGET /smuggled HTTP/1.1\r\n"
    b"Host: a\r\n\r\n",
]


@pytest.mark.usefixtures("http_plane")
def test_lenient_member_never_sees_a_bare_cr(balancer: StartBalancer) -> None:
    """Each trick would make http.server read a request the balancer did not: all are 400 at the balancer, and
    the member sees only the plain request sent afterwards."""
    lenient = LenientMember()
    try:
        bal = balancer(group_config([("lenient", lenient.endpoint, 1)]), mode="http")
        for trick in LENIENT_TRICKS:
            assert ask(bal.addr, trick, 1) == [400], trick
        assert ask(bal.addr, b"GET /plain HTTP/1.1\r\nHost: a\r\n\r\n", 1) == [200]
        wait_until(lambda: lenient.seen, what="the plain request at the member")
        assert lenient.seen == ["GET /plain HTTP/1.1"]
    finally:
        lenient.close()


@pytest.mark.usefixtures("http_plane")
def test_refusals_name_the_problem(balancer: StartBalancer) -> None:
    bg = Loop()
    try:
        member = StrictMember(bg).start()
        bal = balancer(group_config([("strict", member.endpoint, 1)]), mode="http")
        for raw, status, words in [
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501, b"CONNECT is not supported"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, b"more than one Host"),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, b"'gzip'"),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, b"HTTP/2.0"),
        ]:
            s = connect(bal.addr)
            s.sendall(raw)
            got, headers, body = read_response(s)
            assert (got, headers["connection"]) == (status, "close") and words in body, (raw, got, body)
            s.close()
        assert member.take()[0] == []
    finally:
        bg.close()


def test_the_engine_hands_over_what_http_py_refuses() -> None:
    """The fast path's header-count bound is limits.REQUEST_HEADERS_MAX (past it, the engine hands the head over)."""
    from balancedesk.core.proxy import _engine

    assert _engine.REQUEST_HEADERS_MAX == limits.REQUEST_HEADERS_MAX



@pytest.mark.usefixtures("http_plane")
def test_an_error_answer_to_head_has_no_body(balancer: StartBalancer) -> None:
    """The balancer's own answer to HEAD carries its length only: the next answer on the connection is read
    where it starts."""
    bal = balancer(group_config([("gone", refused_endpoint(), 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = read_response(s, head_request=True)
    assert status == 502 and int(headers["content-length"]) > 0 and body == b""
    s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 502 and len(body) == int(headers["content-length"]) and b"gone" in body
    s.close()
