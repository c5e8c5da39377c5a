"""Watches one group on every balancer instance that serves it, on the qasync loop.

:class:`GroupFleetWatcher` reads the pool's balancers from the management server (``GET
/api/admin/balancers?pool=P``) every :data:`REFRESH_S` seconds; each instance that serves the group (it
reports the group applied without an error) and sent an admin endpoint gets its own
:class:`~balancedesk.gui.live.watcher.LiveWatcher` on a group-scoped :class:`AdminClient` (``/groups/{id}/…``),
its URL and bearer token read from ``GET /api/admin/balancers/{id}/admin`` — never typed, never shown.

The watchers are independent tasks: an instance that stops answering (stopped, partitioned) times out on
its own and is said to be unreachable while the others go on. An instance the server calls lost stays in
the list, marked lost, with its last snapshot; one that no longer serves the group (or was forgotten) is
dropped. :meth:`inputs` gives the pure aggregation (:mod:`balancedesk.gui.live.aggregate`) its input.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from balancedesk.core.fleet import LOST
from balancedesk.gui.live.admin import AdminClient, EventBatch, Snapshot
from balancedesk.gui.live.aggregate import InstanceInput
from balancedesk.gui.live.rates import RateTracker
from balancedesk.gui.live.watcher import LiveWatcher
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient
    from balancedesk.core.fleetclient import BalancerInfo

REFRESH_S = 1.0  # how often the pool's instance list is re-read


@dataclass
class Watched:
    """One instance being watched."""

    instance_id: str
    client: AdminClient
    watcher: LiveWatcher
    lost: bool = False
    last: Snapshot | None = None
    reachable: bool = False
    why: str = ""
    rates: RateTracker = field(default_factory=RateTracker)


class GroupFleetWatcher(QObject):
    """Every instance of ``pool`` serving ``connector_id``.

    Signals:
        instancesChanged(list): the instance IDs watched now (in a stable order).
        snapshotted(str, object): an instance's new :class:`Snapshot`.
        evented(str, object): an instance's :class:`EventBatch`.
        reachabilityChanged(str, bool, str): an instance stopped or started answering (the reason).
        failed(str): the management server could not be read (a sentence); watching goes on.
    """

    instancesChanged = Signal(list)
    snapshotted = Signal(str, object)
    evented = Signal(str, object)
    reachabilityChanged = Signal(str, bool, str)
    failed = Signal(str)

    def __init__(self, mgmt: MgmtClient, *, pool: str, connector_id: str, refresh_s: float = REFRESH_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.mgmt = mgmt
        self.pool = pool
        self.connector_id = connector_id
        self.refresh_s = refresh_s
        self.watched: dict[str, Watched] = {}
        self.background = False
        self._task: asyncio.Task[None] | None = None
        self._refused: dict[str, str] = {}  # instance → why it is not watched (no admin endpoint)

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def cancel(self) -> None:
        """Synchronous stop (window close): the listing loop and every instance's watcher."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for w in self.watched.values():
            w.watcher.cancel()

    async def aclose(self) -> None:
        self.cancel()
        for w in list(self.watched.values()):
            await w.watcher.stop()
            await w.client.aclose()
        self.watched.clear()

    def set_background(self, background: bool) -> None:
        self.background = background
        for w in self.watched.values():
            w.watcher.background = background

    # what the view reads -------------------------------------------------------------------------
    def inputs(self) -> list[InstanceInput]:
        return [InstanceInput(w.instance_id, w.last, w.reachable, w.why, w.lost, w.rates.total_rate)
                for w in self.watched.values()]

    def clients(self, instance_id: str | None = None) -> dict[str, AdminClient]:
        """The admin clients to act through: every instance not lost, or only ``instance_id``."""
        return {i: w.client for i, w in self.watched.items()
                if (instance_id is None and not w.lost) or i == instance_id}

    # the loop ------------------------------------------------------------------------------------
    async def refresh(self) -> None:
        """One read of the pool's instances: start watching new ones, mark lost ones, drop gone ones."""
        balancers = await self.mgmt.list_balancers(pool=self.pool)
        serving = [b for b in balancers if self._serves(b)]
        changed = False
        for b in serving:
            w = self.watched.get(b.instance_id)
            if w is not None:
                w.lost = b.state == LOST
                continue
            if not b.has_admin_token:
                self._refused[b.instance_id] = "no admin endpoint in its heartbeat"
                continue
            admin = await self.mgmt.balancer_admin(b.instance_id)
            if not admin.admin_url or not admin.admin_token:
                continue
            try:
                client = AdminClient(admin.admin_url, admin.admin_token, group=self.connector_id)
            except (ValueError, OSError) as exc:
                self._refused[b.instance_id] = str(exc)
                continue
            self._watch(b.instance_id, client, lost=b.state == LOST)
            changed = True
        gone = set(self.watched) - {b.instance_id for b in serving}
        for i in gone:
            w = self.watched.pop(i)
            w.watcher.cancel()
            await w.client.aclose()
            changed = True
        if changed:
            self.instancesChanged.emit(list(self.watched))

    def _serves(self, b: BalancerInfo) -> bool:
        return any(g.connector_id == self.connector_id and not g.error for g in b.groups)

    def _watch(self, instance_id: str, client: AdminClient, *, lost: bool) -> None:
        watcher = LiveWatcher(client, parent=self)
        w = Watched(instance_id, client, watcher, lost=lost)
        self.watched[instance_id] = w
        watcher.background = self.background
        watcher.snapshotted.connect(lambda snap, w=w: self._on_snapshot(w, snap))
        watcher.evented.connect(lambda batch, i=instance_id: self._on_events(i, batch))
        watcher.reachabilityChanged.connect(lambda ok, why, w=w: self._on_reach(w, ok, why))
        watcher.start()

    def _on_snapshot(self, w: Watched, snap: Snapshot) -> None:
        if w.instance_id not in self.watched:
            return
        w.last = snap
        w.rates.update(snap)
        self.snapshotted.emit(w.instance_id, snap)

    def _on_events(self, instance_id: str, batch: EventBatch) -> None:
        if instance_id in self.watched:
            self.evented.emit(instance_id, batch)

    def _on_reach(self, w: Watched, ok: bool, why: str) -> None:
        w.reachable, w.why = ok, "" if ok else why
        if w.instance_id in self.watched:
            self.reachabilityChanged.emit(w.instance_id, ok, why)

    async def _run(self) -> None:
        from balancedesk.gui.connection import explain

        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server down or a refusal: said, tried again
                self.failed.emit(f"cannot read the pool's balancers: {explain(exc)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(self.refresh_s * (3 if self.background else 1))
