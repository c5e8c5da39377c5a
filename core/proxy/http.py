"""L7 (HTTP/1.1): keep-alive on both sides, one pick per request, pooled upstream connections, bodies
streamed both ways (Content-Length as is, chunked re-chunked, chunk extensions and trailers dropped), hop-by-hop
headers dropped, ``X-Forwarded-For`` added, ``Expect: 100-continue`` answered by the proxy once a member is
connected. Which requests are forwarded, and how they are framed, is :mod:`framing`'s decision (refusals: 400,
417, 431, 501, 505). An ``Upgrade`` (WebSocket…) goes to the member; after its ``101`` the two connections are
relayed byte for byte, with flow control and the idle timeout, until either side closes (a refusal of the
upgrade is forwarded and the client connection closed after it).

Limits (values in :mod:`limits`): head over ``head_limit`` → 431; head not complete within ``head_timeout``
(from the accept for the first request, from its first byte for a later one) → 408, or a plain close if
not a byte came since the accept; malformed → 400;
every member failed → 502 (refused/reset/unreachable) or 504 (timeout) naming the group and members tried;
no enabled member → 503. Retry on another member only before anything of the answer reached the client:
always after a failed connect (the body was not sent yet); after a connection died before the answer, or
the member sent no answer byte within the group's ``listener.readTimeout`` (or the idle timeout, if shorter)
after the request was complete, only for idempotent methods whose body is still held (≤ ``REPLAY_BODY_BYTES``) —
nginx's rule; otherwise 502 (closed) or 504 (stalled). A member that stalls, or closes a fresh connection
before answering, is counted failed and disabled for retryDelay as a failed connect is; one that closes a
pooled connection is counted failed only (it may have closed it idle as the request went out: the keep-alive
race, retried once on a fresh connection when the request can be sent again). A client that leaves while
its request's connect is in progress (EOF with no request bytes left unsent) abandons the connect.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools
from balancedesk.core.proxy.accesslog import ABANDONED, FAILED, OK, REQUEST_LINE_MAX, RESET
from balancedesk.core.proxy.framing import REQ_SPECIAL, WATCHED, Refused, decide
from balancedesk.core.proxy.limits import PENDING_BODY_BYTES, REPLAY_BODY_BYTES
from balancedesk.core.proxy.runtime import MemberStats, Runtime, classify
from balancedesk.core.proxy.upstream import UpConn

if TYPE_CHECKING:
    from balancedesk.core.proxy.shell import Shell

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_END_CHUNKS = b"0\r\n\r\n"
# pause reasons (bit mask) for the client's reading
P_PENDING, P_UPSTREAM, P_QUEUE = 1, 2, 4

REASONS = {400: "Bad Request", 408: "Request Timeout", 417: "Expectation Failed",
           431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported"}


def error_response(status: int, text: str, *, keep: bool, head_only: bool = False) -> bytes:
    """An answer of the proxy's own: ``status`` with ``text`` as a plain-text body (its length only, for HEAD)."""
    body = text.encode()
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s\r\n%s"
            % (status, REASONS[status].encode(), len(body), b"" if keep else b"Connection: close\r\n",
               b"" if head_only else body))


def answer_timeout(shell: Shell) -> float:
    """Seconds a member may take to its answer's first byte after the request was complete: the group's
    ``listener.readTimeout``, or the idle timeout when that is shorter (both planes)."""
    return min(shell.rt.cfg.listener.read_timeout, shell.idle_timeout)


def stalled_why(mid: str, seconds: float) -> str:
    return f"member {mid} did not answer within {seconds:g} s"


def exhausted_answer(attempts: list[tuple[str, str, float]], stalled: str | None,
                     limit: float) -> tuple[int, str]:
    """Status and reason when every candidate was tried (``stalled``: a member that took the request and did
    not answer within ``limit`` seconds): 503 none enabled, 504 the last one timed out, 502 otherwise."""
    if not attempts:
        return 503, "no member is enabled"
    mid, outcome, _ = attempts[-1]
    if outcome != "timeout":
        return 502, "every member failed"
    return 504, stalled_why(mid, limit) if mid == stalled else "every member failed"


def routed_error(rt: Runtime, status: int, why: str, attempts: list[tuple[str, str, float]], *, keep: bool,
                 head_only: bool = False) -> bytes:
    """The answer when routing a request failed: it names the group and every member tried."""
    cfg = rt.cfg
    group = cfg.label + (f" ({cfg.connector_id})" if cfg.connector_id else "")
    tried = ", ".join(f"{m} ({o}, {ms:.1f} ms)" for m, o, ms in attempts) or "none"
    return error_response(status, f"balancedesk: group {group}: {why}; members tried: {tried}\n", keep=keep,
                          head_only=head_only)


class _Req:
    __slots__ = (
        "attempts", "body_done", "body_n", "chunked", "expect", "fields", "first", "head", "head_done",
        "head_only", "http10", "keep_alive", "kept", "kept_n", "key", "logged", "method", "mid", "n_headers",
        "offered", "out_n", "parts", "pending", "resp_framing", "resp_started", "retried", "sel", "sent",
        "sent_100", "size", "stalled", "status", "t0", "t_first", "task", "up", "upgrade", "url", "xff",
    )

    def __init__(self) -> None:
        self.url = b""
        self.size = 0  # bytes of the head seen so far (URL and headers)
        self.parts: list[bytes] = []
        self.method = b""
        self.head = b""
        self.key: str | None = None
        self.chunked = False
        self.expect = False
        self.xff: bytes | None = None
        self.fields: dict[bytes, list[bytes]] = {}  # framing.WATCHED headers' values, for framing.decide
        self.n_headers = 0
        self.head_done = False  # on_header after this: trailer fields (dropped, never framing)
        self.upgrade = False  # passed to the member: after its 101 the connection is a tunnel
        self.offered = False  # Upgrade offered (llhttp stops parsing after the head)
        self.keep_alive = True
        self.http10 = False
        self.head_only = False
        self.pending: list[bytes] = []
        self.body_n = 0
        self.body_done = False
        self.kept: list[bytes] | None = []
        self.kept_n = 0
        self.up: UpConn | None = None
        self.sel: Any = None
        self.first: str | None = None  # the member picked without a Selection (see HttpClient.start)
        self.attempts: list[tuple[str, str, float]] = []
        self.t0 = 0.0
        self.resp_started = False
        self.resp_framing = 0  # 0 none, 1 raw (content-length or until close), 2 chunked
        self.sent_100 = False
        self.retried = False
        # for the access log: the member that took it, its status, bytes to the client, seconds to first byte
        self.mid: str | None = None
        self.status = 0
        self.out_n = 0
        self.t_first: float | None = None
        self.logged = False
        self.sent = 0.0  # loop time the request was complete on ``up`` (its answer due within the read timeout)
        self.stalled: str | None = None  # a member that did not answer it in time
        self.task: asyncio.Task[None] | None = None  # the connect in progress


class HttpClient(asyncio.Protocol):
    """One client connection: parses requests, routes each, relays the answers in order."""

    __slots__ = (
        "active", "busy", "closing", "dead", "deferred", "head_n", "head_t0", "held", "idle", "ip", "linger", "out",
        "parser", "paused", "peer", "queue", "req", "shell", "skip", "transport", "tunnel", "uout", "upgrading",
        "xff_line",
    )

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.req: _Req | None = None  # being parsed
        self.active: _Req | None = None  # being proxied
        self.queue: deque[_Req] = deque()  # pipelined, waiting
        self.out: list[bytes] = []  # to the client, flushed once per read
        self.uout: list[bytes] = []  # to the active upstream, flushed once per read
        self.busy = False
        self.idle = 0.0
        self.head_t0: float | None = None
        self.head_n = 0
        self.paused = 0
        self.closing = False  # close after the active answer
        self.dead = False  # stop parsing (after an error answer)
        self.deferred = b""  # an error answer to a later request, written after the answers before it
        self.linger = False
        self.held: UpConn | None = None  # member connection whose reading is paused for this client
        self.ip = b""
        self.xff_line = b"X-Forwarded-For: \r\n"
        self.peer: Any = None
        self.skip = False  # parser callbacks ignored (the synthetic head of an h2c offer's body, see _after_upgrade)
        self.upgrading: _Req | None = None  # an upgrade request was read: later client bytes are the tunnel's
        self.tunnel = False  # the member answered 101: bytes relayed as they are

    # client transport -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shell = self.shell
        rt = shell.rt
        self.transport = transport  # type: ignore[assignment]
        if rt.active >= shell.max_connections or shell.closing:
            rt.refused += 1
            self.dead = True
            body = b"balancedesk: too many connections, try again later\n"
            transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s" % (len(body), body))
            transport.close()
            self.transport = None
            return
        rt.accepted += 1
        rt.active += 1
        shell.conns.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = peer
        if isinstance(peer, tuple):
            self.ip = str(peer[0]).encode()
        self.xff_line = b"X-Forwarded-For: " + self.ip + b"\r\n"
        self.head_t0 = rt.loop.time()  # the first head is timed from the accept (see limits)

    def data_received(self, data: bytes) -> None:
        self.busy = True
        if self.dead:
            return
        if self.upgrading is not None:
            self._tunnel_up(data)
            return
        if self.head_t0 is not None or self.req is None:
            self.head_n += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._after_upgrade(data[int(exc.args[0]):])
            return
        except httptools.HttpParserInvalidMethodError:
            self.fail_request(501, "balancedesk: refused request: unknown method\n")
            return
        except httptools.HttpParserError as exc:
            ctx = exc.__context__
            if isinstance(ctx, _HeadTooLarge):
                self.fail_request(431, f"balancedesk: request head larger than {self.shell.head_limit} bytes\n")
            elif isinstance(ctx, _Refused):
                self.fail_request(ctx.status, f"balancedesk: refused request: {ctx.why}\n")
            elif "Invalid HTTP version" in str(exc):
                self.fail_request(505, "balancedesk: refused request: only HTTP/1.1 and HTTP/1.0 are supported\n")
            else:
                self.fail_request(400, f"balancedesk: malformed request: {exc}\n")
            return
        if self.head_t0 is not None and self.head_n > self.shell.head_limit:
            self.fail_request(431, f"balancedesk: request head larger than {self.shell.head_limit} bytes\n")
            return
        if self.uout:
            self.flush_up()
        if self.out:
            self.flush()

    def eof_received(self) -> bool:
        if self.tunnel:  # half-close passed on; the member's close ends the tunnel
            r = self.active
            if r is not None and r.up is not None and r.up.transport is not None and r.up.transport.can_write_eof():
                r.up.transport.write_eof()
                return True
            return False
        if self.linger or (self.active is None and not self.queue):
            return False  # close
        r = self.active
        if (r is not None and r.up is None and r.task is not None and not r.pending and self.req is None
                and not self.queue):
            r.task.cancel()  # it left while its connect was in progress (the native plane's rule)
            r.task = None
            return False
        self.closing = True  # half-closed by the client: finish the answers in flight, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        self.dead = True
        shell = self.shell
        shell.rt.active -= 1
        shell.conns.discard(self)
        r = self.active
        if r is not None:
            self.active = None
            if shell.rt.access_log is not None:
                self._log(r, RESET if r.resp_started else ABANDONED)
            if r.task is not None:  # a connect in progress is abandoned
                r.task.cancel()
                r.task = None
            u = r.up
            if u is not None:
                r.up = None
                self._member_done(u.mid)
                u.owner = None
                u.abort()
        self.queue.clear()

    def pause_writing(self) -> None:
        """The client reads slower than the member answers: stop reading the member."""
        r = self.active
        if r is not None and r.up is not None and r.up.transport is not None:
            r.up.transport.pause_reading()
            self.held = r.up

    def resume_writing(self) -> None:
        held = self.held
        if held is not None:
            self.held = None
            if held.transport is not None:
                held.transport.resume_reading()

    def pause(self, bit: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= bit

    def resume(self, bit: int) -> None:
        if self.paused & bit:
            self.paused &= ~bit
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()

    def kick(self) -> None:
        """Write what the last event produced: one ``writelines`` per side."""
        if self.uout:
            self.flush_up()
        if self.out:
            self.flush()

    def flush(self) -> None:
        out = self.out
        self.out = []
        t = self.transport
        if t is not None:
            t.write(out[0] if len(out) == 1 else b"".join(out))  # one buffer: uvloop's fastest path

    def flush_up(self) -> None:
        out = self.uout
        self.uout = []
        r = self.active
        if r is not None and r.up is not None and r.up.transport is not None:
            r.up.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # request parsing ------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.skip:
            return
        self.req = _Req()
        if self.head_t0 is None:  # a later request: timed from its first byte (the first one: from the accept)
            self.head_t0 = self.shell.now  # the sweeper's clock: coarse, but free on the hot path

    def on_url(self, url: bytes) -> None:
        if self.skip:
            return
        r = self.req
        assert r is not None
        r.url += url
        r.size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        r = self.req
        assert r is not None
        if r.head_done or self.skip:
            return  # a trailer field of a chunked body: dropped
        r.n_headers += 1
        if value[-1:] in (b" ", b"\t"):  # llhttp keeps trailing whitespace; a field value has none (RFC 9110 §5.5)
            value = value.rstrip(b" \t")
        ln = name.lower()
        if ln in WATCHED:
            seen = r.fields.get(ln)
            if seen is None:
                r.fields[ln] = [value]
            else:
                seen.append(value)
            if ln in REQ_SPECIAL:
                if ln == b"x-forwarded-for":
                    r.xff = value if r.xff is None else r.xff + b", " + value
                return
        if ln == self.shell.affinity:
            r.key = value.decode("latin-1")
        r.parts += (name, b": ", value, b"\r\n")
        r.size += len(name) + len(value) + 4
        if r.size > self.shell.head_limit:
            raise _HeadTooLarge()

    def on_headers_complete(self) -> None:
        if self.skip:
            return
        r = self.req
        assert r is not None
        p = self.parser
        self.head_t0 = None
        self.head_n = 0
        r.head_done = True
        r.method = method = p.get_method()
        version = p.get_http_version()
        verdict = decide(method, version, r.fields, r.n_headers)
        if isinstance(verdict, Refused):
            raise _Refused(verdict.status, verdict.why)
        r.keep_alive = p.should_keep_alive()
        r.http10 = version == "1.0"
        r.head_only = method == b"HEAD"
        r.chunked = verdict.chunked
        r.expect = verdict.expect_continue
        r.offered = verdict.offered
        if not r.chunked and not verdict.length:
            r.body_done = True  # no body: complete already (routing may answer before message_complete)
        parts = r.parts
        drop = verdict.drop - REQ_SPECIAL
        if drop:
            parts = [x for i in range(0, len(parts), 4) if parts[i].lower() not in drop for x in parts[i:i + 4]]
        xff = self.xff_line if r.xff is None else b"X-Forwarded-For: " + r.xff + b", " + self.ip + b"\r\n"
        tail = b"\r\n"
        if r.chunked:
            tail = b"Transfer-Encoding: chunked\r\n\r\n"
        elif verdict.upgrade is not None:
            r.upgrade = True
            r.keep_alive = False  # a refused upgrade is answered, then the connection closes
            tail = b"Connection: Upgrade\r\nUpgrade: " + verdict.upgrade + b"\r\n\r\n"
        r.head = b"".join((
            method, b" ", r.url, b" HTTP/1.1\r\n", *parts, b"Host: \r\n" if verdict.add_host else b"", xff, tail,
        ))
        r.parts = []
        if self.active is None:
            self.start(r)
        else:
            self.queue.append(r)
            self.pause(P_QUEUE)

    def on_body(self, data: bytes) -> None:
        r = self.req
        assert r is not None
        n = len(data)
        kept = r.kept
        if kept is not None:
            if r.kept_n + n <= REPLAY_BODY_BYTES:
                kept.append(data)
                r.kept_n += n
            else:
                r.kept = None
        r.body_n += n
        u = r.up
        if u is not None and self.active is r:
            u.pool.rt.stats[u.mid].bytes_in += n
            if r.chunked:
                self.uout += (b"%x\r\n" % n, data, b"\r\n")
            else:
                self.uout.append(data)
        else:
            r.pending.append(data)
            if r.body_n > PENDING_BODY_BYTES:
                self.pause(P_PENDING)

    def on_message_complete(self) -> None:
        r = self.req
        assert r is not None
        if r.offered and not r.upgrade and not r.body_done:
            return  # an h2c offer with a body: llhttp stopped at the head, _after_upgrade reads the body
        self.req = None
        r.body_done = True
        if r.up is not None and self.active is r:
            r.sent = self.shell.rt.loop.time()
            if r.chunked:
                self.uout.append(_END_CHUNKS)
        if not r.keep_alive and not r.upgrade:
            self.dead = True  # nothing after a request that closes the connection

    def _after_upgrade(self, rest: bytes) -> None:
        """llhttp stopped after an Upgrade offer's head (``rest``: the bytes after it). A protocol passed to
        the member: what the client sends next is held for the tunnel. An ignored h2c offer: parsing goes on
        with a new parser (for its body, one fed a head of the same framing first, whose callbacks are skipped)."""
        r = self.req  # an h2c offer whose body is still to come
        if r is None:
            r = self.queue[-1] if self.queue else self.active
        if r is not None and r.upgrade:
            self.upgrading = r
            if rest:
                self._tunnel_up(rest)
            self.kick()
            return
        self.parser = httptools.HttpRequestParser(self)
        if self.req is not None:
            self.req.offered = False  # its body's end completes it
            cl = self.req.fields.get(b"content-length")
            self.skip = True
            try:
                self.parser.feed_data(b"PUT / HTTP/1.1\r\n%s\r\n" % (
                    b"Transfer-Encoding: chunked\r\n" if self.req.chunked else b"Content-Length: %s\r\n" % (
                        cl[0].strip() if cl else b"0")))
            finally:
                self.skip = False
        if rest:
            self.data_received(rest)
        else:
            self.kick()

    def _tunnel_up(self, data: bytes) -> None:
        """Client bytes after an upgrade request: to the member once it said 101, held until then."""
        r = self.upgrading
        assert r is not None
        u = r.up
        if self.tunnel and u is not None and u.transport is not None:
            u.pool.rt.stats[u.mid].bytes_in += len(data)
            u.transport.write(data)
            return
        r.pending.append(data)
        r.body_n += len(data)
        if r.body_n > PENDING_BODY_BYTES:
            self.pause(P_PENDING)

    def response_upgraded(self, u: UpConn, head: bytes) -> None:
        """The member switched protocols (101): its head goes to the client as it is, the held client bytes to
        the member, and from now on both connections are relayed byte for byte."""
        r = self.active
        if r is None or r.up is not u or self.upgrading is not r:
            return
        self._answered(r, u, 101)
        self.tunnel = True
        self.closing = True  # the tunnel's end ends the client connection
        self.out.append(head)
        r.out_n += len(head)
        if r.pending:
            u.pool.rt.stats[u.mid].bytes_in += sum(map(len, r.pending))
            self.uout += r.pending
            r.pending = []
        self.resume(P_PENDING)

    def tunnel_down(self, data: bytes) -> None:
        """Member bytes after its 101: to the client as they are."""
        r = self.active
        if r is not None and r.up is not None:
            self.shell.rt.stats[r.up.mid].bytes_out += len(data)
            r.out_n += len(data)
        self.out.append(data)

    def wants_upgrade(self, u: UpConn) -> bool:
        r = self.active
        return r is not None and r.up is u and r.upgrade and self.upgrading is r

    # routing --------------------------------------------------------------------------------------
    def start(self, r: _Req) -> None:
        shell = self.shell
        rt = shell.rt
        self.active = r
        r.t0 = time.monotonic()  # latency: precise clock (uvloop's loop time has 1 ms steps)
        now = rt.loop.time()
        mid = rt.first_pick(r.key, now)
        if mid is None:
            r.sel = rt.begin(now, r.key)
            self.try_next(r, now)
            return
        r.first = mid  # the Selection is made only if this member fails (selection())
        u = shell.pool.get(mid)
        if u is not None:
            self.attach(r, u)
        else:
            r.task = rt.loop.create_task(self.connect(r, mid, now))

    def selection(self, r: _Req) -> Any:
        sel = r.sel
        if sel is None:
            sel = r.sel = self.shell.rt.begin(self.shell.rt.loop.time(), r.key, r.first)
        return sel

    def try_next(self, r: _Req, now: float) -> None:
        rt = self.shell.rt
        mid = self.selection(r).next(now=now)
        if mid is None:
            self.all_failed(r)
            return
        u = self.shell.pool.get(mid)
        if u is not None:
            self.attach(r, u)
        else:
            r.task = rt.loop.create_task(self.connect(r, mid, now))

    async def connect(self, r: _Req, mid: str, t_start: float) -> None:
        rt = self.shell.rt
        loop = rt.loop
        endpoint = rt.endpoints[mid]
        pool = self.shell.pool
        timeout = rt.balancer.connection_timeout_s
        try:
            if timeout is None:
                _, u = await loop.create_connection(lambda: UpConn(pool, mid, endpoint), *endpoint)
            else:
                async with asyncio.timeout(timeout):
                    _, u = await loop.create_connection(lambda: UpConn(pool, mid, endpoint), *endpoint)
        except OSError as exc:
            r.task = None
            now = loop.time()
            r.attempts.append((mid, classify(exc), (now - t_start) * 1000.0))
            rt.connect_failed(self.selection(r), mid, now)
            if self.active is r and self.transport is not None:
                self.try_next(r, now)
                self.kick()  # the next member may be a pooled connection: what attach queued goes out now
            return
        r.task = None
        now = loop.time()
        rt.connect_succeeded(self.selection(r), mid, now)
        if self.active is not r or self.transport is None:
            pool.release(u)  # the client went away meanwhile: keep the fresh connection for others
            return
        r.attempts.append((mid, "ok", (now - t_start) * 1000.0))
        self.attach(r, u)
        self.kick()

    def attach(self, r: _Req, u: UpConn) -> None:
        """Send the request (head and body so far) on ``u``; the rest of the body follows as it comes."""
        r.up = u
        r.mid = u.mid
        u.owner = self
        u.head_only = r.head_only
        st = self.shell.rt.stats[u.mid]
        st.active += 1
        st.total += 1
        out = self.uout
        out.append(r.head)
        if r.pending and not r.upgrade:  # an upgrade's held bytes wait for the 101 (response_upgraded)
            st.bytes_in += sum(map(len, r.pending))
            if r.chunked:
                for d in r.pending:
                    out += (b"%x\r\n" % len(d), d, b"\r\n")
            else:
                out += r.pending
            r.pending = []
        if r.body_done:
            r.sent = self.shell.rt.loop.time()
            if r.chunked:
                out.append(_END_CHUNKS)
        elif r.expect and not r.sent_100 and not r.body_n:
            r.sent_100 = True
            self.out.append(_CONTINUE)
        self.resume(P_PENDING)

    def _member_done(self, mid: str) -> None:
        st = self.shell.rt.stats.get(mid)
        if st is not None:
            st.active -= 1

    # answers from the member ----------------------------------------------------------------------
    def response_head(self, u: UpConn, status: int) -> None:
        r = self.active
        if r is None or r.up is None or r.up is not u:
            return
        self._answered(r, u, status)
        keep = r.keep_alive and r.body_done and not self.closing and not self.shell.closing
        if r.head_only or status in NO_BODY_STATUS:
            r.resp_framing = 0
        elif u.chunked or not u.has_cl:
            if r.http10:
                r.resp_framing = 1
                if not u.has_cl:
                    keep = False
            else:
                r.resp_framing = 2
        else:
            r.resp_framing = 1
        head = u.head  # status line and end-to-end headers as the member sent them, ending with the blank line
        if keep and not r.http10 and r.resp_framing != 2:
            self.out.append(head)  # the usual answer: forwarded verbatim
            r.out_n += len(head)
            return
        if not keep:
            self.closing = True
        parts = (
            head[:-2],
            b"Transfer-Encoding: chunked\r\n" if r.resp_framing == 2 and not r.head_only else b"",
            (b"Connection: keep-alive\r\n\r\n" if r.http10 else b"\r\n") if keep else b"Connection: close\r\n\r\n",
        )
        self.out += parts
        r.out_n += sum(map(len, parts))

    def _answered(self, r: _Req, u: UpConn, status: int) -> None:
        """The first byte of the answer: latency sampled, the route event (when one is kept)."""
        rt = self.shell.rt
        now = rt.loop.time()
        r.resp_started = True
        r.status = status
        st: MemberStats = rt.stats[u.mid]
        r.t_first = first = time.monotonic() - r.t0
        st.sample(first)
        st.answered(status)
        if rt.route_wanted(now):  # build the event only when it is kept (route events are sampled)
            att = r.attempts
            if not att:
                attempts: tuple[tuple[str, str, float], ...] = u.ok_attempt  # a pooled connection: the usual case
            elif att[-1][0] != u.mid or att[-1][1] != "ok":
                attempts = (*att, (u.mid, "ok", 0.0))
            else:
                attempts = tuple(att)
            rt.add_route(now, self.peer, attempts, u.mid, r.key)

    def response_body(self, data: bytes) -> None:
        r = self.active
        if r is None:
            return
        if r.up is not None:
            self.shell.rt.stats[r.up.mid].bytes_out += len(data)
        r.out_n += len(data)
        if r.resp_framing == 2:
            self.out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self.out.append(data)

    def response_done(self, u: UpConn) -> None:
        r = self.active
        if r is None or r.up is None or r.up is not u:
            return
        if r.resp_framing == 2:
            self.out.append(_END_CHUNKS)
        r.up = None
        self._member_done(u.mid)
        reusable = r.body_done and u.keep and (u.has_cl or u.chunked or r.head_only
                                                                     or u.status in NO_BODY_STATUS)
        if reusable:
            self.shell.pool.release(u)
        else:
            u.owner = None
            u.close()
        if self.shell.rt.access_log is not None:
            self._log(r, OK)
        self.finish_request()

    def finish_request(self) -> None:
        self.active = None
        if self.paused & P_UPSTREAM:
            self.resume(P_UPSTREAM)
        if self.closing or (self.dead and not self.queue):
            if self.deferred and not self.queue:
                self.out.append(self.deferred)
                self.deferred = b""
            if self.out:
                self.flush()
            self.close_soon(linger=self.req is not None)
            return
        if self.queue:
            nxt = self.queue.popleft()
            if not self.queue:
                self.resume(P_QUEUE)
            self.start(nxt)

    def upstream_lost(self, u: UpConn, exc: Exception | None) -> None:
        r = self.active
        if r is None or r.up is None or r.up is not u:
            u.owner = None
            return
        u.owner = None
        r.up = None
        self._member_done(u.mid)
        rt = self.shell.rt
        if r.resp_started:
            if not u.has_cl and not u.chunked:  # an answer delimited by the connection's end: complete
                if r.resp_framing == 2:
                    self.out.append(_END_CHUNKS)
                if rt.access_log is not None:
                    self._log(r, OK)
                self.finish_request()
                return
            rt.stats[u.mid].failures += 1
            self.abort()  # the answer is cut: the client must see it as cut, not as complete
            return
        now = rt.loop.time()
        outcome = classify(exc) if exc is not None else "reset"
        r.attempts.append((u.mid, outcome, (time.monotonic() - r.t0) * 1000.0))
        rt.stats[u.mid].total -= 1
        self.uout = []
        replayable = r.kept is not None and r.method in IDEMPOTENT
        if u.reused and not r.retried and replayable:
            # a pooled connection the member had closed: one more try on a fresh connection, same member
            r.retried = True
            r.pending = r.pending if r.upgrade else list(r.kept or ())  # an upgrade's: tunnel bytes held
            r.task = rt.loop.create_task(self.connect(r, u.mid, now))
            return
        if not u.reused:
            rt.connect_failed(self.selection(r), u.mid, now, reason="closed before answering")
        if replayable:
            r.pending = r.pending if r.upgrade else list(r.kept or ())  # an upgrade's: tunnel bytes held
            self.try_next(r, now)
            return
        if u.reused:  # the member failed it (counted; not marked: see the module's docstring)
            rt.stats[u.mid].failures += 1
        self.fail_routed(r, 502, f"member {u.mid} closed the connection before answering "
                                 f"and {r.method.decode()} with this body cannot be replayed")

    def upstream_broken(self, u: UpConn, why: str) -> None:
        r = self.active
        if r is None or r.up is None or r.up is not u:
            return
        u.owner = None
        r.up = None
        self._member_done(u.mid)
        self.shell.rt.stats[u.mid].failures += 1
        if r.resp_started:
            self.abort()
        else:
            r.attempts.append((u.mid, "reset", (time.monotonic() - r.t0) * 1000.0))
            self.fail_routed(r, 502, why)

    # failures -------------------------------------------------------------------------------------
    def all_failed(self, r: _Req) -> None:
        status, why = exhausted_answer(r.attempts, r.stalled, answer_timeout(self.shell))
        self.fail_routed(r, status, why)

    def stalled(self, r: _Req, u: UpConn, now: float) -> None:
        """No answer byte from ``u`` within the answer timeout after the request was complete: the member is
        counted failed and marked as a failed connect is; the request goes on to the next member if it can
        be sent again (idempotent, body held), else 504."""
        rt = self.shell.rt
        mid = u.mid
        r.attempts.append((mid, "timeout", (time.monotonic() - r.t0) * 1000.0))
        r.up = None
        r.sent = 0.0
        r.stalled = mid
        self._member_done(mid)
        u.owner = None
        u.abort()
        rt.stats[mid].total -= 1  # counted on the member that answers it
        rt.connect_failed(self.selection(r), mid, now, reason="no answer within readTimeout")
        self.uout = []
        if r.kept is not None and r.method in IDEMPOTENT:
            r.pending = list(r.kept or ())
            self.try_next(r, now)
            self.kick()
            return
        self.fail_routed(r, 504, stalled_why(mid, answer_timeout(self.shell)))

    def fail_routed(self, r: _Req, status: int, why: str) -> None:
        rt = self.shell.rt
        rt.route_failed(rt.loop.time(), self.peer, tuple(r.attempts), r.key)
        keep = r.keep_alive and r.body_done and not self.closing and not self.shell.closing
        answer = routed_error(rt, status, why, r.attempts, keep=keep, head_only=r.head_only)
        self.out.append(answer)
        if rt.access_log is not None:
            r.status, r.out_n = status, len(answer)
            self._log(r, FAILED)
        if keep:
            self.finish_request()
        else:
            self.active = None
            self.flush()
            self.close_soon(linger=True)
        if self.out:
            self.flush()

    def fail_request(self, status: int, text: str) -> None:
        """An error of the client's own (400/408/417/431/501/505): answer, stop parsing, close. A fault in a
        request pipelined behind others is answered after them (they were complete and valid)."""
        self.dead = True
        r = self.req
        if self.active is not None and r is not None and r is not self.active and r not in self.queue:
            self.deferred = error_response(status, text, keep=False, head_only=r.method == b"HEAD")
            self.kick()  # the requests before it go out
            return
        if self.active is not None and self.active.resp_started:
            self.abort()
            return
        self._drop_active_upstream()
        self.queue.clear()
        log = self.shell.rt.access_log
        if log is not None:  # a request the balancer refused itself: no request line, no member
            log.add((time.monotonic(), self.peer, None, status, None, 0, 0, 0.0, None, FAILED))
        self._error(status, text, keep=False, head_only=r is not None and r.method == b"HEAD")
        self.flush()
        self.close_soon(linger=True)

    def _error(self, status: int, text: str, *, keep: bool, head_only: bool = False) -> None:
        self.out.append(error_response(status, text, keep=keep, head_only=head_only))

    def close_soon(self, *, linger: bool) -> None:
        """Close after the answer is written; with ``linger`` read and drop what the client still sends
        (for up to the linger time) so the answer is not destroyed by a reset."""
        t = self.transport
        if t is None:
            return
        self.dead = True
        if linger and t.can_write_eof():
            self.linger = True
            self.idle = 0.0
            t.write_eof()
            self.resume(P_PENDING | P_UPSTREAM | P_QUEUE)
        else:
            t.close()

    def _drop_active_upstream(self) -> None:
        """Forget the request in progress; its upstream connection (if any) is aborted, not pooled."""
        r = self.active
        if r is not None and r.up is not None:
            u = r.up
            r.up = None
            self._member_done(u.mid)
            u.owner = None
            u.abort()
        self.active = None

    def abort(self) -> None:
        if self.active is not None and self.shell.rt.access_log is not None:
            self._log(self.active, RESET)
        self._drop_active_upstream()
        if self.transport is not None:
            self.transport.abort()

    def _log(self, r: _Req, outcome: str) -> None:
        """The request's access log line, once (see accesslog.py for the fields and outcomes)."""
        log = self.shell.rt.access_log
        if log is None or r.logged:
            return
        r.logged = True
        line = b"%s %s HTTP/1.%d" % (r.method, r.url, 0 if r.http10 else 1)
        log.add((r.t0, self.peer, line[:REQUEST_LINE_MAX], r.status or None, r.mid, len(r.head) + r.body_n,
                 r.out_n, time.monotonic() - r.t0, r.t_first, outcome))

    # timers (called by the shell's sweeper) ---------------------------------------------------------
    def tick(self, now: float, dt: float) -> None:
        shell = self.shell
        if self.linger:
            self.idle += dt
            if self.idle >= shell.linger_s and self.transport is not None:
                self.transport.close()
            return
        if self.head_t0 is not None and self.active is None and now - self.head_t0 >= shell.head_timeout:
            self.head_t0 = None
            if self.req is None and not self.head_n and self.transport is not None:
                self.dead = True
                self.transport.close()  # not a byte since the accept: closed without an answer, as nginx does
                return
            self.fail_request(408, f"balancedesk: request head not complete within {shell.head_timeout:g} s\n")
            return
        r = self.active
        if (r is not None and r.sent and r.up is not None and not r.resp_started and not r.up.hbuf
                and now - r.sent >= answer_timeout(shell)):
            self.stalled(r, r.up, now)
            return
        if self.busy:
            self.busy = False
            self.idle = 0.0
            return
        self.idle += dt
        if self.idle < shell.idle_timeout:
            return
        r = self.active
        if r is None:
            if self.transport is not None:
                self.transport.close()
        elif not r.resp_started and r.up is not None:
            u = r.up
            r.attempts.append((u.mid, "timeout", (time.monotonic() - r.t0) * 1000.0))
            r.up = None
            self._member_done(u.mid)
            u.owner = None
            u.abort()
            self.fail_routed(r, 504, f"member {u.mid} did not answer within {shell.idle_timeout:g} s")
        else:
            self.abort()

    def stop_idle(self) -> None:
        """Graceful stop: close now if between requests, else after the answer in flight."""
        if self.active is None and self.req is None and not self.queue:
            if self.transport is not None:
                self.transport.close()
        else:
            self.closing = True


class _HeadTooLarge(Exception):
    pass


class _Refused(Exception):
    """Raised in a parser callback: framing.decide refused the request (``status``, ``why``)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why
