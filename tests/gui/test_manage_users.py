"""The Users view against a real ``balancedesk serve --demo`` on 127.0.0.1: a user added in the GUI (its
generated password shown once) logs in through the API; disabled in the GUI it cannot log in, enabled it
can; a reset password replaces the old one; a role change is seen through the API; the last active
Administrator cannot be disabled or demoted (the API's refusal under the field, nothing changed); a bad
name is shown under its field and nothing is sent; a non-Administrator gets a sentence and nothing is read.
The Manage menu of the main window opens the view on the connected server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from balancedesk.core.client import ApiError, MgmtClient
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.manage.forms import PASSWORD_MIN
from balancedesk.gui.manage.users import UsersView
from balancedesk.gui.manage.window import ManageWindow
from balancedesk.gui.profiles import Profile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from tests.gui.manage_support import LONG, Sent, api, manage

Run = Callable[..., Any]


@pytest.fixture
def admin(mgmt_server: Any, arun: Run) -> Iterator[MgmtClient]:
    client = MgmtClient(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    yield client
    arun(client.aclose())


def _logs_in(url: str, name: str, password: str, arun: Run) -> bool:
    async def attempt() -> bool:
        async with MgmtClient(url, name, password) as c:
            try:
                await c.whoami()
            except ApiError as exc:
                assert exc.status == 401
                return False
            return True

    return bool(arun(attempt()))


def _choose(view: UsersView, name: str) -> None:
    view.select(name)
    assert view.chosen() is not None and view.chosen().name == name  # type: ignore[union-attr]


def _click(qtbot: QtBot, button: Any) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_add_disable_enable_reset_and_change_role_seen_through_the_api(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, qtmodeltester: Any,
    arun: Run,
) -> None:
    url = mgmt_server.url
    http = api(url, mgmt_server.user, mgmt_server.password)
    win = manage(qtbot, admin, user="admin", is_admin=True, tab="users")
    view = win.users
    try:
        qtmodeltester.check(view.model)
        assert [(u.name, u.role, u.active) for u in view.users] == [("admin", "Administrator", True)]
        # added with the password left empty: one is generated and shown once, copyable
        qtbot.keyClicks(view.name_edit, "carol")
        with qtbot.waitSignal(view.added, timeout=LONG):
            _click(qtbot, view.add_button)
        dialog = view.password_dialog
        assert dialog is not None and dialog.isVisible()
        password = dialog.password_edit.text()
        assert len(password) >= PASSWORD_MIN and dialog.password_edit.isReadOnly()
        _click(qtbot, dialog.copy_button)
        assert QApplication.clipboard().text() == password
        dialog.close()
        assert http.get("/api/admin/users/carol").json() == {"name": "carol", "role": "User", "active": True}
        assert _logs_in(url, "carol", password, arun)
        qtmodeltester.check(view.model)

        # disabled in the GUI: it cannot log in; enabled: it can
        _choose(view, "carol")
        assert view.active_button.text() == "Disable"
        with qtbot.waitSignal(view.changed, timeout=LONG):
            _click(qtbot, view.active_button)
        assert http.get("/api/admin/users/carol").json()["active"] is False
        assert not _logs_in(url, "carol", password, arun)
        row = next(i for i, u in enumerate(view.model.rows) if u.name == "carol")
        assert view.model.index(row, 2).data() == "disabled"
        assert view.active_button.text() == "Enable"
        with qtbot.waitSignal(view.changed, timeout=LONG):
            _click(qtbot, view.active_button)
        assert _logs_in(url, "carol", password, arun)

        # a reset password: shown once; the old one stops working
        with qtbot.waitSignal(view.changed, timeout=LONG):
            _click(qtbot, view.reset_button)
        assert view.password_dialog is not None
        new_password = view.password_dialog.password_edit.text()
        assert new_password != password
        assert not _logs_in(url, "carol", password, arun) and _logs_in(url, "carol", new_password, arun)
        view.password_dialog.close()

        # the role
        view.change_role_combo.setCurrentText("Administrator")
        with qtbot.waitSignal(view.changed, timeout=LONG):
            _click(qtbot, view.change_role_button)
        assert http.get("/api/admin/users/carol").json()["role"] == "Administrator"
        assert "2 active Administrators" in view.summary.text()

        # a password typed when adding is not shown back
        qtbot.keyClicks(view.name_edit, "dave")
        qtbot.keyClicks(view.password_edit, "dave-pw-12")
        view.role_combo.setCurrentText("User")
        with qtbot.waitSignal(view.added, timeout=LONG):
            _click(qtbot, view.add_button)
        assert view.password_dialog is None or not view.password_dialog.isVisible()
        assert _logs_in(url, "dave", "dave-pw-12", arun)
    finally:
        arun(win.aclose())
        http.close()


def test_the_last_active_administrator_is_kept_and_the_refusal_is_under_its_field(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    win = manage(qtbot, admin, user="admin", is_admin=True, tab="users")
    view = win.users
    try:
        _choose(view, "admin")
        assert "(you)" in view.selected_box.title()
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _click(qtbot, view.active_button)
        assert view.user_errors.text("active") == (
            "Active must stay true for the last active Administrator; make another one first.")
        assert view.user_errors["active"].isVisibleTo(win) and not view.refusal.isVisibleTo(win)
        view.change_role_combo.setCurrentText("User")
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _click(qtbot, view.change_role_button)
        assert view.user_errors.text("role") == (
            "Role must stay Administrator for the last active Administrator; make another one first.")
        assert http.get("/api/admin/users/admin").json() == {"name": "admin", "role": "Administrator",
                                                             "active": True}
        # its own password reset: shown once, and this session is told to reconnect with it
        password = arun(view.reset_password())
        assert password and view.password_dialog is not None
        assert "you are logged in as admin: reconnect with it" in view.message.text()
        assert _logs_in(mgmt_server.url, "admin", password, arun)
        assert not _logs_in(mgmt_server.url, "admin", mgmt_server.password, arun)
    finally:
        arun(win.aclose())
        http.close()


def test_a_bad_name_or_short_password_is_shown_under_its_field_and_nothing_is_sent(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, admin: MgmtClient, arun: Run,
) -> None:
    sent = Sent()
    sent.attach(admin)
    win = manage(qtbot, admin, user="admin", is_admin=True, tab="users")
    view = win.users
    try:
        qtbot.keyClicks(view.name_edit, "no spaces")
        qtbot.keyClicks(view.password_edit, "short")
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _click(qtbot, view.add_button)
        assert view.add_errors.text("name") == (
            "Name may hold only letters, digits and _ . @ -, not 'no spaces'.")
        assert view.add_errors.text("password") == f"Password must be at least {PASSWORD_MIN} characters."
        assert sent.writes() == []
        # the API says the same of the same body
        http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
        r = http.post("/api/admin/users", json={"name": "no spaces", "password": "short"})
        http.close()
        assert r.status_code == 400
        assert [p["field"] for p in r.json()["error"]["problems"]] == ["name", "password"]
        # a name that is taken: the API's 409 under the name
        view.name_edit.setText("admin")
        view.password_edit.setText("long-enough-1")
        with qtbot.waitSignal(view.failed, timeout=LONG):
            _click(qtbot, view.add_button)
        assert view.add_errors.text("name") == "Name is taken."
        assert view.add_errors.text("password") == ""
    finally:
        arun(win.aclose())


def test_a_non_administrator_gets_a_sentence_and_nothing_is_read(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, mgmt_server: Any, arun: Run,
) -> None:
    http = api(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    assert http.post("/api/admin/users", json={"name": "erin", "password": "erin-pw-12"}).status_code == 201
    http.close()
    erin = MgmtClient(mgmt_server.url, "erin", "erin-pw-12")
    sent = Sent()
    sent.attach(erin)
    win = manage(qtbot, erin, user="erin", is_admin=False, tab="users")
    try:
        assert win.users.stack.currentWidget() is win.users.not_admin
        assert win.users.not_admin.isVisibleTo(win)
        assert win.users.not_admin.text().startswith("Users and roles are managed by Administrators: “erin”")
        assert not win.users.page.isVisibleTo(win)
        assert not [r for r in sent.requests if r[1].startswith("/api/admin/users")]
    finally:
        arun(win.aclose())
        arun(erin.aclose())


def test_the_manage_menu_opens_the_views_of_the_connected_server(
    window: MainWindow, qtbot: QtBot, mgmt_server: Any, arun: Run,
) -> None:
    connectors_action, users_action = window.manage_actions
    users_action.trigger()  # not connected: a sentence in the status bar, no window
    assert window.findChild(ManageWindow) is None and "Connect to a server first" in window.status_label.text()
    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    users_action.trigger()
    win = window.findChild(ManageWindow)
    assert win is not None and win.tabs.currentWidget() is win.users and win.client is window.client
    qtbot.waitUntil(lambda: len(win.users.users) == 1, timeout=LONG)
    connectors_action.trigger()
    assert window.findChild(ManageWindow) is win and win.tabs.currentWidget() is win.connectors
    qtbot.waitUntil(lambda: len(win.connectors.rows) == 4, timeout=LONG)
    # a connector registered here is listed in the main window's browser too
    win.connectors.label_edit.setText("from the manage window")
    win.connectors.endpoint_edit.setText("127.0.0.1:8")
    with qtbot.waitSignal(window.catalog_loaded, timeout=LONG):
        _click(qtbot, win.connectors.submit_button)
    assert any(c.label == "from the manage window" for c in window.catalog.connectors.values())
    # connected elsewhere (here: again), the window of the old session closes
    closed: list[bool] = []
    win.destroyed.connect(lambda _o=None: closed.append(True))
    arun(win.aclose())
    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    qtbot.waitUntil(lambda: closed == [True], timeout=LONG)
    assert window.findChild(ManageWindow) is None
