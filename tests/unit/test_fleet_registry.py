"""The balancer registry's pure rules, with explicit ``now``: alive/lost, the cap, who owns an instance ID."""

from __future__ import annotations

import pytest
from balancedesk.core.fleet import ALIVE, LOST, LOST_AFTER_MISSED, Heartbeat
from balancedesk.core.mgmt.registry import Registry, RegistryFull


def _hb(iid: str, token: str | None = None) -> Heartbeat:
    return Heartbeat.model_validate({"instanceID": iid, "host": "h", "dataPlane": "asyncio", "startedAt": 1.0,
                                     "adminToken": token})


def test_lost_after_three_missed_intervals_exactly() -> None:
    reg = Registry(interval_s=2.0)
    entry = reg.heartbeat(_hb("a"), pool="p", token_id="t", now=100.0, wall=5.0)
    limit = 100.0 + 2.0 * LOST_AFTER_MISSED
    assert reg.state(entry, 100.0) == ALIVE and reg.state(entry, limit) == ALIVE
    assert reg.state(entry, limit + 0.001) == LOST
    [view] = reg.listing(limit + 1)
    assert view["state"] == LOST and view["lastSeenAgo_s"] == pytest.approx(2.0 * LOST_AFTER_MISSED + 1)
    entry = reg.heartbeat(_hb("a"), pool="p", token_id="t", now=200.0, wall=6.0)
    assert reg.state(entry, 200.0) == ALIVE and entry.first_seen == 100.0


def test_the_cap_forgets_the_longest_lost_and_refuses_when_all_are_alive() -> None:
    reg = Registry(interval_s=1.0, cap=3)
    for i, now in enumerate((0.0, 1.0, 2.0)):
        reg.heartbeat(_hb(f"b{i}"), pool="p", token_id="t", now=now, wall=now)
    with pytest.raises(RegistryFull):
        reg.heartbeat(_hb("new"), pool="p", token_id="t", now=2.5, wall=0)
    reg.heartbeat(_hb("new"), pool="p", token_id="t", now=4.5, wall=0)  # b0 lost since 3.0: forgotten
    assert [v["instanceID"] for v in reg.listing(4.5)] == ["b1", "b2", "new"]
    reg.heartbeat(_hb("b1"), pool="p", token_id="t", now=4.6, wall=0)  # a known instance always fits
    assert len(reg.listing(4.6)) == 3


def test_an_alive_instance_id_cannot_be_taken_by_another_token() -> None:
    reg = Registry(interval_s=1.0)
    reg.heartbeat(_hb("a", "mine"), pool="p", token_id="t1", now=0.0, wall=0)
    with pytest.raises(PermissionError):
        reg.heartbeat(_hb("a", "theirs"), pool="p", token_id="t2", now=1.0, wall=0)
    got = reg.get("a")
    assert got is not None and got.heartbeat.admin_token == "mine"
    entry = reg.heartbeat(_hb("a", "theirs"), pool="q", token_id="t2", now=10.0, wall=0)  # lost: it may
    assert entry.pool == "q" and entry.first_seen == 10.0


def test_the_listing_hides_admin_tokens_and_filters_by_pool() -> None:
    reg = Registry()
    reg.heartbeat(_hb("a", "secret"), pool="p", token_id="t", now=0.0, wall=0)
    reg.heartbeat(_hb("b"), pool="q", token_id="t", now=0.0, wall=0)
    views = reg.listing(0.0)
    assert "secret" not in repr(views) and [v["hasAdminToken"] for v in views] == [True, False]
    assert [v["instanceID"] for v in reg.listing(0.0, pool="q")] == ["b"]
    assert reg.forget("a") and not reg.forget("a")
