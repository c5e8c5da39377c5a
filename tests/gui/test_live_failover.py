"""The live view against a real ``balancedesk balance`` child and real demo members on 127.0.0.1:
a stopped member turns down with a countdown, traffic moves, and after retryDelay it is back; drain
stops new connections only; a balancer that dies is reported with its last log lines."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from balancedesk.gui.live import LiveWindow
from balancedesk.gui.live.admin import MemberSnap
from balancedesk.gui.live.models import COL_STATE
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

LONG = 20_000


def _member(win: LiveWindow, mid: str) -> MemberSnap | None:
    return win.last.member(mid) if win.last is not None else None


def _total(win: LiveWindow, mid: str) -> int:
    m = _member(win, mid)
    return m.total if m else 0


def _state_cell(win: LiveWindow, mid: str) -> str:
    row = win.members.member_ids().index(mid)
    return str(win.members.index(row, COL_STATE).data())


def _start_demos_and_balancer(qtbot: QtBot, win: LiveWindow, mode: str = "tcp") -> None:
    qtbot.waitUntil(lambda: all(s.status == "free" for s in win.demos.slots.values()), timeout=LONG)
    win.run_panel.mode.setCurrentIndex(1 if mode == "http" else 0)
    for _label, buttons in win.demo_panel.rows.values():
        qtbot.mouseClick(buttons["start"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: all(s.status == "ok" for s in win.demos.slots.values()), timeout=LONG)
    qtbot.mouseClick(win.run_panel.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.last is not None and len(win.last.members) == len(win.demos.slots),
                    timeout=LONG)


def _window(qtbot: QtBot, lg: Any) -> LiveWindow:
    win = LiveWindow(group=lg.group, endpoints=lg.endpoints)
    qtbot.addWidget(win)
    win.show()
    return win


def test_stopped_member_goes_down_with_countdown_and_comes_back(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any]
) -> None:
    win = _window(qtbot, live_group(("a", "b"), retry_delay=2))
    try:
        _start_demos_and_balancer(qtbot, win)
        win.traffic_panel.rate.setValue(40)
        qtbot.mouseClick(win.traffic_panel.start, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: _total(win, "a") >= 5 and _total(win, "b") >= 5, timeout=LONG)
        assert "L4 tcp (native)" in win.topology.balancer_node_text()  # the C data plane, built at install

        qtbot.mouseClick(win.demo_panel.rows["a"][1]["stop"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "retry in" in _state_cell(win, "a"), timeout=LONG)
        down = _member(win, "a")
        assert down is not None and down.health == "disabled" and down.retry_in_s is not None
        assert "retry in" in win.topology.member_node_text("a")
        qtbot.waitUntil(lambda: any("a disabled" in e.text for e in win.timeline.entries()), timeout=LONG)

        # traffic moves: b takes new connections while a is down
        a0, b0 = _total(win, "a"), _total(win, "b")
        qtbot.waitUntil(lambda: _total(win, "b") >= b0 + 20, timeout=LONG)
        assert _total(win, "a") <= a0 + 2  # at most a retry probe after retryDelay

        # the member comes back; after retryDelay the balancer tries it again and it is up
        qtbot.mouseClick(win.demo_panel.rows["a"][1]["start"], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.demos.slots["a"].status == "ok", timeout=LONG)
        a1 = _total(win, "a")
        qtbot.waitUntil(lambda: (m := _member(win, "a")) is not None and m.state == "up"
                        and _total(win, "a") >= a1 + 5, timeout=LONG)
        assert _state_cell(win, "a") == "up"
        assert any("a enabled again" in e.text for e in win.timeline.entries())
        assert win.traffic.last.get("ok", 0) > 0
    finally:
        win.shutdown()


def test_drain_stops_new_connections_only(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any]
) -> None:
    win = _window(qtbot, live_group(("a", "b")))
    try:
        _start_demos_and_balancer(qtbot, win)
        assert win.last is not None
        host, port = win.last.listen.rsplit(":", 1)
        held = socket.create_connection((host, int(port)), timeout=5)
        try:
            held.sendall(b"one\n")
            assert held.recv(10) == b"one\n"
            qtbot.waitUntil(lambda: win.last is not None and sum(m.active for m in win.last.members) == 1,
                            timeout=LONG)
            assert win.last is not None
            busy = next(m.member_id for m in win.last.members if m.active == 1)
            other = next(m for m in win.members.member_ids() if m != busy)

            win.select_members([busy])
            assert win.selected_member_ids() == [busy]
            qtbot.mouseClick(win.drain, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: _state_cell(win, busy) == "draining", timeout=LONG)

            b0, o0 = _total(win, busy), _total(win, other)
            win.start_traffic(30)
            qtbot.waitUntil(lambda: _total(win, other) >= o0 + 20, timeout=LONG)
            assert _total(win, busy) == b0  # no new connections to the drained member
            held.sendall(b"two\n")  # the existing one still works
            assert held.recv(10) == b"two\n"
            m = _member(win, busy)
            assert m is not None and m.active == 1 and m.admin == "drain"
        finally:
            held.close()
        qtbot.waitUntil(lambda: (m := _member(win, busy)) is not None and m.active == 0, timeout=LONG)

        win.select_members([busy])
        qtbot.mouseClick(win.enable, Qt.MouseButton.LeftButton)
        b1 = _total(win, busy)
        qtbot.waitUntil(lambda: _state_cell(win, busy) == "up" and _total(win, busy) >= b1 + 5, timeout=LONG)
    finally:
        win.shutdown()


def test_balancer_death_is_reported_with_its_last_lines(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any]
) -> None:
    win = _window(qtbot, live_group(("a",)))
    try:
        _start_demos_and_balancer(qtbot, win)
        assert win.balancer is not None
        with qtbot.waitSignal(win.balancerExited, timeout=LONG) as exited:
            os.kill(win.balancer.pid, signal.SIGKILL)  # a child this test's window started
        assert exited.args == [9] or exited.args[0] != 0
        assert win.death.isVisible()
        assert "balancing" in win.death_log.toPlainText()
        assert win.run_panel.run.isEnabled()
    finally:
        win.shutdown()
