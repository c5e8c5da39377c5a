"""The live table against a real L7 ``balancedesk balance`` and real HTTP demo members: each member's
answers by status class (2xx..5xx columns, shown for http) and its total time out ("Down for", as HAProxy's
stats page counts it), with the members named by the labels the window gave the balancer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from balancedesk.gui.live import LiveWindow
from balancedesk.gui.live.models import COL_CLASSES, COL_DOWN, COL_MEMBER, L7_ONLY
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.gui.test_live_failover import LONG, _start_demos_and_balancer, _total


def _cell(win: LiveWindow, mid: str, col: int) -> str:
    return str(win.members.index(win.members.member_ids().index(mid), col).data())


def test_l7_status_classes_and_down_time_per_member(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any]
) -> None:
    lg = live_group(("a", "b"), retry_delay=2)
    win = LiveWindow(group=lg.group, endpoints=lg.endpoints, labels={"a": "alpha-frankfurt", "b": "beta-dublin"})
    qtbot.addWidget(win)
    win.show()
    try:
        _start_demos_and_balancer(qtbot, win, mode="http")
        assert not any(win.table.isColumnHidden(c) for c in L7_ONLY)  # an http group shows them
        win.traffic_panel.rate.setValue(40)
        qtbot.mouseClick(win.traffic_panel.start, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _total(win, "a") >= 5 and _total(win, "b") >= 5, timeout=LONG)
        qtbot.waitUntil(lambda: _cell(win, "a", COL_CLASSES["2xx"]) not in ("–", "0"), timeout=LONG)
        assert int(_cell(win, "a", COL_CLASSES["2xx"])) <= _total(win, "a")
        assert _cell(win, "a", COL_CLASSES["5xx"]) == "0"
        # the balancer names members by the labels the window sent it (memberLabels), the table shows them
        assert win.last is not None and win.last.member("a") is not None
        assert win.last.member("a").label == "alpha-frankfurt"  # type: ignore[union-attr]
        assert _cell(win, "b", COL_MEMBER) == "beta-dublin"
        assert _cell(win, "b", COL_DOWN) == "–"  # never out yet

        qtbot.mouseClick(win.demo_panel.rows["b"][1]["stop"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: (m := win.last.member("b") if win.last else None) is not None
                        and m.down_total_s > 0, timeout=LONG)
        qtbot.waitUntil(lambda: _cell(win, "b", COL_DOWN).endswith(" s"), timeout=LONG)
        assert _cell(win, "a", COL_DOWN) == "–"
    finally:
        win.shutdown()
