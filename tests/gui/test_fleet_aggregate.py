"""The aggregation of one group over several instances, pure (explicit snapshots and ``now``): counters
summed over every instance that answered, gauges over the answering ones only, the most restrictive state,
the majority weight, shares from the summed totals, per-instance rows with their version and differences."""

from __future__ import annotations

from balancedesk.core.proxy.contract import MemberSnap, Snapshot
from balancedesk.gui.live.aggregate import (
    ANSWERS,
    LOST,
    UNREACHABLE,
    WAITING,
    InstanceInput,
    aggregate,
    short_names,
)


def _snap(members: list[MemberSnap], *, version: int = 3, now: float = 100.0, uptime: float = 50.0) -> Snapshot:
    return Snapshot(version=1, group={"connectorID": "g"}, mode="tcp", listen="127.0.0.2:9000",
                    affinity_header=None, now=now, uptime_s=uptime, members=tuple(members),
                    totals={"accepted": sum(m.total for m in members), "active": sum(m.active for m in members)},
                    data_plane="native", server_version=version, control_plane={"state": "connected"})


def _m(mid: str, *, total: int = 0, active: int = 0, weight: int = 1, admin: str = "enabled",
       health: str = "up", retry: float | None = None, p99: float | None = None, failures: int = 0) -> MemberSnap:
    return MemberSnap(member_id=mid, endpoint=f"127.0.0.1:{9100 + ord(mid[-1])}", weight=weight, admin=admin,
                      health=health, retry_in_s=retry, total=total, active=active, latency_p99_ms=p99,
                      failures=failures, configured_share=0.5)


def test_two_instances_sum_and_share() -> None:
    a = InstanceInput("h:1:aa", _snap([_m("m1", total=30, active=2, p99=4.0), _m("m2", total=10, active=1)]),
                      True, rate=12.0)
    b = InstanceInput("h:2:bb", _snap([_m("m1", total=20, active=1, p99=9.0), _m("m2", total=40)]), True, rate=3.0)
    agg = aggregate([a, b], now=7.5, saved_version=3)
    s = agg.snapshot
    assert s is not None
    m1, m2 = s.members
    assert (m1.total, m1.active, m2.total, m2.active) == (50, 3, 50, 1)
    assert (m1.actual_share, m2.actual_share) == (0.5, 0.5)
    assert m1.latency_p99_ms == 9.0  # the worst instance
    assert s.totals["accepted"] == 100 and s.totals["active"] == 4
    assert s.now == 7.5 and s.server_version == 3
    assert [(r.name, r.reach, r.total, r.active, r.rate, r.version_text()) for r in agg.instances] == [
        ("pid 1", ANSWERS, 40, 3, 12.0, "v3"), ("pid 2", ANSWERS, 60, 1, 3.0, "v3")]
    assert agg.answering == 2


def test_unreachable_instance_keeps_counters_not_gauges() -> None:
    a = InstanceInput("h:1:aa", _snap([_m("m1", total=30, active=2)]), True)
    b = InstanceInput("h:2:bb", _snap([_m("m1", total=20, active=5)]), False, why="no answer within 3 s")
    agg = aggregate([a, b], now=1.0)
    assert agg.snapshot is not None
    (m1,) = agg.snapshot.members
    assert (m1.total, m1.active) == (50, 2)
    assert agg.snapshot.totals["active"] == 2
    row = agg.instances[1]
    assert row.reach == UNREACHABLE and row.active == 0 and row.rate == 0.0 and row.total == 20
    assert row.reach_text() == "not answering · no answer within 3 s"
    # the server says lost; one never seen yet is waiting
    lost = aggregate([a, InstanceInput("h:2:bb", None, False, lost=True)], now=1.0).instances[1]
    assert lost.reach == LOST and lost.version_text() == "—"
    assert aggregate([InstanceInput("h:3:cc", None, False)], now=1.0).instances[0].reach == WAITING
    assert aggregate([InstanceInput("h:3:cc", None, False)], now=1.0).snapshot is None


def test_state_weight_and_differences() -> None:
    a = InstanceInput("h:1:aa", _snap([_m("m1", weight=3), _m("m2")], version=4), True)
    b = InstanceInput("h:2:bb", _snap([_m("m1", weight=3, admin="drain"), _m("m2", health="disabled", retry=4.0)],
                                      version=4), True)
    c = InstanceInput("h:3:cc", _snap([_m("m1", weight=1), _m("m2", health="disabled", retry=9.0)], version=3),
                      True)
    agg = aggregate([a, b, c], now=1.0, saved_version=4)
    assert agg.snapshot is not None
    m1, m2 = agg.snapshot.members
    assert (m1.weight, m1.admin, m1.state) == (3, "drain", "draining")  # majority weight, most restrictive
    assert (m2.state, m2.retry_in_s) == ("down", 9.0)  # down somewhere: down, the longest countdown
    assert agg.snapshot.server_version == 3  # the oldest applied
    rows = {r.name: r for r in agg.instances}
    assert rows["pid 1"].differs == ("m1 up", "m2 up")
    assert rows["pid 2"].differs == ()
    assert rows["pid 3"].differs == ("m1 up", "m1 weight 1")
    assert rows["pid 3"].behind and rows["pid 3"].version_text() == "v3 (saved v4)"
    assert not rows["pid 1"].behind


def test_short_names() -> None:
    assert short_names(["h:1:aa", "h:2:bb"]) == {"h:1:aa": "pid 1", "h:2:bb": "pid 2"}
    assert short_names(["x:1:aa", "y:1:bb"]) == {"x:1:aa": "x:1", "y:1:bb": "y:1"}
    assert short_names(["h:1:aa", "h:1:bb"]) == {"h:1:aa": "h:1:aa", "h:1:bb": "h:1:bb"}  # not unique
    assert short_names(["bal-1"]) == {"bal-1": "bal-1"}
