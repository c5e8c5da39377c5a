"""The balancers that heartbeat, kept in memory: who they are, what they serve, alive or lost.

Pure state with ``now`` (monotonic seconds) as an argument; no clock, no I/O. An instance is ``lost`` once
more than :data:`~balancedesk.core.fleet.LOST_AFTER_MISSED` intervals passed since its last heartbeat.
Bounded: at most ``cap`` instances; a heartbeat from a new instance when full forgets the instance lost the
longest, and is refused (:class:`RegistryFull`) if none is lost. Nothing here is stored on disk — after a
server restart the list fills again within one interval — so a balancer's admin token never reaches disk.
(Several servers on one PostgreSQL database share theirs in the database instead: :mod:`.shared_registry`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from balancedesk.core.fleet import ALIVE, HEARTBEAT_INTERVAL_S, LOST, LOST_AFTER_MISSED, Heartbeat

MAX_BALANCERS = 1000


class RegistryFull(Exception):
    """Every kept instance is alive and a new one heartbeats: the cap is reached."""


@dataclass(frozen=True)
class Entry:
    heartbeat: Heartbeat
    pool: str
    token_id: str
    last_seen: float  # monotonic
    last_seen_wall: float  # Unix time, for display
    first_seen: float  # monotonic


class Registry:
    def __init__(self, *, interval_s: float = HEARTBEAT_INTERVAL_S, cap: int = MAX_BALANCERS) -> None:
        self.interval_s = interval_s
        self.cap = cap
        self._entries: dict[str, Entry] = {}

    @property
    def lost_after_s(self) -> float:
        return self.interval_s * LOST_AFTER_MISSED

    def state(self, entry: Entry, now: float) -> str:
        return LOST if now - entry.last_seen > self.lost_after_s else ALIVE

    def heartbeat(self, hb: Heartbeat, *, pool: str, token_id: str, now: float, wall: float) -> Entry:
        """Record a heartbeat. An instance ID is owned by the token that first sent it while it is alive: a
        heartbeat for it from another token is refused (PermissionError) until it is lost."""
        known = self._entries.get(hb.instance_id)
        if known is not None and known.token_id != token_id and self.state(known, now) == ALIVE:
            raise PermissionError(f"instance {hb.instance_id} is alive and heartbeats with another token")
        if known is None and len(self._entries) >= self.cap:
            lost = [e for e in self._entries.values() if self.state(e, now) == LOST]
            if not lost:
                raise RegistryFull(f"{self.cap} balancers are alive; no more are kept")
            oldest = min(lost, key=lambda e: e.last_seen)
            del self._entries[oldest.heartbeat.instance_id]
        first = known.first_seen if known is not None and known.token_id == token_id else now
        entry = Entry(hb, pool, token_id, now, wall, first)
        self._entries[hb.instance_id] = entry
        return entry

    def forget(self, instance_id: str) -> bool:
        return self._entries.pop(instance_id, None) is not None

    def get(self, instance_id: str) -> Entry | None:
        return self._entries.get(instance_id)

    def listing(self, now: float, *, pool: str | None = None) -> list[dict[str, Any]]:
        """Every kept instance (of ``pool``), by instance ID, without admin tokens."""
        out = []
        for iid in sorted(self._entries):
            e = self._entries[iid]
            if pool is not None and e.pool != pool:
                continue
            out.append(self.view(e, now))
        return out

    def view(self, e: Entry, now: float) -> dict[str, Any]:
        body = e.heartbeat.to_json(with_token=False)
        body.update(
            pool=e.pool,
            tokenID=e.token_id,
            hasAdminToken=e.heartbeat.admin_token is not None,
            state=self.state(e, now),
            lastSeen=e.last_seen_wall,
            lastSeenAgo_s=round(max(0.0, now - e.last_seen), 3),
        )
        return body
