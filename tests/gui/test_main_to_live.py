"""From the editor to the live view: "Run locally" on a saved group opens the live view of that group,
which starts a real ``balancedesk balance`` child and shows the group's members from its snapshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from balancedesk.gui.live import LiveWindow
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile
from PySide6.QtWidgets import QApplication

Run = Callable[..., Any]


def live_windows() -> list[LiveWindow]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, LiveWindow) and w.isVisible()]


def test_run_locally_opens_the_live_view_of_the_open_group(
    window: MainWindow, mgmt_server: Any, qtbot: Any, arun: Run, qloop: Any
) -> None:
    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    assert not window.run_local_action.isEnabled()  # nothing open yet
    saved = window.catalog.groups[0]
    gid = saved.connector_id
    assert gid is not None and saved.connector_group is not None
    expected = [m.member_id for m in saved.connector_group.ordered()]
    row = window.browser_model.group_row(gid)
    with qtbot.waitSignal(window.group_opened, timeout=10000):
        window.browser.setCurrentIndex(window.browser_filter.mapFromSource(window.browser_model.index(row, 0)))
    qtbot.waitUntil(window.run_local_action.isEnabled, timeout=5000)
    window.run_local_action.trigger()
    qtbot.waitUntil(lambda: len(live_windows()) == 1, timeout=5000)
    (live,) = live_windows()
    assert live.group.connector_id == gid
    try:
        live.run_local(port=0, mode="tcp")
        qtbot.waitUntil(lambda: live.members.member_ids() == expected, timeout=20000)
    finally:
        live.close()
    qtbot.waitUntil(lambda: not live_windows(), timeout=10000)
