"""The main window against a real embedded management server (``balancedesk serve --demo`` on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import ApiError, MgmtClient
from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member
from balancedesk.gui.browser_model import BrowserModel
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.members_model import MembersModel
from balancedesk.gui.profiles import Profile, local_profile
from balancedesk.gui.prompts import Conflict, Prompter, ReviewDialog, Unsaved
from PySide6.QtCore import QModelIndex

from tests.gui.editor_support import CannedPrompter

Run = Callable[..., Any]


@pytest.fixture
def other(mgmt_server: Any, arun: Run) -> Iterator[MgmtClient]:
    """A second admin session: "someone else" changing the server behind the window's back."""
    client = MgmtClient(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    yield client
    arun(client.aclose())


def prompter(w: MainWindow) -> CannedPrompter:
    assert isinstance(w.prompter, CannedPrompter)
    return w.prompter


def connect(w: MainWindow, server: Any, arun: Run) -> None:
    arun(w.connect_profile(Profile(name="test", url=server.url, user=server.user), password=server.password))


def open_demo(w: MainWindow, qtbot: Any, arun: Run) -> str:
    gid = w.catalog.groups[0].connector_id
    assert gid is not None
    row = w.browser_model.group_row(gid)
    with qtbot.waitSignal(w.group_opened, timeout=10000):
        w.browser.setCurrentIndex(w.browser_filter.mapFromSource(w.browser_model.index(row, 0)))
    return gid


def server_members(client: MgmtClient, gid: str, arun: Run) -> tuple[Connector, list[tuple[str, int, int]]]:
    connector, _ = arun(client.get_connector(gid))
    assert connector.connector_group is not None
    return connector, [(m.member_id, m.sequence, m.weight) for m in connector.connector_group.ordered()]


def test_connect_lists_groups_and_connectors(window: MainWindow, mgmt_server: Any, qtbot: Any, arun: Run) -> None:
    with qtbot.waitSignal(window.catalog_loaded, timeout=15000) as sig:
        window.spawn(window.connect_profile(Profile(name="t", url=mgmt_server.url), password=mgmt_server.password),
                     "Connecting…")
        assert window.busy_bar.isVisible()  # the busy state shows at once
    assert sig.args == [1]
    assert not window.busy
    labels = {window.browser_model.index(r, 0).data() for r in range(window.browser_model.rowCount())}
    assert {"Demo Round Robin", "demo-1", "demo-4"} <= labels
    model = window.browser_model
    demo4 = next(r for r in range(model.rowCount()) if model.index(r, 0).data() == "demo-4")
    endpoint = str(model.index(demo4, model.COL_ENDPOINT).data())  # a port that was free when the demo was made
    window.filter_edit.setText(endpoint)
    rows = [window.browser_filter.index(r, 0).data() for r in range(window.browser_filter.rowCount())]
    assert rows == ["demo-4"]


def test_qtmodeltester_on_the_live_browser(window: MainWindow, mgmt_server: Any, arun: Run,
                                           qtmodeltester: Any) -> None:
    connect(window, mgmt_server, arun)
    qtmodeltester.check(window.browser_model, force_py=True)
    qtmodeltester.check(window.browser_filter, force_py=True)


def test_edit_and_save_the_server_holds_what_the_editor_showed(
    window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any, arun: Run
) -> None:
    connect(window, mgmt_server, arun)
    gid = open_demo(window, qtbot, arun)
    editor, doc = window.editor, window.doc
    assert editor is not None and doc is not None
    assert not window.isWindowModified() and not window.save_action.isEnabled()
    model = editor.model
    model.moveRows(QModelIndex(), 2, 1, QModelIndex(), 0)  # demo-3 first
    model.set_weight(doc.members[0].member_id, 4)
    demo4 = next(c.connector_id for c in window.catalog.plain if c.label == "demo-4")
    assert demo4 is not None and model.add_member(demo4)
    editor.label_edit.setText("Payroll")
    editor.label_edit.textEdited.emit("Payroll")
    editor.retry_spin.setValue(0)
    assert window.isWindowModified() and window.save_action.isEnabled()
    assert "*" not in window.windowTitle() or window.isWindowModified()
    shown = [(m.member_id, i + 1, m.weight) for i, m in enumerate(doc.members)]
    with qtbot.waitSignal(window.saved, timeout=15000):
        window.save_action.trigger()
    assert "review" in prompter(window).kinds()
    connector, members = server_members(other, gid, arun)
    assert members == shown
    assert connector.label == "Payroll"
    assert connector.connector_group is not None and connector.connector_group.retry_delay == 0
    assert connector.connector_group.load_balancing == ROUND_ROBIN
    assert doc.undo_stack.isClean() and not window.isWindowModified() and not window.save_action.isEnabled()
    # undo after save makes it dirty again; redo returns to the saved state
    doc.undo_stack.undo()
    assert window.isWindowModified()
    doc.undo_stack.redo()
    assert not window.isWindowModified()


def test_review_cancelled_sends_nothing(window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any,
                                        arun: Run) -> None:
    connect(window, mgmt_server, arun)
    gid = open_demo(window, qtbot, arun)
    assert window.editor is not None
    window.editor.model.moveRows(QModelIndex(), 0, 1, QModelIndex(), 3)
    prompter(window).review_ok = False
    assert arun(window.save()) is False
    _, members = server_members(other, gid, arun)
    assert [m[2] for m in members] == [3, 2, 1]
    assert window.isWindowModified()


def test_create_then_delete_a_group(window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any,
                                    arun: Run) -> None:
    connect(window, mgmt_server, arun)
    arun(window.new_group())
    editor, doc = window.editor, window.doc
    assert editor is not None and doc is not None and doc.group_id is None
    assert window.save_action.isEnabled()  # a new group is unsaved from the start
    demo4 = next(c.connector_id for c in window.catalog.plain if c.label == "demo-4")
    prompter(window).pick = demo4
    editor.add_button.click()
    qtbot.waitUntil(lambda: len(doc.members) == 1, timeout=5000)
    picked = dict(prompter(window).asked)["pick"]
    refused = {c.label: c.refusal for c in picked}
    assert refused["demo-4"] is None and "already belongs" in (refused["demo-1"] or "")
    doc.set_field("label", "Batch")
    assert arun(window.save()) is True
    gid = doc.group_id
    assert gid is not None
    ids = arun(other.list_connectors(details=False))
    assert gid in ids
    assert len(window.catalog.groups) == 2
    assert arun(window.delete_group()) is True
    assert ("delete", "Batch") in prompter(window).asked
    assert gid not in arun(other.list_connectors(details=False))
    assert window.doc is None and len(window.catalog.groups) == 1


def test_server_400_is_shown_next_to_the_member(window: MainWindow, mgmt_server: Any, other: MgmtClient,
                                                qtbot: Any, arun: Run) -> None:
    connect(window, mgmt_server, arun)
    open_demo(window, qtbot, arun)
    demo4 = next(c.connector_id for c in window.catalog.plain if c.label == "demo-4")
    assert demo4 is not None
    # someone else puts demo-4 in a group after our listing: locally it still looks free
    arun(other.create_group(Connector(owner="admin", label="Theirs", connector_group=ConnectorGroup(
        members=(Member(member_id=demo4, sequence=1, weight=1),)))))
    editor = window.editor
    assert editor is not None and editor.model.add_member(demo4)
    with qtbot.waitSignal(window.failed, timeout=15000) as sig:
        task = window.spawn(window.save(), "Saving…")
    qtbot.waitUntil(task.done, timeout=5000)
    assert "Theirs" in sig.args[0] or "group" in sig.args[0]
    row = editor.model.row_of(demo4)
    assert demo4 in editor.model.problems
    assert editor.model.index(row, MembersModel.COL_MEMBER).data(0x3) is not None  # tooltip carries it
    assert "demo-4" in editor.errors["members"].text()
    assert window.isWindowModified()  # nothing lost


def test_wrong_password_401_is_a_sentence(window: MainWindow, mgmt_server: Any, qtbot: Any, arun: Run) -> None:
    with qtbot.waitSignal(window.failed, timeout=15000) as sig:
        window.spawn(window.connect_profile(Profile(name="t", url=mgmt_server.url), password="wrong-password"),
                     "Connecting…")
    assert sig.args[0].startswith("The server did not accept the user name or password")
    assert "Traceback" not in window.status_label.text()
    assert window.client is None and not window.new_action.isEnabled()


@pytest.mark.parametrize("choice", [Conflict.RELOAD, Conflict.OVERWRITE, Conflict.CANCEL])
def test_412_conflict_reload_or_overwrite(window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any,
                                          arun: Run, choice: Conflict) -> None:
    connect(window, mgmt_server, arun)
    gid = open_demo(window, qtbot, arun)
    theirs, etag = arun(other.get_connector(gid))
    arun(other.put_connector(theirs.model_copy(update={"label": "Renamed by someone"}), if_match=etag))
    assert window.editor is not None and window.doc is not None
    window.editor.model.set_weight(window.doc.members[0].member_id, 9)
    prompter(window).conflict_choice = choice
    result = arun(window.save())
    assert ("conflict", "Demo Round Robin") in prompter(window).asked
    connector, members = server_members(other, gid, arun)
    if choice is Conflict.RELOAD:
        assert result is False
        assert window.doc.fields["label"] == "Renamed by someone"
        assert not window.isWindowModified()
        assert members[0][2] == 3
    elif choice is Conflict.OVERWRITE:
        assert result is True
        assert connector.label == "Demo Round Robin" and members[0][2] == 9
        assert not window.isWindowModified()
    else:
        assert result is False and window.isWindowModified()
        assert connector.label == "Renamed by someone" and members[0][2] == 3


@pytest.mark.single_server
def test_server_killed_mid_save_loses_nothing(window: MainWindow, mgmt_server: Any, qtbot: Any,
                                              arun: Run) -> None:
    connect(window, mgmt_server, arun)
    open_demo(window, qtbot, arun)
    assert window.editor is not None and window.doc is not None
    window.editor.model.moveRows(QModelIndex(), 0, 1, QModelIndex(), 3)
    before = [(m.member_id, m.weight) for m in window.doc.members]
    with qtbot.waitSignal(window.failed, timeout=20000) as sig:
        task = window.spawn(window.save(), "Saving…")
        mgmt_server.child.kill()
    qtbot.waitUntil(task.done, timeout=5000)
    assert "reach" in sig.args[0] or "answer" in sig.args[0]
    assert window.isWindowModified() and window.save_action.isEnabled()
    assert [(m.member_id, m.weight) for m in window.doc.members] == before
    assert not window.busy


def test_close_with_unsaved_changes_asks(window: MainWindow, mgmt_server: Any, qtbot: Any, arun: Run) -> None:
    connect(window, mgmt_server, arun)
    open_demo(window, qtbot, arun)
    assert window.editor is not None
    window.editor.model.moveRows(QModelIndex(), 0, 1, QModelIndex(), 3)
    prompter(window).unsaved_choice = Unsaved.CANCEL
    assert not window.close()
    qtbot.waitUntil(lambda: "unsaved" in prompter(window).kinds(), timeout=5000)
    qtbot.waitUntil(lambda: not window.busy, timeout=5000)
    assert window.isVisible()
    prompter(window).unsaved_choice = Unsaved.DISCARD
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)


def test_local_profile_starts_the_embedded_server(window: MainWindow, qtbot: Any, arun: Run,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BALANCEDESK_ADMIN_PASSWORD", raising=False)
    arun(window.connect_profile(local_profile()), timeout_ms=40000)
    pw_file = tmp_path / "local" / "admin-password.txt"
    assert pw_file.exists() and (pw_file.stat().st_mode & 0o777) == 0o600
    assert window.local_server is not None and window.local_server.running
    assert window.client is not None and window.client.base_url.startswith("http://127.0.0.1:")
    assert len(window.catalog.groups) == 1
    server = window.local_server
    arun(window.shutdown())
    assert not server.running


def test_real_review_dialog_lists_changes_and_answers(window: MainWindow, qtbot: Any, arun: Run) -> None:
    import asyncio

    from balancedesk.gui.document import Change

    real = Prompter(window)
    task = asyncio.ensure_future(real.review("G", [Change("retry delay", "120 s", "never")]))
    qtbot.waitUntil(lambda: window.findChild(ReviewDialog) is not None, timeout=5000)
    dialog = window.findChild(ReviewDialog)
    assert dialog is not None
    assert [dialog.table.item(0, c).text() for c in range(3)] == ["retry delay", "120 s", "never"]
    dialog.accept()
    qtbot.waitUntil(task.done, timeout=5000)
    assert task.result() is True


def test_api_error_carries_problems(mgmt_server: Any, other: MgmtClient, arun: Run) -> None:
    """The server's 400 body names the member, so the editor can put the message next to it."""
    bad = Connector(owner="admin", label="x", connector_group=ConnectorGroup(
        members=(Member(member_id="not-a-connector", sequence=1, weight=1),)))
    with pytest.raises(ApiError) as info:
        arun(other.create_group(bad))
    assert info.value.status == 400
    assert any(p.member_id == "not-a-connector" for p in info.value.problems)


_ = BrowserModel
