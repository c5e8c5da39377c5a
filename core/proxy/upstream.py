"""L7 upstream side: one keep-alive HTTP/1.1 connection to a member (:class:`UpConn`) and the per-member
pool of idle ones (:class:`Pool`, most recently used first, so stale connections age out at the bottom).

An :class:`UpConn` parses responses with httptools and hands head, body and end to its current owner
(an :class:`~balancedesk.core.proxy.http.HttpClient`) through the small :class:`Owner` protocol, so this
module imports nothing of ``http`` (which imports it). A ``101`` to an upgrade request the owner passed on makes
it a tunnel: its head goes to the client as sent, then every byte as it comes (it never returns to the pool); a
``101`` nobody asked for is a bad response.

A response head larger than ``ANSWER_HEAD_MAX_BYTES`` (see :mod:`limits`) is a bad answer: the owner
answers 502 and counts a failure on the member, the connection is closed — the head is never held whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import TYPE_CHECKING, Protocol

import httptools
from balancedesk.core.balance import AdminState
from balancedesk.core.proxy.framing import HOP_BY_HOP
from balancedesk.core.proxy.limits import ANSWER_HEAD_MAX_BYTES, POOL_PER_MEMBER

if TYPE_CHECKING:
    from balancedesk.core.proxy.runtime import Runtime

# response headers the proxy decides itself (hop-by-hop, RFC 9110 §7.6.1, and framing)
RESP_HOP = HOP_BY_HOP - {b"http2-settings"}

# a hop-by-hop header line in a lower-cased head (the match starts at the CRLF before the name)
_HOP_LINE = re.compile(rb"\r\n(?:" + b"|".join(sorted(RESP_HOP)) + rb")[ \t]*:")
_SPECIAL_LENGTHS = frozenset(len(n) for n in (*RESP_HOP, b"content-length"))


class Owner(Protocol):
    """The client connection an :class:`UpConn` serves while it carries a request (``http.HttpClient``)."""

    busy: bool

    def kick(self) -> None: ...
    def pause(self, bit: int) -> None: ...
    def resume(self, bit: int) -> None: ...
    def response_head(self, u: UpConn, status: int) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_done(self, u: UpConn) -> None: ...
    def upstream_broken(self, u: UpConn, why: str) -> None: ...
    def upstream_lost(self, u: UpConn, exc: Exception | None) -> None: ...
    def wants_upgrade(self, u: UpConn) -> bool: ...
    def response_upgraded(self, u: UpConn, head: bytes) -> None: ...
    def tunnel_down(self, data: bytes) -> None: ...


class _HeadError(Exception):
    pass


class _HeadReader:
    """The slow path for a response head the fast path cannot slice (bare-LF line ends, folded lines):
    a second parser over the raw bytes collects the headers, and the head is rebuilt from them."""

    __slots__ = ("parts", "reason")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.reason = b""

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        ln = name.lower()
        if ln not in RESP_HOP:
            self.parts += (name, b": ", value, b"\r\n")

    def on_headers_complete(self) -> None:
        raise _HeadError  # the head is read: stop here


def _rebuild_head(raw: bytes, status: int) -> bytes:
    reader = _HeadReader()
    with contextlib.suppress(httptools.HttpParserError):
        httptools.HttpResponseParser(reader).feed_data(raw)
    return b"".join((b"HTTP/1.1 %d " % status, reader.reason, b"\r\n", *reader.parts, b"\r\n"))


_NGINX_KEEP = b"\r\nConnection: keep-alive\r\n"  # what nginx (and most servers) send: cut with one find


def forward_head(raw: bytes, status: int, hops: int) -> bytes | None:
    """The head to forward for a member's response head ``raw`` (its first byte up to the blank line, or
    more; None if the blank line is not in it): the ``hops`` hop-by-hop header lines the parser reported
    removed, an HTTP/1.1 status line, ending with the blank line.

    The usual head is sliced out of the raw bytes; a head whose hop-by-hop lines cannot be found that way
    (bare-LF line ends, folded lines) is re-read by a second parser and rebuilt."""
    e = raw.find(b"\r\n\r\n")
    if e < 0:
        return _rebuild_head(raw, status) if b"\n\n" in raw or b"\n\r\n" in raw else None
    head = raw if len(raw) == e + 4 else raw[:e + 4]
    if hops:
        i = head.find(_NGINX_KEEP) if hops == 1 else -1
        if i >= 0:
            head = head[:i] + head[i + 24:]
        else:
            low = head.lower()
            cut: list[bytes] = []
            at = 0
            for m in _HOP_LINE.finditer(low):
                j = low.find(b"\r\n", m.end())
                if low[j + 2:j + 3] in (b" ", b"\t"):  # a folded line
                    return _rebuild_head(head, status)
                cut.append(head[at:m.start()])
                at = j
            if len(cut) != hops:  # a hop-by-hop line the slicing did not find (bare LF before it)
                return _rebuild_head(head, status)
            cut.append(head[at:])
            head = b"".join(cut)
    if not head.startswith(b"HTTP/1.1 "):  # another version: an HTTP/1.1 status line with the same reason
        sl = head.find(b"\r\n")
        parts = head[:sl].split(b" ", 2)
        head = b"HTTP/1.1 %d %s%s" % (status, parts[2] if len(parts) > 2 else b"", head[sl:])
    return head


class UpConn(asyncio.Protocol):
    __slots__ = (
        "chunked", "endpoint", "has_cl", "hbuf", "head", "head_only", "hops", "inhead", "interim", "keep", "lost",
        "mid", "ok_attempt", "owner", "parser", "pool", "reused", "status", "transport", "tunnel", "upgrade_seen",
    )

    def __init__(self, pool: Pool, mid: str, endpoint: tuple[str, int]) -> None:
        self.pool = pool
        self.mid = mid
        self.endpoint = endpoint
        self.ok_attempt = ((mid, "ok", 0.0),)  # the route event's attempts when a pooled connection answers
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.owner: Owner | None = None
        self.head = b""  # the response head to forward (see forward_head)
        self.hbuf = b""  # raw bytes since the response head began, while it is being read
        self.inhead = True
        self.hops = 0  # hop-by-hop header lines in the response head
        self.status = 0
        self.chunked = False
        self.has_cl = False
        self.interim = False
        self.head_only = False
        self.reused = False
        self.lost = False
        self.keep = False
        self.tunnel = False  # after a 101: bytes go to the owner's client as they are
        self.upgrade_seen = False  # the response head has an Upgrade header

    # transport events ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is None:  # idle in the pool: a member must not talk now
            self.close()
            return
        owner.busy = True
        if self.tunnel:
            owner.tunnel_down(data)
            owner.kick()
            return
        if self.inhead:
            self.hbuf = self.hbuf + data if self.hbuf else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:  # the 101's head was handed over (on_headers_complete)
            if self.tunnel:
                rest = data[int(exc.args[0]):]
                if rest:
                    owner.tunnel_down(rest)
            owner.kick()
            return
        except httptools.HttpParserError as exc:
            if self.owner is not None:
                self.owner.upstream_broken(self, f"bad response from member: {exc}")
            self.close()
            owner.kick()
            return
        if self.inhead and len(self.hbuf) > ANSWER_HEAD_MAX_BYTES:  # still no end of the head in sight
            self._too_large(owner)
            return
        if self.head_only and self.status:  # HEAD: the answer ends with its head
            self.parser = httptools.HttpResponseParser(self)
            self.head_only = False
            self.inhead = True
            self.hbuf = b""
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
    # the head is not rebuilt header by header: on_header only notes framing and hop-by-hop headers, the
    # raw bytes are kept in ``hbuf`` from the first byte of the response (the start of a read, as the member
    # answers one request at a time) to the blank line and forwarded as they are (forward_head)
    def on_message_begin(self) -> None:
        self.chunked = False
        self.has_cl = False
        self.hops = 0
        self.status = 0
        self.upgrade_seen = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in _SPECIAL_LENGTHS:  # cheap filter before lower()
            ln = name.lower()
            if ln in RESP_HOP:
                self.hops += 1
                if ln == b"transfer-encoding" and b"chunked" in value.lower():
                    self.chunked = True
                elif ln == b"upgrade":
                    self.upgrade_seen = True
            elif ln == b"content-length":
                self.has_cl = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        hbuf = self.hbuf
        if status == 101:
            owner = self.owner
            e = hbuf.find(b"\r\n\r\n")
            if owner is None or e < 0 or not self.upgrade_seen or not owner.wants_upgrade(self):
                raise _HeadError("101 Switching Protocols to a request that asked for no upgrade")
            self.inhead = False
            self.hbuf = b""
            self.tunnel = True
            self.status = status
            owner.response_upgraded(self, hbuf[:e + 4])
            return
        if 100 <= status < 200:
            self.interim = True  # 100 Continue and friends: the proxy answered the client's Expect itself
            e = hbuf.find(b"\r\n\r\n")
            self.hbuf = hbuf[e + 4:] if e >= 0 else b""
            return
        if len(hbuf) > ANSWER_HEAD_MAX_BYTES:  # complete in this read: is its end within the limit?
            room = ANSWER_HEAD_MAX_BYTES + 4
            if hbuf.find(b"\n\r\n", 0, room) < 0 and hbuf.find(b"\n\n", 0, room) < 0:
                raise _HeadError(f"response head larger than {ANSWER_HEAD_MAX_BYTES} bytes")
        self.inhead = False
        self.hbuf = b""
        head = forward_head(hbuf, status, self.hops)
        if head is None:
            raise _HeadError("response head not found")
        self.head = head
        self.status = status
        self.keep = self.parser.should_keep_alive()
        if self.owner is not None:
            self.owner.response_head(self, status)

    def on_body(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner.response_body(data)

    def on_message_complete(self) -> None:
        if self.tunnel:
            return  # llhttp ends a 101's message at its head: the tunnel goes on
        if self.interim:
            self.interim = False
            return
        self.inhead = True  # the next read starts the next response
        if self.head_only:
            return  # handled after feed_data (see data_received)
        if self.owner is not None:
            self.owner.response_done(self)

    # helpers ------------------------------------------------------------------------------------
    def _too_large(self, owner: Owner) -> None:
        self.hbuf = b""
        if self.owner is not None:
            self.owner.upstream_broken(self, f"bad response from member {self.mid}: response head larger "
                                             f"than {ANSWER_HEAD_MAX_BYTES} bytes")
        self.abort()
        owner.kick()

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
