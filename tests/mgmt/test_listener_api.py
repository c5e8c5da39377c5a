"""The ``listener`` extension on a group through the management API: stored, returned, validated, in the
OpenAPI document — and HDP's own payloads, without it, round-trip exactly as before."""

from __future__ import annotations

from typing import Any

import pytest
from balancedesk.core.model import DEFAULT_AFFINITY_HEADER
from fleet_helpers import group_body, make_group, new_pool, owner
from mgmt_helpers import Server, error_of


def test_a_plain_hdp_payload_round_trips_unchanged(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    a = [server.register(f"a{i}", name, port=9101 + i) for i in range(2)]
    sent = {"label": "hdp", "connectorGroup": {"connectionTimeout": 15, "retryDelay": 120,
                                               "members": [{"memberID": a[0], "sequence": 1, "weight": 1}]}}
    r = alice.post("/api/mgmt/connectors", json=sent)
    assert r.status_code == 201, r.text
    doc, etag = r.json(), r.headers["ETag"]
    assert "listener" not in doc
    assert doc == {"connectorID": doc["connectorID"], "owner": name, "label": "hdp", "authUser": [],
                   "connectorGroup": sent["connectorGroup"]}
    url = f"/api/mgmt/connectors/{doc['connectorID']}"
    assert alice.get(url).json() == doc
    again = alice.put(url, json=doc, headers={"If-Match": etag})
    assert again.status_code == 200 and again.json() == doc and again.headers["ETag"] == etag
    listing = alice.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    assert next(c for c in listing if c["connectorID"] == doc["connectorID"]) == doc


def test_a_listener_is_stored_returned_and_listed_with_its_defaults(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    pool = new_pool()
    gid, _ = make_group(server, alice, name, listener={"port": 18080, "pool": pool})
    doc = alice.get(f"/api/mgmt/connectors/{gid}").json()
    assert doc["listener"] == {"port": 18080, "mode": "tcp", "affinityHeader": DEFAULT_AFFINITY_HEADER,
                               "pool": pool, "readTimeout": 60.0}
    listing = alice.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    assert next(c for c in listing if c["connectorID"] == gid) == doc
    full = {"port": 18081, "bind": "127.0.0.1", "mode": "http", "affinityHeader": None, "pool": pool,
            "readTimeout": 5.0, "healthCheck": {"type": "http", "path": "/h", "expectStatus": 200, "interval": 1.0,
                                                "timeout": 0.5, "rise": 1, "fall": 2}}
    r = alice.put(f"/api/mgmt/connectors/{gid}", json={**doc, "listener": full})
    assert r.status_code == 200, r.text
    assert r.json()["listener"] == full and alice.get(f"/api/mgmt/connectors/{gid}").json()["listener"] == full


def test_put_without_listener_keeps_it_and_null_removes_it(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    gid, members = make_group(server, alice, name, listener={"port": 18090, "pool": new_pool()})
    url = f"/api/mgmt/connectors/{gid}"
    kept = alice.get(url).json()["listener"]
    hdp_style = group_body(members, label="renamed")  # an HDP client knows nothing of listener
    r = alice.put(url, json={**hdp_style, "owner": name})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "renamed" and r.json()["listener"] == kept
    r = alice.put(url, json={**hdp_style, "owner": name, "listener": None})
    assert r.status_code == 200, r.text
    assert "listener" not in r.json() and "listener" not in alice.get(url).json()


@pytest.mark.parametrize(("listener", "field"), [
    ({"pool": "p"}, "listener.port"),
    ({"port": 0}, "listener.port"),
    ({"port": "8080"}, "listener.port"),
    ({"port": 8080, "bind": "example.org"}, "listener.bind"),
    ({"port": 8080, "mode": "udp"}, "listener.mode"),
    ({"port": 8080, "affinityHeader": "two words"}, "listener.affinityHeader"),
    ({"port": 8080, "pool": "no/slash"}, "listener.pool"),
    ({"port": 8080, "readTimeout": -1}, "listener.readTimeout"),
    ({"port": 8080, "bogus": True}, "listener.bogus"),
    ("8080", "listener"),
])
def test_a_bad_listener_is_refused_naming_its_field(shared_server: Server, listener: Any, field: str) -> None:
    server = shared_server
    alice, name = owner(server)
    m = server.register("m", name, port=9300)
    before = alice.get("/api/mgmt/connectors").json()
    r = alice.post("/api/mgmt/connectors", json=group_body([m], listener=listener))
    assert r.status_code == 400, r.text
    assert field in [p["field"] for p in error_of(r)["problems"]], r.text
    assert alice.get("/api/mgmt/connectors").json() == before  # nothing half-written


def test_a_plain_connector_has_no_listener_and_members_need_endpoints(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    plain = server.register("p", name, port=9301)
    r = server.admin.put(f"/api/mgmt/connectors/{plain}",
                         json={"owner": name, "label": "p", "listener": {"port": 18100}})
    assert r.status_code == 400 and [p["field"] for p in error_of(r)["problems"]] == ["listener"], r.text
    bare = server.admin.post("/api/admin/connectors", json={"label": "bare", "owner": name}).json()["connectorID"]
    r = alice.post("/api/mgmt/connectors", json=group_body([plain, bare], listener={"port": 18100}))
    assert r.status_code == 400, r.text
    problems = error_of(r)["problems"]
    assert [(p["field"], p.get("memberID")) for p in problems] == [("connectorGroup.members[1].memberID", bare)]
    gid, _ = make_group(server, alice, name, listener={"port": 18101, "pool": new_pool()})
    r = alice.post(f"/api/mgmt/connectors/{gid}/members", json={"members": [{"memberID": bare, "sequence": 9}]})
    assert r.status_code == 400 and bare in r.text, r.text


def test_two_groups_of_a_pool_cannot_claim_one_socket(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    bob, bob_name = owner(server)
    pool = new_pool()
    first, _ = make_group(server, alice, name, listener={"port": 18200, "pool": pool, "bind": "127.0.0.1"})
    m = server.register("b", bob_name, port=9400)
    for listener in ({"port": 18200, "pool": pool}, {"port": 18200, "pool": pool, "bind": "127.0.0.1"},
                     {"port": 18200, "pool": pool, "bind": "0.0.0.0"}):
        r = bob.post("/api/mgmt/connectors", json=group_body([m], listener=listener))
        assert r.status_code == 409, r.text
        err = error_of(r)
        assert [p["field"] for p in err["problems"]] == ["listener.port"]
        assert first not in err["message"]["value"] and "another user's group" in err["message"]["value"]
    r = server.admin.post("/api/mgmt/connectors", json={**group_body([m], listener={"port": 18200, "pool": pool}),
                                                        "owner": bob_name})
    assert r.status_code == 409 and first in error_of(r)["message"]["value"]  # an admin may see which group
    ok = [{"port": 18200, "pool": pool, "bind": "127.0.0.2"}, {"port": 18201, "pool": pool}]
    r = bob.post("/api/mgmt/connectors", json=group_body([m], listener=ok[0]))
    assert r.status_code == 201, r.text
    url = f"/api/mgmt/connectors/{r.json()['connectorID']}"
    assert bob.put(url, json={**r.json(), "listener": {"port": 18200, "pool": new_pool()}}).status_code == 200
    # a group keeps its own port on a re-save
    assert alice.put(f"/api/mgmt/connectors/{first}", json=alice.get(f"/api/mgmt/connectors/{first}").json()
                     ).status_code == 200


def test_the_openapi_document_describes_the_listener_and_the_fleet_routes(shared_server: Server) -> None:
    doc = shared_server.anonymous().get("/openapi.json").json()
    put = doc["paths"]["/api/mgmt/connectors/{connector_id}"]["put"]
    schema = put["requestBody"]["content"]["application/json"]["schema"]
    listener = schema["properties"]["listener"]
    assert set(listener["properties"]) >= {"port", "bind", "mode", "affinityHeader", "pool", "readTimeout"}
    for path in ("/api/admin/pools/{pool}/groups", "/api/admin/pools/{pool}/groups/{connector_id}",
                 "/api/admin/pools/{pool}/changes", "/api/admin/balancers/heartbeat", "/api/admin/balancers",
                 "/api/admin/balancers/{instance_id}/admin", "/api/admin/tokens", "/api/admin/tokens/{token_id}"):
        assert path in doc["paths"], path
    assert doc["paths"]["/api/admin/balancers/heartbeat"]["post"]["security"] == [{"balancerToken": []}]
