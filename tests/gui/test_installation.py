"""The main window against a load-balancer installation: two management servers on one PostgreSQL behind a
Balance Desk balancer (tests/gui/installation.py). The window only knows the balancer's URL; one server is
killed between two saves, and the window goes on: it saves, reloads, and a stale copy still meets a 412."""

from __future__ import annotations

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
