"""One HAProxy backend as an :class:`~balancedesk.core.engines.Engine`: what the live view watches and steers.

``HaproxyEngine("/run/haproxy/admin.sock", "bd_<group ID>")`` (or ``"127.0.0.1:9999"``). Each
:meth:`~HaproxyEngine.snapshot` reads ``show stat``, ``show servers state <backend>`` and ``show info`` (three
short connections, HAProxy's non-interactive mode) and maps them with :func:`.stats.snapshot`; the health
and admin changes since the previous snapshot go into a bounded ring (:data:`EVENTS_KEPT`) that
:meth:`~HaproxyEngine.events` reads by cursor, as the admin endpoint's ring is read. Commands go out as
``set server <backend>/<server> weight|state`` — runtime changes HAProxy forgets on a reload (they show as
overrides until then). The socket must be at ``level admin`` for commands (``level operator`` can read).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from typing import Any

from balancedesk.core.engines import EngineRefused, EngineUnavailable, EventBatch
from balancedesk.core.haproxy import stats
from balancedesk.core.haproxy.runtime import RuntimeClient, RuntimeRefused, RuntimeUnavailable
from balancedesk.core.model import WEIGHT_MAX
from balancedesk.core.proxy.contract import MEMBER_STATES, Event, Snapshot

EVENTS_KEPT = 1000


class HaproxyEngine:
    """The engine interface over HAProxy's Runtime API for one backend (see the module docstring).

    ``names`` maps HAProxy server names to memberIDs where the export had to change an ID (default: the
    server name is the memberID); ``labels`` maps memberIDs to the labels shown beside them; ``listen`` and
    ``affinity_header``, when the caller knows them (it deployed the group), go into each snapshot."""

    def __init__(self, address: str, backend: str, *, names: Mapping[str, str] | None = None,
                 labels: Mapping[str, str] | None = None, timeout: float = 3.0, listen: str = "",
                 affinity_header: str | None = None) -> None:
        self.runtime = RuntimeClient(address, timeout=timeout)
        self.backend = backend
        self.names = dict(names or {})
        self.labels = dict(labels or {})
        self.listen, self.affinity_header = listen, affinity_header  # shown in the snapshot (traffic aims there)
        self._servers = {v: k for k, v in self.names.items()}
        self._ring: collections.deque[Event] = collections.deque(maxlen=EVENTS_KEPT)
        self._seq = 0
        self._last: Snapshot | None = None
        self._lock = asyncio.Lock()

    @property
    def base_url(self) -> str:
        return f"haproxy {self.runtime.address} {self.backend}"

    async def aclose(self) -> None:
        """Nothing stays open between calls."""

    async def _ask(self, coro: Any) -> Any:
        try:
            return await coro
        except RuntimeUnavailable as exc:
            raise EngineUnavailable(str(exc)) from exc
        except RuntimeRefused as exc:
            raise EngineRefused(400, str(exc)) from exc

    async def snapshot(self) -> Snapshot:
        async with self._lock:  # one poll at a time: the events are the differences between polls
            stat, states, info = await asyncio.gather(
                self._ask(self.runtime.show_stat()), self._ask(self.runtime.show_servers_state(self.backend)),
                self._ask(self.runtime.show_info()))
            try:
                snap = stats.snapshot(self.backend, stat, states, info, now=time.monotonic(), names=self.names,
                                      labels=self.labels, listen=self.listen, affinity_header=self.affinity_header)
            except KeyError:
                raise EngineRefused(404, f"HAProxy at {self.runtime.address} has no backend {self.backend}") from None
            new = stats.events_between(self._last, snap, first_seq=self._seq + 1)
            self._ring.extend(new)
            self._seq += len(new)
            self._last = snap
            return snap

    async def events(self, after: int | None, limit: int = 500, *, newest: bool = False) -> EventBatch:
        """The derived events after cursor ``after`` (at most ``limit``, the newest when ``newest``)."""
        after = after or 0
        fresh = [e for e in self._ring if e.seq > after]
        first_kept = self._ring[0].seq if self._ring else self._seq + 1
        dropped = max(0, first_kept - after - 1) if after < self._seq else 0
        skipped = 0
        if len(fresh) > limit:
            if newest:
                skipped, fresh = len(fresh) - limit, fresh[-limit:]
            else:
                fresh = fresh[:limit]
        cursor = fresh[-1].seq if fresh else max(after, self._seq)
        return EventBatch(cursor=cursor, events=tuple(e.to_json() for e in fresh), dropped=dropped,
                          skipped=skipped, newest=newest)

    def _server(self, member_id: str) -> str:
        if self._last is not None and self._last.member(member_id) is None:
            raise EngineRefused(404, f"backend {self.backend} has no member {member_id}")
        return self._servers.get(member_id, member_id)

    async def set_state(self, member_id: str, state: str) -> Any:
        if state not in MEMBER_STATES:
            raise EngineRefused(400, 'state must be "enabled", "drain" or "disabled"')
        await self._ask(self.runtime.set_state(self.backend, self._server(member_id), stats.STATE_TO_HAPROXY[state]))
        return {"memberID": member_id, "state": state}

    async def set_weight(self, member_id: str, weight: int) -> Any:
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= WEIGHT_MAX:
            raise EngineRefused(400, f"weight must be a whole number from 1 to {WEIGHT_MAX}")
        await self._ask(self.runtime.set_weight(self.backend, self._server(member_id), weight))
        return {"memberID": member_id, "weight": weight}

    async def revert(self, member_id: str) -> Any:
        """The config's weight (``srv_iweight``) and state ``ready`` again."""
        server = self._server(member_id)
        states = await self._ask(self.runtime.show_servers_state(self.backend))
        row = next((s for s in states if s.get("srv_name") == server), None)
        if row is None:
            raise EngineRefused(404, f"backend {self.backend} has no server {server}")
        await self._ask(self.runtime.set_weight(self.backend, server, int(row.get("srv_iweight") or 1)))
        await self._ask(self.runtime.set_state(self.backend, server, "ready"))
        return {"memberID": member_id, "reverted": True}
