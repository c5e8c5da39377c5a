"""The live view speaks the editor's language: members by label with the editor's badge letters and
colours (one shared piece, :mod:`balancedesk.gui.badges`), the ID on hover and in a column that can be
shown — in the table, the topology, the chart legend, the timeline and the demo panel; the balancer's own
label wins, and a member with no known label shows a short ID. The status-class and "Down for" columns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from balancedesk.core.model import Connector
from balancedesk.gui import badges, members_model
from balancedesk.gui.live.admin import MemberSnap, Snapshot
from balancedesk.gui.live.models import (
    _CELLS,
    COL_CLASSES,
    COL_DOWN,
    COL_ID,
    COL_MEMBER,
    COLUMNS,
    L7_ONLY,
    MemberTableModel,
    downtime_text,
    timeline_entries,
)
from balancedesk.gui.live.names import MemberNames, short_id
from balancedesk.gui.live.window import LiveWindow
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import Profile
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QApplication
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot

UA, UB, UC = ("3f2a9c1e-77b0-4c1e-9d55-5b1f0c3a8e21", "8b1d0e44-0c2f-4f6a-a1d3-7e9b2c4d6f80",
              "c7e5a913-5d48-4b2e-8f61-2a0d9e7c3b14")
DISPLAY, TIP = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole


def _group(*ids: str) -> Connector:
    return Connector.model_validate({
        "connectorID": "g1", "owner": "ops", "label": "orders",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 3, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": 1} for i, m in enumerate(ids)]},
    })


def _snap(members: tuple[MemberSnap, ...], mode: str = "tcp") -> Snapshot:
    return Snapshot(version=1, group={"connectorID": "g1", "retryDelay": 3}, mode=mode, listen="127.0.0.1:1",
                    affinity_header=None, now=5.0, uptime_s=5.0, members=members)


def test_the_badges_are_one_piece_shared_with_the_editor() -> None:
    assert members_model.letter is badges.letter and members_model.letter_chip is badges.letter_chip
    assert members_model.member_color is badges.member_color
    names = MemberNames.build(saved=[UA, UB, UC])
    assert [names.letter(m) for m in (UA, UB, UC)] == ["A", "B", "C"]
    assert [names.color(m) for m in (UA, UB, UC)] == [badges.member_color(i) for i in range(3)]
    assert short_id(UA) == "3f2a9c1e" and short_id("a") == "a" and short_id("x" * 30) == "x" * 8 + "…"


def test_the_member_table_shows_labels_with_the_id_on_hover_and_in_its_column(
    qtbot: QtBot, qtmodeltester: ModelTester,
) -> None:
    model = MemberTableModel()
    model.set_names(MemberNames.build(saved=[UA, UB, UC], labels={UA: "orders-fra-1", UB: "orders-fra-2"}))
    model.update([MemberSnap(UA, "127.0.0.1:1"), MemberSnap(UB, "127.0.0.1:2", label="fra-2 (balancer)"),
                  MemberSnap(UC, "127.0.0.1:3")], {})
    qtmodeltester.check(model)
    assert [model.index(r, COL_MEMBER).data(DISPLAY) for r in range(3)] == ["orders-fra-1", "orders-fra-2", "c7e5a913"]
    assert [model.index(r, COL_ID).data(DISPLAY) for r in range(3)] == [UA, UB, UC]
    tip = model.index(0, COL_MEMBER).data(TIP)
    assert "orders-fra-1" in tip and UA in tip and "127.0.0.1:1" in tip and tip.startswith("A ")
    assert isinstance(model.index(1, COL_MEMBER).data(Qt.ItemDataRole.DecorationRole), QPixmap)
    # the balancer's own label wins once the window builds the names from a snapshot
    running = [(UB, "fra-2 (balancer)")]
    model.set_names(MemberNames.build(saved=[UA, UB, UC], running=running, labels={UB: "orders-fra-2"}))
    assert model.index(1, COL_MEMBER).data(DISPLAY) == "fra-2 (balancer)"
    assert len(_CELLS) == len(COLUMNS)  # every column has its text


def test_status_classes_and_down_time_cells() -> None:
    model = MemberTableModel()
    model.update([MemberSnap("a", status_classes={"2xx": 1234, "5xx": 3}, down_total_s=75.0),
                  MemberSnap("b")], {})
    assert [model.index(0, COL_CLASSES[k]).data() for k in ("2xx", "3xx", "4xx", "5xx")] == ["1234", "0", "0", "3"]
    assert model.index(1, COL_CLASSES["2xx"]).data() == "–"  # tcp (or before any answer): nothing counted
    assert model.index(0, COL_DOWN).data() == "1m 15s" and model.index(1, COL_DOWN).data() == "–"
    assert [downtime_text(s) for s in (0, 4.25, 187, 7500, 3 * 86400 + 4 * 3600)] == \
        ["–", "4.2 s", "3m 07s", "2h 05m", "3d 04h"]


def test_every_panel_of_the_window_names_members_alike(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    labels = {UA: "orders-frankfurt-primary-with-a-very-long-label", UB: "orders-fra-2"}
    win = LiveWindow(group=_group(UA, UB, UC), endpoints={m: f"127.0.0.1:{1 + i}" for i, m in enumerate((UA, UB, UC))},
                     labels=labels)
    qtbot.addWidget(win)
    win.show()
    try:
        win.on_watcher_snapshotted(_snap((MemberSnap(UA, "127.0.0.1:1", sequence=1, total=3),
                                          MemberSnap(UB, "127.0.0.1:2", sequence=2, health="disabled",
                                                     retry_in_s=2.0, down_total_s=1.5),
                                          MemberSnap(UC, "127.0.0.1:3", sequence=3))))
        # topology: the label on its box (cut to the box, never past it), the ID on hover
        assert win.topology.member_node_text(UA).splitlines()[0] == labels[UA]
        shown = win.topology.member_node_shown(UA)[0]
        assert shown.endswith("…") and labels[UA].startswith(shown[:-1])
        assert all(win.topology.member_box_fits(m) for m in (UA, UB, UC))
        assert win.topology.member_node_text(UC).splitlines()[0] == "c7e5a913"
        node = win.topology._members[UB].box.sceneBoundingRect().center()
        at = win.topology._scale * node.x() + win.topology._ox, win.topology._scale * node.y() + win.topology._oy
        from PySide6.QtCore import QPointF

        tip = win.topology.tooltip_at(QPointF(*at))
        assert "orders-fra-2" in tip and UB in tip and "retry in" in tip
        # chart legend: letter and label, in the badge's colour
        win.chart._drawn_at = 0.0
        win.chart.show_history(win.rates.history, 5.0)
        legend = win.chart.legend_texts()
        assert legend[1] == "B orders-fra-2" and legend[2] == "C c7e5a913" and legend[0].startswith("A orders-frank")
        assert win.chart._curves[UB].opts["pen"].color() == badges.member_color(1)
        # timeline: labels in the texts, the ID on hover
        entries = timeline_entries([{"kind": "health", "memberID": UB, "state": "disabled", "t": 4.0, "until": 7.0},
                                    {"kind": "route", "memberID": UC, "outcome": "ok", "t": 4.1,
                                     "attempts": [{"memberID": UB, "outcome": "refused"},
                                                  {"memberID": UC, "outcome": "ok"}]}],
                                   now=5.0, uptime_s=5.0, name=win.names.name)
        win.timeline.add(entries)
        texts = [e.text for e in win.timeline.entries()]
        assert "orders-fra-2 disabled for 3.0 s" in texts and "failover: orders-fra-2 refused → c7e5a913" in texts
        assert UC in win.timeline.index(0).data(TIP)
        # demo panel: label and badge, the ID on hover
        label, buttons = win.demo_panel.rows[UB]
        assert label.text().startswith("orders-fra-2: ") and UB in label.toolTip() and UB in buttons["start"].toolTip()
        # the status line about an action names members by label
        assert win.names.name(UB) == "orders-fra-2"
        # the ID column is hidden at first and shown from the header's menu; L7 columns hidden for tcp
        assert win.table.isColumnHidden(COL_ID) and all(win.table.isColumnHidden(c) for c in L7_ONLY)
        menu = win.column_menu()
        (id_action,) = [a for a in menu.actions() if a.text() == "ID"]
        id_action.toggle()
        assert not win.table.isColumnHidden(COL_ID)
        assert not next(a for a in menu.actions() if a.text() == "2xx").isEnabled()
        win.on_watcher_snapshotted(_snap((MemberSnap(UA, sequence=1, status_classes={"2xx": 5}),), mode="http"))
        assert not any(win.table.isColumnHidden(c) for c in L7_ONLY)
    finally:
        win.shutdown()


Run = Callable[..., Any]


def test_the_live_view_opened_from_the_editor_shows_the_catalogs_labels(
    window: MainWindow, mgmt_server: Any, qtbot: QtBot, arun: Run, qloop: asyncio.AbstractEventLoop,
) -> None:
    arun(window.connect_profile(Profile(name="t", url=mgmt_server.url, user=mgmt_server.user),
                                password=mgmt_server.password))
    saved = window.catalog.groups[0]
    assert saved.connector_id is not None and saved.connector_group is not None
    ordered = [m.member_id for m in saved.connector_group.ordered()]
    row = window.browser_model.group_row(saved.connector_id)
    with qtbot.waitSignal(window.group_opened, timeout=10000):
        window.browser.setCurrentIndex(window.browser_filter.mapFromSource(window.browser_model.index(row, 0)))
    qtbot.waitUntil(window.run_local_action.isEnabled, timeout=5000)
    window.run_local_action.trigger()
    qtbot.waitUntil(lambda: any(isinstance(w, LiveWindow) and w.isVisible() for w in QApplication.topLevelWidgets()),
                    timeout=5000)
    (live,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, LiveWindow) and w.isVisible()]
    try:
        live.run_local(port=0, mode="tcp")
        qtbot.waitUntil(lambda: live.members.member_ids() == ordered, timeout=20000)
        shown = [live.members.index(r, COL_MEMBER).data(DISPLAY) for r in range(len(ordered))]
        assert shown == [window.catalog.label(m) for m in ordered]
        assert all(m in live.members.index(r, COL_MEMBER).data(TIP) for r, m in enumerate(ordered))
        assert [live.names.letter(m) for m in ordered] == [badges.letter(i) for i in range(len(ordered))]
        for m in ordered:
            assert live.topology.member_node_text(m).splitlines()[0] == window.catalog.label(m)
    finally:
        live.close()
    qtbot.waitUntil(lambda: not any(isinstance(w, LiveWindow) and w.isVisible()
                                    for w in QApplication.topLevelWidgets()), timeout=10000)
