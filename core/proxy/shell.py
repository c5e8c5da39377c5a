"""What one listener's connections share, whichever data plane carries them.

:class:`Shell` holds the runtime, the live connections, the listener's limits, the keep-alive pool and the
idle sweeper. The data planes (``tcp``, ``http``, ``native``) take a Shell and read it; ``server`` makes
it and composes it with a plane (:func:`balancedesk.core.proxy.server.make_shell`). So the arrows run
``server → plane → shell``: a plane imports nothing of the server, and this module imports no plane —
it knows a plane only by the two small protocols below.

Imports: asyncio, ctypes, ``core.balance``, ``core.proxy.limits``, ``core.proxy.runtime``, ``core.proxy.upstream``.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import socket
from collections.abc import Callable
from typing import Any, Protocol

from balancedesk.core.balance import AdminState
from balancedesk.core.proxy.limits import LINGER_S, TRIM_AFTER_PEAK
from balancedesk.core.proxy.runtime import Runtime
from balancedesk.core.proxy.upstream import Pool


def give_back_memory() -> None:
    """Return freed heap pages to the system: glibc keeps what a burst of connections freed (their buffers,
    the engine's and Python's) mapped until ``malloc_trim``, so RSS would stay at the burst's peak. Not
    glibc: nothing to do."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
        fn: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return fn


class NativePlane(Protocol):
    """The native engine's side of a listener (``native.NativeTcp`` / ``NativeHttp``)."""

    @property
    def active(self) -> int: ...
    def start(self, sock: socket.socket) -> None: ...
    def sweep(self, idle_timeout: float) -> None: ...
    def stop_accepting(self) -> None: ...
    def close(self) -> None: ...


class Deadlines(Protocol):
    """The asyncio L4 plane's connect deadlines (``tcp.ConnectDeadlines``)."""

    def add(self, when: float, client: Any) -> int: ...
    def close(self) -> None: ...


class Shell:
    """What a listener's connections share: runtime, live connections, limits, the idle sweeper."""

    def __init__(self, rt: Runtime, *, max_connections: int, idle_timeout: float, head_timeout: float,
                 head_limit: int, affinity_header: str | None) -> None:
        self.rt = rt
        self.conns: set[Any] = set()
        self.closing = False
        self.drained = asyncio.Event()  # set once closing and the last connection is gone
        self.now = rt.loop.time()  # refreshed by the sweeper; for coarse timers (slow head)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.head_limit = head_limit
        self.linger_s = LINGER_S
        self.affinity: bytes | None = affinity_header.lower().encode() if affinity_header else None
        self.pool = Pool(rt)
        self._dt = 1.0
        self._set_dt()
        rt.on_config.append(self._set_dt)  # the read timeout is the group's: it may change with the config
        self._peak = 0  # most client connections alive since memory was last given back (see _sweep)
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.connect_deadlines: Deadlines | None = None  # set by the composer for the asyncio L4 plane
        self.native: NativePlane | None = None  # set by the composer for the native plane

    def abort_tcp_of_disabled(self, mid: str, state: AdminState) -> None:
        """asyncio L4: a member disabled by the admin loses its relayed connections at once."""
        if state is AdminState.DISABLED:
            st = self.rt.stats.get(mid)
            for c in list(st.conns if st is not None else ()):
                c.abort()

    def _set_dt(self) -> None:
        """The sweeper's period: a quarter of the shortest timeout it serves (head, idle, L7 answer), 50 ms to
        1 s — so a timeout fires at most a quarter late."""
        timeouts = [self.head_timeout, self.idle_timeout]
        if self.rt.mode == "http":
            timeouts.append(self.rt.cfg.listener.read_timeout)
        self._dt = max(0.05, min(1.0, *(t / 4 for t in timeouts)))

    def start(self) -> None:
        self._sweep_handle = self.rt.loop.call_later(self._dt, self._sweep)

    def _sweep(self) -> None:
        loop = self.rt.loop
        self.now = now = loop.time()
        dt = self._dt
        for c in list(self.conns):
            c.tick(now, dt)
        if self.native is not None:
            self.native.sweep(self.idle_timeout)
        alive = self.alive()
        if alive > self._peak:
            self._peak = alive
        elif self._peak >= TRIM_AFTER_PEAK and alive <= self._peak // 4:
            self._peak = alive
            give_back_memory()
        if self.closing and not alive:
            self.drained.set()
        self._sweep_handle = loop.call_later(dt, self._sweep)

    def alive(self) -> int:
        """Client connections still open."""
        return len(self.conns) + (self.native.active if self.native is not None else 0)

    def stop(self) -> None:
        self.closing = True
        if self.native is not None:
            self.native.stop_accepting()
        self.pool.close_all()
        for c in list(self.conns):
            c.stop_idle()

    def close(self) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        if self.connect_deadlines is not None:
            self.connect_deadlines.close()
        if self.native is not None:
            self.native.close()
        for c in list(self.conns):
            c.abort()
