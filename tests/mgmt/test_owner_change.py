"""An Administrator can hand a connector or a group to another user (the GUI's Owner field); the group
rules then apply to the new owner. Nobody else can, and nothing changes when a rule is broken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.mgmt.errors import ApiFailure
from balancedesk.core.mgmt.server import load_demo, open_store
from balancedesk.core.mgmt.service import Caller, Service

ADMIN = Caller(name="admin", is_admin=True)
ALICE = Caller(name="alice", is_admin=False)


@pytest.fixture
def service(tmp_path: Path) -> Service:
    store = open_store(tmp_path)
    load_demo(store)
    svc = Service(store)
    svc.add_user(None, {"name": "admin", "password": "admin-password-1", "role": "Administrator"}, pw_hash="x")
    svc.add_user(None, {"name": "alice", "password": "alice-password-1", "role": "User"}, pw_hash="x")
    return svc


def register(svc: Service, label: str, owner: str) -> str:
    out: dict[str, Any] = svc.register_connector(ADMIN, {"label": label, "owner": owner, "endpoint": "127.0.0.1:9"})
    return str(out["connectorID"])


def demo_group(svc: Service) -> str:
    rows = svc.list_connectors(ADMIN, details=True, accessible=False)["connectors"]
    return str(next(c for c in rows if "connectorGroup" in c)["connectorID"])


def put(svc: Service, caller: Caller, cid: str, **changes: Any) -> Any:
    stored = svc.get_connector(ADMIN, cid)
    body = stored.connector.to_json()
    body.update(changes)
    return svc.put_connector(caller, cid, body, stored.etag)


def failure(call: Any) -> ApiFailure:
    with pytest.raises(ApiFailure) as info:
        call()
    return info.value


def test_admin_hands_a_free_connector_to_another_user(service: Service) -> None:
    cid = register(service, "spare", "admin")
    assert put(service, ADMIN, cid, owner="alice").connector.owner == "alice"
    assert service.get_connector(ALICE, cid).connector.owner == "alice"


def test_group_to_a_new_owner_needs_members_of_that_owner(service: Service) -> None:
    gid = demo_group(service)
    before = service.get_connector(ADMIN, gid)
    err = failure(lambda: put(service, ADMIN, gid, owner="alice"))
    assert err.status == 400
    members = {m.member_id for m in before.connector.connector_group.members}  # type: ignore[union-attr]
    assert {p.member_id for p in err.problems} == members
    assert all("not to the group owner alice" in p.message for p in err.problems)
    assert service.get_connector(ADMIN, gid).etag == before.etag  # nothing changed

    a1, a2 = register(service, "a1", "alice"), register(service, "a2", "alice")
    group = before.connector.to_json()["connectorGroup"]
    group["members"] = [{"memberID": a1, "sequence": 1, "weight": 2}, {"memberID": a2, "sequence": 2, "weight": 1}]
    moved = put(service, ADMIN, gid, owner="alice", connectorGroup=group)
    assert moved.connector.owner == "alice"
    assert service.get_connector(ALICE, gid).connector.owner == "alice"


def test_only_an_administrator_changes_an_owner(service: Service) -> None:
    cid = register(service, "mine", "alice")
    err = failure(lambda: put(service, ALICE, cid, owner="admin"))
    assert err.status == 403 and err.problems[0].field == "owner"
    assert service.get_connector(ADMIN, cid).connector.owner == "alice"


def test_unknown_owner_and_grouped_connector_are_refused(service: Service) -> None:
    cid = register(service, "spare", "admin")
    err = failure(lambda: put(service, ADMIN, cid, owner="ghost"))
    assert err.status == 400 and "ghost is not a known user" in err.problems[0].message
    gid = demo_group(service)
    member = service.get_connector(ADMIN, gid).connector.connector_group.members[0].member_id  # type: ignore[union-attr]
    err = failure(lambda: put(service, ADMIN, member, owner="alice"))
    assert err.status == 400 and f"member of group {gid}" in err.problems[0].message
    assert service.get_connector(ADMIN, member).connector.owner == "admin"
