"""Layout that fits a 1280×800 screen (and 200 % on 2560×1600, the same logical size): the live and main
windows' minimum sizes stay inside it whatever their status lines say and however many members the group
has; a banner appearing takes its reserved strip and moves no button; a column grows to a text that
outgrew it (a counter's fifth digit never shows as "12…")."""

from __future__ import annotations

import asyncio
from typing import Any

from balancedesk.core.model import Connector
from balancedesk.gui.live.admin import MemberSnap, Snapshot
from balancedesk.gui.live.models import COL_CLASSES, COL_MEMBER, COL_TOTAL
from balancedesk.gui.live.window import LiveWindow
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QApplication
from pytestqt.qtbot import QtBot

SCREEN_W, SCREEN_H = 1280, 800
DECORATIONS_H = 40  # a title bar and a panel: what a window manager takes from the screen's height
IDS = tuple(f"{i:08x}-77b0-4c1e-9d55-5b1f0c3a8e21" for i in range(8))
LONG = "orders-frankfurt-primary-datacenter-rack-17-with-a-long-label"


def _group() -> Connector:
    return Connector.model_validate({
        "connectorID": "g1", "owner": "ops", "label": "orders",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 3, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": 1} for i, m in enumerate(IDS)]},
    })


def _snap(total: int = 1, weight_b: int = 1, mode: str = "http", ok: int | None = None) -> Snapshot:
    members = tuple(MemberSnap(m, f"127.0.0.1:{20000 + i}", sequence=i + 1, total=total, label=f"{LONG}-{i}",
                               weight=weight_b if i == 1 else 1,
                               status_classes={"2xx": total if ok is None else ok, "5xx": 2},
                               down_total_s=12345.0) for i, m in enumerate(IDS))
    return Snapshot(version=1, group={"connectorID": "g1", "retryDelay": 3}, mode=mode, listen="127.0.0.1:1",
                    affinity_header=None, now=5.0, uptime_s=5.0, members=members)


def _fits(w: Any) -> None:
    hint = w.minimumSizeHint()
    assert hint.width() <= SCREEN_W and hint.height() <= SCREEN_H - DECORATIONS_H, hint


def _live(qtbot: QtBot) -> LiveWindow:
    win = LiveWindow(group=_group(), endpoints={m: f"127.0.0.1:{20000 + i}" for i, m in enumerate(IDS)})
    qtbot.addWidget(win)
    win.resize(SCREEN_W, SCREEN_H - DECORATIONS_H)
    win.show()
    qtbot.waitExposed(win)
    return win


def _buttons(win: LiveWindow) -> dict[str, QRect]:
    """Every visible button's place in the window."""
    out: dict[str, QRect] = {}
    for i, b in enumerate(win.findChildren(QAbstractButton)):
        if b.isVisible() and b.window() is win:
            out[f"{i}:{b.text()}"] = QRect(b.mapTo(win, b.rect().topLeft()), b.size())
    return out


def test_the_live_window_fits_1280x800_whatever_it_says(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    win = _live(qtbot)
    try:
        _fits(win)
        win.on_watcher_snapshotted(_snap())
        long = "admin endpoint unreachable: " + "a very long reason " * 30
        win.status.setText(long)
        win.run_panel.status.setText("running on 127.0.0.1:65535 (pid 4194304) " * 10)
        win.traffic_panel.stats.setText("20000/s · ok 123456789 · failed 123456789 · p50 12345.6 ms " * 5)
        QApplication.processEvents()
        _fits(win)
        assert win.status.text() == long  # the whole text is kept (and shown on hover), only the view is cut
        assert win.width() <= SCREEN_W
    finally:
        win.shutdown()


def test_a_banner_takes_its_reserved_strip_and_moves_no_button(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    win = _live(qtbot)
    try:
        win.on_watcher_snapshotted(_snap())
        QApplication.processEvents()
        before = _buttons(win)
        assert not win.drift_banner.isVisible()
        win._show_drift(_snap(weight_b=7))  # the running weight of B differs from the saved one
        QApplication.processEvents()
        assert win.drift_banner.isVisible() and "weight running 7, saved 1" in win.drift_label.text()
        after = {k: v for k, v in _buttons(win).items() if k in before}
        assert after == before
        win._dead = True  # as the balancer's death shows it
        win._update_banners()
        QApplication.processEvents()
        assert win.death.isVisible() and not win.drift_banner.isVisible()
        assert {k: v for k, v in _buttons(win).items() if k in before} == before
    finally:
        win.shutdown()


def test_columns_grow_to_texts_that_outgrow_them(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    win = _live(qtbot)
    try:
        win.on_watcher_snapshotted(_snap(total=1, ok=0))
        fm = win.table.fontMetrics()
        win._table_at -= 10.0  # as if the refresh interval had passed (no sleeping in tests)
        win.on_watcher_snapshotted(_snap(total=123456789, ok=888))
        QApplication.processEvents()
        assert win.members.index(0, COL_TOTAL).data() == "123456789"
        assert win.table.columnWidth(COL_TOTAL) >= fm.horizontalAdvance("123456789") + 6
        assert win.table.columnWidth(COL_TOTAL) >= win.table.sizeHintForColumn(COL_TOTAL)
        two = COL_CLASSES["2xx"]  # its header is as long as its new text: "2xx", "888"
        assert win.members.index(0, two).data() == "888"
        assert win.table.columnWidth(two) >= win.table.sizeHintForColumn(two)  # shown whole, never "8…"
        label = win.members.index(0, COL_MEMBER).data()
        assert label == f"{LONG}-0"  # the balancer's label
        assert win.table.columnWidth(COL_MEMBER) >= fm.horizontalAdvance(label)
    finally:
        win.shutdown()


def test_the_main_window_fits_1280x800(window: MainWindow, mgmt_server: Any, qtbot: QtBot, arun: Any,
                                        qloop: asyncio.AbstractEventLoop) -> None:
    _fits(window)
    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    saved = window.catalog.groups[0]
    assert saved.connector_id is not None
    row = window.browser_model.group_row(saved.connector_id)
    with qtbot.waitSignal(window.group_opened, timeout=10000):
        window.browser.setCurrentIndex(window.browser_filter.mapFromSource(window.browser_model.index(row, 0)))
    window.show_message("a message " * 80, error=True)
    QApplication.processEvents()
    _fits(window)
