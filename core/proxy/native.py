"""The native data plane (``core/proxy/engine/``): the C engine accepts, connects and relays (L4) or forwards the usual
HTTP request (L7, :class:`NativeHttp`); this module decides.

The engine calls back twice per connection — ``_on_accept(cid)`` (which member first) and
``_on_connect(cid, member index, errno, seconds)`` (how the connect went; after a failure, which member
next) — so the group semantics, health marks, route events and counters are the very ones the asyncio
shell (:mod:`tcp`) uses: :class:`Runtime`, :class:`Selection`, :class:`MemberStats`. Byte counts, closes
and first-byte latencies are gathered by the engine per member and folded into ``MemberStats`` by
:meth:`NativeTcp.refresh` (the shell's sweeper, and every admin snapshot).

Members are engine *targets*: an index per (member, resolved endpoint), appended and never reused, so a
connection relayed to a member's old endpoint still counts into that member after a config change.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from balancedesk.core.balance import AdminState, Selection
from balancedesk.core.proxy import accesslog
from balancedesk.core.proxy.accesslog import AccessLogger
from balancedesk.core.proxy.http import HttpClient, answer_timeout, exhausted_answer, routed_error, stalled_why
from balancedesk.core.proxy.limits import ANSWER_HEAD_MAX_BYTES
from balancedesk.core.proxy.runtime import MemberStats, classify

if TYPE_CHECKING:
    from balancedesk.core.proxy.shell import Shell

try:
    from balancedesk.core.proxy import _engine
    from balancedesk.core.proxy._engine import (
        CONNECT_STALLED,
        CONNECT_UNANSWERED,
        FAIL_BAD_ANSWER,
        FAIL_CLOSED,
        FAIL_CLOSED_FRESH,
        FAIL_ROUTING,
        FAIL_STALLED,
        Engine,
    )
except ImportError:  # not built (no compiler, not Linux): the asyncio shell serves L4
    Engine = None  # type: ignore[assignment,misc]
else:  # the engine's access log record is the layout accesslog.py reads: checked once, here
    _LOG_CODES = (_engine.LOG_OK, _engine.LOG_FAILED, _engine.LOG_RESET, _engine.LOG_ABANDONED)
    if (accesslog.ENGINE_RECORD.size != _engine.LOG_RECORD_SIZE or _engine.LOG_REQ_MAX != accesslog.REQUEST_LINE_MAX
            or tuple(range(len(accesslog.OUTCOMES))) != _LOG_CODES):
        raise RuntimeError("the native engine's access log record does not match accesslog.py: rebuild it")


RESOLVE_RETRY_S = 5.0  # a member name that did not resolve is looked up again after this long
clock = time.monotonic

MISSING = ("the native engine was not built here (no C compiler at install, or not Linux); "
           "use --data-plane asyncio")


def available() -> bool:
    return Engine is not None


def resolve(host: str, port: int) -> str | None:
    """The address a member's endpoint names. A numeric address is itself; a name is resolved the way nginx
    resolves an upstream ``server`` name: once per config (here at start and at the first connection after a
    config change), blocking, and an IPv4 address preferred when the name has both (members usually listen
    on IPv4; ``localhost`` is ``::1`` first on some systems)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    v4 = [i for i in infos if i[0] == socket.AF_INET]
    chosen = (v4 or infos)[0] if infos else None
    return str(chosen[4][0]) if chosen is not None else None


class _Pending:
    """A connection (L7: a request) whose first connect failed, that had no first pick, or (L7) that waits
    for a fresh connection: its walk over the group."""

    __slots__ = ("attempts", "key", "sel", "stalled")

    def __init__(self, sel: Selection, key: str | None = None) -> None:
        self.sel = sel
        self.key = key
        self.attempts: list[tuple[str, str, float]] = []
        self.stalled: str | None = None  # L7: the member that took the request and did not answer in time


class NativeTcp:
    def __init__(self, shell: Shell) -> None:
        assert Engine is not None
        self.shell = shell
        self.rt = rt = shell.rt
        self.engine = Engine(self._on_accept, self._on_connect, shell.max_connections,
                             rt.balancer.connection_timeout_s or 0.0, **self._http_options())
        # member → (endpoint, target, when to resolve again if it did not resolve)
        self._by_mid: dict[str, tuple[tuple[str, int], int, float]] = {}
        self._targets: dict[tuple[str, str, int], int] = {}
        self._mids: list[str] = []  # target → member
        self._stats: list[MemberStats] = []  # target → that member's counters
        self._pending: dict[int, _Pending] = {}
        self._sock: socket.socket | None = None
        self._log: AccessLogger | None = None
        rt.on_member_change.append(self._member_changed)
        rt.on_config.append(self._config_applied)
        rt.refreshers.append(self.refresh)
        self._follow_access_log()

    def _http_options(self) -> dict[str, Any]:
        return {}

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, sock: socket.socket) -> None:
        for mid in self.rt.endpoints:  # names are resolved before the first client, not during its connect
            self._target(mid)
        self._sock = sock
        self.engine.add_listener(sock.fileno())
        self.rt.loop.add_reader(self.engine.fileno(), self.engine.run)

    def stop_accepting(self) -> None:
        self.engine.stop_accepting()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def active(self) -> int:
        return self.engine.active

    def sweep(self, idle_timeout: float) -> None:
        self.engine.sweep(idle_timeout)
        self.refresh()

    def close(self) -> None:
        self.stop_accepting()
        self.engine.close()
        self.refresh()
        self.rt.loop.remove_reader(self.engine.fileno())

    # counters ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        per, lat, refused, _accept_errors, _dropped, accepted = self.engine.collect()
        stats = self._stats
        for t, d_in, d_out, closed, failures, *classes in per:
            st = stats[t]
            st.bytes_in += d_in
            st.bytes_out += d_out
            st.active -= closed
            st.failures += failures
            if any(classes):  # L7: the member's answers by class (the engine counts as http.py does)
                st.classes = [a + b for a, b in zip(st.classes, classes, strict=True)]
        for t, seconds in lat:
            stats[t].sample(seconds)
        rt = self.rt
        rt.refused += refused
        rt.accepted += accepted
        rt.active = self.engine.active + len(self.shell.conns)  # L7: connections handed to http.py

    # members -------------------------------------------------------------------------------------
    def _target(self, mid: str) -> int:
        """The engine's index for ``mid`` at its current endpoint (-1: the endpoint does not resolve)."""
        ep = self.rt.endpoints[mid]
        known = self._by_mid.get(mid)
        if known is not None and known[0] is ep and (known[1] >= 0 or clock() < known[2]):
            return known[1]
        host, port = ep
        ip = resolve(host, port)
        if ip is None:  # asked again after RESOLVE_RETRY_S, not at every connection (a lookup blocks)
            self._by_mid[mid] = (ep, -1, clock() + RESOLVE_RETRY_S)
            return -1
        key = (mid, ip, port)
        t = self._targets.get(key)
        if t is None:
            t = self._targets[key] = self.engine.add_target(ip, port)
            self._mids.append(mid)
            self._stats.append(self.rt.stats.setdefault(mid, MemberStats()))
        self._by_mid[mid] = (ep, t, 0.0)
        return t

    def _config_applied(self) -> None:
        self.engine.set_connect_timeout(self.rt.balancer.connection_timeout_s or 0.0)  # for connects to come
        self._follow_access_log()

    # access log ----------------------------------------------------------------------------------
    def _follow_access_log(self) -> None:
        """Engine records on while the runtime has an access log (drained into it), off otherwise."""
        log = self.rt.access_log
        if log is self._log:
            return
        self._log = log
        self.engine.set_access_log(accesslog.ENGINE_RECORDS if log is not None else 0)
        if log is not None:
            log.sources.append(self._drain_log)

    def _drain_log(self) -> None:
        log = self._log
        if log is None:
            return
        raw, dropped = self.engine.take_log()
        log.dropped += dropped
        if raw:
            log.put(("engine", raw, self._mids), len(raw) // accesslog.ENGINE_RECORD.size)

    def _member_changed(self, mid: str, state: AdminState) -> None:
        if state is AdminState.DISABLED:
            for (m, _, _), t in self._targets.items():
                if m == mid:
                    self.engine.abort(t)
            self.refresh()

    # engine callbacks ----------------------------------------------------------------------------
    def _on_accept(self, cid: int) -> int:
        rt = self.rt
        if self.shell.closing:
            rt.refused += 1
            return -1
        rt.accepted += 1
        now = rt.loop.time()
        mid = rt.first_pick(None, now)
        if mid is not None:
            t = self._target(mid)
            if t >= 0:
                return t
            p = _Pending(rt.begin(now, None, mid))
            self._failed(p, mid, "unreachable", 0.0, now)
            return self._next(cid, p, now)
        return self._next(cid, _Pending(rt.begin(now, None)), now)

    def _on_connect(self, cid: int, t: int, err: int, seconds: float) -> int:
        rt = self.rt
        now = rt.loop.time()
        mid = self._mids[t]
        if err == 0:
            p = self._pending.pop(cid, None) if self._pending else None
            rt.connect_succeeded(p.sel if p is not None else None, mid, now)
            st = self._stats[t]
            st.active += 1
            st.total += 1
            if rt.route_wanted(now):
                ok = (mid, "ok", seconds * 1000.0)
                rt.add_route(now, self.engine.peer(cid), (*p.attempts, ok) if p is not None else (ok,), mid,
                             p.key if p is not None else None)
            return 0
        if err == CONNECT_UNANSWERED:  # L7: the member closed before answering the request it took
            self._stats[t].total -= 1  # not counted on it (the member that answers it counts it)
            return -1
        if err == CONNECT_STALLED:  # L7: it took the request and sent no answer byte in time; may go on
            self._stats[t].total -= 1
            p = self._pending.get(cid) or _Pending(rt.begin(now, None, mid))
            p.stalled = mid
            self._failed(p, mid, "timeout", seconds * 1000.0, now, reason="no answer within readTimeout")
            return self._next(cid, p, now)
        if err < 0:  # CONNECT_CLIENT_LEFT: the client went away while connecting: no route event, no mark
            self._pending.pop(cid, None)
            return -1
        p = self._pending.get(cid) or _Pending(rt.begin(now, None, mid))
        self._failed(p, mid, classify(OSError(err, os.strerror(err))), seconds * 1000.0, now)
        return self._next(cid, p, now)

    def _exhausted(self, cid: int, p: _Pending, now: float) -> None:
        """Every candidate was tried: a failed route event."""
        self.rt.route_failed(now, self.engine.peer(cid), tuple(p.attempts), p.key)

    def _failed(self, p: _Pending, mid: str, outcome: str, ms: float, now: float, *,
                reason: str = "connect failed") -> None:
        p.attempts.append((mid, outcome, ms))
        self.rt.connect_failed(p.sel, mid, now, reason=reason)

    def _next(self, cid: int, p: _Pending, now: float) -> int:
        """The next candidate's target, or -1 (and a failed route event) when every one was tried."""
        while True:
            mid = p.sel.next(now=now)
            if mid is None:
                self._pending.pop(cid, None)
                self._exhausted(cid, p, now)
                return -1
            t = self._target(mid)
            if t >= 0:
                self._pending[cid] = p
                return t
            self._failed(p, mid, "unreachable", 0.0, now)



class NativeHttp(NativeTcp):
    """L7 on the native data plane: the engine parses and forwards the usual request (see ``engine/engine_http.c``'s
    section) and hands every other client connection to :class:`~balancedesk.core.proxy.http.HttpClient`,
    with the bytes it read, between two requests. Python is called once per request (``_on_request``: the
    pick, and its route event when a pooled connection carries it), plus ``_on_connect`` per fresh connect
    and ``_on_fail`` for an error answer."""

    def __init__(self, shell: Shell) -> None:
        self._fails: dict[int, _Pending] = {}
        self._handoffs: set[asyncio.Task[Any]] = set()
        super().__init__(shell)

    def _http_options(self) -> dict[str, Any]:
        shell = self.shell
        return {"on_request": self._on_request, "on_fail": self._on_fail, "on_handoff": self._on_handoff,
                "head_limit": shell.head_limit, "head_timeout": shell.head_timeout, "linger": shell.linger_s,
                "answer_head_limit": ANSWER_HEAD_MAX_BYTES,
                "affinity": shell.affinity.decode("latin-1") if shell.affinity else None,
                "read_timeout": self.rt.cfg.listener.read_timeout}

    def _config_applied(self) -> None:
        super()._config_applied()
        self.engine.set_read_timeout(self.rt.cfg.listener.read_timeout)  # answers awaited too

    def stop_accepting(self) -> None:
        super().stop_accepting()
        self.engine.drain()

    def _member_changed(self, mid: str, state: AdminState) -> None:
        if state is AdminState.DISABLED:  # its idle connections close, busy ones after their answer
            for (m, _, _), t in self._targets.items():
                if m == mid:
                    self.engine.abort(t)

    # engine callbacks ----------------------------------------------------------------------------
    def _on_request(self, cid: int, key: str | None, pooled: int) -> int:
        """Which member takes this request (``pooled``: a bit per target with an idle connection, which the
        engine then uses — so the route is decided here; otherwise ``_on_connect`` hears how it went)."""
        rt = self.rt
        now = rt.loop.time()
        mid = rt.first_pick(key, now)
        if mid is not None:
            t = self._target(mid)
            if t >= 0:
                if pooled >> t & 1:  # the usual case
                    self._routed(cid, t, (), key, now)
                else:
                    self._pending[cid] = _Pending(rt.begin(now, key, mid), key)
                return t
            p = _Pending(rt.begin(now, key, mid), key)
            self._failed(p, mid, "unreachable", 0.0, now)
        else:  # no first pick (a member is disabled, or none is): the walk
            p = _Pending(rt.begin(now, key), key)
        t = self._next(cid, p, now)
        if t >= 0 and pooled >> t & 1:
            self._pending.pop(cid, None)
            self._routed(cid, t, tuple(p.attempts), key, now)
        return t

    def _routed(self, cid: int, t: int, attempts: tuple[tuple[str, str, float], ...], key: str | None,
                now: float) -> None:
        """A pooled connection to target ``t`` carries the request: counted, and a route event."""
        st = self._stats[t]
        st.active += 1
        st.total += 1
        rt = self.rt
        if rt.route_wanted(now):
            mid = self._mids[t]
            rt.add_route(now, self.engine.peer(cid), (*attempts, (mid, "ok", 0.0)), mid, key)

    def _exhausted(self, cid: int, p: _Pending, now: float) -> None:
        super()._exhausted(cid, p, now)
        self._fails[cid] = p  # for the error answer (_on_fail)

    def _on_fail(self, cid: int, code: int, t: int, keep: int, method: str) -> bytes:
        """The error answer for a request (``code``: the engine's FAIL_*): FAIL_ROUTING every member tried
        failed, or none is enabled; after a member took it: FAIL_BAD_ANSWER it answered garbage, FAIL_IDLE
        the client went idle before its request was complete, FAIL_STALLED no answer byte in time,
        FAIL_CLOSED / FAIL_CLOSED_FRESH it closed a pooled / fresh connection before answering — each
        counted on the member; a stall or a fresh connection's close also marks it, as a failed connect
        does (http.py's rules). Those three cannot be sent again (not idempotent, or with a body)."""
        rt = self.rt
        shell = self.shell
        now = rt.loop.time()
        head = method == "HEAD"  # the answer's length, not its body
        if code == FAIL_ROUTING:
            p = self._fails.pop(cid, None)
            attempts = p.attempts if p is not None else []
            status, why = exhausted_answer(attempts, p.stalled if p is not None else None,
                                           answer_timeout(shell))
            return routed_error(rt, status, why, attempts, keep=bool(keep), head_only=head)
        self._pending.pop(cid, None)  # (a connect in progress when the client went idle)
        mid = self._mids[t] if 0 <= t < len(self._mids) else "?"
        st = self._stats[t] if 0 <= t < len(self._stats) else None
        if code == FAIL_STALLED and st is not None:
            st.total -= 1  # not counted on it (a close before answering was taken off already)
        if code in (FAIL_STALLED, FAIL_CLOSED_FRESH) and mid != "?":
            reason = "no answer within readTimeout" if code == FAIL_STALLED else "closed before answering"
            rt.connect_failed(rt.begin(now, None, mid), mid, now, reason=reason)  # counted and marked
        elif st is not None:
            st.failures += 1
        if code == FAIL_STALLED:
            limit = answer_timeout(shell)
            attempts = [(mid, "timeout", limit * 1000.0)]
            status, why = 504, stalled_why(mid, limit)
        elif code in (FAIL_CLOSED, FAIL_CLOSED_FRESH):
            attempts = [(mid, "reset", 0.0)]
            status, why = 502, (f"member {mid} closed the connection before answering "
                                f"and {method} with this body cannot be replayed")
        elif code == FAIL_BAD_ANSWER:
            attempts = [(mid, "reset", 0.0)]
            status, why = 502, f"bad response from member {mid}"
        else:  # FAIL_IDLE
            attempts = [(mid, "timeout", 0.0)]
            status, why = 504, f"member {mid} did not answer within {shell.idle_timeout:g} s"
        rt.route_failed(now, self.engine.peer(cid), tuple(attempts), None)
        return routed_error(rt, status, why, attempts, keep=bool(keep), head_only=head)

    def _on_handoff(self, fd: int, data: bytes, timed_out: int) -> None:
        """A client connection the fast path leaves to http.py, with what was read of it so far."""
        sock = socket.socket(fileno=fd)
        shell = self.shell
        if shell.closing and not data:
            sock.close()
            return
        def handed() -> HttpClient:
            return _Handed(shell, data, bool(timed_out))

        task = self.rt.loop.create_task(self.rt.loop.connect_accepted_socket(handed, sock))
        self._handoffs.add(task)
        task.add_done_callback(self._handoffs.discard)


class _Handed(HttpClient):
    """A client connection the engine handed over: the bytes it had read come first, then the socket's."""

    __slots__ = ("first", "timed_out")

    def __init__(self, shell: Shell, first: bytes, timed_out: bool) -> None:
        super().__init__(shell)
        self.first = first
        self.timed_out = timed_out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.transport is None:  # refused (connection cap)
            return
        self.shell.rt.accepted -= 1  # the engine counted it when it accepted it
        first, self.first = self.first, b""
        if first:
            self.data_received(first)
        if self.timed_out and not self.dead and self.active is None:
            self.head_t0 = None
            self.fail_request(408, f"balancedesk: request head not complete within {self.shell.head_timeout:g} s\n")
