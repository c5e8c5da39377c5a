"""L4 (TCP): one pick per client connection, connect bounded by ``connectionTimeout``, then a byte-exact
relay both ways with flow control (a full write buffer on one side pauses reading on the other),
half-close passed through (EOF from one side → ``write_eof`` on the other) and an idle timeout.

Per-connection cost is what matters here (a new connection per request is a common L4 load), so the
connect path has no asyncio Task and no per-connection timer: the client protocol drives the loop's
``create_connection`` coroutine itself (one done-callback on the future it waits for), and every
connect's deadline goes into one heap per shell (:class:`ConnectDeadlines`) served by a single loop timer.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from balancedesk.core.proxy.accesslog import ABANDONED, FAILED, OK, RESET, AccessLogger
from balancedesk.core.proxy.limits import PENDING_BODY_BYTES
from balancedesk.core.proxy.runtime import MemberStats, classify

if TYPE_CHECKING:
    from balancedesk.core.balance import Selection
    from balancedesk.core.proxy.shell import Shell


_Connect = Coroutine[Any, Any, tuple[asyncio.Transport, asyncio.BaseProtocol]]


class ConnectDeadlines:
    """Deadlines of the connects in progress: a heap of ``(when, seq, client)`` and one loop timer for
    the earliest. A connect that finishes just makes its entry stale (``client.cseq != seq``); stale
    entries are dropped from the top as new ones arrive, so the heap holds about the connects in flight."""

    __slots__ = ("_at", "_handle", "_heap", "_loop", "_seq")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, TcpClient]] = []
        self._seq = 0
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def add(self, when: float, client: TcpClient) -> int:
        heap = self._heap
        while heap and heap[0][2].cseq != heap[0][1]:
            heapq.heappop(heap)
        self._seq = seq = self._seq + 1
        heapq.heappush(heap, (when, seq, client))
        if self._handle is None or when < self._at:
            self._arm(when)
        return seq

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._at = when
        self._handle = self._loop.call_at(when + 0.001, self._fire)

    def _fire(self) -> None:
        self._handle = None
        heap = self._heap
        now = self._loop.time()
        while heap and (heap[0][0] <= now or heap[0][2].cseq != heap[0][1]):
            _, seq, client = heapq.heappop(heap)
            if client.cseq == seq:
                client.connect_timed_out()
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()


class TcpUpstream(asyncio.Protocol):
    __slots__ = ("client", "eof", "lost", "transport")

    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost = False

    def __call__(self) -> TcpUpstream:
        return self  # its own protocol factory (no lambda per connect)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        c = self.client
        c.busy = True
        if c.t_first:
            c.first_byte()
        st = c.st
        if st is not None:
            st.bytes_out += len(data)
        c.n_out += len(data)
        ct = c.transport
        if ct is not None:
            ct.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.client.up is not None:
            self.client.upstream_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.client.up is not None:
            self.client.upstream_lost(exc)

    def pause_writing(self) -> None:
        ct = self.client.transport
        if ct is not None:
            ct.pause_reading()

    def resume_writing(self) -> None:
        ct = self.client.transport
        if ct is not None:
            ct.resume_reading()


class TcpClient(asyncio.Protocol):
    """One client connection and (once connected) its upstream."""

    __slots__ = (
        "attempts", "busy", "client_eof", "cmid", "coro", "cproto", "cseq", "cstart", "cut", "fut", "idle",
        "member", "n_in", "n_out", "pending", "pending_n", "proto", "sel", "shell", "st", "t0", "t_conn",
        "t_first", "transport", "up",
    )

    def __init__(self, shell: Shell) -> None:
        self.shell = shell
        self.transport: asyncio.Transport | None = None
        self.up: asyncio.Transport | None = None
        self.proto: TcpUpstream | None = None
        self.pending: list[bytes] = []
        self.pending_n = 0
        self.client_eof = False
        self.busy = False
        self.idle = 0.0
        self.st: MemberStats | None = None
        self.member: str | None = None
        self.t0 = 0.0
        self.t_first = False
        # for the access log: bytes each way, seconds until connected, whether it ended cut
        self.n_in = 0
        self.n_out = 0
        self.t_conn = 0.0
        self.cut = False
        # the connect in progress: its coroutine, the future it waits on, member, start, protocol, deadline
        self.sel: Selection | None = None
        self.attempts: list[tuple[str, str, float]] | None = None  # failed attempts so far
        self.coro: _Connect | None = None
        self.fut: asyncio.Future[Any] | None = None
        self.cmid = ""
        self.cstart = 0.0
        self.cproto: TcpUpstream | None = None
        self.cseq = 0  # ConnectDeadlines entry of the connect in progress (0: none)

    # client side --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shell = self.shell
        rt = shell.rt
        if rt.active >= shell.max_connections or shell.closing:
            rt.refused += 1
            transport.abort()  # type: ignore[attr-defined]
            return
        rt.accepted += 1
        rt.active += 1
        self.transport = transport  # type: ignore[assignment]
        shell.conns.add(self)
        now = rt.loop.time()
        self.t0 = time.monotonic()  # latency: precise clock (uvloop's loop time has 1 ms steps)
        mid = rt.first_pick(None, now)
        if mid is None:
            self.sel = rt.begin(now, None)
            self._attempt(now)
        else:  # the usual case: the Selection is made only if this member fails (_selection)
            self._connect(mid, now)

    def data_received(self, data: bytes) -> None:
        self.busy = True
        up = self.up
        if up is not None:
            self.st.bytes_in += len(data)  # type: ignore[union-attr]
            self.n_in += len(data)
            up.write(data)
            return
        self.pending.append(data)
        self.pending_n += len(data)
        if self.pending_n > PENDING_BODY_BYTES and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.coro is not None and not self.pending_n:
            # it left while its connect was in progress, having sent nothing (a FIN after bytes is a
            # half-close: they still go to the member): closed, so connection_lost abandons the connect
            # (the native plane's rule)
            return False
        up = self.up
        if up is not None:
            if self.proto is not None and self.proto.eof:
                self.close()
            elif up.can_write_eof():
                up.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        t = self.transport
        if t is None:
            return
        self.transport = None
        shell = self.shell
        shell.rt.active -= 1
        shell.conns.discard(self)
        log = shell.rt.access_log
        if log is not None:
            self._log(log, exc, t)
        if self.st is not None:
            self.st.active -= 1
            self.st.conns.discard(self)
            self.st = None
        self.proto = None  # no TcpClient <-> TcpUpstream cycle left behind: freed by refcount, not the GC
        up = self.up
        if up is not None:
            self.up = None
            if exc is None:
                up.close()  # flush what the client sent last
            else:
                up.abort()
        elif self.coro is not None:
            self._abandon()  # the client went away while connecting: no route event, no health mark

    def _log(self, log: AccessLogger, exc: Exception | None, t: asyncio.Transport) -> None:
        """The connection's access log line (see accesslog.py for the fields and outcomes)."""
        mid = self.member
        if mid is None:
            outcome = ABANDONED if self.coro is not None else FAILED
        else:
            outcome = RESET if exc is not None or self.cut else OK
        log.add((self.t0, t.get_extra_info("peername"), None, None, mid, self.n_in, self.n_out,
                 time.monotonic() - self.t0, self.t_conn if mid is not None else None, outcome))

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.resume_reading()

    # upstream connect ---------------------------------------------------------------------------
    def _selection(self, now: float) -> Selection:
        sel = self.sel
        if sel is None:  # the first pick came from ``first_pick`` (which set cmid): walk on from it
            sel = self.sel = self.shell.rt.begin(now, None, self.cmid)
        return sel

    def _attempt(self, now: float) -> None:
        """Start a connect to the next candidate, or give up when every candidate was tried."""
        rt = self.shell.rt
        mid = self._selection(now).next(now=now)
        if mid is None:
            rt.route_failed(now, self.peer_of(), tuple(self.attempts or ()), None)
            if self.transport is not None:
                self.transport.close()
            return
        self._connect(mid, now)

    def _connect(self, mid: str, now: float) -> None:
        rt = self.shell.rt
        host, port = rt.endpoints[mid]
        proto = TcpUpstream(self)
        self.cmid = mid
        self.cstart = now
        self.cproto = proto
        self.coro = rt.loop.create_connection(proto, host, port)
        timeout = rt.balancer.connection_timeout_s
        deadlines = self.shell.connect_deadlines
        if timeout is not None and deadlines is not None:
            self.cseq = deadlines.add(now + timeout, self)
        self._step(None)

    def _step(self, _fut: asyncio.Future[Any] | None) -> None:
        """Run the connect coroutine up to its next wait (what a Task step does, without the Task)."""
        coro = self.coro
        if coro is None:
            return
        self.fut = None
        try:
            fut = coro.send(None)
        except StopIteration as done:
            self.coro = None
            self.cseq = 0
            self._up_connected(done.value[0])
            return
        except OSError as exc:
            self.coro = None
            self.cseq = 0
            self._up_failed(exc, self.shell.rt.loop.time())
            return
        if fut is None:  # a bare yield (sleep(0)): run again on the next loop pass
            self.shell.rt.loop.call_soon(self._step, None)
            return
        fut._asyncio_future_blocking = False
        self.fut = fut
        fut.add_done_callback(self._step)

    def _abandon(self) -> None:
        """Stop the connect in progress as ``Task.cancel`` would: the coroutine closes what it opened."""
        coro = self.coro
        if coro is None:
            return
        self.coro = None
        self.cseq = 0
        self.cproto = None
        fut = self.fut
        self.fut = None
        if fut is not None:
            fut.remove_done_callback(self._step)
            fut.cancel()
        try:
            coro.throw(asyncio.CancelledError())
        except (asyncio.CancelledError, StopIteration, OSError):
            pass
        else:  # it went on waiting: close it (GeneratorExit at that wait)
            coro.close()

    def connect_timed_out(self) -> None:
        """Called by :class:`ConnectDeadlines` when ``connectionTimeout`` ran out for the connect in progress."""
        self._abandon()
        self._up_failed(TimeoutError(), self.shell.rt.loop.time())

    def _up_failed(self, exc: BaseException, end: float) -> None:
        rt = self.shell.rt
        mid = self.cmid
        self.cproto = None
        attempt = (mid, classify(exc), (end - self.cstart) * 1000.0)
        if self.attempts is None:
            self.attempts = [attempt]
        else:
            self.attempts.append(attempt)
        rt.connect_failed(self._selection(end), mid, end)
        if self.transport is not None:
            self._attempt(end)

    def _up_connected(self, up: asyncio.Transport) -> None:
        rt = self.shell.rt
        end = rt.loop.time()
        mid = self.cmid
        proto = self.cproto
        self.cproto = None
        rt.connect_succeeded(self.sel, mid, end)
        if rt.route_wanted(end):
            ok = (mid, "ok", (end - self.cstart) * 1000.0)
            rt.add_route(end, self.peer_of(), (*self.attempts, ok) if self.attempts else (ok,), mid, None)
        if self.transport is None or proto is None:
            up.close()
            return
        self._connected(mid, up, proto)

    def peer_of(self) -> Any:
        t = self.transport
        return t.get_extra_info("peername") if t is not None else None

    def _connected(self, mid: str, up: asyncio.Transport, proto: TcpUpstream) -> None:
        st = self.shell.rt.stats[mid]
        st.active += 1
        st.total += 1
        st.conns.add(self)
        self.st = st
        self.member = mid
        self.proto = proto
        self.t_first = True
        self.t_conn = time.monotonic() - self.t0
        pending = self.pending
        if pending:
            st.bytes_in += self.pending_n
            self.n_in += self.pending_n
            up.write(pending[0] if len(pending) == 1 else b"".join(pending))  # one buffer: uvloop's fastest
            self.pending = []
            if self.pending_n > PENDING_BODY_BYTES and self.transport is not None:
                self.transport.resume_reading()
        self.up = up
        if self.client_eof and up.can_write_eof():
            up.write_eof()
        if proto.lost:
            self.upstream_lost(None)
        elif proto.eof:
            self.upstream_eof()

    # relay events -------------------------------------------------------------------------------
    def first_byte(self) -> None:
        self.t_first = False
        if self.st is not None:
            self.st.sample(time.monotonic() - self.t0)

    def upstream_eof(self) -> None:
        t = self.transport
        if t is None:
            return
        if self.client_eof:
            self.close()
        elif t.can_write_eof():
            t.write_eof()

    def upstream_lost(self, exc: Exception | None) -> None:
        self.up = None
        t = self.transport
        if t is not None:
            if exc is None:
                t.close()
            else:
                self.cut = True
                t.abort()

    def close(self) -> None:
        if self.up is not None:
            self.up.close()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.cut = True
        if self.up is not None:
            self.up.abort()
        if self.transport is not None:
            self.transport.abort()

    def stop_idle(self) -> None:
        """Graceful stop: an L4 connection is left to finish (up to the shell's bound)."""

    def tick(self, now: float, dt: float) -> None:
        """Idle timeout, checked by the shell's sweeper: no byte either way for ``idle_timeout``."""
        if self.busy:
            self.busy = False
            self.idle = 0.0
            return
        self.idle += dt
        if self.idle >= self.shell.idle_timeout:
            self.abort()
