"""L7 upstream side: one keep-alive HTTP/1.1 connection to a member (:class:`UpConn`) and the per-member
pool of idle ones (:class:`Pool`, most recently used first, so stale connections age out at the bottom).

An :class:`UpConn` parses responses with httptools and hands head, body and end to its current owner
(an :class:`~balancedesk.core.proxy.http.HttpClient`) through a small set of methods.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools
from balancedesk.core.balance import AdminState

if TYPE_CHECKING:
    from balancedesk.core.proxy.http import HttpClient
    from balancedesk.core.proxy.runtime import Runtime

POOL_PER_MEMBER = 64
# response headers the proxy decides itself (hop-by-hop, RFC 9110 §7.6.1, and framing)
RESP_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)

_SPECIAL_LENGTHS = frozenset(len(n) for n in (*RESP_HOP, b"content-length"))


class UpConn(asyncio.Protocol):
    __slots__ = (
        "chunked", "endpoint", "has_cl", "head_only", "interim", "keep", "lost", "mid", "ok_attempt", "owner",
        "parser", "parts", "pool", "reason", "reused", "status", "transport",
    )

    def __init__(self, pool: Pool, mid: str, endpoint: tuple[str, int]) -> None:
        self.pool = pool
        self.mid = mid
        self.endpoint = endpoint
        self.ok_attempt = ((mid, "ok", 0.0),)  # the route event's attempts when a pooled connection answers
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.owner: HttpClient | None = None
        self.parts: list[bytes] = []
        self.reason = b""
        self.status = 0
        self.chunked = False
        self.has_cl = False
        self.interim = False
        self.head_only = False
        self.reused = False
        self.lost = False
        self.keep = False

    # transport events ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:  # idle in the pool: a member must not talk now
            self.close()
            return
        owner.busy = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.owner is not None:
                self.owner.upstream_broken(self, f"bad response from member: {exc}")
            self.close()
            owner.kick()
            return
        if self.head_only and self.status:  # HEAD: the answer ends with its head
            self.parser = httptools.HttpResponseParser(self)
            self.head_only = False
            if self.owner is not None:
                self.owner.response_done(self)
        owner.kick()

    def eof_received(self) -> bool:
        self._gone(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone(exc)

    def _gone(self, exc: Exception | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.transport = None
        owner = self.owner
        if owner is not None:
            owner.upstream_lost(self, exc)
            owner.kick()
        else:
            self.pool.forget(self)

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.pause(2)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.resume(2)

    # parser callbacks ---------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.parts = []
        self.chunked = False
        self.has_cl = False
        self.status = 0

    def on_status(self, reason: bytes) -> None:
        self.reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in _SPECIAL_LENGTHS:  # cheap filter before lower()
            ln = name.lower()
            if ln in RESP_HOP:
                if ln == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
                return
            if ln == b"content-length":
                self.has_cl = True
        self.parts += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue and friends: the proxy answered the client's Expect itself
            return
        self.status = status
        self.keep = self.parser.should_keep_alive()
        if self.owner is not None:
            self.owner.response_head(self, status)

    def on_body(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner.response_body(data)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.head_only:
            return  # handled after feed_data (see data_received)
        if self.owner is not None:
            self.owner.response_done(self)

    # helpers ------------------------------------------------------------------------------------
    def close(self) -> None:
        t = self.transport
        if t is not None:
            self.transport = None
            self.lost = True
            self.pool.forget(self)
            t.close()

    def abort(self) -> None:
        t = self.transport
        if t is not None:
            self.transport = None
            self.lost = True
            self.pool.forget(self)
            t.abort()


class Pool:
    """Idle keep-alive connections per member. ``get`` pops the most recently used live one."""

    def __init__(self, rt: Runtime, *, per_member: int = POOL_PER_MEMBER) -> None:
        self.rt = rt
        self.per_member = per_member
        self.idle: dict[str, list[UpConn]] = {}
        self.closing = False
        rt.on_member_change.append(self._member_changed)

    def get(self, mid: str) -> UpConn | None:
        lst = self.idle.get(mid)
        while lst:
            u = lst.pop()
            if u.transport is not None and not u.lost:
                u.reused = True
                return u
        return None

    def release(self, u: UpConn) -> None:
        u.owner = None
        t = u.transport
        if t is None or u.lost:
            return
        rt = self.rt
        if (self.closing or rt.admin.get(u.mid) is not AdminState.ENABLED
                or rt.endpoints.get(u.mid) != u.endpoint):
            u.close()
            return
        if not t.is_reading():  # paused for a slow client: an idle connection must notice a close
            t.resume_reading()
        lst = self.idle.get(u.mid)
        if lst is None:
            lst = self.idle[u.mid] = []
        if len(lst) >= self.per_member:
            lst.pop(0).close()
        lst.append(u)

    def forget(self, u: UpConn) -> None:
        lst = self.idle.get(u.mid)
        if lst and u in lst:
            lst.remove(u)

    def _member_changed(self, mid: str, state: AdminState) -> None:
        if state is not AdminState.ENABLED:
            self.close_member(mid)

    def close_member(self, mid: str) -> None:
        for u in self.idle.pop(mid, []):
            u.close()

    def close_all(self) -> None:
        self.closing = True
        for mid in list(self.idle):
            self.close_member(mid)
