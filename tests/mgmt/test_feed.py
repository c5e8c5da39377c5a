"""The change feed: a long poll woken by a save made through the API, per-pool changes and ``gone`` states,
resync rules, and cursors that survive a server restart (the sequence lives in SQLite)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from fleet_helpers import StartServer, as_token, cursor_of, make_group, make_token, new_pool, owner
from mgmt_helpers import Server


def _poll(client: httpx.Client, pool: str, cursor: int, wait: float) -> dict[str, Any]:
    r = client.get(f"/api/admin/pools/{pool}/changes", params={"cursor": cursor, "wait": wait})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_long_poll_is_woken_by_a_save_through_the_api(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    pool = new_pool()
    balancer = as_token(server, make_token(server, pool))
    gid, _ = make_group(server, alice, name, listener={"port": 18400, "pool": pool})
    url = f"/api/mgmt/connectors/{gid}"
    for round_ in range(3):
        cursor = cursor_of(balancer, pool)
        answers: list[dict[str, Any]] = []
        done = threading.Event()

        def follow(c: int, out: list[dict[str, Any]], finished: threading.Event) -> None:
            # wait=55 against a 30 s client timeout: unless a commit wakes it, this request fails
            with httpx.Client(base_url=server.url, headers=balancer.headers, timeout=30.0) as fresh:
                out.append(_poll(fresh, pool, c, 55))
            finished.set()

        t = threading.Thread(target=follow, args=(cursor, answers, done))
        t.start()
        doc = alice.get(url).json()
        saved_at = time.monotonic()
        assert alice.put(url, json={**doc, "label": f"round-{round_}"}).status_code == 200
        assert done.wait(30), "the feed did not answer"
        print(f"feed answered {1000 * (time.monotonic() - saved_at):.1f} ms after the save's answer")
        t.join(5)
        [answer] = answers
        assert [(c["connectorID"], c["state"]) for c in answer["changes"]] == [(gid, "changed")]
        assert answer["cursor"] >= answer["changes"][0]["version"] > cursor


def test_a_change_in_another_pool_is_not_an_answer(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    mine, other = new_pool(), new_pool()
    balancer = as_token(server, make_token(server, mine))
    cursor = cursor_of(balancer, mine)
    make_group(server, alice, name, listener={"port": 18410, "pool": other})
    answer = _poll(balancer, mine, cursor, 0.5)
    assert answer["changes"] == [] and answer["resync"] is False and answer["cursor"] > cursor
    assert _poll(balancer, mine, answer["cursor"], 0)["changes"] == []


def test_moves_deletes_endpoint_and_label_changes_and_dropped_listeners(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    a, b = new_pool(), new_pool()
    admin = server.admin
    start_a, start_b = cursor_of(admin, a), cursor_of(admin, b)
    gid, members = make_group(server, alice, name, listener={"port": 18420, "pool": a})
    url = f"/api/mgmt/connectors/{gid}"

    def states(pool: str, cursor: int) -> list[tuple[str, str]]:
        return [(c["connectorID"], c["state"]) for c in _poll(admin, pool, cursor, 0)["changes"]]

    assert states(a, start_a) == [(gid, "changed")] and states(b, start_b) == []
    groups = admin.get(f"/api/admin/pools/{a}/groups").json()
    [entry] = groups["groups"]
    assert entry["config"]["endpoints"] == {members[0]: "127.0.0.1:9200", members[1]: "127.0.0.1:9201"}
    assert "authUser" not in entry["config"] and entry["config"]["listener"]["port"] == 18420
    v1 = entry["version"]
    # a member's endpoint is part of what the pool serves
    mid = groups["cursor"]
    r = admin.put(f"/api/mgmt/connectors/{members[0]}", json={"owner": name, "label": "m0",
                                                              "endpoint": "127.0.0.1:9299"})
    assert r.status_code == 200, r.text
    assert states(a, mid) == [(gid, "changed")]
    got = admin.get(f"/api/admin/pools/{a}/groups/{gid}").json()
    assert got["version"] > v1 and got["config"]["endpoints"][members[0]] == "127.0.0.1:9299"
    # and so is its label (what the balancer's snapshot and metrics show beside the memberID)
    assert entry["config"]["memberLabels"] == {members[0]: "m0", members[1]: "m1"}
    mid, v2 = cursor_of(admin, a), got["version"]
    r = admin.put(f"/api/mgmt/connectors/{members[0]}", json={"owner": name, "label": "zero",
                                                              "endpoint": "127.0.0.1:9299"})
    assert r.status_code == 200, r.text
    assert states(a, mid) == [(gid, "changed")]
    got = admin.get(f"/api/admin/pools/{a}/groups/{gid}").json()
    assert got["version"] > v2 and got["config"]["memberLabels"][members[0]] == "zero"
    # moved to pool b: gone from a, changed in b
    mid = cursor_of(admin, a)
    doc = alice.get(url).json()
    assert alice.put(url, json={**doc, "listener": {**doc["listener"], "pool": b}}).status_code == 200
    assert states(a, mid) == [(gid, "gone")] and states(b, mid) == [(gid, "changed")]
    assert admin.get(f"/api/admin/pools/{a}/groups/{gid}").status_code == 404
    assert admin.get(f"/api/admin/pools/{a}/groups").json()["groups"] == []
    # listener dropped: gone from b; then deleted while back in a
    mid = cursor_of(admin, b)
    assert alice.put(url, json={**doc, "listener": None}).status_code == 200
    assert states(b, mid) == [(gid, "gone")]
    assert alice.put(url, json={**doc, "listener": {**doc["listener"], "pool": a}}).status_code == 200
    mid = cursor_of(admin, a)
    assert alice.delete(url).status_code == 200
    assert states(a, mid) == [(gid, "gone")]
    # followers that slept through it all learn the latest state only
    assert states(a, start_a) == [(gid, "gone")] and states(b, start_b) == [(gid, "gone")]


def test_a_cursor_that_cannot_be_followed_asks_for_a_resync(shared_server: Server) -> None:
    admin = shared_server.admin
    pool = new_pool()
    doc = admin.get(f"/api/admin/pools/{pool}/groups").json()
    ahead = _poll(admin, pool, doc["cursor"] + 1000, 30)  # answers at once
    assert ahead["resync"] is True and ahead["cursor"] <= doc["cursor"] + 1000
    r = admin.get(f"/api/admin/pools/{pool}/changes", params={"cursor": doc["cursor"], "store": "someone-else"})
    assert r.json()["resync"] is True
    assert admin.get(f"/api/admin/pools/{pool}/changes",
                     params={"cursor": doc["cursor"], "store": doc["storeID"]}).json()["resync"] is False
    for params, field in (({}, "cursor"), ({"cursor": -1}, "cursor"), ({"cursor": "x"}, "cursor"),
                          ({"cursor": 0, "wait": 61}, "wait"), ({"cursor": 0, "wait": -1}, "wait")):
        r = admin.get(f"/api/admin/pools/{pool}/changes", params=params)
        assert r.status_code == 400 and field in [p["field"] for p in r.json()["error"]["problems"]], r.text
    assert admin.get("/api/admin/pools/bad pool!/changes", params={"cursor": 0}).status_code == 400


def test_cursors_survive_a_server_restart(start_server: StartServer) -> None:
    server = start_server()
    alice, name = owner(server)
    pool = new_pool()
    token = make_token(server, pool)
    gid, _ = make_group(server, alice, name, listener={"port": 18430, "pool": pool})
    before = as_token(server, token).get(f"/api/admin/pools/{pool}/groups").json()
    server.child.kill()
    again = start_server(data=server.data)
    balancer = as_token(again, token)
    after = balancer.get(f"/api/admin/pools/{pool}/groups").json()
    assert (after["storeID"], after["cursor"], after["groups"]) == (before["storeID"], before["cursor"],
                                                                   before["groups"])
    answer = _poll(balancer, pool, before["cursor"], 0)
    assert answer == {"storeID": before["storeID"], "cursor": before["cursor"], "resync": False, "more": False,
                      "changes": []}
    alice2 = again.as_user(name)
    doc = alice2.get(f"/api/mgmt/connectors/{gid}").json()
    assert alice2.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "after restart"}).status_code == 200
    [change] = _poll(balancer, pool, before["cursor"], 0)["changes"]
    assert change["connectorID"] == gid and change["version"] > before["groups"][0]["version"]
