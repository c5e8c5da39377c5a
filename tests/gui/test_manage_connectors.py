"""The Connectors view against a real ``balancedesk serve --demo`` on 127.0.0.1: connectors registered,
edited and deleted in the GUI are seen through the API (httpx against the same server); a bad endpoint is
shown under its field and nothing is sent; a change made elsewhere since the form was filled is "changed on
the server" with Reload; the API's field-level refusal is shown under its field; a member of a group lists
its group and is not deleted; a plain user edits its own connectors but registers nothing. The model passes
qtmodeltester."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.core.mgmt.server import DEMO_GROUP_ID, demo_id
from balancedesk.core.model import LABEL_MAX, Problem
from balancedesk.gui.manage.connectors import ConnectorsView
from balancedesk.gui.manage.forms import sentence
from balancedesk.gui.manage.models import CONNECTOR_COL_GROUP, NOT_IN_GROUP
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.gui.manage_support import LONG, Sent, api, confirm_with, manage

Run = Callable[..., Any]


@pytest.fixture
def admin(mgmt_server: Any, arun: Run) -> Iterator[MgmtClient]:
    client = MgmtClient(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    yield client
    arun(client.aclose())


def _row_of(view: ConnectorsView, cid: str) -> int:
    return next(i for i, r in enumerate(view.model.rows) if r.connector_id == cid)


def _choose(qtbot: QtBot, view: ConnectorsView, cid: str) -> None:
    view.table.selectRow(_row_of(view, cid))
    qtbot.waitUntil(lambda: view.editing is not None and view.editing[0].connector_id == cid, timeout=LONG)


def _submit(qtbot: QtBot, view: ConnectorsView) -> None:
    qtbot.mouseClick(view.submit_button, Qt.MouseButton.LeftButton)


def test_register_edit_delete_seen_through_the_api(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, qtmodeltester: Any,
    arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    win = manage(qtbot, admin, user="admin", is_admin=True)
    view = win.connectors
    try:
        qtmodeltester.check(view.model)
        # the demo's four connectors, each listed with the group it is a member of
        assert len(view.rows) == 4
        group = http.get(f"/api/mgmt/connectors/{DEMO_GROUP_ID}").json()
        members = {m["memberID"] for m in group["connectorGroup"]["members"]}
        for r in view.rows:
            shown = view.model.index(_row_of(view, r.connector_id), CONNECTOR_COL_GROUP).data()
            assert shown == (group["label"] if r.connector_id in members else NOT_IN_GROUP)
        assert f"{len(members)} in a group · {4 - len(members)} free" in view.summary.text()

        # register
        qtbot.keyClicks(view.label_edit, "PACS archive")
        qtbot.keyClicks(view.endpoint_edit, "10.1.2.3:4242")
        with qtbot.waitSignal(view.registered, timeout=LONG) as sig:
            _submit(qtbot, view)
        cid = sig.args[0]
        seen = http.get(f"/api/admin/connectors/{cid}").json()
        assert (seen["label"], seen["endpoint"], seen["owner"], seen["groupID"]) == (
            "PACS archive", "10.1.2.3:4242", "admin", None)
        assert view.chosen() is not None and view.chosen().connector_id == cid  # type: ignore[union-attr]
        assert view.model.index(_row_of(view, cid), CONNECTOR_COL_GROUP).data() == NOT_IN_GROUP
        qtmodeltester.check(view.model)

        # edit its label and endpoint
        _choose(qtbot, view, cid)
        assert view.submit_button.text() == "Save changes"
        view.label_edit.setText("PACS archive (new)")
        view.endpoint_edit.setText("[2001:db8::7]:104")
        with qtbot.waitSignal(view.saved, timeout=LONG):
            _submit(qtbot, view)
        seen = http.get(f"/api/admin/connectors/{cid}").json()
        assert (seen["label"], seen["endpoint"]) == ("PACS archive (new)", "[2001:db8::7]:104")
        assert view.model.index(_row_of(view, cid), 0).data() == "PACS archive (new)"

        # delete it: asked first; a "no" changes nothing
        asked: list[str] = []
        view.confirm = confirm_with(False, asked)
        assert arun(view.delete()) is False
        assert asked == ["PACS archive (new)"] and http.get(f"/api/admin/connectors/{cid}").status_code == 200
        view.confirm = confirm_with(True, asked)
        with qtbot.waitSignal(view.deleted, timeout=LONG):
            qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)
        assert http.get(f"/api/admin/connectors/{cid}").status_code == 404
        assert all(r.connector_id != cid for r in view.rows)
        assert view.submit_button.text() == "Register"  # back to an empty form
    finally:
        arun(win.aclose())
        http.close()


@pytest.mark.parametrize(("endpoint", "says"), [
    ("10.1.2.3", "Endpoint must be host:port (IPv6 as [addr]:port), got '10.1.2.3'."),
    ("10.1.2.3:70000", "Endpoint port must be 1-65535, got 70000."),
])
def test_a_bad_endpoint_is_shown_under_its_field_and_nothing_is_sent(
    endpoint: str, says: str, qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient,
    arun: Run,
) -> None:
    sent = Sent()
    sent.attach(admin)
    win = manage(qtbot, admin, user="admin", is_admin=True)
    view = win.connectors
    try:
        qtbot.keyClicks(view.label_edit, "x" * (LABEL_MAX + 1))
        qtbot.keyClicks(view.endpoint_edit, endpoint)
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _submit(qtbot, view)
        assert view.errors.text("endpoint") == says  # the API's own words (the same rule)
        assert view.errors.text("label") == f"Label is required: a name of 1-{LABEL_MAX} characters."
        assert view.errors["endpoint"].isVisibleTo(win)
        assert not view.refusal.isVisibleTo(win)
        assert sent.writes() == []  # nothing was sent
        # the API refuses the same body with the same words
        http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
        r = http.post("/api/admin/connectors", json={"label": "x", "owner": "admin", "endpoint": endpoint})
        http.close()
        assert r.status_code == 400
        assert [sentence(Problem(p["field"], p["message"])) for p in r.json()["error"]["problems"]] == [says]
        # fixed, the message goes and the connector is registered
        view.label_edit.setText("ok")
        view.endpoint_edit.setText("127.0.0.1:9")
        with qtbot.waitSignal(view.registered, timeout=LONG):
            _submit(qtbot, view)
        assert view.errors.text("endpoint") == "" and not view.errors["endpoint"].isVisibleTo(win)
        assert len(sent.writes()) == 1
    finally:
        arun(win.aclose())


def test_a_change_made_elsewhere_is_changed_on_the_server_with_reload(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    win = manage(qtbot, admin, user="admin", is_admin=True)
    view = win.connectors
    cid = demo_id(2)
    try:
        _choose(qtbot, view, cid)
        # someone else renames it after the form was filled
        r = http.get(f"/api/mgmt/connectors/{cid}")
        body = {**r.json(), "label": "renamed elsewhere"}
        assert http.put(f"/api/mgmt/connectors/{cid}", json=body,
                        headers={"If-Match": r.headers["ETag"]}).status_code == 200
        view.endpoint_edit.setText("127.0.0.1:9999")
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _submit(qtbot, view)
        assert view.refusal.isVisibleTo(win) and "changed on the server" in view.refusal.text()
        assert view.reload_connector.isVisibleTo(win)
        seen = http.get(f"/api/admin/connectors/{cid}").json()
        assert (seen["label"], seen["endpoint"]) == ("renamed elsewhere", "127.0.0.1:9102")  # nothing overwritten
        # Reload shows their version; saving again then works
        qtbot.mouseClick(view.reload_connector, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: view.label_edit.text() == "renamed elsewhere", timeout=LONG)
        assert not view.refusal.isVisibleTo(win) and view.endpoint_edit.text() == "127.0.0.1:9102"
        view.endpoint_edit.setText("127.0.0.1:9999")
        with qtbot.waitSignal(view.saved, timeout=LONG):
            _submit(qtbot, view)
        seen = http.get(f"/api/admin/connectors/{cid}").json()
        assert (seen["label"], seen["endpoint"]) == ("renamed elsewhere", "127.0.0.1:9999")
    finally:
        arun(win.aclose())
        http.close()


def test_the_apis_field_refusal_is_shown_under_the_field_and_a_member_is_not_deleted(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    assert http.post("/api/admin/users", json={"name": "alice", "password": "alice-pw-1"}).status_code == 201
    win = manage(qtbot, admin, user="admin", is_admin=True)
    view = win.connectors
    cid = demo_id(3)
    try:
        assert view.owner_combo.findText("alice") >= 0  # the owners offered are the server's users
        _choose(qtbot, view, cid)
        view.owner_combo.setCurrentText("alice")  # a group member cannot change owner: the API says why
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _submit(qtbot, view)
        owner_says = view.errors.text("owner")
        assert owner_says.startswith(f"Owner connector {cid} is a member of group {DEMO_GROUP_ID}")
        assert "remove it from that group first" in owner_says and view.errors["owner"].isVisibleTo(win)
        assert not view.refusal.isVisibleTo(win)  # under its field, not a banner
        assert http.get(f"/api/admin/connectors/{cid}").json()["owner"] == "admin"

        asked: list[str] = []
        view.confirm = confirm_with(True, asked)
        assert arun(view.delete()) is False
        assert asked == [] and "is a member of the group" in view.refusal.text()
        assert http.get(f"/api/admin/connectors/{cid}").status_code == 200
    finally:
        arun(win.aclose())
        http.close()


def test_a_user_edits_its_own_connectors_and_registers_none(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    assert http.post("/api/admin/users", json={"name": "bob", "password": "bob-pw-123"}).status_code == 201
    mine = http.post("/api/admin/connectors", json={"label": "bob's", "owner": "bob",
                                                    "endpoint": "127.0.0.1:7"}).json()["connectorID"]
    bob = MgmtClient(mgmt_server.url, "bob", "bob-pw-123")
    win = manage(qtbot, bob, user="bob", is_admin=False)
    view = win.connectors
    try:
        assert [r.connector_id for r in view.rows] == [mine]  # only its own
        assert not view.submit_button.isEnabled() and not view.label_edit.isEnabled()  # nothing to register
        assert "needs the Administrator role" in view.role_note.text()
        _choose(qtbot, view, mine)
        assert view.label_edit.isEnabled() and not view.owner_combo.isEnabled() and not view.delete_button.isEnabled()
        view.label_edit.setText("bob's archive")
        with qtbot.waitSignal(view.saved, timeout=LONG):
            _submit(qtbot, view)
        assert http.get(f"/api/admin/connectors/{mine}").json()["label"] == "bob's archive"
    finally:
        arun(win.aclose())
        arun(bob.aclose())
        http.close()
