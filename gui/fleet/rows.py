"""What the Balancers view shows, computed from the management API's answers (pure: no Qt, no clock).

Rules:

* An instance is ``lost`` when the server says so (``state``: it missed ``LOST_AFTER_MISSED`` heartbeats);
  its last heartbeat shows as "last seen N s ago" (the server's ``lastSeenAgo_s`` plus the time since the
  listing was read, ``elapsed_s``).
* Drift is per group: the ``version`` a balancer reports as applied against the group's saved ``version``
  in the balancer's pool (``GET /api/admin/pools/{pool}/groups``). Applied < saved: "behind"; a group the
  balancer serves that the pool no longer has: "gone"; a group of the pool the balancer does not serve:
  "not served". An instance drifts when any of its groups does. A lost instance's groups are not judged
  (it says nothing new), but still listed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from balancedesk.core.fleet import LOST, AppliedGroup, Override
from balancedesk.core.fleetclient import BalancerInfo

IN_SYNC = "in sync"
BEHIND = "behind"
GONE = "gone"
NOT_SERVED = "not served"
FAILED = "error"


@dataclass(frozen=True)
class PoolSaved:
    """A pool's groups as the server saved them: version and label per connectorID, and each group's member
    endpoints (so an override names ``label · host:port`` rather than two UUIDs)."""

    versions: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)
    endpoints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def group_name(self, connector_id: str) -> str:
        return self.labels.get(connector_id) or connector_id

    def member_name(self, connector_id: str, member_id: str) -> str:
        return self.endpoints.get(connector_id, {}).get(member_id) or member_id


NO_NAMES = PoolSaved({})


@dataclass(frozen=True)
class GroupRow:
    """One group of one instance: what it applied, what the server saved, and the verdict."""

    connector_id: str
    label: str  # the saved label (the ID when the pool does not know the group)
    applied: int | None  # None: the balancer does not serve it
    saved: int | None  # None: not (or no longer) a group of the pool
    listen: str
    error: str
    status: str  # IN_SYNC / BEHIND / GONE / NOT_SERVED / FAILED

    @property
    def drifts(self) -> bool:
        return self.status != IN_SYNC


@dataclass(frozen=True)
class InstanceRow:
    """One balancer as the view shows it."""

    info: BalancerInfo
    groups: tuple[GroupRow, ...]
    seen_ago_s: float
    names: PoolSaved = NO_NAMES

    @property
    def instance_id(self) -> str:
        return self.info.instance_id

    @property
    def lost(self) -> bool:
        return self.info.state == LOST

    @property
    def drifting(self) -> tuple[GroupRow, ...]:
        return () if self.lost else tuple(g for g in self.groups if g.drifts)

    def state_text(self) -> str:
        if self.lost:
            return f"LOST · last seen {ago(self.seen_ago_s)}"
        return f"alive · {ago(self.seen_ago_s)}"

    def groups_text(self) -> str:
        served = sum(1 for g in self.groups if g.applied is not None)
        return f"{served} of {len(self.groups)}" if served != len(self.groups) else str(served)

    def drift_text(self) -> str:
        if self.lost:
            return "—"
        drifting = self.drifting
        if not drifting:
            return IN_SYNC
        return "; ".join(group_drift_text(g) for g in drifting[:3]) + (
            f" (+{len(drifting) - 3} more)" if len(drifting) > 3 else "")

    def overrides_text(self) -> str:
        return "; ".join(self.override_texts()) or "none"

    def override_texts(self) -> list[str]:
        return [override_text(o, self.names) for o in self.info.overrides]


def ago(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.0f} s ago"
    if s < 3600:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def started_text(started_at: float) -> str:
    """Wall-clock Unix time → local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at))


def group_drift_text(g: GroupRow) -> str:
    if g.status == BEHIND:
        return f"{g.label}: applied v{g.applied}, saved v{g.saved}"
    if g.status == GONE:
        return f"{g.label}: served (v{g.applied}) but no longer in the pool"
    if g.status == NOT_SERVED:
        return f"{g.label}: saved v{g.saved}, not served"
    if g.status == FAILED:
        return f"{g.label}: {g.error}"
    return f"{g.label}: {IN_SYNC} (v{g.applied})"


def override_text(o: Override, names: PoolSaved = NO_NAMES) -> str:
    parts = [p for p in (o.state, f"weight {o.weight}" if o.weight is not None else None) if p]
    member = names.member_name(o.connector_id, o.member_id)
    return f"{names.group_name(o.connector_id)} · {member}: {', '.join(parts) or 'set'}"


def group_rows(applied: Sequence[AppliedGroup], pool: PoolSaved | None) -> tuple[GroupRow, ...]:
    """The groups of one instance. ``pool``: the pool's saved groups; None if it could not be read (then
    every served group shows its applied version and no verdict is made: IN_SYNC)."""
    saved = None if pool is None else pool.versions
    names = pool or NO_NAMES
    rows: list[GroupRow] = []
    seen: set[str] = set()
    for g in applied:
        seen.add(g.connector_id)
        have = None if saved is None else saved.get(g.connector_id)
        if g.error:
            status = FAILED
        elif saved is None:
            status = IN_SYNC
        elif have is None:
            status = GONE
        elif g.version < have:
            status = BEHIND
        else:
            status = IN_SYNC
        rows.append(GroupRow(g.connector_id, names.group_name(g.connector_id), g.version, have, g.listen or "",
                             g.error or "", status))
    for cid, version in sorted((saved or {}).items()):
        if cid not in seen:
            rows.append(GroupRow(cid, names.group_name(cid), None, version, "", "", NOT_SERVED))
    rows.sort(key=lambda r: (r.label.casefold(), r.connector_id))
    return tuple(rows)


def instance_rows(balancers: Sequence[BalancerInfo], saved_by_pool: Mapping[str, PoolSaved],
                  *, elapsed_s: float = 0.0) -> list[InstanceRow]:
    """One row per balancer, alive ones first, then by pool and instance ID."""
    rows = [InstanceRow(b, group_rows(b.groups, saved_by_pool.get(b.pool)), b.last_seen_ago_s + elapsed_s,
                        saved_by_pool.get(b.pool) or NO_NAMES) for b in balancers]
    rows.sort(key=lambda r: (r.lost, r.info.pool, r.instance_id))
    return rows
