"""The main window against a load-balancer installation: two management servers on one PostgreSQL behind a
Balance Desk balancer (tests/gui/installation.py). The window only knows the balancer's URL. One server is
killed between two saves, and the window goes on: it saves and reloads. And one is killed while the window's
POST is at it: the balancer answers 502, the app sends the POST again with its Idempotency-Key, and the group
is created once."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile

from tests.gui.conftest import ADMIN_PASSWORD
from tests.gui.installation import Installation, start_installation

Run = Callable[..., Any]


@pytest.fixture
def installation(spawn: Callable[..., Any], tmp_path: Path, pg_cluster: Any) -> Iterator[Installation]:
    inst = start_installation(spawn, tmp_path / "installation", pg_cluster, ADMIN_PASSWORD)
    yield inst
    inst.close()


def _members(client: MgmtClient, gid: str, arun: Run) -> list[tuple[str, int]]:
    connector, _ = arun(client.get_connector(gid))
    assert connector.connector_group is not None
    return [(m.member_id, m.weight) for m in connector.connector_group.ordered()]


def test_the_window_works_on_when_a_management_server_dies(
    window: MainWindow, installation: Installation, qtbot: Any, arun: Run
) -> None:
    arun(window.connect_profile(Profile(name="lb", url=installation.url, user="admin"), password=ADMIN_PASSWORD))
    survivor = MgmtClient(installation.server_urls[1], "admin", ADMIN_PASSWORD)  # straight to the second server
    try:
        gid = window.catalog.groups[0].connector_id
        assert gid is not None
        with qtbot.waitSignal(window.group_opened, timeout=15000):
            row = window.browser_model.group_row(gid)
            window.browser.setCurrentIndex(window.browser_filter.mapFromSource(window.browser_model.index(row, 0)))
        editor, doc = window.editor, window.doc
        assert editor is not None and doc is not None
        first = doc.members[0].member_id
        editor.model.set_weight(first, 7)
        with qtbot.waitSignal(window.saved, timeout=15000):
            window.save_action.trigger()
        assert dict(_members(survivor, gid, arun))[first] == 7

        installation.servers[0].kill()  # SIGKILL the first server; the window is not told

        editor.model.set_weight(first, 9)
        with qtbot.waitSignal(window.saved, timeout=20000):
            window.save_action.trigger()
        assert dict(_members(survivor, gid, arun))[first] == 9
        # a reload through the balancer reads what the survivor holds
        with qtbot.waitSignal(window.catalog_loaded, timeout=20000):
            window.spawn(window.connect_profile(Profile(name="lb", url=installation.url, user="admin"),
                                                password=ADMIN_PASSWORD), "Connecting…")
        assert any(g.connector_id == gid for g in window.catalog.groups)
    finally:
        arun(survivor.aclose())


@pytest.fixture
def failover_installation(spawn: Callable[..., Any], tmp_path: Path, pg_cluster: Any) -> Iterator[Installation]:
    inst = start_installation(spawn, tmp_path / "installation", pg_cluster, ADMIN_PASSWORD, failover=True)
    yield inst
    inst.close()


def test_a_group_created_while_its_server_dies_is_created_once(
    window: MainWindow, failover_installation: Installation, qtbot: Any, arun: Run
) -> None:
    inst = failover_installation
    arun(window.connect_profile(Profile(name="lb", url=inst.url, user="admin"), password=ADMIN_PASSWORD))
    survivor = MgmtClient(inst.server_urls[1], "admin", ADMIN_PASSWORD)
    try:
        arun(window.new_group())
        doc = window.doc
        assert doc is not None
        demo4 = next(c for c in window.catalog.plain if c.label == "demo-4")
        assert demo4.connector_id is not None and doc.members_model.add_member(demo4.connector_id)
        doc.set_field("label", "Made while a server died")

        first = inst.servers[0]
        os.kill(first.pid, signal.SIGSTOP)  # it takes the connection (the kernel does) and never answers
        with qtbot.waitSignal(window.saved, timeout=30000):
            window.spawn(window.save(), "Saving…")
            # the POST is at the first server (the front sends there first: failover order) …
            qtbot.waitUntil(lambda: inst.members()["mgmt-1"]["active"] >= 1, timeout=10000)
            first.kill()  # … when it dies: the front answers 502, the app resends with the same key
        groups = [c for c in arun(survivor.list_connectors()) if c.label == "Made while a server died"]
        assert len(groups) == 1 and doc.group_id == groups[0].connector_id
        assert not window.isWindowModified()
        assert inst.members()["mgmt-2"]["total"] >= 1  # the second server answered it
    finally:
        arun(survivor.aclose())
