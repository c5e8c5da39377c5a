"""One group across every balancer instance that serves it: several snapshots → one view (pure: no Qt, no
clock — ``now`` is an argument).

:func:`aggregate` takes one :class:`InstanceInput` per instance (its last :class:`Snapshot`, whether it
answers, what the server says of it) and returns an :class:`Aggregate`: a merged :class:`Snapshot` the live
view's table, topology and chart draw as they draw one balancer, and one :class:`InstanceRow` per instance
for the breakdown. The rules:

* **Counters are summed over every instance that ever answered** (``total``, ``failures``, bytes, the
  snapshot's ``totals``): an instance that stops answering keeps its last counts in the sum, so the summed
  counters never go backwards and the rates drawn from them stay honest (a lost instance adds 0/s).
* **Gauges only from the instances that answer now**: ``active`` is the sum over reachable instances only
  (an unreachable instance's open connections are not known).
* **State** of a member in the merged row: ``down`` if the balancer health-disabled it on any reachable
  instance (its retry countdown is the longest); the admin state is the most restrictive one set on any
  reachable instance (disabled > drain > enabled). What differs between instances is named per instance in
  :attr:`InstanceRow.differs` (e.g. ``m1 drain``, ``m2 weight 3``) against the merged value.
* **Weight**: the weight most instances run (ties: the first instance's); **latency**: the worst (largest)
  p50 and p99 of the reachable instances; **shares**: the actual share is recomputed from the summed totals,
  the configured share is the first instance's (every instance runs the same saved group).
* **Version**: the merged ``server_version`` is the oldest version any reachable instance applied; each row
  says its own against the saved one.
* The merged snapshot's clock (``now``) is the viewer's ``now``, so a rate tracker fed with merged snapshots
  measures summed counters over one clock; ``uptime_s`` is the longest-running instance's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from balancedesk.core.proxy.contract import MemberSnap, Snapshot

ADMIN_RANK = {"enabled": 0, "drain": 1, "disabled": 2}
ANSWERS, UNREACHABLE, LOST, WAITING = "answers", "unreachable", "lost", "waiting"  # an instance's reach


@dataclass(frozen=True)
class InstanceInput:
    """What the viewer knows of one instance: ``snapshot`` its last one (None before the first);
    ``reachable`` whether its last poll answered; ``lost`` the server's verdict (missed heartbeats);
    ``rate`` its own requests (or connections) per second."""

    instance_id: str
    snapshot: Snapshot | None
    reachable: bool
    why: str = ""
    lost: bool = False
    rate: float = 0.0


@dataclass(frozen=True)
class InstanceRow:
    """One instance in the breakdown."""

    instance_id: str
    name: str  # short, for tables and tags (see :func:`short_names`)
    reach: str  # ANSWERS / UNREACHABLE / LOST / WAITING
    why: str
    applied: int | None  # the server's version it applied (None: not following, or no snapshot yet)
    saved: int | None
    data_plane: str
    active: int
    total: int
    failures: int
    rate: float
    differs: tuple[str, ...]  # members whose state or weight differ from the merged row

    @property
    def behind(self) -> bool:
        return self.applied is not None and self.saved is not None and self.applied < self.saved

    def reach_text(self) -> str:
        if self.reach == ANSWERS:
            return "alive"
        if self.reach == LOST:
            return "LOST" + (f" · {self.why}" if self.why else "")
        if self.reach == UNREACHABLE:
            return "not answering" + (f" · {self.why}" if self.why else "")
        return "connecting…"

    def version_text(self) -> str:
        if self.applied is None:
            return "—" if self.saved is None else f"? / saved v{self.saved}"
        if self.saved is None or self.applied >= self.saved:
            return f"v{self.applied}"
        return f"v{self.applied} (saved v{self.saved})"


@dataclass(frozen=True)
class Aggregate:
    snapshot: Snapshot | None  # None until some instance answered
    instances: tuple[InstanceRow, ...]

    @property
    def answering(self) -> int:
        return sum(1 for r in self.instances if r.reach == ANSWERS)


def short_names(instance_ids: Sequence[str]) -> dict[str, str]:
    """Short names for tags: an instance ID is ``host:pid:random``; drop the random part where ``host:pid``
    is unique among ``instance_ids``, and the host too where every instance has the same host."""
    parts = {i: i.split(":") for i in instance_ids}
    hosts = {p[0] for p in parts.values() if len(p) >= 3}
    out: dict[str, str] = {}
    for i, p in parts.items():
        if len(p) < 3:
            out[i] = i
            continue
        short = f"pid {p[1]}" if len(hosts) == 1 else f"{p[0]}:{p[1]}"
        out[i] = short
    if len(set(out.values())) != len(out):  # not unique: the full IDs
        return {i: i for i in instance_ids}
    return out


def _merge_member(mid: str, found: Sequence[tuple[MemberSnap, bool]], grand_total: int) -> MemberSnap:
    """``found``: the member as each instance that has it sees it, with whether that instance answers."""
    live = [m for m, ok in found if ok] or [m for m, _ in found]
    first = live[0]
    weights = Counter(m.weight for m in live)
    top = max(weights.values())
    weight = next(m.weight for m in live if weights[m.weight] == top)
    admin = max((m.admin for m in live), key=lambda a: ADMIN_RANK.get(a, 0))
    down = [m for m in live if m.health == "disabled"]
    retry = max((m.retry_in_s for m in down if m.retry_in_s is not None), default=None)
    until = max((m.disabled_until for m in down if m.disabled_until is not None), default=None)
    total = sum(m.total for m, _ in found)
    p50 = [m.latency_p50_ms for m in live if m.latency_p50_ms is not None]
    p99 = [m.latency_p99_ms for m in live if m.latency_p99_ms is not None]
    return replace(
        first, weight=weight, admin=admin, health="disabled" if down else "up", retry_in_s=retry,
        disabled_until=until, active=sum(m.active for m, ok in found if ok), total=total,
        failures=sum(m.failures for m, _ in found), bytes_in=sum(m.bytes_in for m, _ in found),
        bytes_out=sum(m.bytes_out for m, _ in found), latency_p50_ms=max(p50, default=None),
        latency_p99_ms=max(p99, default=None), actual_share=total / grand_total if grand_total else 0.0,
        failures_all_workers=None,
    )


def _differs(snap: Snapshot, merged: Snapshot) -> tuple[str, ...]:
    out: list[str] = []
    for m in snap.members:
        ref = merged.member(m.member_id)
        if ref is None:
            continue
        if m.state != ref.state:
            out.append(f"{m.member_id} {m.state}")
        if m.weight != ref.weight:
            out.append(f"{m.member_id} weight {m.weight}")
    return tuple(out)


def aggregate(instances: Sequence[InstanceInput], *, now: float, saved_version: int | None = None) -> Aggregate:
    """The merged view of ``instances`` (in their order) at the viewer's ``now``; ``saved_version`` is the
    group's version on the management server (None: unknown)."""
    names = short_names([i.instance_id for i in instances])
    seen = [i for i in instances if i.snapshot is not None]
    merged: Snapshot | None = None
    if seen:
        order: list[str] = []
        for i in seen:
            assert i.snapshot is not None
            order += [m.member_id for m in i.snapshot.members if m.member_id not in order]
        grand = sum(m.total for i in seen if i.snapshot is not None for m in i.snapshot.members)
        members = []
        for mid in order:
            found = [(m, i.reachable) for i in seen if i.snapshot is not None
                     if (m := i.snapshot.member(mid)) is not None]
            members.append(_merge_member(mid, found, grand))
        live = [i for i in seen if i.reachable] or seen
        base = live[0].snapshot
        assert base is not None
        totals: Counter[str] = Counter()
        for i in seen:
            assert i.snapshot is not None
            totals.update({k: v for k, v in i.snapshot.totals.items() if k != "active"})
            if i.reachable and "active" in i.snapshot.totals:
                totals["active"] += i.snapshot.totals["active"]
        versions = [i.snapshot.server_version for i in live if i.snapshot is not None
                    and i.snapshot.server_version is not None]
        overrides = tuple(o for i in live if i.snapshot is not None for o in i.snapshot.overrides)
        merged = replace(base, now=now, uptime_s=max(i.snapshot.uptime_s for i in seen if i.snapshot is not None),
                         members=tuple(members), totals=dict(totals), overrides=overrides,
                         server_version=min(versions, default=base.server_version))
    rows = []
    for i in instances:
        s = i.snapshot
        reach = LOST if i.lost else ANSWERS if i.reachable and s is not None else (
            UNREACHABLE if s is not None or i.why else WAITING)
        rows.append(InstanceRow(
            instance_id=i.instance_id, name=names[i.instance_id], reach=reach, why=i.why,
            applied=s.server_version if s is not None else None, saved=saved_version,
            data_plane=s.data_plane if s is not None else "",
            active=sum(m.active for m in s.members) if s is not None and i.reachable else 0,
            total=sum(m.total for m in s.members) if s is not None else 0,
            failures=sum(m.failures for m in s.members) if s is not None else 0,
            rate=i.rate if i.reachable else 0.0,
            differs=_differs(s, merged) if s is not None and merged is not None and i.reachable else (),
        ))
    return Aggregate(merged, tuple(rows))
