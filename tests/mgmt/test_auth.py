"""The auth matrix: no credentials, bad credentials, another user, the owner, an Administrator."""

from __future__ import annotations

import httpx
from mgmt_helpers import Server, error_of


def _setup(server: Server) -> tuple[str, str]:
    alice = server.add_user("alice")
    server.add_user("bob")
    server.add_user("carol")
    a1 = server.register("a1", "alice", port=9101)
    a2 = server.register("a2", "alice", port=9102)
    r = alice.post(
        "/api/mgmt/connectors",
        json={"label": "shared", "connectorGroup": {"members": [{"memberID": a1, "sequence": 1}]}, "authUser": ["bob"]},
    )
    assert r.status_code == 201, r.text
    return r.json()["connectorID"], a2


def _unauthorized(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    error_of(r)


def test_auth_matrix(server: Server) -> None:
    group, a2 = _setup(server)
    one = f"/api/mgmt/connectors/{group}"
    anon = server.anonymous()
    _unauthorized(anon.get("/api/mgmt/connectors"))
    _unauthorized(anon.get(one))
    _unauthorized(anon.put(one, json={}))
    _unauthorized(server.as_user("alice", "wrong-password").get(one))
    _unauthorized(server.as_user("nobody", "whatever-pw").get(one))
    _unauthorized(anon.get(one, headers={"Authorization": "Basic !!!not-base64"}))
    _unauthorized(anon.get(one, headers={"Authorization": "Bearer abc"}))

    alice, bob, carol, admin = server.as_user("alice"), server.as_user("bob"), server.as_user("carol"), server.admin
    owned = alice.get(one)
    assert owned.status_code == 200
    body = owned.json()

    # bob is in authUser: he sees it in the accessible list, but may not manage it → 403
    assert bob.get("/api/mgmt/connectors").json() == {"connectorIDs": []}
    assert bob.get("/api/mgmt/connectors", params={"accessible": "true"}).json() == {"connectorIDs": [group]}
    for r in (
        bob.get(one),
        bob.put(one, json={**body, "label": "mine"}),
        bob.delete(one),
        bob.get(f"{one}/members"),
        bob.put(f"{one}/authuser", json={"authUser": []}),
    ):
        assert r.status_code == 403, r.text
        assert "only its owner (alice)" in error_of(r)["message"]["value"]

    # carol cannot see it at all → 404, same as an unknown ID
    assert carol.get("/api/mgmt/connectors", params={"accessible": "true", "details": "true"}).json() == {
        "connectors": []
    }
    for r in (
        carol.get(one),
        carol.put(one, json=body),
        carol.delete(one),
        carol.get(f"{one}/authuser"),
        carol.get("/api/mgmt/connectors/no-such-id"),
    ):
        assert r.status_code == 404, r.text
        error_of(r)

    # an Administrator acts as owner of everything
    listed = admin.get("/api/mgmt/connectors").json()["connectorIDs"]
    assert group in listed and a2 in listed
    assert admin.get(one).json() == body
    changed = admin.put(one, json={**body, "label": "renamed by admin"})
    assert changed.status_code == 200, changed.text
    assert alice.get(one).json()["label"] == "renamed by admin"

    # the admin API is for Administrators only
    for r in (
        alice.get("/api/admin/connectors"),
        alice.get("/api/admin/users"),
        alice.post("/api/admin/connectors", json={"label": "x", "owner": "alice", "endpoint": "127.0.0.1:1"}),
    ):
        assert r.status_code == 403, r.text
    assert {"alice", "bob", "carol", "admin"} <= {u["name"] for u in admin.get("/api/admin/users").json()["users"]}

    assert alice.get("/api/mgmt/whoami").json() == {"user": "alice", "roles": ["User"]}
    assert admin.get("/api/mgmt/whoami").json() == {"user": "admin", "roles": ["Administrator"]}


def test_disabled_user_cannot_log_in_and_last_admin_cannot_be_disabled(server: Server) -> None:
    _setup(server)
    bob = server.as_user("bob")
    assert bob.get("/api/mgmt/whoami").status_code == 200
    r = server.admin.put("/api/admin/users/bob", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    _unauthorized(bob.get("/api/mgmt/whoami"))
    r = server.admin.put("/api/admin/users/admin", json={"active": False})
    assert r.status_code == 409 and "last active Administrator" in error_of(r)["message"]["value"]
    assert [p["field"] for p in error_of(r)["problems"]] == ["active"]  # shown next to the control
    r = server.admin.put("/api/admin/users/admin", json={"role": "User"})  # demoting is refused the same way
    assert r.status_code == 409 and [p["field"] for p in error_of(r)["problems"]] == ["role"]
    assert server.admin.get("/api/admin/users/admin").json() == {"name": "admin", "role": "Administrator",
                                                                 "active": True}
    assert server.admin.get("/api/mgmt/whoami").status_code == 200


def test_admin_registers_lists_and_unregisters_connectors(server: Server) -> None:
    group, a2 = _setup(server)
    admin = server.admin
    rows = admin.get("/api/admin/connectors", params={"owner": "alice"}).json()["connectors"]
    assert {r["connectorID"] for r in rows} >= {group, a2}
    one = admin.get(f"/api/admin/connectors/{a2}").json()
    assert one["endpoint"] == "127.0.0.1:9102" and one["isGroup"] is False and one["owner"] == "alice"
    member = next(m["memberID"] for m in admin.get(f"/api/mgmt/connectors/{group}/members").json()["members"])
    busy = admin.delete(f"/api/admin/connectors/{member}")
    assert busy.status_code == 409 and f"member of group {group}" in error_of(busy)["message"]["value"]
    assert admin.delete(f"/api/admin/connectors/{a2}").json() == {"success": True}
    assert admin.get(f"/api/admin/connectors/{a2}").status_code == 404
    bad = admin.post("/api/admin/connectors", json={"label": "x", "owner": "ghost", "endpoint": "nowhere"})
    assert bad.status_code == 400
    fields = {p["field"] for p in error_of(bad)["problems"]}
    assert fields == {"owner", "endpoint"}
    dup = admin.post(
        "/api/admin/connectors", json={"label": "x", "owner": "alice", "endpoint": "h:1", "connectorID": group}
    )
    assert dup.status_code == 409
