"""Watches one balancer through its admin endpoint on the qasync loop: a snapshot ~5×/s and the event
stream by cursor. The UI thread never waits: each poll is an awaited call on the loop (the lean keep-alive
client of ``admin.py``).

Cheap to keep open under load:

* events are read newest-first (``newest=1``): every health/admin/config event, but only as many route
  events as the view can draw until the next poll — the balancer turns only those into JSON. A balancer
  that predates ``newest`` is read the old way (the oldest events after the cursor, up to 500).
* the poll interval adapts: ``interval_s`` while things change, ``idle_interval_s`` when two snapshots in
  a row show nothing new, ``background_interval_s`` while the window is minimised or hidden; and it
  stretches when a poll's own cost (its fetch, or the slots it runs) would take more than a small share
  of the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from balancedesk.core.engines import Engine, EngineRefused, EngineUnavailable, EventBatch
from balancedesk.core.proxy.contract import Snapshot
from PySide6.QtCore import QObject, Signal

FIRST_LOOK = 50  # events kept on attaching: context, not the whole backlog
LEGACY_LIMIT = 500  # events per read from a balancer without newest=1
MAX_INTERVAL_S = 1.0


class LiveWatcher(QObject):
    """Polls ``client``.

    Signals: ``snapshotted(object)`` with a :class:`Snapshot`; ``evented(object)`` with an
    :class:`EventBatch` (only when it has events, drops or skips); ``reachabilityChanged(bool, str)``
    when the endpoint goes away or comes back (with the reason).
    """

    snapshotted = Signal(object)
    evented = Signal(object)
    reachabilityChanged = Signal(bool, str)

    def __init__(self, client: Engine, *, interval_s: float = 0.2, idle_interval_s: float = 0.5,
                 background_interval_s: float = 1.0, events_per_s: float = 30.0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.interval_s = interval_s
        self.idle_interval_s = idle_interval_s
        self.background_interval_s = background_interval_s
        self.events_per_s = events_per_s
        self.background = False  # the window says so while minimised or hidden
        self.cursor: int | None = None
        self.reachable: bool | None = None
        self.last: Snapshot | None = None
        self.polls = 0
        self.newest = True  # until the endpoint shows it does not know newest=1
        self.next_interval_s = interval_s
        self._idle = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def cancel(self) -> None:
        """Synchronous stop (window close): cancel the poll task."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            ui_s = 0.0
            try:
                snap, batch = await asyncio.gather(self.client.snapshot(), self._events())
            except (EngineUnavailable, EngineRefused) as exc:
                self._reach(False, str(exc))
                fetch_s = loop.time() - started
            else:
                fetch_s = loop.time() - started
                t0 = time.perf_counter()
                self.polls += 1
                self._reach(True, "")
                self._idle = _same(self.last, snap) and not (batch.events or batch.dropped or batch.skipped)
                self.last = snap
                self.snapshotted.emit(snap)  # first, so event times can be placed on the snapshot's clock
                if batch.events or batch.dropped or batch.skipped:
                    self.evented.emit(batch)
                ui_s = time.perf_counter() - t0
            self.next_interval_s = self._interval(fetch_s, ui_s)
            await asyncio.sleep(max(0.02, self.next_interval_s - (loop.time() - started)))

    def _interval(self, fetch_s: float, ui_s: float) -> float:
        base = self.interval_s
        if self.background:
            base = max(base, self.background_interval_s)
        elif self._idle:
            base = max(base, self.idle_interval_s)
        # the slots a poll runs may take at most ~1/8 of the interval; a balancer slow to answer (busy
        # proxying) is asked less often rather than queued up
        return min(MAX_INTERVAL_S, max(base, 8.0 * ui_s, 1.5 * fetch_s))

    async def _events(self) -> EventBatch:
        first = self.cursor is None
        if self.newest:
            limit = FIRST_LOOK if first else max(8, math.ceil(self.events_per_s * self.next_interval_s * 2))
            batch = await self.client.events(self.cursor, limit, newest=True)
            if not batch.newest:
                self.newest = False  # an older balancer: read it the old way from now on
        else:
            batch = await self.client.events(self.cursor, LEGACY_LIMIT)
        if first:
            batch = EventBatch(batch.cursor, batch.events[-FIRST_LOOK:], 0, 0, batch.newest)
        self.cursor = batch.cursor
        return batch

    def _reach(self, ok: bool, why: str) -> None:
        if ok != self.reachable:
            self.reachable = ok
            self.reachabilityChanged.emit(ok, why)


def _same(a: Snapshot | None, b: Snapshot) -> bool:
    """Nothing a person would see changed between two snapshots (the clock aside)."""
    return (a is not None and a.version == b.version and a.members == b.members
            and dict(a.totals) == dict(b.totals))
