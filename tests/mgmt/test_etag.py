"""ETag on every resource; If-Match on PUT/DELETE so two admins cannot silently overwrite each other."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from mgmt_helpers import Server, error_of


def _group(server: Server) -> tuple[httpx.Client, str, list[str]]:
    name = f"alice{uuid.uuid4().hex[:6]}"
    alice = server.add_user(name)
    a = [server.register(f"a{i}", name, port=9101 + i) for i in range(3)]
    r = alice.post(
        "/api/mgmt/connectors", json={"label": "g", "connectorGroup": {"members": [{"memberID": a[0], "sequence": 1}]}}
    )
    assert r.status_code == 201, r.text
    return alice, r.json()["connectorID"], a


def test_two_concurrent_puts_with_the_same_etag_exactly_one_wins(shared_server: Server) -> None:
    server = shared_server
    alice, gid, _ = _group(server)
    url = f"/api/mgmt/connectors/{gid}"

    async def race(round_: int) -> list[httpx.Response]:
        current = alice.get(url)
        etag, body = current.headers["ETag"], current.json()
        async with (
            httpx.AsyncClient(base_url=server.url, auth=alice.auth, timeout=15) as one,
            httpx.AsyncClient(base_url=server.url, auth=alice.auth, timeout=15) as two,
        ):
            return list(
                await asyncio.gather(
                    one.put(url, json={**body, "label": f"one-{round_}"}, headers={"If-Match": etag}),
                    two.put(url, json={**body, "label": f"two-{round_}"}, headers={"If-Match": etag}),
                )
            )

    for round_ in range(5):
        results = asyncio.run(race(round_))
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200, 412], [r.text for r in results]
        winner = next(r for r in results if r.status_code == 200)
        loser = next(r for r in results if r.status_code == 412)
        assert "changed by someone else" in error_of(loser)["message"]["value"]
        now = alice.get(url)
        assert now.json()["label"] == winner.json()["label"]
        assert now.headers["ETag"] == winner.headers["ETag"] == loser.headers["ETag"]


def test_stale_if_match_is_refused_everywhere_and_changes_nothing(shared_server: Server) -> None:
    server = shared_server
    alice, gid, a = _group(server)
    url = f"/api/mgmt/connectors/{gid}"
    first = alice.get(url)
    stale = first.headers["ETag"]
    assert alice.get(f"{url}/members").headers["ETag"] == stale
    assert alice.get(f"{url}/authuser").headers["ETag"] == stale
    fresh = alice.put(url, json={**first.json(), "label": "v2"}, headers={"If-Match": stale})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != stale

    members = {"members": [{"memberID": a[1], "sequence": 1}]}
    for r in (
        alice.put(url, json={**first.json(), "label": "v3"}, headers={"If-Match": stale}),
        alice.delete(url, headers={"If-Match": stale}),
        alice.put(f"{url}/members", json=members, headers={"If-Match": stale}),
        alice.post(f"{url}/members", json=members, headers={"If-Match": stale}),
        alice.put(f"{url}/authuser", json={"authUser": []}, headers={"If-Match": stale}),
    ):
        assert r.status_code == 412, r.text
        error_of(r)
    now = alice.get(url)
    assert now.json()["label"] == "v2" and now.headers["ETag"] == fresh.headers["ETag"]
    # the current ETag (or *) is accepted
    ok = alice.put(f"{url}/members", json=members, headers={"If-Match": now.headers["ETag"]})
    assert ok.status_code == 200, ok.text
    assert alice.delete(url, headers={"If-Match": "*"}).status_code == 200
