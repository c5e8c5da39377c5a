"""The Balancers view's reads of the management API, on the qasync loop (the UI thread never waits).

:class:`FleetPoller` reads ``GET /api/admin/balancers`` and, for each pool an instance belongs to, the
pool's groups (``GET /api/admin/pools/{pool}/groups`` with ``If-None-Match``: an unchanged pool costs a
304) every :data:`REFRESH_S` seconds, between ``start()`` and ``stop()`` only — the window starts it when
shown and stops it when hidden, so a hidden view costs the server nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from balancedesk.gui.fleet.rows import InstanceRow, PoolSaved, instance_rows
from balancedesk.gui.haproxy_fleet import NO_POOL, haproxy_infos, haproxy_rows
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient

REFRESH_S = 1.0  # one read of the fleet per second while the view is shown
_TASKS: set[asyncio.Task[None]] = set()  # every poller's loop not yet ended (a deleted window's too)


async def stop_all() -> None:
    """Cancel every poller's loop and wait until each has ended (awaited before the qasync loop closes)."""
    for task in _TASKS:
        task.cancel()
    if _TASKS:
        await asyncio.gather(*list(_TASKS), return_exceptions=True)


class FleetPoller(QObject):
    """Polls the fleet while started.

    Signals:
        refreshed(list): a fresh list of :class:`~balancedesk.gui.fleet.rows.InstanceRow`.
        failed(object): a read failed (the exception); polling goes on.
    """

    refreshed = Signal(list)
    failed = Signal(object)

    def __init__(self, client: MgmtClient, parent: QObject | None = None, *, interval_s: float = REFRESH_S) -> None:
        super().__init__(parent)
        self.client = client
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._started: set[asyncio.Task[None]] = set()  # loops started and not yet ended
        self._pools: dict[str, tuple[str, PoolSaved]] = {}  # pool → (ETag, what it saved)
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = task = asyncio.ensure_future(self._run())
            for where in (_TASKS, self._started):
                where.add(task)
                task.add_done_callback(where.discard)

    def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def stopped(self) -> None:
        """:meth:`stop`, then wait until the cancelled loop has ended."""
        self.stop()
        mine = [t for t in self._started if not t.done()]
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)

    def poke(self) -> None:
        """Read again now (after a change made from this window)."""
        self._wake.set()

    async def read(self) -> list[InstanceRow]:
        """One read of the whole view."""
        t0 = time.monotonic()
        balancers = await self.client.list_balancers()
        haproxies = await haproxy_infos()  # the configured HAProxy instances, listed beside (gui.haproxy_fleet)
        pools = sorted({b.pool for b in [*balancers, *haproxies]} - {NO_POOL})
        saved = dict(zip(pools, await asyncio.gather(*(self._saved(p) for p in pools)), strict=True))
        for gone in set(self._pools) - set(pools):
            del self._pools[gone]
        return instance_rows(balancers, saved, elapsed_s=time.monotonic() - t0) + haproxy_rows(haproxies, saved)

    async def _saved(self, pool: str) -> PoolSaved:
        etag, saved = self._pools.get(pool, ("", PoolSaved({})))
        answer = await self.client.pool_groups(pool, if_none_match=etag or None)
        if answer is None:  # 304: the pool did not change
            return saved
        saved = PoolSaved(versions={g.connector_id: g.version for g in answer.groups},
                          labels={g.connector_id: g.config.label for g in answer.groups},
                          endpoints={g.connector_id: dict(g.config.endpoints) for g in answer.groups})
        self._pools[pool] = (answer.etag, saved)
        return saved

    async def _run(self) -> None:
        import shiboken6

        while shiboken6.isValid(self):  # a window deleted without closing: its poller ends
            try:
                rows = await self.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server down or a refusal: said by the window, tried again
                self.failed.emit(exc)
            else:
                self.refreshed.emit(rows)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
