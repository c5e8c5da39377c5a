"""Attach to a balancer that someone else started (here: the test, L7 with an affinity header), by its
admin URL and token: the same view; drift against the saved group is shown and applied; weights are
changed live; the member and timeline models pass qtmodeltester."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancedesk.gui.live import LiveWindow, open_live_view
from balancedesk.gui.live.admin import MemberSnap
from balancedesk.gui.live.models import COL_STATE, COL_WEIGHT, MemberTableModel, TimelineModel, timeline_entries
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

LONG = 20_000
CMD = [sys.executable, "-m", "balancedesk.gui.launcher"]


def _start_balancer(spawn: Callable[..., Any], tmp_path: Path, lg: Any, *, mode: str = "http") -> tuple[str, str]:
    for mid, ep in lg.endpoints.items():
        spawn([*CMD, "demo-member", "--listen", ep, "--mode", mode, "--name", mid]).wait_for("demo member")
    cfg, tok = tmp_path / "cfg.json", tmp_path / "token"
    cfg.write_text(json.dumps(lg.config))
    tok.write_text("attach-test-token\n")
    child = spawn([*CMD, "balance", "--config", str(cfg), "--listen", "127.0.0.1:0", "--mode", mode,
                   "--affinity-header", "sender-transfer-id", "--admin", "127.0.0.1:0",
                   "--admin-token-file", str(tok)])
    m = child.wait_for(r"balancedesk: balancing (\S+) admin (http://\S+)", timeout=30)
    return m.group(2), "attach-test-token"


def test_attach_shows_the_same_view_drift_and_live_weights(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any], spawn: Callable[..., Any],
    tmp_path: Path,
) -> None:
    running = live_group(("a", "b"), weights=(1, 1))
    url, token = _start_balancer(spawn, tmp_path, running)
    # the saved group has other weights than the running balancer: drift
    saved = running.group.model_copy(update={"connector_group": running.group.connector_group.model_copy(
        update={"members": tuple(m.model_copy(update={"weight": 3 if m.member_id == "b" else 1})
                                 for m in running.group.connector_group.members)})})
    win = open_live_view(parent=None, group=saved, endpoints=running.endpoints, client=None)
    assert isinstance(win, LiveWindow)
    qtbot.addWidget(win)
    try:
        win.attach(url, token)
        qtbot.waitUntil(lambda: win.members.member_ids() == ["a", "b"], timeout=LONG)
        assert win.last is not None and win.last.mode == "http"
        assert win.last.affinity_header == "sender-transfer-id"
        assert "L7" in win.topology._balancer.line2.text()

        qtbot.waitUntil(win.drift_banner.isVisible, timeout=LONG)
        assert "b: weight running 1, saved 3" in win.drift_label.text()
        qtbot.mouseClick(win.apply_config, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not win.drift_banner.isVisible(), timeout=LONG)
        b = win.last.member("b")
        assert b is not None and b.weight == 3

        # traffic with affinity keys through the attached balancer
        win.start_traffic(40, keys=5)
        assert win.traffic_panel.rate.value() == 40  # the rate it runs at is the one the panel shows
        qtbot.waitUntil(lambda: win.last is not None and sum(m.total for m in win.last.members) >= 20,
                        timeout=LONG)
        qtbot.waitUntil(lambda: win.traffic.last.get("ok", 0) >= 10, timeout=LONG)
        qtbot.waitUntil(lambda: sorted(win.chart.curve_ids()) == ["a", "b"], timeout=LONG)
        assert win.watcher is not None and win.watcher.newest  # the balancer honoured newest=1
        qtbot.waitUntil(lambda: win.topology.shown > 0, timeout=LONG)  # dots from the newest-only reads
        # L7 keep-alive: the balancer box counts requests (the generator reuses its connections)
        qtbot.waitUntil(lambda: float(win.topology._balancer.line3.text().split(" req/s")[0]) > 0, timeout=LONG)

        # change a weight and apply it live (running differs from saved again → drift)
        row = win.members.member_ids().index("a")
        assert win.members.setData(win.members.index(row, COL_WEIGHT), 5)
        assert win.apply_weights.isEnabled()
        qtbot.mouseClick(win.apply_weights, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: (m := win.last.member("a") if win.last else None) is not None and m.weight == 5,
                        timeout=LONG)
        qtbot.waitUntil(lambda: win.drift_banner.isVisible() and "a: weight running 5, saved 1"
                        in win.drift_label.text(), timeout=LONG)
        assert win.members.pending_weights() == {}

        # multi-select disable
        win.select_members(["a", "b"])
        qtbot.mouseClick(win.disable, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.last is not None and all(m.admin == "disabled" for m in win.last.members),
                        timeout=LONG)
        qtbot.waitUntil(lambda: sum(1 for e in win.timeline.entries() if e.kind == "admin") >= 2, timeout=LONG)
    finally:
        win.shutdown()


def test_attach_to_nothing_says_unreachable(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    win = LiveWindow()
    qtbot.addWidget(win)
    try:
        win.attach(f"http://127.0.0.1:{port}", "x")
        qtbot.waitUntil(lambda: "unreachable" in win.status.text(), timeout=LONG)
        assert win.last is None
    finally:
        win.shutdown()


def test_view_follows_a_balancer_that_dies_and_comes_back(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, live_group: Callable[..., Any], spawn: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The admin endpoint goes away under the view (SIGKILL: its kept-alive connections die with it) and a
    new balancer takes the same admin port: the view says unreachable, then watches the new one."""
    import os
    import signal
    import socket

    running = live_group(("a",), weights=(1,))
    for mid, ep in running.endpoints.items():
        spawn([*CMD, "demo-member", "--listen", ep, "--mode", "tcp", "--name", mid]).wait_for("demo member")
    cfg, tok = tmp_path / "cfg.json", tmp_path / "token"
    cfg.write_text(json.dumps(running.config))
    tok.write_text("back-again-token\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        admin_port = s.getsockname()[1]

    def start() -> Any:
        child = spawn([*CMD, "balance", "--config", str(cfg), "--listen", "127.0.0.1:0", "--mode", "tcp",
                       "--admin", f"127.0.0.1:{admin_port}", "--admin-token-file", str(tok)])
        child.wait_for(r"balancedesk: balancing (\S+) admin (http://\S+)", timeout=30)
        return child

    first = start()
    win = LiveWindow()
    qtbot.addWidget(win)
    try:
        win.attach(f"http://127.0.0.1:{admin_port}", "back-again-token")
        qtbot.waitUntil(lambda: win.last is not None and "watching" in win.status.text(), timeout=LONG)
        first_listen = win.last.listen if win.last else ""
        os.kill(first.pid, signal.SIGKILL)
        qtbot.waitUntil(lambda: "unreachable" in win.status.text(), timeout=LONG)
        start()
        qtbot.waitUntil(lambda: "watching" in win.status.text(), timeout=LONG)
        # snapshots come from the new process (it listens on another port)
        qtbot.waitUntil(lambda: win.last is not None and win.last.listen != first_listen, timeout=LONG)
        assert win.watcher is not None and win.watcher.reachable is True
    finally:
        win.shutdown()


def _snaps(n: int, *, down: int | None = None) -> list[MemberSnap]:
    return [MemberSnap(member_id=f"m{i}", endpoint=f"127.0.0.1:{9000 + i}", weight=i + 1, total=10 * i,
                       health="disabled" if i == down else "up", retry_in_s=1.5 if i == down else None)
            for i in range(n)]


def test_member_and_timeline_models_pass_qtmodeltester(qtmodeltester: Any) -> None:
    model = MemberTableModel()
    model.update(_snaps(3, down=1), {"m0": 2.0})
    qtmodeltester.check(model)
    assert "retry in" in model.index(1, COL_STATE).data()
    model.update(_snaps(3), {})
    model.update(_snaps(2), {})
    assert model.setData(model.index(0, COL_WEIGHT), 7)
    assert model.pending_weights() == {"m0": 7}
    assert not model.setData(model.index(0, COL_WEIGHT), 0)
    qtmodeltester.check(model)

    timeline = TimelineModel(limit=3)
    events = [{"kind": "health", "t": 1.0, "memberID": "a", "state": "disabled", "until": 3.0, "reason": "x"},
              {"kind": "route", "t": 1.0, "attempts": [{"memberID": "a", "outcome": "refused"},
                                                       {"memberID": "b", "outcome": "ok"}],
               "memberID": "b", "outcome": "ok"},
              {"kind": "route", "t": 1.1, "attempts": [{"memberID": "b", "outcome": "ok"}], "outcome": "ok"},
              {"kind": "health", "t": 3.0, "memberID": "a", "state": "enabled", "reason": "retryDelay ended"},
              {"kind": "admin", "t": 4.0, "memberID": "b", "state": "drain"}]
    timeline.add(timeline_entries(events, now=5.0, uptime_s=10.0))
    qtmodeltester.check(timeline)
    texts = [e.text for e in timeline.entries()]
    assert texts == ["b set to drain by an admin", "a enabled again (retryDelay ended)",
                     "failover: a refused → b"]


def test_attach_dialog_and_bad_input_are_said_inline(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                      tmp_path: Path, own_settings: Path) -> None:
    from balancedesk.gui.live.panels import AttachDialog

    dialog = AttachDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.url.setText("ftp://127.0.0.1:1")
    dialog.accept()
    assert dialog.isVisible() and dialog.error.isVisible() and "http://host:port" in dialog.error.text()
    dialog.url.setText("http://127.0.0.1:99999")
    dialog.accept()
    assert dialog.isVisible() and "not a number from 1 to 65535" in dialog.error.text()
    dialog.url.setText("http://127.0.0.1:9901")
    dialog.ca_file.setText(str(tmp_path / "ca.pem"))
    dialog.accept()
    assert dialog.isVisible() and "only used with an https://" in dialog.error.text()
    dialog.url.setText("https://127.0.0.1:9901")
    dialog.token_file.setText(str(tmp_path / "missing-token"))
    dialog.accept()
    assert not dialog.isVisible()  # accepted
    url, token, file, ca = dialog.values()
    assert (url, token, file) == ("https://127.0.0.1:9901", "", tmp_path / "missing-token")
    assert ca == str(tmp_path / "ca.pem")
    # the next attach offers the same URL, token file and CA file again; a typed token is never kept
    again = AttachDialog()
    qtbot.addWidget(again)
    assert again.url.text() == "https://127.0.0.1:9901" and again.token_file.text() == str(file)
    assert again.ca_file.text() == ca
    dialog.token.setText("s3cret-token")
    dialog.accept()
    assert "s3cret-token" not in "".join((own_settings / "balancedesk" / f).read_text()
                                         for f in os.listdir(own_settings / "balancedesk"))
    assert AttachDialog().token.text() == ""

    win = LiveWindow()
    qtbot.addWidget(win)
    try:
        # the token file does not exist: said inline, nothing attached
        win._spawn(win._attach_from((url, token, file, None)))
        qtbot.waitUntil(lambda: "cannot attach: token file" in win.run_panel.status.text(), timeout=LONG)
        assert win.client is None
        # a CA file that does not exist, and a URL that is not an admin URL: said inline
        win.attach("https://127.0.0.1:9901", "t", verify=str(tmp_path / "ca.pem"))
        assert "cannot attach" in win.run_panel.status.text() and win.client is None
        win.attach("ftp://127.0.0.1:1", "t")
        assert "cannot attach: admin URL must be http" in win.run_panel.status.text() and win.client is None
    finally:
        win.shutdown()
