"""Balancers register and heartbeat with their token; Administrators list them (alive / lost) and alone may
read a balancer's admin token back. Heartbeats are validated and bounded like every other body."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

from balancedesk.core.fleet import HEARTBEAT_INTERVAL_S, LOST_AFTER_MISSED, MAX_HEARTBEAT_BYTES
from fleet_helpers import StartServer, as_token, heartbeat_body, make_token, new_pool, owner
from mgmt_helpers import SERVE, Server, error_of


def _instance() -> str:
    return f"bal-{uuid.uuid4().hex[:8]}"


def test_a_heartbeat_is_listed_without_its_admin_token(shared_server: Server) -> None:
    server = shared_server
    pool = new_pool()
    balancer = as_token(server, make_token(server, pool))
    iid = _instance()
    body = heartbeat_body(iid, groups=[{"connectorID": "g1", "version": 7, "listen": "0.0.0.0:8080"}],
                          overrides=[{"connectorID": "g1", "memberID": "m1", "state": "drain"},
                                     {"connectorID": "g1", "memberID": "m2", "weight": 5}])
    r = balancer.post("/api/admin/balancers/heartbeat", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"pool": pool, "state": "alive", "heartbeatInterval": HEARTBEAT_INTERVAL_S,
                        "lostAfter": HEARTBEAT_INTERVAL_S * LOST_AFTER_MISSED}
    listing = server.admin.get("/api/admin/balancers", params={"pool": pool})
    assert listing.status_code == 200, listing.text
    [entry] = listing.json()["balancers"]
    assert body["adminToken"] not in listing.text and "adminToken" not in entry
    assert entry["instanceID"] == iid and entry["pool"] == pool and entry["state"] == "alive"
    assert entry["hasAdminToken"] is True and entry["dataPlane"] == "native" and entry["workers"] == 2
    assert entry["groups"] == [{"connectorID": "g1", "version": 7, "listen": "0.0.0.0:8080", "error": None}]
    assert [o["memberID"] for o in entry["overrides"]] == ["m1", "m2"]
    assert entry["overrides"][0]["state"] == "drain" and entry["overrides"][1]["weight"] == 5
    assert iid not in server.admin.get("/api/admin/balancers", params={"pool": new_pool()}).text
    # the admin token: Administrators only, through its own route
    got = server.admin.get(f"/api/admin/balancers/{iid}/admin")
    assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
    assert got.json() == {"instanceID": iid, "adminURL": body["adminURL"], "adminToken": body["adminToken"]}
    alice, _ = owner(server)
    for client in (alice, balancer):
        for r in (client.get(f"/api/admin/balancers/{iid}/admin"), client.get("/api/admin/balancers"),
                  client.delete(f"/api/admin/balancers/{iid}")):
            assert r.status_code == 403 and body["adminToken"] not in r.text, r.text
    assert server.admin.get("/api/admin/balancers/nobody/admin").status_code == 404
    # forgotten
    assert server.admin.delete(f"/api/admin/balancers/{iid}").status_code == 200
    assert server.admin.get(f"/api/admin/balancers/{iid}/admin").status_code == 404


def test_an_instance_id_belongs_to_its_token_while_alive(shared_server: Server) -> None:
    server = shared_server
    pool = new_pool()
    one, two = as_token(server, make_token(server, pool)), as_token(server, make_token(server, pool))
    iid = _instance()
    assert one.post("/api/admin/balancers/heartbeat", json=heartbeat_body(iid)).status_code == 200
    r = two.post("/api/admin/balancers/heartbeat", json=heartbeat_body(iid, adminToken="stolen"))
    assert r.status_code == 409 and [p["field"] for p in error_of(r)["problems"]] == ["instanceID"], r.text
    assert server.admin.get(f"/api/admin/balancers/{iid}/admin").json()["adminToken"] != "stolen"


def test_a_bad_heartbeat_is_refused_naming_the_field(shared_server: Server) -> None:
    server = shared_server
    balancer = as_token(server, make_token(server, new_pool()))
    good = heartbeat_body(_instance())
    cases = [
        ({k: v for k, v in good.items() if k != "instanceID"}, "instanceID"),
        ({**good, "instanceID": "has space"}, "instanceID"),
        ({**good, "host": ""}, "host"),
        ({**good, "adminURL": "ftp://x"}, "adminURL"),
        ({**good, "startedAt": -1}, "startedAt"),
        ({**good, "workers": 0}, "workers"),
        ({**good, "groups": [{"connectorID": "g", "version": -1}]}, "groups[0].version"),
        ({**good, "groups": "g1"}, "groups"),
        ({**good, "overrides": [{"connectorID": "g", "memberID": "m", "state": "off"}]}, "overrides[0].state"),
        ({**good, "surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        r = balancer.post("/api/admin/balancers/heartbeat", json=body)
        assert r.status_code == 400 and field in [p["field"] for p in error_of(r)["problems"]], (field, r.text)
    big = {**good, "groups": [{"connectorID": "g" * 200, "version": 1}] * (MAX_HEARTBEAT_BYTES // 200)}
    r = balancer.post("/api/admin/balancers/heartbeat", json=big)
    assert r.status_code == 413, r.text
    error_of(r)
    r = balancer.post("/api/admin/balancers/heartbeat", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert balancer.post("/api/admin/balancers/heartbeat", content=b"{}").status_code == 415
    assert good["instanceID"] not in server.admin.get("/api/admin/balancers").text


def test_a_balancer_that_misses_three_heartbeats_is_lost(start_server: StartServer) -> None:
    interval = 0.2
    server = start_server("--heartbeat-interval", str(interval))
    pool = new_pool()
    balancer = as_token(server, make_token(server, pool))
    iid = _instance()
    r = balancer.post("/api/admin/balancers/heartbeat", json=heartbeat_body(iid))
    assert r.json()["state"] == "alive" and r.json()["heartbeatInterval"] == interval
    assert r.json()["lostAfter"] == interval * LOST_AFTER_MISSED
    deadline = time.monotonic() + 30
    while True:
        [entry] = server.admin.get("/api/admin/balancers", params={"pool": pool}).json()["balancers"]
        if entry["state"] == "lost":
            break
        assert time.monotonic() < deadline, entry
        time.sleep(0.05)
    assert entry["lastSeenAgo_s"] > interval * LOST_AFTER_MISSED
    # a heartbeat brings it back
    assert balancer.post("/api/admin/balancers/heartbeat", json=heartbeat_body(iid)).json()["state"] == "alive"


def test_serve_refuses_a_heartbeat_interval_out_of_range(tmp_path: Path) -> None:
    for bad in ("0", "-1", "abc", "4000"):
        r = subprocess.run([*SERVE, "--port", "0", "--data", str(tmp_path), "--heartbeat-interval", bad],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "--heartbeat-interval" in r.stderr and "serving" not in r.stdout, r.stderr
