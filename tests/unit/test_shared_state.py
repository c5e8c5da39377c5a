"""The state the workers of one balancer process share (core/proxy/shared.py), without processes: its slots
are bounded and given back, overrides and marks written by one view are read by another, the counters are
summed over the workers' rows, and the snapshot says what is shared. (The forked workers are in
tests/proxy/test_fleet.py and test_sticky.py.)"""

from __future__ import annotations

from balancedesk.core.proxy.contract import MemberSnap, Snapshot
from balancedesk.core.proxy.shared import SharedState, shared_json, summed_snapshot

T0 = 1000.0


def state(slots: int = 16, workers: int = 2) -> SharedState:
    return SharedState(workers=workers, member_slots=slots, sticky_entries=64, ways=8, idle_s=60.0)


def test_slots_are_counted_per_binding_and_freed_by_the_last_release() -> None:
    st = state()
    w0, w1 = st.group("g"), st.group("g")  # one group in two workers
    w0.bind(["a", "b"])
    w1.bind(["b", "a"])
    assert st.in_use() == 3  # a, b and the group's own slot
    w0.publish("a", T0 + 5, failed=True)
    w0.unbind()
    assert st.in_use() == 3 and dict(w1.marks())["a"] == T0 + 5, "w1 still holds them"
    w1.unbind()
    assert st.in_use() == 0
    again = st.group("g")
    again.bind(["a"])
    assert dict(again.marks())["a"] is None and again.failures("a") == 0, "a freed slot comes back clean"


def test_a_member_leaving_the_config_gives_its_slot_back_and_its_sticky_entries_go() -> None:
    st = state()
    g = st.group("g")
    g.bind(["a", "b"])
    g.put("k1", "b", now=T0)
    g.put("k2", "a", now=T0)
    assert st.counts().entries == 2
    gen = st.generation()
    g.bind(["a"])  # b left the group
    assert st.in_use() == 2 and st.counts().entries == 1 and st.generation() != gen
    assert g.get("k1", now=T0) is None and g.get("k2", now=T0) == "a"


def test_the_slots_are_bounded_and_reused_after_a_group_is_deleted() -> None:
    st = state(slots=8)
    one, two = st.group("g1"), st.group("g2")
    one.bind(["a", "b", "c"])  # 4 slots
    two.bind(["a", "b", "c", "d", "e"])  # 4 more fit (the group's and a, b, c); d and e do not
    assert st.in_use() == 8 and st.unshared() == 2
    two.publish("e", T0 + 1)  # no slot: nothing shared, nothing broken
    assert dict(two.marks()).get("e") is None
    one.unbind()  # g1 deleted
    three = st.group("g3")
    three.bind(["x", "y"])
    assert st.in_use() == 7 and three.failures("x") == 0


def test_an_override_written_by_one_worker_is_read_by_the_other() -> None:
    st = state()
    w0, w1 = st.group("g"), st.group("g")
    w0.bind(["a", "b"])
    w1.bind(["a", "b"])
    gen = st.generation()
    w0.publish_override("a", "drain", 5)
    assert st.generation() != gen
    assert sorted(w1.overrides()) == [("a", "drain", 5), ("b", None, None)]
    w0.publish_override("a", None, None)  # reverted
    assert ("a", None, None) in list(w1.overrides())


def test_the_snapshot_counts_are_summed_over_every_worker_and_say_so() -> None:
    st = state()
    w0, w1 = st.group("g"), st.group("g")
    w0.bind(["a", "b"])
    w1.bind(["a", "b"])
    st.worker = 0
    w0.write_counts({"a": (1, 10, 0, 100, 200), "b": (0, 5, 1, 50, 60)}, (15, 1, 0, 0, 7), now=T0)
    st.worker = 1  # as the forked worker 1 would
    w1.write_counts({"a": (2, 20, 0, 10, 20), "b": (0, 5, 0, 5, 6)}, (25, 2, 1, 0, 7), now=T0 + 0.2)
    snap = Snapshot(version=1, group={}, mode="tcp", listen="", affinity_header=None, now=T0 + 0.5,
                    uptime_s=1.0, members=(MemberSnap("a", total=10), MemberSnap("b", total=5)),
                    totals={"accepted": 15, "active": 1, "refused": 0, "failed": 0, "sampledAway": 0})
    out = summed_snapshot(w0, snap)
    a, b = out.members
    assert (a.active, a.total, a.bytes_in, a.bytes_out) == (3, 30, 110, 220)
    assert b.total == 10 and abs(a.actual_share - 0.75) < 1e-9
    assert dict(out.totals) == {"accepted": 40, "active": 3, "refused": 1, "failed": 0, "sampledAway": 0}
    said = shared_json(w0, 2, now=T0 + 0.5)
    assert said["counters"] == "summed" and said["acceptedPerWorker"] == [15, 25]
    assert said["serverVersionPerWorker"] == [7, 7]
    assert [round(x, 6) for x in said["countersAge_s"]] == [0.5, 0.3]
    assert said["slots"] == {"used": 3, "capacity": 16}
    assert shared_json(None, 1, now=T0)["healthMarks"] is False
