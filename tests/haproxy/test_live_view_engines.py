"""The live view's model against both engines, with one parametrised test: Balance Desk's own balancer (its
admin endpoint) and HAProxy (its Runtime API) — the same window, the same calls, the same expectations, so the
two implementations of ``core.engines.Engine`` cannot drift apart.

For each engine: a 3,2,1 tcp group with active checks (every 0.5 s, one failure marks down) over three real
upstream processes; the window's member model shows the members, weights and states; 12 connections add
6/4/2 to the totals; drain, a live weight and revert go through the window's own actions; a killed upstream
shows down."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.engines import Engine
from balancedesk.core.haproxy.deploy import deploy
from balancedesk.core.haproxy.engine import HaproxyEngine
from balancedesk.core.model import BalancerConfig, Connector, parse_balancer_config
from balancedesk.gui.live import LiveWindow
from balancedesk.gui.live.admin import AdminClient
from balancedesk.gui.live.models import COL_WEIGHT
from balancedesk.gui.live.overrides import overrides
from haproxykit import RunningHaproxy
from lbkit import BALANCEDESK, BALANCING_RX, Upstream
from pytestqt.qtbot import QtBot

from tests.gui import conftest as gui_fixtures

qloop, arun, own_settings = gui_fixtures.qloop, gui_fixtures.arun, gui_fixtures.own_settings  # the GUI tests' own

GROUP_ID = "g-both"
WAIT_MS = 15_000


def config(ups: list[Upstream]) -> BalancerConfig:
    return parse_balancer_config({
        "connectorID": GROUP_ID, "label": "both engines",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 30, "loadBalancing": "Round Robin",
                           "members": [{"memberID": u.name, "sequence": i + 1, "weight": w}
                                       for i, (u, w) in enumerate(zip(ups, (3, 2, 1), strict=True))]},
        "endpoints": {u.name: u.endpoint for u in ups},
        "listener": {"mode": "tcp", "port": 1,
                     "healthCheck": {"type": "tcp", "interval": 0.5, "timeout": 0.5, "fall": 1, "rise": 1}},
    })


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_engine(kind: str, cfg: BalancerConfig, spawn: Callable[..., Any], haproxy: Callable[..., RunningHaproxy],
                 tmp_path: Path, arun: Callable[..., Any]) -> tuple[Engine, int]:
    """The engine serving ``cfg``, and the port clients connect to."""
    if kind == "balancedesk":
        path, token = tmp_path / "cfg.json", tmp_path / "admin.token"
        path.write_text(json.dumps(cfg.model_dump(by_alias=True, mode="json", exclude_none=True)))
        child = spawn([*BALANCEDESK, "balance", "--config", str(path), "--listen", "127.0.0.1:0", "--mode", "tcp",
                       "--admin", "127.0.0.1:0", "--admin-token-file", str(token)])
        m = child.wait_for(BALANCING_RX, timeout=30)
        return AdminClient(m[3], token.read_text().strip()), int(m[2])
    h = haproxy()
    port = free_port()
    arun(deploy(cfg, [h.instance(f"127.0.0.1:{port}")]))
    return HaproxyEngine(h.stats, f"bd_{GROUP_ID}"), port


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c, c.makefile("rb") as f:
        c.sendall(b"x\n")
        return f.readline().decode().split()[0]


@pytest.mark.parametrize("kind", ["balancedesk", "haproxy"])
def test_live_view_model_reads_and_steers_both_engines(
    kind: str, qtbot: QtBot, arun: Callable[..., Any], spawn: Callable[..., Any], upstream: Any,
    haproxy: Callable[..., RunningHaproxy], tmp_path: Path,
) -> None:
    ups = [upstream("tcp_name", n) for n in ("A", "B", "C")]
    cfg = config(ups)
    engine, port = start_engine(kind, cfg, spawn, haproxy, tmp_path, arun)
    group = Connector(connectorID=GROUP_ID, owner="admin", label=cfg.label, connectorGroup=cfg.connector_group)
    win = LiveWindow(group=group, endpoints=cfg.endpoints)
    qtbot.addWidget(win)
    win.attach_client(engine, owned=True)
    model = win.members

    def rows() -> dict[str, tuple[str, int, int]]:
        return {m.member_id: (m.state, m.weight, m.total) for m in model.members()}

    def checked_up() -> bool:
        return [m.member_id for m in model.members()] == ["A", "B", "C"] and all(
            m.state == "up" and m.check_ok for m in model.members())

    qtbot.waitUntil(checked_up, timeout=WAIT_MS)
    assert {k: v[1] for k, v in rows().items()} == {"A": 3, "B": 2, "C": 1}
    before = {k: v[2] for k, v in rows().items()}
    answered = [ask(port) for _ in range(12)]
    qtbot.waitUntil(lambda: sum(v[2] for v in rows().values()) - sum(before.values()) >= 12, timeout=WAIT_MS)
    delta = {k: rows()[k][2] - before[k] for k in before}
    assert delta == {"A": 6, "B": 4, "C": 2}, (delta, answered)  # any 6 picks of a 3,2,1 cycle: 3/2/1

    # drain through the window
    arun(win.set_state(["B"], "drain"))
    qtbot.waitUntil(lambda: rows()["B"][0] == "draining", timeout=WAIT_MS)
    assert "B" not in {ask(port) for _ in range(8)}
    # a live weight through the model's edit and the window's Apply weights
    assert model.setData(model.index(0, COL_WEIGHT), 1)
    arun(win.apply_weights_live())
    qtbot.waitUntil(lambda: rows()["A"][1] == 1, timeout=WAIT_MS)
    assert win.last is not None
    assert {o.member_id for o in overrides(group, win.last)} == {"A", "B"}  # both shown as runtime overrides
    # revert both to the saved config
    assert arun(win.revert([]))
    qtbot.waitUntil(lambda: rows()["A"][:2] == ("up", 3) and rows()["B"][:2] == ("up", 2), timeout=WAIT_MS)
    # a killed member shows down
    ups[2].child.kill()
    qtbot.waitUntil(lambda: rows()["C"][0] == "down", timeout=WAIT_MS)
    # the timeline tells it (HAProxy's event is derived at a poll: it may come one poll after the state)
    qtbot.waitUntil(lambda: any(e.text.startswith("C disabled") for e in win.timeline.entries()), timeout=WAIT_MS)
    win.shutdown()


def test_attach_dialog_takes_an_haproxy_stats_socket_and_backend(
    qtbot: QtBot, arun: Callable[..., Any], upstream: Any, haproxy: Callable[..., RunningHaproxy],
) -> None:
    from balancedesk.gui.live.panels import AttachDialog

    ups = [upstream("tcp_name", n) for n in ("A", "B", "C")]
    cfg = config(ups)
    h = haproxy()
    arun(deploy(cfg, [h.instance(f"127.0.0.1:{free_port()}")]))
    group = Connector(connectorID=GROUP_ID, owner="admin", label=cfg.label, connectorGroup=cfg.connector_group)
    win = LiveWindow(group=group, endpoints=cfg.endpoints)
    qtbot.addWidget(win)
    dialog = AttachDialog(win)
    qtbot.addWidget(dialog)
    dialog.haproxy_socket.setText("not a socket")
    dialog.haproxy_backend.setText(f"bd_{GROUP_ID}")
    dialog.accept()
    assert dialog.result() == 0 and "HAProxy stats socket" in dialog.error.text()  # said inline, still open
    dialog.haproxy_socket.setText(h.stats)
    dialog.haproxy_backend.setText("")
    dialog.accept()
    assert "HAProxy backend" in dialog.error.text()
    dialog.haproxy_backend.setText(f"bd_{GROUP_ID}")
    dialog.accept()
    assert dialog.result() == 1 and dialog.haproxy() == (h.stats, f"bd_{GROUP_ID}")
    win.attach_haproxy(*dialog.haproxy() or ("", ""))
    qtbot.waitUntil(lambda: win.members.member_ids() == ["A", "B", "C"], timeout=WAIT_MS)
    assert "attached to HAProxy" in win.run_panel.status.text()
    assert not arun(win.apply_saved_config())  # HAProxy takes a config by deploy, not by the admin endpoint
    assert "deploy" in win.status.text()
    win.shutdown()
