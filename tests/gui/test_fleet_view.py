"""The Balancers view against a real management server (``balancedesk serve`` on 127.0.0.1:0, heartbeat
interval 0.5 s) and balancers that heartbeat with real balancer tokens: three instances listed; one that stops
heartbeating shown lost with its last-seen time; an applied version older than the saved one shown as drift
(per group and per instance), cleared when it catches up; tokens made (shown once, with the command) and
revoked through the GUI, with the API's refusals; non-Administrators get a sentence, not a view. Every model
passes qtmodeltester."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from balancedesk.core.client import MgmtClient
from balancedesk.gui.fleet.rows import BEHIND, IN_SYNC, InstanceRow
from balancedesk.gui.fleet.window import BalancersWindow
from pytestqt.qtbot import QtBot

from tests.gui.fleet_support import Fleet, Heartbeats, new_pool

LONG = 20_000


def _window(qtbot: QtBot, client: MgmtClient, *, is_admin: bool = True, user: str = "admin") -> BalancersWindow:
    win = BalancersWindow(client=client, is_admin=is_admin, user=user)
    qtbot.addWidget(win)
    win.show()
    return win


def _row(win: BalancersWindow, instance: str) -> InstanceRow | None:
    return next((r for r in win.rows if r.instance_id == instance), None)


def test_three_instances_drift_per_group_and_lost(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, beats: Heartbeats, admin_client: MgmtClient,
    qtmodeltester: Any, arun: Callable[..., Any],
) -> None:
    pool = new_pool()
    a = fleet.make_group(pool, port=7101, label="orthanc")
    b = fleet.make_group(pool, port=7102, label="dicom")
    saved = fleet.versions(pool)
    names = ("bal-1", "bal-2", "bal-3")
    for name in names:
        beats.add(name, fleet.make_token(pool), saved)
    win = _window(qtbot, admin_client)
    try:
        qtbot.waitUntil(lambda: len(win.rows) == 3 and all(not r.lost for r in win.rows), timeout=LONG)
        assert [r.instance_id for r in win.rows] == list(names)
        assert all(r.drift_text() == IN_SYNC for r in win.rows)
        assert win.poller.running
        qtmodeltester.check(win.instances)
        assert win.instances.rowCount() == 3
        texts = [win.instances.index(0, c).data() for c in range(win.instances.columnCount())]
        assert texts[:3] == ["bal-1", "bal-1.example", pool] and texts[3].startswith("alive")
        assert texts[4:6] == ["native", "2"] and texts[7] == "2"

        # a save made elsewhere raises group a's version; bal-1 and bal-2 apply it, bal-3 does not (yet)
        fleet.set_weight(a, 0, 5)
        new = fleet.versions(pool)
        assert new[a] > saved[a] and new[b] == saved[b]
        for name in ("bal-1", "bal-2"):
            beats.set_applied(name, a, new[a])
        qtbot.waitUntil(lambda: (r := _row(win, "bal-3")) is not None and bool(r.drifting), timeout=LONG)
        row3 = _row(win, "bal-3")
        assert row3 is not None
        assert row3.drift_text() == f"orthanc: applied v{saved[a]}, saved v{new[a]}"  # by label
        assert [(g.connector_id, g.status) for g in row3.groups] == [(b, IN_SYNC), (a, BEHIND)]  # by label
        assert all(not r.drifting for r in win.rows if r.instance_id != "bal-3")
        assert "1 behind the saved config" in win.summary.text()
        # per group: choose bal-3 and read its groups table
        win.select_instance("bal-3")
        qtbot.waitUntil(lambda: win.groups.rowCount() == 2, timeout=LONG)
        qtmodeltester.check(win.groups)
        status = {win.groups.index(i, 0).data(): (win.groups.index(i, 1).data(), win.groups.index(i, 2).data(),
                                                  win.groups.index(i, 3).data()) for i in range(2)}
        assert status["orthanc"] == (f"v{saved[a]}", f"v{new[a]}", BEHIND)
        assert status["dicom"] == (f"v{saved[b]}", f"v{saved[b]}", IN_SYNC)

        # it catches up: the drift clears
        beats.set_applied("bal-3", a, new[a])
        qtbot.waitUntil(lambda: (r := _row(win, "bal-3")) is not None and not r.drifting, timeout=LONG)
        assert win.groups.index(0, 3).data() == IN_SYNC or win.groups.index(1, 3).data() == IN_SYNC

        # bal-2 stops heartbeating: lost, with its last-seen time; it sorts after the alive ones
        beats.stop_instance("bal-2")
        qtbot.waitUntil(lambda: (r := _row(win, "bal-2")) is not None and r.lost, timeout=LONG)
        assert [r.instance_id for r in win.rows] == ["bal-1", "bal-3", "bal-2"]
        lost = win.instances.index(2, 3).data()
        assert lost.startswith("LOST · last seen ") and lost.endswith(" s ago")
        assert "2 alive · 1 lost" in win.summary.text()
        qtmodeltester.check(win.instances)
    finally:
        arun(win.aclose())


def test_hidden_view_does_not_poll(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, admin_client: MgmtClient, arun: Callable[..., Any],
) -> None:
    win = _window(qtbot, admin_client)
    try:
        qtbot.waitSignal(win.refreshed, timeout=LONG).wait()
        assert win.poller.running
        win.hide()
        assert not win.poller.running
        win.show()
        assert win.poller.running
    finally:
        arun(win.aclose())


def test_tokens_created_shown_once_and_revoked(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, admin_client: MgmtClient,
    arun: Callable[..., Any], qtmodeltester: Any,
) -> None:
    pool = new_pool()
    win = _window(qtbot, admin_client)
    try:
        win.tabs.setCurrentWidget(win.token_panel)
        panel = win.token_panel
        panel.pool_edit.setText(pool)
        panel.label_edit.setText("host a")
        with qtbot.waitSignal(win.token_created, timeout=LONG) as made:
            panel.create_button.click()
        token_id = made.args[0]
        dialog = win.token_dialog
        assert dialog is not None and dialog.isVisible()
        token = dialog.token_edit.text()
        assert token.startswith(f"bdt_{token_id}_")
        assert dialog.command_edit.text() == (
            f"balancedesk balance --api {fleet.url} --token-file /etc/balancedesk/balancer.token --pool {pool}")
        dialog.copy_token.click()
        from PySide6.QtGui import QGuiApplication

        assert QGuiApplication.clipboard().text() == token
        qtbot.waitUntil(lambda: any(t.token_id == token_id for t in panel.model.rows), timeout=LONG)
        qtmodeltester.check(panel.model)
        listed = next(t for t in panel.model.rows if t.token_id == token_id)
        assert (listed.pool, listed.label, listed.revoked) == (pool, "host a", None)
        # the token works as a balancer's, and the listing never holds the secret
        hb = Heartbeats(fleet.url)
        try:
            hb.add("bal-t", token, {})
            assert hb.answers["bal-t"] == 200
            dialog.close()
            # revoke through the panel: the token is refused from then on
            row = next(i for i, t in enumerate(panel.model.rows) if t.token_id == token_id)
            panel.table.selectRow(row)
            with qtbot.waitSignal(win.token_revoked, timeout=LONG):
                panel.revoke.click()
            assert "revoked" in panel.message.text()
            listed = next(t for t in panel.model.rows if t.token_id == token_id)
            assert listed.revoked is not None
            assert panel.model.index(row, 4).data().startswith("revoked") or any(
                panel.model.index(i, 4).data().startswith("revoked") for i in range(panel.model.rowCount()))
            assert hb.beat("bal-t") == 401
        finally:
            hb.close()
        # the API's rules and messages: a bad pool name is refused, naming the pool
        panel.pool_edit.setText("no spaces allowed")
        with qtbot.waitSignal(win.failed, timeout=LONG):
            panel.create_button.click()
        assert panel.message.text().startswith("⚠ ") and "pool" in panel.message.text()
        # revoking with nothing chosen says so
        panel.table.clearSelection()
        panel.revoke.click()
        assert "Choose a token" in panel.message.text()
    finally:
        arun(win.aclose())


def test_not_an_administrator_gets_a_sentence(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, arun: Callable[..., Any],
) -> None:
    r = fleet.admin.post("/api/admin/users", json={"name": "carol", "password": "carol-pw-12345", "role": "User"})
    assert r.status_code == 201, r.text
    client = MgmtClient(fleet.url, "carol", "carol-pw-12345")
    try:
        win = _window(qtbot, client, is_admin=False, user="carol")
        assert win.stack.currentWidget() is win.not_admin
        assert "for Administrators" in win.not_admin.text() and "carol" in win.not_admin.text()
        assert not win.poller.running
        # a stale "admin" flag (the role was taken away): the server's 403 turns the view into the sentence
        win2 = _window(qtbot, client, is_admin=True, user="carol")
        qtbot.waitUntil(lambda: win2.stack.currentWidget() is win2.not_admin, timeout=LONG)
        assert not win2.poller.running
        arun(win.aclose())
        arun(win2.aclose())
    finally:
        arun(client.aclose())


def test_fleet_menu_opens_the_balancers_window(
    qtbot: QtBot, window: Any, fleet: Fleet, arun: Callable[..., Any],
) -> None:
    from balancedesk.gui.profiles import Profile

    from tests.gui.conftest import ADMIN_PASSWORD

    assert not window.balancers_action.isEnabled()  # not connected yet
    arun(window.connect_profile(Profile(name="t", url=fleet.url, user="admin"), password=ADMIN_PASSWORD))
    assert window.balancers_action.isEnabled()
    window.balancers_action.trigger()
    win = window.balancers_window
    assert isinstance(win, BalancersWindow) and win.isVisible() and win.is_admin
    qtbot.waitSignal(win.refreshed, timeout=LONG).wait()
    assert "0 balancers" in win.summary.text()
    window.balancers_action.trigger()
    assert window.balancers_window is win  # one per server, raised
