"""The member table tells its view only about the cells whose text changed (one ``dataChanged`` per run
of adjacent columns), so a snapshot under load repaints a few cells, not the table."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from balancedesk.gui.live.admin import MemberSnap
from balancedesk.gui.live.models import (
    COL_ACTIVE,
    COL_ERRORS,
    COL_RATE,
    COL_STATE,
    COL_TOTAL,
    COLUMNS,
    MemberTableModel,
)
from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot


def _ranges(model: MemberTableModel, qtbot: QtBot) -> list[tuple[int, int, int, int]]:
    got: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda tl, br, *_: got.append((tl.row(), tl.column(), br.row(), br.column())))
    return got


def test_only_changed_cells_are_announced(qtbot: QtBot, qtmodeltester: ModelTester) -> None:
    model = MemberTableModel()
    a, b = MemberSnap("a", "127.0.0.1:1", total=10, active=1), MemberSnap("b", "127.0.0.1:2", total=5)
    model.update([a, b], {"a": 1.0, "b": 0.5})
    qtmodeltester.check(model)
    got = _ranges(model, qtbot)
    model.update([a, b], {"a": 1.0, "b": 0.5})
    assert got == []  # nothing changed: nothing to repaint
    model.update([replace(a, total=11, failures=2), b], {"a": 1.0, "b": 0.5})
    assert got == [(0, COL_TOTAL, 0, COL_TOTAL), (0, COL_ERRORS, 0, COL_ERRORS)]  # Total and Errors of row a, two runs
    got.clear()
    model.update([replace(a, total=11, failures=2), replace(b, active=3, total=6)], {"a": 1.0, "b": 0.9})
    assert got == [(1, COL_ACTIVE, 1, COL_RATE)]  # Active, Total, Rate/s of row b: one run
    assert model.data(model.index(1, COL_RATE)) == "0.9" and model.columnCount() == len(COLUMNS)
    got.clear()
    model.update([replace(a, total=11, failures=2, health="disabled"), replace(b, active=3, total=6)],
                 {"a": 1.0, "b": 0.9})
    assert (0, COL_STATE, 0, COL_STATE) in got and model.data(model.index(0, COL_STATE)) == "down"


def test_window_refreshes_counters_at_most_twice_a_second_but_a_state_change_at_once(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
) -> None:
    from balancedesk.gui.live.admin import Snapshot
    from balancedesk.gui.live.window import TABLE_HZ, LiveWindow

    win = LiveWindow()
    qtbot.addWidget(win)
    try:
        def snap(total: int, health: str = "up", now: float = 1.0) -> Snapshot:
            return Snapshot(version=1, group={"retryDelay": 5}, mode="tcp", listen="127.0.0.1:1",
                            affinity_header=None, now=now, uptime_s=now,
                            members=(MemberSnap("a", "127.0.0.1:1", total=total, active=total, health=health,
                                                retry_in_s=4.0 if health == "disabled" else None),))

        def on_canvas() -> str:
            return win.topology.member_node_text("a")

        win.on_watcher_snapshotted(snap(10))
        assert win.members.data(win.members.index(0, COL_TOTAL)) == "10" and "active 10 " in on_canvas()
        win.on_watcher_snapshotted(snap(11, now=1.2))
        assert win.members.data(win.members.index(0, COL_TOTAL)) == "10"  # a counter: waits for the next refresh
        assert "active 10 " in on_canvas()  # on the topology too
        assert win.last is not None and win.last.members[0].total == 11  # the view itself has the snapshot
        win.on_watcher_snapshotted(snap(12, "disabled", now=1.4))
        assert win.members.data(win.members.index(0, COL_STATE)).startswith("down")  # a state change: at once
        assert win.members.data(win.members.index(0, COL_TOTAL)) == "12"
        assert "retry in" in on_canvas() and "active 12 " in on_canvas()
        win._table_at -= 1.0 / TABLE_HZ  # as if a refresh interval had passed (no sleeping in tests)
        win.on_watcher_snapshotted(snap(13, "disabled", now=2.0))
        assert win.members.data(win.members.index(0, COL_TOTAL)) == "13"  # the next refresh after 1 / TABLE_HZ
        assert "active 13 " in on_canvas()
    finally:
        win.shutdown()


def test_animation_off_draws_no_frames_and_says_so(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    import time

    from balancedesk.gui.live.topology import ANIMATION_OFF
    from balancedesk.gui.live.window import LiveWindow

    win = LiveWindow()
    qtbot.addWidget(win)
    win.show()
    topo = win.topology
    try:
        topo._layout(["a"])

        def routes(n: int) -> list[dict[str, object]]:
            t = time.monotonic()
            return [{"kind": "route", "t": t, "attempts": [{"memberID": "a", "outcome": "ok", "ms": 1.0}]}] * n

        topo.add_events(routes(3))
        assert topo.shown == 3 and topo._timer.isActive()  # animated: dots scheduled, frames running
        qtbot.waitUntil(lambda: bool(topo._dots), timeout=5000)
        win.animate.setChecked(False)  # the admin's click
        assert not topo._timer.isActive() and not topo._dots and topo._note.text() == ANIMATION_OFF
        topo.add_events(routes(5))
        assert topo.shown == 3 and topo.routed == 8 and not topo._timer.isActive()  # counted, not drawn
        win.animate.setChecked(True)
        assert topo._note.text() == ""
        topo.add_events(routes(2))
        assert topo.shown == 5 and topo._timer.isActive()
    finally:
        win.shutdown()
