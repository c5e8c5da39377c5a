"""Conditional GETs (If-None-Match → 304 on every GET with an ETag) and saves that change nothing: no new
revision, no new ETag, no change in the pool's feed."""

from __future__ import annotations

from fleet_helpers import as_token, cursor_of, make_group, make_token, new_pool, owner
from mgmt_helpers import Server


def test_every_get_with_an_etag_answers_304_to_a_matching_if_none_match(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    pool = new_pool()
    gid, _ = make_group(server, alice, name, listener={"port": 18300, "pool": pool})
    admin = server.admin
    urls = [(alice, f"/api/mgmt/connectors/{gid}"), (alice, f"/api/mgmt/connectors/{gid}/members"),
            (alice, f"/api/mgmt/connectors/{gid}/authuser"), (admin, f"/api/admin/pools/{pool}/groups"),
            (admin, f"/api/admin/pools/{pool}/groups/{gid}")]
    for client, url in urls:
        full = client.get(url)
        etag = full.headers["ETag"]
        assert full.status_code == 200 and full.content, url
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            r = client.get(url, headers={"If-None-Match": header})
            assert r.status_code == 304 and r.content == b"" and r.headers["ETag"] == etag, (url, header)
        r = client.get(url, headers={"If-None-Match": '"not-it"'})
        assert r.status_code == 200 and r.content == full.content, url
    # a change makes every old ETag stale
    doc = alice.get(f"/api/mgmt/connectors/{gid}").json()
    old = {url: client.get(url).headers["ETag"] for client, url in urls}
    assert alice.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "v2"}).status_code == 200
    for client, url in urls:
        r = client.get(url, headers={"If-None-Match": old[url]})
        assert r.status_code == 200 and r.headers["ETag"] != old[url], url


def test_a_save_that_changes_nothing_makes_no_version_and_no_event(shared_server: Server) -> None:
    server = shared_server
    alice, name = owner(server)
    pool = new_pool()
    balancer = as_token(server, make_token(server, pool))
    gid, members = make_group(server, alice, name, listener={"port": 18310, "pool": pool})
    url = f"/api/mgmt/connectors/{gid}"
    first = alice.get(url)
    cursor = cursor_of(balancer, pool)
    version = balancer.get(f"/api/admin/pools/{pool}/groups/{gid}").json()["version"]
    doc = first.json()
    same = [
        alice.put(url, json=doc),
        alice.put(url, json={k: v for k, v in doc.items() if k != "listener"}),  # absent keeps it
        alice.put(f"{url}/members", json={"members": doc["connectorGroup"]["members"]}),
        alice.put(f"{url}/authuser", json={"authUser": []}),
        alice.post(f"{url}/authuser", json={"authUser": []}),
        server.admin.put(f"/api/mgmt/connectors/{members[0]}",
                         json={"owner": name, "label": "m0", "endpoint": "127.0.0.1:9200"}),
    ]
    for r in same:
        assert r.status_code == 200, r.text
    now = alice.get(url)
    assert now.headers["ETag"] == first.headers["ETag"] and now.json() == doc
    feed = balancer.get(f"/api/admin/pools/{pool}/changes", params={"cursor": cursor}).json()
    assert feed["changes"] == [] and feed["resync"] is False
    assert balancer.get(f"/api/admin/pools/{pool}/groups/{gid}").json()["version"] == version
    # a change of authUser alone is a new revision, but nothing a balancer serves: no change in the feed
    _, bob_name = owner(server)
    shared = alice.put(f"{url}/authuser", json={"authUser": [bob_name]})
    assert shared.status_code == 200 and shared.headers["ETag"] != first.headers["ETag"], shared.text
    assert balancer.get(f"/api/admin/pools/{pool}/changes", params={"cursor": cursor}).json()["changes"] == []
    # and a real change does both
    assert alice.put(url, json={**doc, "label": "changed"}).headers["ETag"] != first.headers["ETag"]
    feed = balancer.get(f"/api/admin/pools/{pool}/changes", params={"cursor": cursor}).json()
    assert [(c["connectorID"], c["state"]) for c in feed["changes"]] == [(gid, "changed")]
    assert feed["changes"][0]["version"] > version
