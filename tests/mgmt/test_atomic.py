"""A mutating request is one write transaction: its checks (If-Match, ownership, group rules) and its
write cannot be split by another process's write (a CLI ``connectors`` command on the same store)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.mgmt.errors import ApiFailure
from balancedesk.core.mgmt.server import load_demo, open_store
from balancedesk.core.mgmt.service import Caller, Service

ADMIN = Caller(name="admin", is_admin=True)


def test_group_checks_run_inside_the_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path)
    load_demo(store)
    service = Service(store)
    group_id = next(c for c in service.list_connectors(ADMIN, details=True, accessible=False)["connectors"]
                    if "connectorGroup" in c)["connectorID"]
    stored = service.get_connector(ADMIN, group_id)
    seen: list[str] = []
    check = Service._check_group

    def check_while_another_process_writes(self: Service, *args: Any, **kwargs: Any) -> None:
        other = sqlite3.connect(store.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # what a CLI write would do right now
            seen.append("other writer got in")
        except sqlite3.OperationalError as exc:
            seen.append(str(exc))
        finally:
            other.close()
        check(self, *args, **kwargs)

    monkeypatch.setattr(Service, "_check_group", check_while_another_process_writes)
    body = stored.connector.to_json()
    body["label"] = "renamed"
    service.put_connector(ADMIN, group_id, body, stored.etag)
    assert seen == ["database is locked"]
    assert service.get_connector(ADMIN, group_id).connector.label == "renamed"


def test_a_rejected_request_rolls_back_everything(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    load_demo(store)
    service = Service(store)
    group_id = next(c for c in service.list_connectors(ADMIN, details=True, accessible=False)["connectors"]
                    if "connectorGroup" in c)["connectorID"]
    before = service.get_connector(ADMIN, group_id)
    body = before.connector.to_json()
    body["connectorGroup"]["members"][1]["sequence"] = body["connectorGroup"]["members"][0]["sequence"]
    with pytest.raises(ApiFailure) as failure:
        service.put_connector(ADMIN, group_id, body, before.etag)
    assert failure.value.status == 400
    assert not store.db.in_transaction
    assert service.get_connector(ADMIN, group_id).etag == before.etag
