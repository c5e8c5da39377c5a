"""The main window's collaborators work through their stated contracts alone (issue 13): a connection and an
editing controller, given a plain host that is not a window, connect to a real management server, list,
open, save and switch servers — and tell what happened through their signals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.core.model import Problem
from balancedesk.gui.connection import ConnectionController
from balancedesk.gui.editing import EditingController
from balancedesk.gui.profiles import Profile, ProfileStore
from PySide6.QtWidgets import QWidget

from tests.gui.editor_support import CannedPrompter

Run = Callable[..., Any]


@dataclass
class PlainHost:
    """A WindowHost (gui/host.py) with no window: it records what it is told."""

    prompter: CannedPrompter = field(default_factory=CannedPrompter)
    messages: list[tuple[str, bool]] = field(default_factory=list)
    server_problems: list[Problem] = field(default_factory=list)
    parent: QWidget = field(default_factory=QWidget)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.messages.append((text, error))

    def show_problems(self) -> list[Problem]:
        return []

    def show_server_problems(self, problems: list[Problem], message: str) -> None:
        self.server_problems = list(problems) or [Problem("", message)]

    def widget(self) -> QWidget:
        return self.parent


@pytest.fixture
def parts(qtbot: Any, arun: Run, tmp_path: Path) -> Iterator[tuple[PlainHost, ConnectionController, EditingController]]:
    host = PlainHost()
    conn = ConnectionController(host, profiles=ProfileStore(tmp_path / "config"),  # type: ignore[arg-type]
                                local_data=tmp_path / "local")
    editing = EditingController(host, conn)  # type: ignore[arg-type]
    yield host, conn, editing
    arun(conn.shutdown())


def test_connect_list_open_save_and_leave_through_signals(
    parts: tuple[PlainHost, ConnectionController, EditingController], mgmt_server: Any, qtbot: Any, arun: Run
) -> None:
    host, conn, editing = parts
    seen: list[str] = []
    conn.connected.connect(lambda url: seen.append(f"connected {url}"))
    conn.catalog_loaded.connect(lambda n: seen.append(f"listed {n}"))
    conn.server_left.connect(lambda: seen.append("left"))
    editing.document_changed.connect(lambda doc: seen.append("doc" if doc is not None else "no doc"))
    editing.saved.connect(lambda gid: seen.append(f"saved {gid}"))
    profile = Profile(name="test", url=mgmt_server.url, user=mgmt_server.user)
    arun(conn.connect_profile(profile, password=mgmt_server.password))
    assert seen == ["left", f"connected {mgmt_server.url}", "listed 1"]
    assert conn.profile == profile and conn.is_admin and len(conn.catalog.groups) == 1
    assert host.messages[-1][0].startswith("1 group, 4 connectors on ")
    gid = conn.catalog.groups[0].connector_id
    assert gid is not None
    assert arun(editing.open_group(gid)) is True
    doc = editing.doc
    assert doc is not None and doc.server == mgmt_server.url and seen[-1] == "doc"
    doc.set_field("label", "Renamed by the controller")
    assert editing.is_dirty()
    assert arun(editing.save()) is True
    assert seen[-1] == f"saved {gid}" and not editing.is_dirty()
    assert conn.catalog.connectors[gid].label == "Renamed by the controller"  # the listing follows the save
    check = MgmtClient(mgmt_server.url, mgmt_server.user, mgmt_server.password)
    try:
        assert arun(check.get_connector(gid))[0].label == "Renamed by the controller"
    finally:
        arun(check.aclose())
    # leaving the server closes the document (the editing controller follows the connection's signal)
    doc.set_field("label", "unsaved")
    assert arun(editing.confirm_leave()) is True  # the canned answer discards
    conn.forget_server()
    assert editing.doc is None and sorted(seen[-2:]) == ["left", "no doc"]
    assert conn.profile is None and not conn.catalog.groups
    assert arun(editing.save()) is False  # nothing open: nothing is sent


def test_a_save_is_refused_when_the_connection_is_elsewhere(
    parts: tuple[PlainHost, ConnectionController, EditingController], mgmt_server: Any, arun: Run
) -> None:
    host, conn, editing = parts
    arun(conn.connect_profile(Profile(name="test", url=mgmt_server.url, user=mgmt_server.user),
                              password=mgmt_server.password))
    gid = conn.catalog.groups[0].connector_id
    assert gid is not None and arun(editing.open_group(gid))
    assert editing.doc is not None
    editing.doc.set_field("label", "Nowhere")
    conn.profile = Profile(name="elsewhere", url="http://127.0.0.1:9", user="admin")
    assert arun(editing.save()) is False
    text, error = host.messages[-1]
    assert error and "belongs to" in text and "http://127.0.0.1:9" in text
