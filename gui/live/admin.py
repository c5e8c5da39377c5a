"""The balancer's admin endpoint as async calls and frozen values.

Contract: docs/ARCHITECTURE.md, "Admin endpoint". Everything here is plain Python (no Qt) so the bench
and tests can use it without a window. ``mono_s`` values are the balancer's clock; a viewer computes
countdowns from ``Snapshot.now`` and the ``retryIn_s`` of each member, never from its own clock.

The transport is a small keep-alive HTTP/1.1 client on asyncio Protocols (httptools parses the answers,
orjson the bodies), not httpx: a viewer polls about ten times a second while the balancer it watches may
be running flat out on the same cores, and httpx spent about 1.3 ms of CPU per call here against about
0.1 ms for this path (``bench/bench_live_view.py``; every CPU-ms the view takes is taken from the balancer).
The endpoint speaks plain HTTP/1.1 with Content-Length bodies, which is all this client needs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import httptools
import orjson


class AdminUnavailable(Exception):
    """The admin endpoint could not be reached (connection refused, timeout, process gone)."""


class AdminError(Exception):
    """The admin endpoint answered with an error status; ``problems`` as in the management API."""

    def __init__(self, status: int, message: str, problems: Sequence[Mapping[str, Any]] = ()) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__(f"{status}: {message}")


def _f(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _opt(value: Any) -> float | None:
    return None if value is None else _f(value)


def _check(value: Any) -> dict[str, Any]:
    """The snapshot's ``check`` object of a member (None when checks are off) → MemberSnap fields."""
    if not isinstance(value, Mapping) or value.get("ok") is None:
        return {}
    return {"check_ok": bool(value.get("ok")), "check_detail": str(value.get("detail") or ""),
            "check_ago_s": _opt(value.get("ago_s"))}


@dataclass(frozen=True)
class MemberSnap:
    """One member as the running balancer sees it."""

    member_id: str
    endpoint: str = ""
    sequence: int = 0
    weight: int = 1
    admin: str = "enabled"  # enabled / drain / disabled
    health: str = "up"  # up / disabled
    disabled_until: float | None = None
    retry_in_s: float | None = None
    active: int = 0
    total: int = 0
    failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    configured_share: float = 0.0
    actual_share: float = 0.0
    # active health checks (all None when the group has none, or before the first result)
    check_ok: bool | None = None
    check_detail: str | None = None
    check_ago_s: float | None = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MemberSnap:
        return cls(
            member_id=str(d.get("memberID", "?")),
            endpoint=str(d.get("endpoint") or ""),
            sequence=int(d.get("sequence") or 0),
            weight=int(d.get("weight") or 1),
            admin=str(d.get("admin") or "enabled"),
            health=str(d.get("health") or "up"),
            disabled_until=_opt(d.get("disabledUntil")),
            retry_in_s=_opt(d.get("retryIn_s")),
            active=int(d.get("active") or 0),
            total=int(d.get("total") or 0),
            failures=int(d.get("failures") or 0),
            bytes_in=int(d.get("bytesIn") or 0),
            bytes_out=int(d.get("bytesOut") or 0),
            latency_p50_ms=_opt(d.get("latencyP50_ms")),
            latency_p99_ms=_opt(d.get("latencyP99_ms")),
            configured_share=_f(d.get("configuredShare")),
            actual_share=_f(d.get("actualShare")),
            **_check(d.get("check")),
        )

    def check_text(self, elapsed: float = 0.0) -> str:
        """The last health check as a person reads it: ``check ok 0.3 s ago`` / ``check failed: refused``
        (``elapsed``: seconds since the snapshot arrived); empty without checks."""
        if self.check_ok is None or self.check_ago_s is None:
            return ""
        if self.check_ok:
            return f"check ok {self.check_ago_s + elapsed:.1f} s ago"
        return f"check failed: {self.check_detail or '?'}"

    @property
    def state(self) -> str:
        """What a person reads: ``disabled`` (health, with a countdown) wins over the admin state."""
        if self.health == "disabled":
            return "down"
        if self.admin == "drain":
            return "draining"
        if self.admin == "disabled":
            return "disabled"
        return "up"


@dataclass(frozen=True)
class Snapshot:
    version: int
    group: Mapping[str, Any]
    mode: str
    listen: str
    affinity_header: str | None
    now: float
    uptime_s: float
    members: tuple[MemberSnap, ...]
    totals: Mapping[str, int] = field(default_factory=dict)
    data_plane: str = ""  # "native" (the C engine) or "asyncio"; "" from a balancer that does not say

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Snapshot:
        return cls(
            version=int(d.get("version") or 0),
            group=dict(d.get("group") or {}),
            mode=str(d.get("mode") or "tcp"),
            listen=str(d.get("listen") or ""),
            affinity_header=d.get("affinityHeader"),
            now=_f(d.get("now")),
            uptime_s=_f(d.get("uptime_s")),
            members=tuple(MemberSnap.from_json(m) for m in d.get("members") or ()),
            totals={str(k): int(v or 0) for k, v in dict(d.get("totals") or {}).items()},
            data_plane=str(d.get("dataPlane") or ""),
        )

    def member(self, member_id: str) -> MemberSnap | None:
        return next((m for m in self.members if m.member_id == member_id), None)


@dataclass(frozen=True)
class EventBatch:
    """Events after a cursor. ``dropped``: lost to the ring or sampled away by the balancer; ``skipped``:
    route events a newest-only read left out; ``newest``: the endpoint honoured ``newest=1`` (a balancer
    older than that answers the oldest ``limit`` events instead)."""

    cursor: int
    events: tuple[Mapping[str, Any], ...]
    dropped: int
    skipped: int = 0
    newest: bool = False


def admin_url(url: str) -> SplitResult:
    """``url`` split, if it can be an admin endpoint (http or https, a host, a valid port); else ValueError
    saying what is wrong. The attach dialog checks with it too, so both refuse the same URLs the same way."""
    parts = urlsplit(url.strip().rstrip("/"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"admin URL must be http://host:port or https://host:port, got {url!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"the port in {url!r} is not a number from 1 to 65535") from None
    return parts


MAX_IDLE = 4  # keep-alive connections kept open between calls (a burst of N calls opens N, keeps 4)


class _Answer(asyncio.Protocol):
    """One keep-alive connection to the endpoint; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.got_bytes = False
        self.keep = True
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(AdminUnavailable(f"malformed answer: {exc}"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.transport = None
        self._fail(ConnectionResetError("the admin endpoint closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.keep = False
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.got_bytes = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class AdminClient:
    """Async client for one balancer's admin endpoint: ``AdminClient("http://h:p", token)``.

    An ``https://`` URL (an admin endpoint behind a TLS proxy) is verified against the system's CAs, or
    against the CA bundle file ``verify`` names (as ``MgmtClient``'s ``verify``)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 3.0, verify: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        url = admin_url(self.base_url)
        assert url.hostname is not None
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl = ssl.create_default_context(cafile=verify) if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        authority = url.netloc.rpartition("@")[2]
        self._head = f"Host: {authority}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n"
        self.timeout = timeout
        self._idle: list[_Answer] = []
        self._open: set[_Answer] = set()

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    async def _connect(self) -> _Answer:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Answer, self._host, self._port, ssl=self._ssl)
        except (OSError, ssl.SSLError) as exc:
            raise AdminUnavailable(f"{self.base_url}: {exc.__class__.__name__} {exc}".strip()) from exc
        self._open.add(conn)
        return conn

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        while self._idle:  # a pooled connection; if the endpoint closed it meanwhile, open a new one
            conn = self._idle.pop()
            if conn.lost:
                self._open.discard(conn)
                continue
            try:
                return await self._on(conn, request)
            except ConnectionResetError:
                if conn.got_bytes:
                    raise
                # closed before it answered a byte: the calls here are all idempotent, so ask again
        return await self._on(await self._connect(), request)

    async def _on(self, conn: _Answer, request: bytes) -> tuple[int, bytes]:
        try:
            status, body = await conn.send(request)
        except BaseException:
            self._open.discard(conn)
            conn.close()
            raise
        if conn.keep and not conn.lost and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            self._open.discard(conn)
            conn.close()
        return status, body

    async def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                    json: Any = None) -> Any:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        body = b"" if json is None else orjson.dumps(json)
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if json is not None or method in ("POST", "PUT"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        request = (head + "\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout):
                status, raw = await self._exchange(request)
        except TimeoutError as exc:
            raise AdminUnavailable(f"{self.base_url}: no answer within {self.timeout:g} s") from exc
        except (ConnectionError, OSError) as exc:
            raise AdminUnavailable(f"{self.base_url}: {exc.__class__.__name__} {exc}".strip()) from exc
        if status >= 400:
            message, problems = raw[:300].decode("utf-8", "replace"), []
            try:
                answer = orjson.loads(raw)
                err = answer.get("error", answer) if isinstance(answer, dict) else answer
                if isinstance(err, dict):
                    msg = err.get("message")
                    message = str(msg.get("value") if isinstance(msg, dict) else msg or message)
                    problems = list(err.get("problems") or answer.get("problems") or [])
            except orjson.JSONDecodeError:
                pass
            raise AdminError(status, message, problems)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise AdminError(status, f"not JSON: {raw[:200]!r}") from exc

    async def snapshot(self) -> Snapshot:
        return Snapshot.from_json(await self._call("GET", "/admin/snapshot"))

    async def events(self, after: int | None, limit: int = 500, *, newest: bool = False) -> EventBatch:
        """Events after ``after`` (None: from the start). ``newest``: every non-route event, but only the
        newest ``limit`` route events (and ``limit`` failed ones) — what a sampling viewer draws."""
        params: dict[str, int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        if newest:
            params["newest"] = 1
        d = await self._call("GET", "/admin/events", params=params)
        return EventBatch(
            cursor=int(d.get("cursor") or 0),
            events=tuple(d.get("events") or ()),
            dropped=int(d.get("dropped") or 0),
            skipped=int(d.get("skipped") or 0),
            newest="skipped" in d,
        )

    async def set_state(self, member_id: str, state: str) -> Any:
        return await self._call("POST", f"/admin/members/{member_id}/state", json={"state": state})

    async def set_weight(self, member_id: str, weight: int) -> Any:
        return await self._call("POST", f"/admin/members/{member_id}/weight", json={"weight": weight})

    async def put_config(self, config: Mapping[str, Any]) -> int:
        d = await self._call("PUT", "/admin/config", json=dict(config))
        return int(d.get("version") or 0)
