"""``GET /admin/events?newest=1``: a viewer that draws a sample asks for the newest events only.

Real balancer process, real members and sockets on 127.0.0.1. The plain cursor listing (``limit=10000``)
is the truth; the newest-mode answer must be exactly: every non-route event after the cursor, the newest
``limit`` route events that failed or failed over, the newest ``limit`` other route events, oldest first,
the cursor at the newest event, and ``skipped`` = the route events left out.
"""

from __future__ import annotations

from typing import Any

from lbkit import Members, StartBalancer, connect, group_config, refused_endpoint, request


def _loud(e: dict[str, Any]) -> bool:
    return e["outcome"] != "ok" or any(a["outcome"] != "ok" for a in e["attempts"])


def _expected(full: list[dict[str, Any]], after: int, limit: int) -> tuple[list[int], int]:
    tail = [e for e in full if e["seq"] > after]
    routes = [e for e in tail if e["kind"] == "route"]
    loud = [e["seq"] for e in routes if _loud(e)][-limit:]
    plain = [e["seq"] for e in routes if not _loud(e)][-limit:]
    keep = sorted([e["seq"] for e in tail if e["kind"] != "route"] + loud + plain)
    return keep, len(routes) - len(loud) - len(plain)


def test_newest_events_keep_the_rare_ones_and_the_latest_routes(balancer: StartBalancer,
                                                                members: Members) -> None:
    a = members.http("a")
    cfg = group_config([("b", refused_endpoint(), 1), ("a", a.endpoint, 1)], retry_delay=30)
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    for i in range(6):  # the first goes to b, is refused and fails over to a; b is disabled for 30 s
        assert request(s, "GET", f"/{i}")[0] == 200
    assert bal.admin("POST", "/admin/members/a/state", json={"state": "disabled"}).status_code == 200
    for i in range(3):  # nobody enabled: failed routes (a fresh connection each: an error may close it)
        f = connect(bal.addr)
        assert request(f, "GET", f"/f{i}", headers={"Connection": "close"})[0] >= 500
        f.close()
    assert bal.admin("POST", "/admin/members/a/state", json={"state": "enabled"}).status_code == 200
    for i in range(5):
        assert request(s, "GET", f"/again{i}")[0] == 200  # the first connection still routes

    full = bal.admin("GET", "/admin/events", params={"after": 0, "limit": 10000}).json()
    events = full["events"]
    kinds = {e["kind"] for e in events}
    assert {"config", "health", "admin", "route"} <= kinds
    assert sum(_loud(e) for e in events if e["kind"] == "route") >= 4  # one failover + three failures
    assert "skipped" not in full  # the plain listing keeps its contract

    for after in (0, events[3]["seq"], events[-4]["seq"]):
        for limit in (1, 2, 50):
            got = bal.admin("GET", "/admin/events", params={"after": after, "limit": limit, "newest": 1}).json()
            keep, skipped = _expected(events, after, limit)
            assert [e["seq"] for e in got["events"]] == keep, (after, limit)
            assert got["skipped"] == skipped and got["dropped"] == 0
            assert got["cursor"] == events[-1]["seq"]
            by_seq = {e["seq"]: e for e in events}
            assert all(e == by_seq[e["seq"]] for e in got["events"])  # same JSON as the plain listing

    idle = bal.admin("GET", "/admin/events", params={"after": events[-1]["seq"], "newest": "true"}).json()
    assert idle == {"cursor": events[-1]["seq"], "events": [], "dropped": 0, "skipped": 0}
    assert bal.admin("GET", "/admin/events", params={"newest": "maybe"}).status_code == 400
    plain = bal.admin("GET", "/admin/events", params={"after": 0, "limit": 3, "newest": 0}).json()
    assert [e["seq"] for e in plain["events"]] == [e["seq"] for e in events[:3]]
