"""The one-balancer live view against a real ``balancedesk balance --config`` process, with the group saved on a
real management server: the saved group comes from the server (a save made through the API shows as drift,
Apply pushes the server's group and the drift clears; "Save to the server" and "Revert"); Apply refuses a
balancer that runs another group and leaves it running its own. And the Balancers view says why it cannot
open a live view of an instance that sent no admin endpoint. (The aggregated view over real ``balance
--api`` processes: test_fleet_procs.py.)"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.gui.fleet.window import BalancersWindow
from balancedesk.gui.live import AdminClient, LiveWindow, open_live_view
from pytestqt.qtbot import QtBot

from tests.gui.fleet_support import Fleet, Heartbeats, new_pool

LONG = 20_000
CMD = [sys.executable, "-m", "balancedesk.gui.launcher"]
ADMIN_TOKEN = "fleet-live-admin-token"


@pytest.fixture
def balancer(spawn: Callable[..., Any], tmp_path: Path) -> Callable[[dict[str, Any]], str]:
    """``balancer(config)`` → the admin URL of a real ``balancedesk balance --config`` running ``config``."""

    def start(config: dict[str, Any]) -> str:
        cfg, tok = tmp_path / "cfg.json", tmp_path / "admin-token"
        cfg.write_text(json.dumps(config))
        tok.write_text(ADMIN_TOKEN + "\n")
        child = spawn([*CMD, "balance", "--config", str(cfg), "--listen", "127.0.0.1:0", "--mode", "tcp",
                       "--admin", "127.0.0.1:0", "--admin-token-file", str(tok)])
        return child.wait_for(r"balancedesk: balancing (\S+) admin (http://\S+)", timeout=30).group(2)

    return start


@pytest.fixture
def live_windows() -> Iterator[list[LiveWindow]]:
    wins: list[LiveWindow] = []
    yield wins
    for w in wins:
        w.shutdown()


def test_live_view_drift_from_the_server_apply_save_and_revert(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, admin_client: MgmtClient,
    balancer: Callable[[dict[str, Any]], str], arun: Callable[..., Any], live_windows: list[LiveWindow],
) -> None:
    pool = new_pool()
    a = fleet.make_group(pool, port=7201, label="orthanc")
    b = fleet.make_group(pool, port=7202, label="dicom")
    url = balancer(fleet.pool_config(pool, b))  # a real balancer running group b as the server saved it
    versions = fleet.versions(pool)
    group_b, _ = arun(admin_client.get_connector(b))
    live = open_live_view(parent=None, group=group_b, endpoints=fleet.pool_config(pool, b)["endpoints"],
                          client=AdminClient(url, ADMIN_TOKEN), mgmt=admin_client, pool=pool)
    assert isinstance(live, LiveWindow)
    qtbot.addWidget(live)
    live_windows.append(live)
    qtbot.waitUntil(lambda: live.last is not None, timeout=LONG)
    assert live.client is not None and live.client.base_url == url
    assert live.last.group["connectorID"] == b
    qtbot.waitUntil(lambda: live.saved_version == versions[b], timeout=LONG)
    assert not live.drift_banner.isVisible()

    # a save through the API (not in this window): the live view re-reads the group and shows the drift
    fleet.set_weight(b, 1, 4)
    qtbot.waitUntil(live.drift_banner.isVisible, timeout=LONG)
    second = live.group.connector_group.members[1].member_id
    assert f"{live.names.name(second)}: weight running 1, saved 4" in live.drift_label.text()
    assert live.saved_version == fleet.versions(pool)[b]
    assert arun(live.apply_saved_config()) is True
    qtbot.waitUntil(lambda: live.last is not None and (m := live.last.member(second)) is not None
                    and m.weight == 4, timeout=LONG)
    qtbot.waitUntil(lambda: not live.drift_banner.isVisible(), timeout=LONG)

    # overrides set live: a weight and a drain. "Save to the server" saves the weight (the server's group
    # changes, the drift clears) and explains the drain; "Revert" sets the drained member back
    first = live.group.connector_group.members[0].member_id
    arun(live.client.set_weight(second, 7))
    arun(live.client.set_state(first, "drain"))
    qtbot.waitUntil(lambda: live.last is not None and live.last.member(second).weight == 7
                    and live.last.member(first).admin == "drain", timeout=LONG)
    drift = f"{live.names.name(second)}: weight running 7, saved 4"
    qtbot.waitUntil(lambda: drift in live.drift_label.text(), timeout=LONG)
    assert arun(live.save_to_server([])) is True
    assert f"saved to the server: {live.names.name(second)} weight 7" in live.status.text()
    assert f"{live.names.name(first)} is drain: drain and disabled are runtime-only states" in live.status.text()
    saved = fleet.admin.get(f"/api/mgmt/connectors/{b}").json()["connectorGroup"]["members"]
    assert [m["weight"] for m in saved] == [1, 7]
    qtbot.waitUntil(lambda: not live.drift_banner.isVisible(), timeout=LONG)
    assert arun(live.save_to_server([first])) is False  # a drain alone: nothing to save, said why
    assert "runtime-only" in live.status.text()
    arun(live.client.set_weight(second, 9))
    qtbot.waitUntil(lambda: live.last is not None and live.last.member(second).weight == 9, timeout=LONG)
    assert arun(live.revert([])) is True
    qtbot.waitUntil(lambda: live.last is not None and live.last.member(first).admin == "enabled"
                    and live.last.member(second).weight == 7, timeout=LONG)
    assert arun(live.revert([])) is False and "nothing to revert" in live.status.text()

    # a live view of group a attached to the balancer that runs b: drift says so, Apply refuses
    group_a, _ = arun(admin_client.get_connector(a))
    other = open_live_view(parent=None, group=group_a, endpoints={}, mgmt=admin_client, pool=pool)
    assert isinstance(other, LiveWindow)
    qtbot.addWidget(other)
    live_windows.append(other)
    other.attach(url, ADMIN_TOKEN)
    qtbot.waitUntil(other.drift_banner.isVisible, timeout=LONG)
    assert f"the balancer runs another group ('{b}', not '{a}')" in other.drift_label.text()
    with qtbot.waitSignal(other.actionFailed, timeout=LONG) as refused:
        other.apply_config.click()
    assert refused.args[0] == (f"apply refused: this balancer runs group '{b}', not '{a}'; "
                               "open the live view of that group to change it")
    assert other.status.text() == refused.args[0]
    # the balancer still runs b, at the version Apply gave it
    snap = arun(live.client.snapshot())
    assert snap.group["connectorID"] == b and snap.member(second).weight == 7


def test_open_live_view_says_why_without_an_admin_endpoint(
    qtbot: QtBot, qloop: asyncio.AbstractEventLoop, fleet: Fleet, beats: Heartbeats,
    admin_client: MgmtClient, arun: Callable[..., Any],
) -> None:
    pool = new_pool()
    g = fleet.make_group(pool, port=7301)
    beats.add("bal-quiet", fleet.make_token(pool), fleet.versions(pool))  # no adminURL, no token
    win = BalancersWindow(client=admin_client, is_admin=True, user="admin")
    qtbot.addWidget(win)
    win.show()
    try:
        qtbot.waitUntil(lambda: len(win.rows) == 1, timeout=LONG)
        win.select_instance("bal-quiet")
        qtbot.waitUntil(lambda: win.groups.rowCount() == 1, timeout=LONG)
        assert not win.open_live.isEnabled()  # nothing to reach
        with qtbot.waitSignal(win.failed, timeout=LONG) as failed:
            win.on_open_live_clicked()
        assert "did not send its admin endpoint" in failed.args[0] and g
    finally:
        arun(win.aclose())
