"""The group editor edits the group's listener (issue 11 item 1): port, bind address, mode, affinity header
and pool, with undo, a preview of the change, saved through the API and the API's field errors shown inline.

The window runs against a real embedded management server (``balancedesk serve --demo`` on 127.0.0.1);
the document-only tests need no server.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.core.model import (
    DEFAULT_AFFINITY_HEADER,
    DEFAULT_POOL,
    PORT_MAX,
    Connector,
    ConnectorGroup,
    ListenerSettings,
    Member,
)
from balancedesk.gui.document import GroupDocument
from balancedesk.gui.editor import GroupEditor, field_key
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile

from tests.gui.editor_support import CannedPrompter, demo_catalog

Run = Callable[..., Any]


def free_port() -> int:
    """A port number picked at run time (the server only records it; no balancer listens in these tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def other(mgmt_server: Any, arun: Run) -> Iterator[MgmtClient]:
    """A second admin session, reading back what the window saved and making the clashing group."""
    client = MgmtClient(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    yield client
    arun(client.aclose())


def connect_and_open(w: MainWindow, server: Any, qtbot: Any, arun: Run) -> tuple[str, GroupEditor, GroupDocument]:
    arun(w.connect_profile(Profile(name="test", url=server.url, user=server.user), password=server.password))
    gid = w.catalog.groups[0].connector_id
    assert gid is not None
    row = w.browser_model.group_row(gid)
    with qtbot.waitSignal(w.group_opened, timeout=10000):
        w.browser.setCurrentIndex(w.browser_filter.mapFromSource(w.browser_model.index(row, 0)))
    assert w.editor is not None and w.doc is not None
    return gid, w.editor, w.doc


def type_listener(editor: GroupEditor, *, port: int, mode: str, affinity: str | None = None,
                  bind: str | None = None) -> None:
    """Edit the listener box as a user does: tick it, set the port, pick the mode, type into the boxes."""
    if not editor.listener_box.isChecked():
        editor.listener_box.setChecked(True)
    editor.port_spin.setValue(port)
    index = editor.mode_combo.findData(mode)
    editor.mode_combo.setCurrentIndex(index)
    editor.mode_combo.activated.emit(index)
    for edit, text in ((editor.affinity_edit, affinity), (editor.bind_edit, bind)):
        if text is not None:
            edit.setText(text)
            edit.textEdited.emit(text)


def test_edit_port_and_mode_save_and_read_back_through_the_api(
    window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any, arun: Run
) -> None:
    gid, editor, doc = connect_and_open(window, mgmt_server, qtbot, arun)
    assert not editor.listener_box.isChecked()  # the demo group is not served by a pool yet
    assert not editor.port_spin.isEnabled()
    port = free_port()
    type_listener(editor, port=port, mode="http", affinity="X-Transfer")
    editor.bind_edit.setFocus()
    qtbot.keyClicks(editor.bind_edit, "127.0.0.1")  # typed, and saved without leaving the box (Ctrl+S)
    assert editor.affinity_edit.isEnabled()  # HTTP: the affinity header counts
    assert window.isWindowModified() and window.save_action.isEnabled()
    # the preview: how it will be served, and how it is served now
    assert editor.listener_text.text() == (f"Pool “{DEFAULT_POOL}” balancers listen on 127.0.0.1:{port}, "
                                           "HTTP (L7), affinity by the X-Transfer header.")
    assert editor.listener_was.isVisibleTo(editor) and "Not served" in editor.listener_was.text()
    with qtbot.waitSignal(window.saved, timeout=15000):
        window.save_action.trigger()
    review = [changes for kind, changes in window.prompter.asked if kind == "review"]  # type: ignore[attr-defined]
    lines = {c.what: (c.old, c.new) for c in review[-1]}
    assert lines["served by a balancer pool"] == ("no", "yes")
    assert lines["listener port"] == ("(none)", str(port))
    assert lines["mode"] == ("TCP (L4)", "HTTP (L7)")
    connector, _ = arun(other.get_connector(gid))
    listener = connector.listener
    assert listener is not None
    assert (listener.port, listener.mode, listener.bind, listener.pool) == (port, "http", "127.0.0.1", DEFAULT_POOL)
    assert listener.affinity_header == "x-transfer"  # the model's rule: header names are stored lower-case
    assert doc.undo_stack.isClean() and not window.isWindowModified()
    assert not editor.listener_was.isVisibleTo(editor)  # saved: nothing differs from the server any more
    # switched back to TCP: the affinity box is off, and the saved header is kept for a later HTTP
    type_listener(editor, port=port, mode="tcp")
    assert not editor.affinity_edit.isEnabled()
    with qtbot.waitSignal(window.saved, timeout=15000):
        window.save_action.trigger()
    connector, _ = arun(other.get_connector(gid))
    assert connector.listener is not None and connector.listener.mode == "tcp"
    assert connector.listener.affinity_header == "x-transfer"


def test_a_port_clash_shows_the_servers_message_at_the_port_and_nothing_is_lost(
    window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any, arun: Run
) -> None:
    gid, editor, doc = connect_and_open(window, mgmt_server, qtbot, arun)
    demo4 = next(c.connector_id for c in window.catalog.plain if c.label == "demo-4")
    assert demo4 is not None
    port = free_port()
    clash, _ = arun(other.create_group(Connector(
        owner="admin", label="Clashing group",
        connector_group=ConnectorGroup(members=(Member(member_id=demo4, sequence=1, weight=1),)),
        listener=ListenerSettings(port=port),
    )))
    type_listener(editor, port=port, mode="http")
    before = dict(doc.fields)
    with qtbot.waitSignal(window.failed, timeout=15000) as failed:
        window.save_action.trigger()  # as the user saves: the failure also goes to the status line
    assert f"*:{port} is already claimed" in failed.args[0]
    message = editor.field_error("listener_port")
    assert f"*:{port} is taken in pool {DEFAULT_POOL}" in message and clash.connector_id in message
    assert editor.errors["listener_port"].isVisibleTo(editor)
    assert not editor.field_error("label") and not editor.field_error("members")
    # nothing is lost: the edits are still there, still unsaved, and the server's group is unchanged
    assert doc.fields == before and window.isWindowModified() and window.save_action.isEnabled()
    assert editor.port_spin.value() == port and editor.mode_combo.currentData() == "http"
    assert "already claimed" in window.status_label.text()
    assert arun(window.save()) is False  # the server's problem stands until the next edit: nothing is sent
    assert "fix the 1 problem" in window.status_label.text()
    saved, _ = arun(other.get_connector(gid))
    assert saved.listener is None
    # another port: the message goes with the next edit, and the save goes through
    other_port = port + 1 if port < PORT_MAX else port - 1
    editor.port_spin.setValue(other_port)
    assert not editor.field_error("listener_port")
    assert arun(window.save()) is True
    saved, _ = arun(other.get_connector(gid))
    assert saved.listener is not None and saved.listener.port == other_port


def test_undo_restores_the_previous_listener_and_unticking_removes_it(
    window: MainWindow, mgmt_server: Any, other: MgmtClient, qtbot: Any, arun: Run
) -> None:
    gid, editor, doc = connect_and_open(window, mgmt_server, qtbot, arun)
    port = free_port()
    type_listener(editor, port=port, mode="tcp")
    assert arun(window.save()) is True
    saved_fields = dict(doc.fields)
    new_port = port + 1 if port < PORT_MAX else port - 1
    type_listener(editor, port=new_port, mode="http", bind="::1", affinity="")
    assert doc.fields["listener_port"] == new_port and doc.fields["listener_bind"] == "::1"
    while not doc.undo_stack.isClean():
        doc.undo_stack.undo()
    assert doc.fields == saved_fields
    assert editor.port_spin.value() == port and editor.mode_combo.currentData() == "tcp"
    assert editor.bind_edit.text() == "" and editor.affinity_edit.text() == DEFAULT_AFFINITY_HEADER
    assert not window.isWindowModified()
    # unticking the box removes the listener on save ("listener": null); undo ticks it back
    editor.listener_box.setChecked(False)
    assert doc.drops_listener and not editor.port_spin.isEnabled()
    doc.undo_stack.undo()
    assert editor.listener_box.isChecked() and not doc.drops_listener and not window.isWindowModified()
    editor.listener_box.setChecked(False)
    assert arun(window.save()) is True
    connector, _ = arun(other.get_connector(gid))
    assert connector.listener is None
    assert isinstance(window.prompter, CannedPrompter)


# --- the document alone ---------------------------------------------------------------------------------


def test_a_saved_listeners_other_settings_are_kept_and_problems_map_to_the_fields() -> None:
    catalog = demo_catalog()
    g1 = catalog.connectors["g1"]
    listener = ListenerSettings.model_validate(
        {"port": 7000, "mode": "http", "pool": "edge", "readTimeout": 5,
         "healthCheck": {"type": "http", "path": "/health"}}
    )
    base = g1.model_copy(update={"listener": listener})
    doc = GroupDocument(base=base, etag='"1"', catalog=catalog, owner="admin", server="http://127.0.0.1:1")
    assert (doc.fields["listener"], doc.fields["listener_port"], doc.fields["listener_pool"]) == (True, 7000, "edge")
    doc.set_field("listener_port", 7001)
    sent = doc.to_connector().listener
    assert sent is not None and sent.port == 7001 and sent.pool == "edge"
    assert sent.read_timeout == 5 and sent.health_check == listener.health_check  # not shown, kept
    assert [(c.what, c.old, c.new) for c in doc.changes()] == [("listener port", "7000", "7001")]
    doc.set_field("listener_bind", "not-an-address")
    keys = {field_key(p) for p in doc.problems()}
    assert keys == {"listener_bind"}
    doc.set_field("listener_bind", "")
    doc.set_field("listener_pool", "no spaces allowed")
    assert {field_key(p) for p in doc.problems()} == {"listener_pool"}
    doc.undo_stack.undo()
    doc.set_field("listener", False)
    assert doc.drops_listener and doc.to_connector().listener is None
    assert [(c.what, c.new) for c in doc.changes()] == [("served by a balancer pool", "no")]


def test_a_new_group_is_not_served_until_the_box_is_ticked() -> None:
    doc = GroupDocument(base=None, etag=None, catalog=demo_catalog(), owner="admin", server="http://127.0.0.1:1")
    assert "listener" not in doc.to_json() and not doc.drops_listener
    assert not any(c.what.startswith("listener") or c.what in ("mode", "pool") for c in doc.changes())
    doc.set_field("listener", True)
    doc.set_field("listener_port", 9000)
    assert doc.to_json()["listener"] == {"port": 9000, "mode": "tcp", "affinityHeader": DEFAULT_AFFINITY_HEADER,
                                         "pool": DEFAULT_POOL}
    assert field_key(_problem("listener.port")) == "listener_port"
    assert field_key(_problem("listener")) == "listener"


def _problem(field: str) -> Any:
    from balancedesk.core.model import Problem

    return Problem(field, "x")
