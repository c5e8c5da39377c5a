"""HDP's ``?user=NAME`` on the connector endpoints: an Administrator acts as that user, with that user's
rights and no more; anyone else gets 403; a missing, repeated or unknown name a 400 naming ``user``."""

from __future__ import annotations

import asyncio

import pytest
from balancedesk.core.client import ApiError, MgmtClient
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server, error_of


def test_admin_acts_on_behalf_of_a_user(server: Server) -> None:
    alice = server.add_user("alice")
    server.add_user("bob")
    a1 = server.register("a1", "alice", port=9111)
    b1 = server.register("b1", "bob", port=9112)
    admin = server.admin

    me = admin.get("/api/mgmt/whoami", params={"user": "alice"})
    assert me.status_code == 200, me.text
    assert "alice" in me.text and "Administrator" not in me.text  # acting as alice, with alice's roles

    # alice's view of the connectors, not the Administrator's
    ids = admin.get("/api/mgmt/connectors", params={"user": "alice"}).json()["connectorIDs"]
    assert a1 in ids and b1 not in ids
    assert set(admin.get("/api/mgmt/connectors").json()["connectorIDs"]) >= {a1, b1}

    # a group created on behalf of alice is alice's, and only her connectors can be members
    body = {"label": "for alice", "connectorGroup": {"members": [{"memberID": a1, "sequence": 1}]}}
    made = admin.post("/api/mgmt/connectors", params={"user": "alice"}, json=body)
    assert made.status_code == 201, made.text
    gid = made.json()["connectorID"]
    assert made.json()["owner"] == "alice"
    assert alice.get(f"/api/mgmt/connectors/{gid}").status_code == 200
    bad = {"label": "x", "connectorGroup": {"members": [{"memberID": b1, "sequence": 1}]}}
    refused = admin.post("/api/mgmt/connectors", params={"user": "alice"}, json=bad)
    assert refused.status_code == 400, refused.text  # as alice, bob's connector is not hers to group
    # acting as alice, bob's connector is as invisible as it is to alice
    assert admin.get(f"/api/mgmt/connectors/{b1}", params={"user": "alice"}).status_code == 404


def test_on_behalf_of_is_refused_clearly(server: Server) -> None:
    alice = server.add_user("alice")
    server.add_user("bob")
    admin = server.admin

    r = alice.get("/api/mgmt/connectors", params={"user": "bob"})
    assert r.status_code == 403 and "Only an Administrator" in error_of(r)["message"]["value"]
    for params, says in (({"user": "nobody"}, "no user named 'nobody'"), ({"user": ""}, "exactly one user name"),
                         ([("user", "alice"), ("user", "bob")], "exactly one user name")):
        r = admin.get("/api/mgmt/connectors", params=params)
        assert r.status_code == 400, r.text
        err = error_of(r)
        assert says in err["message"]["value"] and err["problems"][0]["field"] == "user"
    # the admin endpoints are the Administrator's own: ?user= does not apply there
    assert admin.get("/api/admin/connectors", params={"user": "alice"}).status_code == 200


def test_the_client_acts_on_behalf_of_a_user(server: Server) -> None:
    server.add_user("alice")
    server.add_user("bob")
    a1 = server.register("a1", "alice", port=9111)
    b1 = server.register("b1", "bob", port=9112)

    async def scenario() -> None:
        async with MgmtClient(server.url, "admin", ADMIN_PASSWORD, on_behalf_of="alice") as as_alice:
            me = await as_alice.whoami()
            assert me.user == "alice" and not me.is_admin
            ids = await as_alice.list_connectors(details=False)
            assert a1 in ids and b1 not in ids  # alice's view, not the Administrator's
            users = {u.name for u in await as_alice.list_users()}  # /api/admin: the Administrator's own
            assert {"alice", "bob"} <= users
        async with MgmtClient(server.url, "alice", PASSWORD, on_behalf_of="bob") as sneaky:
            with pytest.raises(ApiError) as refused:
                await sneaky.list_connectors()
            assert refused.value.status == 403 and "Only an Administrator" in str(refused.value)

    asyncio.run(scenario())


def test_openapi_declares_the_user_parameter(server: Server) -> None:
    doc = server.anonymous().get("/openapi.json").json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            names = [p["name"] for p in op.get("parameters", [])]
            if path.startswith("/api/mgmt/"):
                assert "user" in names, f"{method.upper()} {path} does not declare ?user="
            else:
                assert "user" not in names, f"{method.upper()} {path} declares ?user= it ignores"
