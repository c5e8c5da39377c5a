"""The Balancers view's verdicts, pure: applied vs saved per group (behind, gone, not served, error), lost
instances not judged, labels and endpoints instead of IDs, the order of the rows."""

from __future__ import annotations

from balancedesk.core.fleet import ALIVE, LOST, AppliedGroup, Override
from balancedesk.core.fleetclient import BalancerInfo
from balancedesk.gui.fleet.rows import (
    BEHIND,
    FAILED,
    GONE,
    IN_SYNC,
    NOT_SERVED,
    PoolSaved,
    ago,
    group_rows,
    instance_rows,
)


def _info(instance: str, *, pool: str = "p", state: str = ALIVE, groups: tuple[AppliedGroup, ...] = (),
          overrides: tuple[Override, ...] = (), seen: float = 1.0) -> BalancerInfo:
    return BalancerInfo(instance, pool, "h", None, False, "native", 1, 0.0, groups, overrides, state, 0.0, seen, "t")


def _g(cid: str, version: int, error: str | None = None) -> AppliedGroup:
    return AppliedGroup(connectorID=cid, version=version, error=error)


def test_group_verdicts() -> None:
    saved = PoolSaved({"a": 5, "b": 3, "c": 2, "e": 1}, labels={"a": "Alpha"})
    rows = {r.connector_id: r for r in group_rows([_g("a", 4), _g("b", 3), _g("d", 1), _g("e", 1, "port taken")],
                                                  saved)}
    assert {k: r.status for k, r in rows.items()} == {"a": BEHIND, "b": IN_SYNC, "c": NOT_SERVED, "d": GONE,
                                                      "e": FAILED}
    assert rows["a"].label == "Alpha" and rows["b"].label == "b"
    assert (rows["c"].applied, rows["c"].saved) == (None, 2)
    assert (rows["d"].applied, rows["d"].saved) == (1, None)
    # applied ahead of what was read (a save between the two reads) is not drift
    assert group_rows([_g("a", 6)], PoolSaved({"a": 5}))[0].status == IN_SYNC
    # the pool could not be read: no verdict
    assert group_rows([_g("a", 1)], None)[0].status == IN_SYNC


def test_instances_drift_lost_and_order() -> None:
    saved = {"p": PoolSaved({"a": 5}, labels={"a": "Alpha"}, endpoints={"a": {"m1": "10.0.0.1:80"}})}
    rows = instance_rows([
        _info("z-lost", state=LOST, groups=(_g("a", 1),), seen=42.0),
        _info("b-behind", groups=(_g("a", 4),), overrides=(Override(connectorID="a", memberID="m1", weight=3),)),
        _info("a-ok", groups=(_g("a", 5),)),
    ], saved, elapsed_s=0.5)
    assert [r.instance_id for r in rows] == ["a-ok", "b-behind", "z-lost"]
    ok, behind, lost = rows
    assert ok.drift_text() == IN_SYNC and not ok.drifting
    assert behind.drift_text() == "Alpha: applied v4, saved v5"
    assert behind.overrides_text() == "Alpha · 10.0.0.1:80: weight 3"
    assert lost.lost and lost.drifting == () and lost.drift_text() == "—"
    assert lost.state_text() == "LOST · last seen 42 s ago"
    assert ok.state_text() == "alive · 2 s ago"
    assert (ago(59), ago(61), ago(7200)) == ("59 s ago", "1 min ago", "2.0 h ago")
