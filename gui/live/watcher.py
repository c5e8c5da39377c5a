"""Watches one balancer through its admin endpoint on the qasync loop: a snapshot ~5×/s and the event
stream by cursor. The UI thread never waits: each poll is an awaited httpx call on the loop."""

from __future__ import annotations

import asyncio
import contextlib

from balancedesk.gui.live.admin import AdminClient, AdminError, AdminUnavailable, EventBatch, Snapshot
from PySide6.QtCore import QObject, Signal


class LiveWatcher(QObject):
    """Polls ``client``.

    Signals: ``snapshotted(object)`` with a :class:`Snapshot`; ``evented(object)`` with an
    :class:`EventBatch` (only when it has events or drops); ``reachabilityChanged(bool, str)`` when the
    endpoint goes away or comes back (with the reason).
    """

    snapshotted = Signal(object)
    evented = Signal(object)
    reachabilityChanged = Signal(bool, str)

    def __init__(self, client: AdminClient, *, interval_s: float = 0.2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.interval_s = interval_s
        self.cursor: int | None = None
        self.reachable: bool | None = None
        self.last: Snapshot | None = None
        self.polls = 0
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
            try:
                snap, batch = await asyncio.gather(self.client.snapshot(), self._events())
            except (AdminUnavailable, AdminError) as exc:
                self._reach(False, str(exc))
            else:
                self.polls += 1
                self._reach(True, "")
                self.last = snap
                self.snapshotted.emit(snap)  # first, so event times can be placed on the snapshot's clock
                if batch.events or batch.dropped:
                    self.evented.emit(batch)
            await asyncio.sleep(max(0.02, self.interval_s - (loop.time() - started)))

    async def _events(self) -> EventBatch:
        batch = await self.client.events(self.cursor)
        if self.cursor is None:
            # first look: keep the last few for context, not the whole backlog
            batch = EventBatch(batch.cursor, batch.events[-50:], 0)
        elif batch.cursor < self.cursor:  # the balancer restarted: its cursor starts over
            batch = EventBatch(batch.cursor, batch.events, batch.dropped)
        self.cursor = batch.cursor
        return batch

    def _reach(self, ok: bool, why: str) -> None:
        if ok != self.reachable:
            self.reachable = ok
            self.reachabilityChanged.emit(ok, why)
