"""The balancer's admin endpoint as async calls and frozen values.

Contract: docs/ARCHITECTURE.md, "Admin endpoint"; the values (``MemberSnap``, ``Snapshot``, the commands) are
``core.proxy.contract``'s, the same definitions the balancer serialises with. Everything here is plain
Python (no Qt) so the bench and tests can use it without a window. ``mono_s`` values are the balancer's
clock; a viewer computes countdowns from ``Snapshot.now`` and the ``retryIn_s`` of each member, never from
its own clock.

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
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

import httptools
import orjson
from balancedesk.core.proxy.contract import Command, MemberSnap, RevertOverride, SetState, SetWeight, Snapshot

__all__ = ["AdminClient", "AdminError", "AdminUnavailable", "EventBatch", "MemberSnap", "Snapshot", "admin_url"]


class AdminUnavailable(Exception):
    """The admin endpoint could not be reached (connection refused, timeout, process gone)."""


class AdminError(Exception):
    """The admin endpoint answered with an error status; ``problems`` as in the management API."""

    def __init__(self, status: int, message: str, problems: Sequence[Mapping[str, Any]] = ()) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__(f"{status}: {message}")


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
    against the CA bundle file ``verify`` names (as ``MgmtClient``'s ``verify``). ``group``: one group of a
    balancer that serves several (``balance --api``): every ``/admin/…`` call goes to ``/groups/{group}/…``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 3.0, verify: str | None = None,
                 group: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.group = group
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
        if self.group is not None and path.startswith("/admin/"):
            path = f"/groups/{self.group}/" + path.removeprefix("/admin/")
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

    async def command(self, cmd: Command) -> Any:
        """Send an admin command (``core.proxy.contract``): the answer's JSON."""
        return await self._call(cmd.method, "/admin/" + cmd.path, json=cmd.body())

    async def set_state(self, member_id: str, state: str) -> Any:
        return await self.command(SetState(member_id, state))

    async def set_weight(self, member_id: str, weight: int) -> Any:
        return await self.command(SetWeight(member_id, weight))

    async def revert(self, member_id: str) -> Any:
        """Drop the member's runtime override on the balancer (its config weight, enabled)."""
        return await self.command(RevertOverride(member_id))

    async def put_config(self, config: Mapping[str, Any]) -> int:
        d = await self._call("PUT", "/admin/config", json=dict(config))
        return int(d.get("version") or 0)
