"""The admin endpoint: a tiny HTTP/1.1 JSON server (httptools) in the balancer's own loop.

Routes (``Authorization: Bearer <token>`` on every one) are the contract in docs/ARCHITECTURE.md:
``GET /admin/snapshot``, ``GET /admin/events?after=&limit=[&newest=1]``, ``POST /admin/members/{id}/state``,
``POST /admin/members/{id}/weight``, ``PUT /admin/config``, ``GET /metrics``. JSON is built here, only
when asked; the proxy's hot path only appends tuples and bumps counters.

``newest=1`` (an addition for viewers that draw a sample): instead of the oldest ``limit`` events after the
cursor, answer every non-route event after it, the newest ``limit`` route events that failed or failed
over, and the newest ``limit`` other route events — oldest first, the cursor at the newest event — plus
``skipped``, the route events after the cursor left out. Only what is sent is turned into JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httptools
from balancedesk.core.balance import AdminState
from balancedesk.core.model import WEIGHT_MAX, RuleError
from balancedesk.core.proxy.config import parse_config_bytes
from balancedesk.core.proxy.contract import (
    STATUS_CLASSES,
    Command,
    CommandError,
    MemberSnap,
    RevertOverride,
    SetState,
    Snapshot,
    event_from_ring,
    parse_command,
    ring_route_loud,
)
from balancedesk.core.proxy.limits import (
    ADMIN_BODY_MAX_BYTES,
    ADMIN_BODY_TIMEOUT_S,
    ADMIN_HEAD_MAX_BYTES,
    ADMIN_HEAD_TIMEOUT_S,
    ADMIN_IDLE_TIMEOUT_S,
    ADMIN_MAX_CONNECTIONS,
    ADMIN_WRITE_HIGH_BYTES,
    LINGER_S,
)
from balancedesk.core.proxy.runtime import Runtime
from balancedesk.core.proxy.shared import shared_json, summed_snapshot

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable"}


def _peer(p: Any) -> str | None:
    if isinstance(p, tuple) and len(p) >= 2:
        host = str(p[0])
        return f"[{host}]:{p[1]}" if ":" in host else f"{host}:{p[1]}"
    return None


def sticky_json(rt: Runtime) -> dict[str, Any]:
    """The snapshot's ``sticky``: the sticky affinity table's counts; ``shared`` when every worker of the process
    uses one table (and one set of health marks), ``workers`` how many there are."""
    c = rt.sticky.counts()
    return {"entries": c.entries, "capacity": c.capacity, "idleTimeout_s": c.idle_s, "evictions": c.evictions,
            "expiries": c.expiries, "shared": rt.shared is not None, "workers": rt.workers,
            "unsharedMembers": rt.shared.state.unshared() if rt.shared is not None else 0}


def member_json(rt: Runtime, mid: str, now: float, shares: dict[str, float], total: int) -> dict[str, Any]:
    return member_snap(rt, mid, now, shares, total).to_json()


def member_snap(rt: Runtime, mid: str, now: float, shares: dict[str, float], total: int) -> MemberSnap:
    view = next(v for v in rt.balancer.members() if v.member_id == mid)
    st = rt.stats.get(mid)
    host, port = rt.endpoints.get(mid, ("", 0))
    healthy = view.healthy(now)
    # no countdown for a member the health checks hold down: its retryDelay will not bring it back
    until = view.disabled_until if not healthy and not view.check_down else None
    p50, p99 = st.percentiles() if st is not None else (None, None)
    picked = st.total if st is not None else 0
    check = rt.checks.view(mid) if rt.checks is not None else None
    snap = MemberSnap(
        member_id=mid,
        label=rt.labels.get(mid, ""),
        endpoint=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        sequence=view.sequence,
        weight=view.weight,
        admin=view.admin.value,
        health="up" if healthy else "disabled",
        disabled_until=until,
        retry_in_s=(until - now) if until is not None else None,
        active=st.active if st is not None else 0,
        total=picked,
        failures=view.failures,
        # with --workers N: failures counted by every worker of the process (None: one worker, or no shared slot)
        failures_all_workers=rt.shared.failures(mid) if rt.shared is not None else None,
        bytes_in=st.bytes_in if st is not None else 0,
        bytes_out=st.bytes_out if st is not None else 0,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        configured_share=shares.get(mid, 0.0),
        actual_share=(picked / total) if total else 0.0,
        status_classes=dict(zip(STATUS_CLASSES, st.classes, strict=True)) if st is not None and rt.mode == "http"
        else {},
        down_total_s=rt.downtime.total(mid, now=now),
    )
    if check is None:
        return snap
    # active health checks: the checks' state, the last result and how long ago
    return dataclasses.replace(snap, check_state=check.state.value, check_ok=check.last_ok,
                               check_detail=check.last_detail, check_at=check.last_at,
                               check_ago_s=(now - check.last_at) if check.last_at is not None else None,
                               check_passes=check.passes, check_fails=check.fails)


def _shares(rt: Runtime) -> dict[str, float]:
    members = rt.balancer.members()
    if rt.balancer.round_robin:
        total = sum(m.weight for m in members) or 1
        return {m.member_id: m.weight / total for m in members}
    shares: dict[str, float] = rt.cfg.connector_group.shares()
    return shares


def snapshot(rt: Runtime, *, server_version: int | None = None,
             control_plane: dict[str, Any] | None = None) -> dict[str, Any]:
    for refresh in rt.refreshers:
        refresh()
    now = rt.loop.time()
    cfg = rt.cfg
    g = cfg.connector_group
    shares = _shares(rt)
    ids = rt.balancer.member_ids()
    total = sum(rt.stats[m].total for m in ids if m in rt.stats)
    snap = Snapshot(
        version=rt.version,
        group={"connectorID": cfg.connector_id, "label": cfg.label, "loadBalancing": g.load_balancing,
               "connectionTimeout": g.connection_timeout, "retryDelay": g.retry_delay},
        mode=rt.mode,
        data_plane=rt.data_plane,
        listen=rt.listen,
        affinity_header=rt.affinity_header,
        listener=cfg.listener.to_json(),
        access_log=rt.access_log.stats() if rt.access_log is not None else None,
        sticky=sticky_json(rt),
        now=now,
        uptime_s=now - rt.started,
        members=tuple(member_snap(rt, m, now, shares, total) for m in ids),
        overrides=tuple(overrides_json(rt)),
        totals={"accepted": rt.accepted, "active": rt.active, "refused": rt.refused, "failed": rt.failed,
                "sampledAway": rt.sampled_away},
        server_version=server_version,
        control_plane=control_plane,
        shared=shared_json(rt.shared, rt.workers, now=now),
    )
    if rt.shared is not None:  # --workers N: the process's counters, summed over every worker's row
        rt.write_counts()
        snap = summed_snapshot(rt.shared, snap)
    return snap.to_json()


def overrides_json(rt: Runtime) -> list[dict[str, Any]]:
    """The group's runtime overrides as the heartbeat's ``overrides`` entries (``core.fleet.Override``)."""
    out: list[dict[str, Any]] = []
    for mid, (state, weight) in sorted(rt.overrides.items()):
        item: dict[str, Any] = {"connectorID": rt.cfg.connector_id, "memberID": mid}
        if state is not None:
            item["state"] = state.value
        if weight is not None:
            item["weight"] = weight
        out.append(item)
    return out


def event_json(ev: tuple[Any, ...]) -> dict[str, Any]:
    return event_from_ring(ev, _peer).to_json()


def events(rt: Runtime, after: int, limit: int) -> dict[str, Any]:
    """Events after cursor ``after``, oldest first; ``dropped`` counts events lost to the ring's size and
    route events sampled away since the cursor."""
    ring = rt.events
    out: list[dict[str, Any]] = []
    dropped = 0
    if ring and after < rt.seq:
        first = ring[0][0]
        if after + 1 < first:
            dropped += first - (after + 1)  # fell off the ring
        base_sa = ring[after - first][2] if after >= first else ring[0][2]
        i = max(after + 1, first) - first
        while i < len(ring) and len(out) < limit:
            out.append(event_json(ring[i]))
            i += 1
        end_sa = ring[i][2] if i < len(ring) else rt.sampled_away
        dropped += max(0, end_sa - base_sa)
    cursor = out[-1]["seq"] if out else min(after, rt.seq)
    return {"cursor": cursor, "events": out, "dropped": dropped}


def _loud(ev: tuple[Any, ...]) -> bool:
    """A route event a person should see (:attr:`RouteEvent.loud`)."""
    return ring_route_loud(ev)


def newest_events(rt: Runtime, after: int, limit: int) -> dict[str, Any]:
    """``GET /admin/events?newest=1``: see the module docstring. Walks the ring from its newest end and
    stops at the cursor, so the cost is the events after the cursor, not the ring."""
    ring = rt.events
    if not ring or after >= rt.seq:
        return {"cursor": min(after, rt.seq), "events": [], "dropped": 0, "skipped": 0}
    first = ring[0][0]
    dropped = first - (after + 1) if after + 1 < first else 0  # fell off the ring
    base_sa = ring[after - first][2] if after >= first else ring[0][2]
    dropped += max(0, rt.sampled_away - base_sa)
    kept: list[tuple[Any, ...]] = []
    plain = loud = skipped = 0
    for ev in reversed(ring):
        if ev[0] <= after:
            break
        if ev[3] != "route":
            kept.append(ev)
        elif _loud(ev):
            if loud < limit:
                kept.append(ev)
                loud += 1
            else:
                skipped += 1
        elif plain < limit:
            kept.append(ev)
            plain += 1
        else:
            skipped += 1
    kept.reverse()
    return {"cursor": ring[-1][0], "events": [event_json(e) for e in kept], "dropped": dropped,
            "skipped": skipped}


def metrics(rt: Runtime) -> str:
    snap = snapshot(rt)
    lines = [
        "# HELP balancedesk_up 1 while the balancer runs",
        "# TYPE balancedesk_up gauge",
        "balancedesk_up 1",
        f"balancedesk_config_version {rt.version}",
    ]
    for name, key, typ in (("accepted_total", "accepted", "counter"), ("active", "active", "gauge"),
                           ("refused_total", "refused", "counter"), ("failed_total", "failed", "counter"),
                           ("events_sampled_away_total", "sampledAway", "counter")):
        lines.append(f"# TYPE balancedesk_{name} {typ}")
        lines.append(f"balancedesk_{name} {snap['totals'][key]}")
    per = (("member_active", "active", "gauge"), ("member_requests_total", "total", "counter"),
           ("member_failures_total", "failures", "counter"), ("member_bytes_in_total", "bytesIn", "counter"),
           ("member_bytes_out_total", "bytesOut", "counter"), ("member_weight", "weight", "gauge"),
           ("member_latency_p50_ms", "latencyP50_ms", "gauge"),
           ("member_latency_p99_ms", "latencyP99_ms", "gauge"))
    members = [(m, f'member="{_esc(m["memberID"])}",label="{_esc(m["label"])}"') for m in snap["members"]]
    for name, key, typ in (*per, ("member_down_seconds_total", "downTotal_s", "counter")):
        lines.append(f"# TYPE balancedesk_{name} {typ}")
        for m, ids in members:
            if m[key] is not None:
                lines.append(f"balancedesk_{name}{{{ids}}} {m[key]}")
    lines.append("# TYPE balancedesk_member_up gauge")
    for m, ids in members:
        up = int(m["health"] == "up" and m["admin"] == "enabled")
        lines.append(f'balancedesk_member_up{{{ids},admin="{m["admin"]}"}} {up}')
    if snap["mode"] == "http":  # answers relayed from each member, by class (contract.STATUS_CLASSES)
        lines.append("# TYPE balancedesk_member_responses_total counter")
        for m, ids in members:
            for cls, n in m["statusClasses"].items():
                lines.append(f'balancedesk_member_responses_total{{{ids},code="{cls}"}} {n}')
    return "\n".join(lines) + "\n"


def _esc(s: str) -> str:
    """A label value as the Prometheus text exposition format escapes it: backslash, double quote, newline."""
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Reply(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        raise _Reply(400, {"error": {"message": "body is not valid JSON"}}) from None


def handle(rt: Runtime, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
    """One admin request, its bearer token already checked (:class:`AdminProtocol`) → (status, content
    type, body)."""
    try:
        parts = urlsplit(target)
        path = unquote(parts.path)
        if path == "/metrics":
            if method != "GET":
                raise _Reply(405, {"error": {"message": "use GET"}})
            return 200, "text/plain; version=0.0.4", metrics(rt).encode()
        if path == "/admin/snapshot":
            if method != "GET":
                raise _Reply(405, {"error": {"message": "use GET"}})
            raise _Reply(200, snapshot(rt))
        if path == "/admin/events":
            if method != "GET":
                raise _Reply(405, {"error": {"message": "use GET"}})
            q = parse_qs(parts.query)
            try:
                after = int(q.get("after", ["0"])[0])
                limit = max(1, min(10000, int(q.get("limit", ["1000"])[0])))
            except ValueError:
                raise _Reply(400, {"error": {"message": "after and limit must be integers"}}) from None
            newest = q.get("newest", ["0"])[0].lower()
            if newest not in ("0", "1", "false", "true"):
                raise _Reply(400, {"error": {"message": "newest must be 0 or 1"}})
            if newest in ("1", "true"):
                raise _Reply(200, newest_events(rt, after, limit))
            raise _Reply(200, events(rt, after, limit))
        if path == "/admin/config":
            if method != "PUT":
                raise _Reply(405, {"error": {"message": "use PUT"}})
            try:
                cfg = parse_config_bytes(body)
            except RuleError as exc:
                rt.record_config(str(exc))
                raise _Reply(400, {"error": {"message": str(exc),
                                             "problems": [p.as_json() for p in exc.problems]}}) from None
            raise _Reply(200, {"version": rt.apply(cfg)})
        seg = path.strip("/").split("/")
        if seg[:1] == ["admin"]:
            try:
                cmd = parse_command(method, seg[1:], _json_body(body) if method == "POST" else None,
                                    weight_max=WEIGHT_MAX)
            except CommandError as exc:
                err: dict[str, Any] = {"message": str(exc)}
                if exc.field is not None:
                    err["problems"] = [{"field": exc.field, "message": str(exc)}]
                raise _Reply(exc.status, {"error": err}) from None
            if cmd is not None:
                raise _Reply(*run_command(rt, cmd))
        raise _Reply(404, {"error": {"message": f"no such admin resource {path}"}})
    except _Reply as r:
        return r.status, "application/json", _dumps(r.body).encode()


Handler = Callable[[str, str, bytes], tuple[int, str, bytes]]  # (method, target, body) → (status, type, body)

def run_command(rt: Runtime, cmd: Command) -> tuple[int, Any]:
    """Carry out an admin command on ``rt`` → (status, JSON body)."""
    if isinstance(cmd, RevertOverride):
        if not rt.revert(cmd.member_id):
            return 404, {"error": {"message": f"member {cmd.member_id} has no override"}}
        return 200, {"overrides": overrides_json(rt)}
    if cmd.member_id not in rt.endpoints:
        return 404, {"error": {"message": f"no member {cmd.member_id} in this group"}}
    if isinstance(cmd, SetState):
        rt.override_admin(cmd.member_id, AdminState(cmd.state))
    else:
        rt.override_weight(cmd.member_id, cmd.weight)
    now = rt.loop.time()
    ids = rt.balancer.member_ids()
    total = sum(rt.stats[m].total for m in ids if m in rt.stats)
    return 200, member_json(rt, cmd.member_id, now, _shares(rt), total)


_dumps = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode  # compact: fewer bytes to send


class AdminProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, one request at a time, bounded before the bearer token is looked at (the
    values are in :mod:`limits`):

    * the head: at most ``ADMIN_HEAD_MAX_BYTES`` (431), complete within ``ADMIN_HEAD_TIMEOUT_S`` from the
      accept for the first request and from its first byte for a later one (408; a connection that sent
      nothing is closed unanswered); between requests a connection may idle ``ADMIN_IDLE_TIMEOUT_S``;
    * the body: at most ``ADMIN_BODY_MAX_BYTES`` — 413 from ``Content-Length`` before any of it is read, or
      as soon as a chunked one passes the limit — and complete within ``ADMIN_BODY_TIMEOUT_S`` of the head
      (408);
    * then the token (401 at the end of the head: the body of a stranger is never read);
    * at most ``ADMIN_MAX_CONNECTIONS`` open (503), and answers not read by the client stop its reading at
      ``ADMIN_WRITE_HIGH_BYTES``; a client that pipelines past that is dropped.

    Every refusal is a JSON error body with ``Connection: close``; the connection then reads and drops
    what the client still sends for ``LINGER_S`` (so the answer is not lost to a reset) and closes. The
    work per read is bounded by the read, so a huge or slow admin client cannot hold up the data plane
    sharing this event loop.
    """

    def __init__(self, handler: Handler, token: str, conns: set[AdminProtocol]) -> None:
        self.handler = handler
        self.token = token.encode()
        self.conns = conns
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._head_n = 0  # bytes read while in a head
        self._in_head = True  # between requests or inside a head
        self._started = False  # a byte of the current head came
        self._served = False  # a request was answered (later heads are timed from their first byte)
        self._dead = False  # refused: reading and dropping until the linger ends
        self._paused = False  # the client does not read its answers: its requests are not read either
        self._timer: asyncio.TimerHandle | None = None

    # transport events -------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if len(self.conns) >= ADMIN_MAX_CONNECTIONS:
            self._refuse(503, f"more than {ADMIN_MAX_CONNECTIONS} admin connections are open")
            return
        self.conns.add(self)
        transport.set_write_buffer_limits(high=ADMIN_WRITE_HIGH_BYTES)  # type: ignore[attr-defined]
        self._arm(ADMIN_HEAD_TIMEOUT_S)  # the first head: from the accept

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.conns.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool:
        return False  # close (a half-closed client gets the answer already written)

    def pause_writing(self) -> None:
        self._paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self.transport is not None and not self._dead:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return  # lingering: dropped
        if self._in_head:
            self._head_n += len(data)
            if not self._started:
                self._started = True
                if self._served:
                    self._arm(ADMIN_HEAD_TIMEOUT_S)  # a later head: from its first byte
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            early = exc.__context__
            if isinstance(early, _Refused):
                self._refuse(early.status, early.message)
            elif not self._dead:
                self._refuse(400, "malformed request")
            return
        if self._in_head and self._head_n > ADMIN_HEAD_MAX_BYTES and not self._dead:
            self._refuse(431, f"request head larger than {ADMIN_HEAD_MAX_BYTES} bytes")

    # parser callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._body = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value) + 4
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._size + len(self._url) > ADMIN_HEAD_MAX_BYTES:  # it ended inside the read that passed the limit
            raise _Refused(431, f"request head larger than {ADMIN_HEAD_MAX_BYTES} bytes")
        self._in_head = False
        self._size = 0
        cl = self._headers.get("content-length", "").strip()
        if cl.isdigit() and int(cl) > ADMIN_BODY_MAX_BYTES:
            raise _Refused(413, f"request body larger than {ADMIN_BODY_MAX_BYTES} bytes")
        auth = self._headers.get("authorization", "")
        if not (auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token)):
            raise _Refused(401, "missing or wrong bearer token")
        self._arm(ADMIN_BODY_TIMEOUT_S)

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > ADMIN_BODY_MAX_BYTES:
            raise _Refused(413, f"request body larger than {ADMIN_BODY_MAX_BYTES} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._dead:
            return
        if self._paused:  # pipelining past what it reads
            if self.transport is not None:
                self.transport.abort()
            return
        method = self.parser.get_method().decode()
        try:
            status, ctype, body = self.handler(method, self._url.decode("latin-1"), b"".join(self._body))
        except Exception as exc:  # a bug: answer 500 and say so, never kill the balancer
            status, ctype, body = 500, "application/json", json.dumps({"error": {"message": repr(exc)}}).encode()
        self._body = []
        self._in_head = True
        self._started = False
        self._served = True
        self._head_n = 0
        keep = self.parser.should_keep_alive()
        self._send(status, ctype, body, close=not keep)
        if keep:
            self._arm(ADMIN_IDLE_TIMEOUT_S)

    # answers and timers -----------------------------------------------------------------------------
    def _send(self, status: int, ctype: str, body: bytes, *, close: bool) -> None:
        t = self.transport
        if t is None:
            return
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n")
        t.writelines([head.encode(), body])
        if close:
            t.close()

    def _refuse(self, status: int, message: str) -> None:
        """An error answer of the endpoint's own, then linger: read and drop, close at EOF or ``LINGER_S``."""
        self._dead = True
        t = self.transport
        if t is None:
            return
        body = _dumps({"error": {"message": message}}).encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
        t.writelines([head.encode(), body])
        if t.can_write_eof():
            t.write_eof()
            t.resume_reading()
            self._arm(LINGER_S)
        else:
            t.close()

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._timer = None
        t = self.transport
        if t is None:
            return
        if self._dead or (self._in_head and not self._started):
            t.close()  # the linger ended, an idle keep-alive connection, or not a byte since the accept
        elif self._in_head:
            self._refuse(408, f"request head not complete within {ADMIN_HEAD_TIMEOUT_S:g} s")
        else:
            self._refuse(408, f"request body not complete within {ADMIN_BODY_TIMEOUT_S:g} s")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def admin_factory(rt: Runtime, token: str) -> tuple[Callable[[], AdminProtocol], set[AdminProtocol]]:
    """The admin endpoint of one group's runtime."""
    return handler_factory(lambda method, target, body: handle(rt, method, target, body), token)


def handler_factory(handler: Handler, token: str) -> tuple[Callable[[], AdminProtocol], set[AdminProtocol]]:
    """The admin endpoint around any request handler (a balancer serving many groups: ``core.proxy.fleet``)."""
    conns: set[AdminProtocol] = set()
    return (lambda: AdminProtocol(handler, token, conns)), conns
