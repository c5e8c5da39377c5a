"""Every documented rule, each refused with 400, a message naming the field (and member), and nothing changed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from mgmt_helpers import Server, error_of


@dataclass
class World:
    al: str  # user names, unique per test (the server is shared by this module)
    bo: str
    ca: str
    alice: httpx.Client
    a: list[str]  # alice's plain connectors: a[0], a[1] in group g1; a[2], a[3] free
    b1: str  # bob's connector
    g1: str  # alice's group
    g2: str  # alice's second group (a[2])


def _world(server: Server) -> World:
    sfx = uuid.uuid4().hex[:6]
    al, bo, ca = f"alice{sfx}", f"bob{sfx}", f"carol{sfx}"
    alice = server.add_user(al)
    server.add_user(bo)
    server.add_user(ca)
    a = [server.register(f"a{i}", al, port=9101 + i) for i in range(5)]
    b1 = server.register("b1", bo, port=9200)
    g1 = alice.post(
        "/api/mgmt/connectors",
        json={
            "owner": al,
            "label": "g1",
            "connectorGroup": {"members": [{"memberID": a[0], "sequence": 1}, {"memberID": a[1], "sequence": 2}]},
        },
    )
    assert g1.status_code == 201, g1.text
    g2 = alice.post(
        "/api/mgmt/connectors",
        json={"owner": al, "label": "g2", "connectorGroup": {"members": [{"memberID": a[4], "sequence": 1}]}},
    )
    assert g2.status_code == 201, g2.text
    return World(al, bo, ca, alice, a, b1, g1.json()["connectorID"], g2.json()["connectorID"])


def _group(w: World, members: list[dict[str, Any]], **group: Any) -> dict[str, Any]:
    return {"owner": w.al, "label": "g1", "connectorGroup": {**group, "members": members}, "authUser": []}


def _refused(w: World, response: httpx.Response, field: str, words: str, member: str | None = None) -> None:
    assert response.status_code == 400, response.text
    err = error_of(response)
    matching = [p for p in err["problems"] if p["field"] == field]
    assert matching, f"no problem for {field}: {err['problems']}"
    assert any(words in p["message"] for p in matching), matching
    if member is not None:
        assert any(p.get("memberID") == member for p in matching), matching
        assert member in err["message"]["value"]
    assert field in err["message"]["value"]


def test_each_group_rule_is_refused_with_its_own_message_and_changes_nothing(shared_server: Server) -> None:
    w = _world(shared_server)
    a = w.a
    before = w.alice.get(f"/api/mgmt/connectors/{w.g1}")
    url = f"/api/mgmt/connectors/{w.g1}"

    def put(body: Any) -> httpx.Response:
        return w.alice.put(url, json=body)

    # a connector in only one group
    _refused(
        w,
        put(_group(w, [{"memberID": a[4], "sequence": 1}])),
        "connectorGroup.members[0].memberID",
        f"already belongs to group {w.g2}",
        a[4],
    )
    # ... and only once in it
    _refused(
        w,
        put(_group(w, [{"memberID": a[2], "sequence": 1}, {"memberID": a[2], "sequence": 2}])),
        "connectorGroup.members[1].memberID",
        "appears more than once",
        a[2],
    )
    # members registered to the group owner
    _refused(
        w,
        put(_group(w, [{"memberID": w.b1, "sequence": 1}])),
        "connectorGroup.members[0].memberID",
        f"registered to {w.bo}, not to the group owner {w.al}",
        w.b1,
    )
    # no nested groups
    _refused(
        w,
        put(_group(w, [{"memberID": w.g2, "sequence": 1}])),
        "connectorGroup.members[0].memberID",
        "nested groups are not supported",
        w.g2,
    )
    # unique sequence
    _refused(
        w,
        put(_group(w, [{"memberID": a[2], "sequence": 5}, {"memberID": a[3], "sequence": 5}])),
        "connectorGroup.members[1].sequence",
        "sequence 5 is used by more than one member",
        a[3],
    )
    # weight a positive integer
    _refused(
        w,
        put(_group(w, [{"memberID": a[2], "sequence": 1, "weight": 0}])),
        "connectorGroup.members[0].weight",
        "weight must be a whole number from 1 to 256, got 0",
        a[2],
    )
    _refused(
        w,
        put(_group(w, [{"memberID": a[2], "sequence": 1, "weight": 257}])),
        "connectorGroup.members[0].weight",
        "weight must be a whole number from 1 to 256, got 257",
        a[2],
    )
    _refused(
        w,
        put(_group(w, [{"memberID": a[2], "sequence": 1, "weight": 1.5}])),
        "connectorGroup.members[0].weight",
        "whole number",
        a[2],
    )
    # unregistered member
    _refused(
        w,
        put(_group(w, [{"memberID": "nope", "sequence": 1}])),
        "connectorGroup.members[0].memberID",
        "is not registered",
        "nope",
    )
    # members required for a group
    _refused(w, put({"owner": w.al, "label": "g1", "authUser": []}), "connectorGroup", "is required for a group")
    _refused(
        w,
        put({"owner": w.al, "label": "g1", "connectorGroup": {}, "authUser": []}),
        "connectorGroup.members",
        "is required",
    )
    _refused(w, put(_group(w, [])), "connectorGroup.members", "at least one member")
    # unknown loadBalancing
    _refused(
        w,
        put(_group(w, [{"memberID": a[0], "sequence": 1}], loadBalancing="Random")),
        "connectorGroup.loadBalancing",
        'must be "Round Robin" or absent',
    )
    # timeouts must be whole seconds
    _refused(
        w,
        put(_group(w, [{"memberID": a[0], "sequence": 1}], connectionTimeout="soon")),
        "connectorGroup.connectionTimeout",
        "whole number of seconds",
    )
    _refused(
        w,
        put(_group(w, [{"memberID": a[0], "sequence": 1}], retryDelay=-1)),
        "connectorGroup.retryDelay",
        "0 (never) or a positive number",
    )
    # unknown authUser names
    body = _group(w, [{"memberID": a[0], "sequence": 1}])
    body["authUser"] = [w.ca, "mallory"]
    _refused(w, put(body), "authUser[1]", "no user named 'mallory'")
    # unknown fields
    _refused(w, put({**_group(w, [{"memberID": a[0], "sequence": 1}]), "colour": "red"}), "colour", "not a known field")

    after = w.alice.get(url)
    assert after.json() == before.json()
    assert after.headers["ETag"] == before.headers["ETag"]
    members = w.alice.get(f"/api/mgmt/connectors/{w.g2}/members").json()["members"]
    assert [m["memberID"] for m in members] == [a[4]]


def test_members_are_refused_on_a_plain_connector(shared_server: Server) -> None:
    w = _world(shared_server)
    url = f"/api/mgmt/connectors/{w.a[3]}"
    plain = w.alice.get(url).json()
    body = {**plain, "connectorGroup": {"members": [{"memberID": w.a[2], "sequence": 1}]}}
    _refused(w, w.alice.put(url, json=body), "connectorGroup", "plain connector and cannot have members")
    r = w.alice.get(f"{url}/members")
    assert r.status_code == 400 and "not a group" in error_of(r)["message"]["value"]
    renamed = w.alice.put(url, json={**plain, "label": "renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {**plain, "label": "renamed"}


def test_timeouts_accept_numbers_or_numeric_strings_and_default_to_15_and_120(shared_server: Server) -> None:
    w = _world(shared_server)
    url = f"/api/mgmt/connectors/{w.g1}"
    members = [{"memberID": w.a[0], "sequence": 1}]

    defaults = w.alice.put(url, json=_group(w, members))
    assert defaults.status_code == 200, defaults.text
    group = defaults.json()["connectorGroup"]
    assert (group["connectionTimeout"], group["retryDelay"]) == (15, 120)
    assert "loadBalancing" not in group  # absent: sequence failover
    assert group["members"] == [{"memberID": w.a[0], "sequence": 1, "weight": 1}]  # weight defaults to 1

    never = w.alice.put(url, json=_group(w, members, connectionTimeout="0", retryDelay=0, loadBalancing=None))
    assert never.status_code == 200, never.text
    assert (never.json()["connectorGroup"]["connectionTimeout"], never.json()["connectorGroup"]["retryDelay"]) == (0, 0)

    numbers = w.alice.put(url, json=_group(w, members, connectionTimeout=30, retryDelay="45"))
    assert numbers.json()["connectorGroup"]["connectionTimeout"] == 30
    assert numbers.json()["connectorGroup"]["retryDelay"] == 45


def test_invalid_json_is_400_with_its_own_code(shared_server: Server) -> None:
    w = _world(shared_server)
    r = w.alice.put(f"/api/mgmt/connectors/{w.g1}", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "222210001" and "Invalid JSON" in err["message"]["value"]
    r = w.alice.post("/api/mgmt/connectors", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and error_of(r)["problems"][0]["field"] == "body"


def test_create_group_rules(shared_server: Server) -> None:
    w = _world(shared_server)
    ids_before = w.alice.get("/api/mgmt/connectors").json()["connectorIDs"]
    # a member already in a group is not added, and no group is created
    r = w.alice.post(
        "/api/mgmt/connectors",
        json={
            "label": "g3",
            "connectorGroup": {"members": [{"memberID": w.a[2], "sequence": 1}, {"memberID": w.a[0], "sequence": 2}]},
        },
    )
    _refused(w, r, "connectorGroup.members[1].memberID", f"already belongs to group {w.g1}", w.a[0])
    # a group needs members
    r = w.alice.post("/api/mgmt/connectors", json={"owner": w.al, "label": "g3"})
    _refused(w, r, "connectorGroup", "is required")
    # a user creates groups only for themselves
    r = w.alice.post(
        "/api/mgmt/connectors",
        json={"owner": w.bo, "label": "x", "connectorGroup": {"members": [{"memberID": w.b1, "sequence": 1}]}},
    )
    assert r.status_code == 403 and "only for yourself" in error_of(r)["message"]["value"]
    assert w.alice.get("/api/mgmt/connectors").json()["connectorIDs"] == ids_before


def test_members_subresource(shared_server: Server) -> None:
    w = _world(shared_server)
    url = f"/api/mgmt/connectors/{w.g1}/members"
    got = w.alice.get(url)
    assert got.status_code == 200 and got.headers["ETag"]
    assert [m["memberID"] for m in got.json()["members"]] == [w.a[0], w.a[1]]

    added = w.alice.post(url, json={"members": [{"memberID": w.a[2], "sequence": 3, "weight": 4}]})
    assert added.status_code == 200, added.text
    assert added.json()["members"][-1] == {"memberID": w.a[2], "sequence": 3, "weight": 4}
    # adding one already there, or with a taken sequence, is refused
    _refused(
        w,
        w.alice.post(url, json={"members": [{"memberID": w.a[2], "sequence": 9}]}),
        "members[0].memberID",
        "already a member of this group",
        w.a[2],
    )
    _refused(
        w,
        w.alice.post(url, json={"members": [{"memberID": w.a[3], "sequence": 1}]}),
        "members[0].sequence",
        "sequence 1 is used by more than one member",
        w.a[3],
    )
    _refused(
        w,
        w.alice.put(url, json={"members": [{"memberID": w.a[4], "sequence": 1}]}),
        "members[0].memberID",
        "already belongs to group",
        w.a[4],
    )

    replaced = w.alice.put(url, json={"members": [{"memberID": w.a[3], "sequence": 1}]})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {"members": [{"memberID": w.a[3], "sequence": 1, "weight": 1}]}
    # the old members are free again: they can join another group
    joined = w.alice.post(
        f"/api/mgmt/connectors/{w.g2}/members", json={"members": [{"memberID": w.a[0], "sequence": 2}]}
    )
    assert joined.status_code == 200, joined.text

    # deprecated DELETE with a body: cannot remove every member; unknown members refused
    _refused(w, w.alice.request("DELETE", url, json={"members": [w.a[3]]}), "members", "delete the group instead")
    _refused(w, w.alice.request("DELETE", url, json={"members": [w.a[1]]}), "members[0]", "not a member", w.a[1])
    w.alice.post(url, json={"members": [{"memberID": w.a[1], "sequence": 2}]})
    removed = w.alice.request("DELETE", url, json={"members": [w.a[3]]})
    assert removed.status_code == 200 and removed.json() == {
        "members": [{"memberID": w.a[1], "sequence": 2, "weight": 1}]
    }


def test_authuser_subresource_is_all_or_nothing(shared_server: Server) -> None:
    w = _world(shared_server)
    url = f"/api/mgmt/connectors/{w.g1}/authuser"
    assert w.alice.get(url).json() == {"authUser": []}
    assert w.alice.post(url, json={"authUser": [w.bo]}).json() == {"success": True}
    _refused(w, w.alice.post(url, json={"authUser": [w.ca, "nobody"]}), "authUser[1]", "no user named 'nobody'")
    assert w.alice.get(url).json() == {"authUser": [w.bo]}  # carol was not added
    assert w.alice.put(url, json={"authUser": [w.ca, w.bo]}).json() == {"success": True}
    assert w.alice.get(url).json() == {"authUser": [w.ca, w.bo]}
    _refused(w, w.alice.request("DELETE", url, json={"authUser": [w.bo, "ghost"]}), "authUser[1]", "no user named")
    assert w.alice.request("DELETE", url, json={"authUser": [w.bo]}).json() == {"success": True}
    assert w.alice.get(url).json() == {"authUser": [w.ca]}


def test_delete_group_frees_its_members(shared_server: Server) -> None:
    w = _world(shared_server)
    r = w.alice.delete(f"/api/mgmt/connectors/{w.g1}")
    assert r.status_code == 200 and r.json() == {"success": True}
    assert w.alice.get(f"/api/mgmt/connectors/{w.g1}").status_code == 404
    again = w.alice.post(
        f"/api/mgmt/connectors/{w.g2}/members", json={"members": [{"memberID": w.a[0], "sequence": 2}]}
    )
    assert again.status_code == 200, again.text
    plain = w.alice.delete(f"/api/mgmt/connectors/{w.a[3]}")
    assert plain.status_code == 400 and "plain connector" in error_of(plain)["message"]["value"]
