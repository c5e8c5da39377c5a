"""The seed's sample: PUT verbatim to a group gives back the seed's sample response (with our connectorID)."""

from __future__ import annotations

import json

from mgmt_helpers import Server

SAMPLE_REQUEST = """
{
"owner": "Rick",
"label": "DevGroup1",
"connectorGroup": {
"connectionTimeout": "15",
"retryDelay": "120",
"loadBalancing": "Round Robin",
"members": [
{
"memberID": "00000000-0000-0000-0011-000000000010",
"sequence": 3,
"weight": 1
},
{
"memberID": "00021111-0011-0011-0022-000000222200",
"sequence": 2,
"weight": 2
},
{
"memberID": "00031313-0011-0011-0033-000000333300",
"sequence": 1,
"weight": 3
}
]
},
"authUser": [
"Joe",
"Fred",
"Tom"
]
}
"""

SAMPLE_RESPONSE = """
{
"connectorID": "12345678-90ab-cdef-ghij-kl123pqrstuv",
"owner": "Rick",
"label": "DevGroup1",
"connectorGroup": {
"connectionTimeout": 15,
"retryDelay": 120,
"loadBalancing": "Round Robin",
"members": [
{
"memberID": "00000000-0000-0000-0011-000000000010",
"sequence": 3,
"weight": 1
},
{
"memberID": "00021111-0011-0011-0022-000000222200",
"sequence": 2,
"weight": 2
},
{
"memberID": "00031313-0011-0011-0033-000000333300",
"sequence": 1,
"weight": 3
}
]
},
"authUser": [
"Joe",
"Fred",
"Tom"
]
}
"""

MEMBER_IDS = [m["memberID"] for m in json.loads(SAMPLE_REQUEST)["connectorGroup"]["members"]]


def _setup(server: Server) -> None:
    for name in ("Rick", "Joe", "Fred", "Tom"):
        server.add_user(name)
    for i, mid in enumerate(MEMBER_IDS):
        server.register(f"opc-{i}", "Rick", port=9101 + i, connector_id=mid)


def test_seed_put_verbatim_gives_the_seed_response(server: Server) -> None:
    _setup(server)
    rick = server.as_user("Rick")
    created = rick.post(
        "/api/mgmt/connectors",
        json={
            "owner": "Rick",
            "label": "start",
            "connectorGroup": {"members": [{"memberID": MEMBER_IDS[0], "sequence": 1}]},
        },
    )
    assert created.status_code == 201, created.text
    group_id = created.json()["connectorID"]

    put = rick.put(
        f"/api/mgmt/connectors/{group_id}", content=SAMPLE_REQUEST, headers={"Content-Type": "application/json"}
    )

    assert put.status_code == 200, put.text
    expected = {**json.loads(SAMPLE_RESPONSE), "connectorID": group_id}
    assert put.json() == expected
    assert list(put.json()) == list(expected)  # same field order as the sample
    assert put.headers["ETag"]
    got = rick.get(f"/api/mgmt/connectors/{group_id}")
    assert got.json() == expected
    assert got.headers["ETag"] == put.headers["ETag"]


def test_seed_post_verbatim_creates_the_group(server: Server) -> None:
    _setup(server)
    rick = server.as_user("Rick")

    r = rick.post("/api/mgmt/connectors", content=SAMPLE_REQUEST, headers={"Content-Type": "application/json"})

    assert r.status_code == 201, r.text
    body = r.json()
    assert body == {**json.loads(SAMPLE_RESPONSE), "connectorID": body["connectorID"]}
    assert body["connectorID"] != "12345678-90ab-cdef-ghij-kl123pqrstuv"
    ids = rick.get("/api/mgmt/connectors").json()["connectorIDs"]
    assert body["connectorID"] in ids and set(MEMBER_IDS) <= set(ids)
