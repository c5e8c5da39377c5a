"""L4 (TCP): one pick per client connection, connect bounded by ``connectionTimeout``, then a byte-exact
relay both ways with flow control (a full write buffer on one side pauses reading on the other),
half-close passed through (EOF from one side → ``write_eof`` on the other) and an idle timeout.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from balancedesk.core.proxy.runtime import MemberStats, classify

if TYPE_CHECKING:
    from balancedesk.core.proxy.server import Shell

PENDING_LIMIT = 256 * 1024  # client bytes held while the upstream connect is in progress


class TcpUpstream(asyncio.Protocol):
    __slots__ = ("client", "eof", "lost", "transport")

    def __init__(self, client: TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.lost = False

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
        "busy", "client_eof", "idle", "member", "peer", "pending", "pending_n", "proto", "shell", "st",
        "t0", "t_first", "task", "transport", "up",
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
        self.peer: Any = None
        self.task: asyncio.Task[None] | None = None

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
        self.task = rt.loop.create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        self.busy = True
        up = self.up
        if up is not None:
            self.st.bytes_in += len(data)  # type: ignore[union-attr]
            up.write(data)
            return
        self.pending.append(data)
        self.pending_n += len(data)
        if self.pending_n > PENDING_LIMIT and self.transport is not None:
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
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
        if self.st is not None:
            self.st.active -= 1
            self.st.conns.discard(self)
            self.st = None
        up = self.up
        if up is not None:
            self.up = None
            if exc is None:
                up.close()  # flush what the client sent last
            else:
                up.abort()
        elif self.task is not None:
            self.task.cancel()

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.pause_reading()

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.resume_reading()

    # upstream side ------------------------------------------------------------------------------
    async def _connect(self) -> None:
        shell = self.shell
        rt = shell.rt
        loop = rt.loop
        now = loop.time()
        self.t0 = time.monotonic()  # latency: precise clock (uvloop's loop time has 1 ms steps)
        sel = rt.begin(now, None)
        attempts: list[tuple[str, str, float]] = []
        timeout = rt.balancer.connection_timeout_s
        while (mid := sel.next(now=now)) is not None:
            host, port = rt.endpoints[mid]
            proto = TcpUpstream(self)
            try:
                if timeout is None:
                    up, _ = await loop.create_connection(lambda p=proto: p, host, port)
                else:
                    async with asyncio.timeout(timeout):
                        up, _ = await loop.create_connection(lambda p=proto: p, host, port)
            except asyncio.CancelledError:
                if self.transport is None:  # client went away
                    return
                raise
            except OSError as exc:  # TimeoutError included
                end = loop.time()
                attempts.append((mid, classify(exc), (end - now) * 1000.0))
                rt.connect_failed(sel, mid, end)
                now = end
                if self.transport is None:
                    return
                continue
            end = loop.time()
            rt.connect_succeeded(sel, mid, end)
            attempts.append((mid, "ok", (end - now) * 1000.0))
            rt.record_route(end, self.peer_of(), tuple(attempts), mid, None)
            if self.transport is None:
                up.close()
                return
            self._connected(mid, up, proto)
            return
        rt.failed += 1
        rt.record_route(now, self.peer_of(), tuple(attempts), None, None)
        if self.transport is not None:
            self.transport.close()

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
        if self.pending:
            st.bytes_in += self.pending_n
            up.writelines(self.pending)
            self.pending = []
            if self.pending_n > PENDING_LIMIT and self.transport is not None:
                self.transport.resume_reading()
        self.up = up
        if self.client_eof and up.can_write_eof():
            up.write_eof()
        if proto.lost:
            self.upstream_lost(None)
        elif proto.eof:
            self.upstream_eof()

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
                t.abort()

    def close(self) -> None:
        if self.up is not None:
            self.up.close()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
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
