"""Following a pool of the management server, and heartbeating to it (docs/ARCHITECTURE.md, "Following a pool").

:class:`PoolFollower` — ``GET …/pools/P/groups`` → every group served (:meth:`Groups.sync`), keep ``cursor`` and
``storeID``; then long-poll ``GET …/pools/P/changes?cursor=C&wait=W&store=S``: on ``resync`` read the groups
again (no ``If-None-Match``); a ``changed`` group whose version is newer than the one applied is fetched
(``GET …/pools/P/groups/{id}``) and put; a ``gone`` one is closed; go on from the answer's cursor. No timer:
an idle balancer holds one long poll open and does nothing else. An unchanged group is never re-applied.

When the server cannot be reached (or answers 5xx/401/403), the groups keep serving as they are, the
:class:`ControlPlane` says ``unreachable`` with ``since`` and ``lastError``, and the follower retries with
the same cursor after a backoff that doubles from ``BACKOFF_MIN_S`` to ``BACKOFF_MAX_S``.

:class:`Heartbeater` — every ``heartbeatInterval`` (the server's answer sets it), and soon after a group
changed, ``POST /api/admin/balancers/heartbeat`` with what this worker serves (:class:`core.fleet.Heartbeat`).

Imports: asyncio, time, ``core.client``, ``core.fleet``, ``core.fleetclient``, ``core.proxy.groups``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from balancedesk.core.client import ApiError, ApiUnavailable, MgmtClient
from balancedesk.core.fleet import GONE, HEARTBEAT_INTERVAL_S, AppliedGroup, Heartbeat, Override
from balancedesk.core.fleetclient import PoolGroups
from balancedesk.core.proxy.admin import overrides_json
from balancedesk.core.proxy.config import log
from balancedesk.core.proxy.groups import Groups

FEED_WAIT_S = 25.0  # how long one change-feed request waits for a change (the server allows up to 60)
BACKOFF_MIN_S = 0.25
BACKOFF_MAX_S = 5.0
HEARTBEAT_SOON_S = 0.05  # after a change, the next heartbeat goes this soon (several changes: one beat)

CONNECTED = "connected"
UNREACHABLE = "unreachable"
STARTING = "starting"


class ControlPlane:
    """Whether the management server is being followed: ``state``, since when (Unix time), the last error."""

    def __init__(self, url: str, pool: str) -> None:
        self.url = url
        self.pool = pool
        self.state = STARTING
        self.since = time.time()
        self.last_error: str | None = None
        self.cursor: int | None = None
        self.store_id: str | None = None

    def ok(self) -> None:
        if self.state != CONNECTED:
            self.state, self.since = CONNECTED, time.time()

    def failed(self, error: str) -> None:
        self.last_error = error
        if self.state != UNREACHABLE:
            self.state, self.since = UNREACHABLE, time.time()
            log(f"management server {self.url} unreachable, the last good config keeps serving: {error}")

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "pool": self.pool, "state": self.state, "since": self.since,
                "lastError": self.last_error, "cursor": self.cursor, "storeID": self.store_id}


def _failure(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status} {exc}"
    return str(exc) or type(exc).__name__


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, ApiUnavailable) or (isinstance(exc, ApiError) and (exc.status >= 500 or exc.status in
                                                                             (401, 403, 404, 408, 429)))


class PoolFollower:
    """Keeps :class:`Groups` equal to the pool's groups on the server, fetching only what changed."""

    def __init__(self, client: MgmtClient, pool: str, groups: Groups, control: ControlPlane, *,
                 wait: float = FEED_WAIT_S) -> None:
        self.client = client
        self.pool = pool
        self.groups = groups
        self.control = control
        self.wait = wait

    async def first_sync(self) -> None:
        """The first read of the pool (raises what the client raises: the CLI reports it and exits)."""
        await self._apply_all(await self._read_all())
        self.control.ok()

    async def _read_all(self) -> PoolGroups:
        got = await self.client.pool_groups(self.pool)
        assert got is not None  # no If-None-Match: never a 304
        return got

    async def _apply_all(self, pg: PoolGroups) -> None:
        await self.groups.sync([(g.config, g.version) for g in pg.groups])
        self.control.cursor, self.control.store_id = pg.cursor, pg.store_id

    async def run(self) -> None:
        """Follow until cancelled."""
        backoff = BACKOFF_MIN_S
        resync = False
        while True:
            try:
                if resync:
                    await self._apply_all(await self._read_all())
                    resync = False
                await self._step()
                self.control.ok()
                backoff = BACKOFF_MIN_S
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiUnavailable) as exc:
                if not _retryable(exc):
                    raise
                self.control.failed(_failure(exc))
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
            except _Resync:
                resync = True

    async def _step(self) -> None:
        cursor = self.control.cursor if self.control.cursor is not None else 0
        answer = await self.client.changes(self.pool, cursor, wait=self.wait, store_id=self.control.store_id)
        self.control.ok()
        if answer.resync:
            log(f"pool {self.pool}: the server asks for a resync (cursor {cursor}); reading every group")
            raise _Resync
        applied = self.groups.versions()
        for change in answer.changes:
            if change.state == GONE:
                if self.groups.remove(change.connector_id):
                    log(f"group {change.connector_id} left pool {self.pool}: its listener is closed")
                continue
            if change.version <= applied.get(change.connector_id, -1):
                continue  # applied already (at-least-once delivery)
            try:
                got = await self.client.pool_group(self.pool, change.connector_id)
            except ApiError as exc:
                if exc.status == 404:  # gone again since the change was recorded: a later change says so
                    continue
                raise
            assert got is not None
            group, _etag = got
            if await self.groups.put(group.config, group.version):
                log(f"group {group.connector_id} applied (version {group.version})")
        self.control.cursor, self.control.store_id = answer.cursor, answer.store_id


class _Resync(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    """Who this balancer process is, fixed at its start (every worker shares it)."""

    instance_id: str
    host: str
    data_plane: str
    workers: int
    started_at: float


class Heartbeater:
    """POSTs the heartbeat every interval, and soon after a change (:meth:`poke`)."""

    def __init__(self, client: MgmtClient, groups: Groups, ident: Identity, *, admin_url: str | None,
                 admin_token: str | None) -> None:
        self.client = client
        self.groups = groups
        self.ident = ident
        self.admin_url = admin_url
        self.admin_token = admin_token
        self.interval = HEARTBEAT_INTERVAL_S
        self.sent = 0
        self.last_error: str | None = None
        self._soon = asyncio.Event()
        groups.on_change.append(self.poke)

    def poke(self) -> None:
        self._soon.set()

    def heartbeat(self) -> Heartbeat:
        applied: list[AppliedGroup] = []
        overrides: list[Override] = []
        for gid, g in sorted(self.groups.items.items()):
            applied.append(AppliedGroup(connector_id=gid, version=g.version, listen=g.listen,
                                        error=g.error[:1000] if g.error else None))
            if g.rt is not None:
                overrides.extend(Override.model_validate(o) for o in overrides_json(g.rt))
        ident = self.ident
        return Heartbeat(instance_id=ident.instance_id, host=ident.host, admin_url=self.admin_url,
                         admin_token=self.admin_token, data_plane=ident.data_plane, workers=ident.workers,
                         started_at=ident.started_at, groups=tuple(applied), overrides=tuple(overrides))

    async def run(self) -> None:
        while True:
            self._soon.clear()
            try:
                answer = await self.client.heartbeat(self.heartbeat())
                self.interval = max(0.05, answer.heartbeat_interval)
                self.sent += 1
                self.last_error = None
            except (ApiError, ApiUnavailable) as exc:
                self.last_error = _failure(exc)
            with _suppress_timeout():
                await asyncio.wait_for(self._soon.wait(), self.interval)
            await asyncio.sleep(HEARTBEAT_SOON_S)


def _suppress_timeout() -> Any:
    import contextlib

    return contextlib.suppress(TimeoutError)
