"""Demo members and generated traffic belong to the live window that started them (real processes on
127.0.0.1): gone — PIDs dead, ports free, records dropped — once the window closes; a second window's demos
of the same group get other ports; what a gone app left is cleaned when a window opens; the traffic generator
stops on Stop and on Attach, and the timeline does not mix in the previous balancer's events."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancedesk.core.demo import DEMO_STATE_FILE, DemoRecord, DemoRegistry, process_start
from balancedesk.core.model import parse_endpoint
from balancedesk.gui.live import LiveWindow
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

LONG = 20_000
BALANCING_RX = r"balancedesk: balancing (127\.0\.0\.1):(\d+) admin (http://127\.0\.0\.1:\d+)"


def _window(qtbot: QtBot, lg: Any) -> LiveWindow:
    win = LiveWindow(group=lg.group, endpoints=lg.endpoints)
    qtbot.addWidget(win)
    win.show()
    return win


def _start_demos(qtbot: QtBot, win: LiveWindow, *, expect: str = "free") -> None:
    qtbot.waitUntil(lambda: all(s.status == expect for s in win.demos.slots.values()), timeout=LONG)
    for _label, buttons in win.demo_panel.rows.values():
        qtbot.mouseClick(buttons["start"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: all(s.status == "ok" for s in win.demos.slots.values()), timeout=LONG)


def _free(endpoint: str) -> bool:
    host, port = parse_endpoint(endpoint)
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _dead(pid: int) -> bool:
    return process_start(pid) is None


def _registry(data: Path) -> DemoRegistry:
    return DemoRegistry(data / DEMO_STATE_FILE)


def test_demo_members_are_gone_after_their_window_closes(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any], own_data_dir: Path) -> None:
    win = _window(qtbot, live_group(("a", "b")))
    _start_demos(qtbot, win)
    pids = {mid: s.pid for mid, s in win.demos.slots.items()}
    endpoints = {mid: s.endpoint for mid, s in win.demos.slots.items()}
    assert all(p > 0 for p in pids.values()) and not any(_free(ep) for ep in endpoints.values())
    assert sorted(r.pid for r in _registry(own_data_dir).records()) == sorted(pids.values())
    win.close()  # the window's close: SIGTERM, waited for
    assert all(_dead(p) for p in pids.values()), pids
    assert all(_free(ep) for ep in endpoints.values())
    assert _registry(own_data_dir).records() == []


def test_two_demos_side_by_side_get_different_ports(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any]) -> None:
    lg = live_group(("a", "b"))
    first = _window(qtbot, lg)
    second = _window(qtbot, lg)
    try:
        _start_demos(qtbot, first)
        qtbot.waitUntil(lambda: second.demos.slots["a"].status != "unknown", timeout=LONG)
        second._spawn(second.demos.probe())  # looks again, now that the first window's demos run
        _start_demos(qtbot, second, expect="other")
        ports = [parse_endpoint(w.demos.slots[m].endpoint)[1] for w in (first, second) for m in ("a", "b")]
        assert len(set(ports)) == 4, ports
        assert second.endpoints["a"] == second.demos.slots["a"].endpoint != lg.endpoints["a"]  # the config's
        assert not _free(second.demos.slots["a"].endpoint)
        pids = [s.pid for w in (first, second) for s in w.demos.slots.values()]
    finally:
        second.close()
        first.close()
    assert all(_dead(p) for p in pids)


def test_what_a_gone_app_left_is_cleaned_when_a_window_opens(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any], own_data_dir: Path,
        spawn: Callable[..., Any]) -> None:
    lg = live_group(("a",))
    left = spawn([sys.executable, "-m", "balancedesk.gui.launcher", "demo-member", "--listen", lg.endpoints["a"],
                  "--mode", "tcp", "--name", "a"])
    left.wait_for(r"balancedesk: demo member a on")
    gone = spawn([sys.executable, "-c", "pass"])
    gone_start = process_start(gone.proc.pid) or 1
    gone.proc.wait(10)
    start = process_start(left.proc.pid)
    assert start is not None
    _registry(own_data_dir).add(DemoRecord(left.proc.pid, start, "demo-member", "a", lg.endpoints["a"], "",
                                           gone.proc.pid, gone_start, "crashed window"))
    win = _window(qtbot, lg)
    try:
        qtbot.waitUntil(lambda: win.demos.slots["a"].status == "free", timeout=LONG)  # stopped, so free again
        assert left.proc.wait(10) == 0 and _registry(own_data_dir).records() == []
    finally:
        win.close()


def _second_balancer(spawn: Callable[..., Any], tmp_path: Path, endpoint: str) -> tuple[str, str]:
    cfg = {"connectorID": "other-group", "owner": "tester", "label": "other",
           "connectorGroup": {"connectionTimeout": 2, "retryDelay": 2, "loadBalancing": "Round Robin",
                              "members": [{"memberID": "x", "sequence": 1, "weight": 1}]},
           "endpoints": {"x": endpoint}}
    (tmp_path / "other.json").write_text(json.dumps(cfg))
    token = tmp_path / "other.token"
    child = spawn([sys.executable, "-m", "balancedesk.gui.launcher", "balance", "--config",
                   str(tmp_path / "other.json"), "--listen", "127.0.0.1:0", "--mode", "tcp", "--admin", "127.0.0.1:0",
                   "--admin-token-file", str(token)])
    m = child.wait_for(BALANCING_RX)
    return m.group(3), token.read_text().strip()


def test_traffic_stops_on_stop_and_on_attach_and_the_timeline_starts_afresh(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any],
        spawn: Callable[..., Any], tmp_path: Path) -> None:
    win = _window(qtbot, live_group(("a", "b")))
    try:
        _start_demos(qtbot, win)
        qtbot.mouseClick(win.run_panel.run, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.last is not None and len(win.last.members) == 2, timeout=LONG)
        win.start_traffic(20)
        qtbot.waitUntil(lambda: win.traffic.pid > 0, timeout=LONG)
        pid = win.traffic.pid
        qtbot.mouseClick(win.run_panel.stop, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not win.traffic.running and _dead(pid), timeout=LONG)
        qtbot.waitUntil(lambda: win.balancer is None and win.run_panel.run.isEnabled(), timeout=LONG)

        before = win.last
        qtbot.mouseClick(win.run_panel.run, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.last is not None and win.last is not before, timeout=LONG)  # the new one's
        qtbot.mouseClick(win.demo_panel.rows["a"][1]["stop"], Qt.MouseButton.LeftButton)
        win.start_traffic(40)
        qtbot.waitUntil(lambda: any("a disabled" in e.text for e in win.timeline.entries()), timeout=LONG)
        pid = win.traffic.pid
        url, token = _second_balancer(spawn, tmp_path, win.demos.slots["b"].endpoint)
        win.attach(url, token)
        qtbot.waitUntil(lambda: not win.traffic.running and _dead(pid), timeout=LONG)
        qtbot.waitUntil(lambda: win.last is not None and win.last.group.get("connectorID") == "other-group",
                        timeout=LONG)
        assert not any(" a " in f" {e.text} " or "a disabled" in e.text for e in win.timeline.entries())
    finally:
        win.close()
