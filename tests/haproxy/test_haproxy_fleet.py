"""HAProxy beside Balance Desk's balancers: ``balancedesk haproxy deploy`` from the management API (a real
``balancedesk serve``) to a real HAProxy, ``balancedesk haproxy status``, and the Balancers view listing the
instance for the group it serves with the version it runs — in sync, behind after a save, in sync again after
the next deploy — and opening its live view through the stats socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancedesk.core.client import MgmtClient
from balancedesk.gui.fleet.rows import BEHIND, IN_SYNC, InstanceRow
from balancedesk.gui.fleet.window import BalancersWindow
from balancedesk.gui.haproxy_fleet import INSTANCES_KEY
from balancedesk.gui.live import LiveWindow
from balancedesk.gui.settings import app_settings
from haproxykit import RunningHaproxy
from lbkit import BALANCEDESK
from pytestqt.qtbot import QtBot

from tests.gui import conftest as gui_fixtures
from tests.gui.fleet_support import Fleet

qloop, arun, own_settings = gui_fixtures.qloop, gui_fixtures.arun, gui_fixtures.own_settings
fleet, admin_client = gui_fixtures.fleet, gui_fixtures.admin_client
LONG = 20_000
POOL = "edge"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_group(fleet: Fleet, endpoints: dict[str, str]) -> str:
    ids = []
    for name, ep in endpoints.items():
        r = fleet.admin.post("/api/admin/connectors", json={"label": name, "owner": "admin", "endpoint": ep})
        assert r.status_code == 201, r.text
        ids.append(str(r.json()["connectorID"]))
    body = {"label": "hap group", "owner": "admin", "listener": {"port": free_port(), "pool": POOL, "mode": "tcp"},
            "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 2, "retryDelay": 1,
                               "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                           for i, m in enumerate(ids)]}}
    r = fleet.admin.post("/api/mgmt/connectors", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["connectorID"])


def hap_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BALANCEDESK, "haproxy", *args], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "BD_PW": gui_fixtures.ADMIN_PASSWORD})


def deploy_cli(fleet: Fleet, gid: str, h: RunningHaproxy, port: int) -> subprocess.CompletedProcess[str]:
    return hap_cli("deploy", "--api", fleet.url, "--group", gid, "--user", "admin", "--password-env", "BD_PW",
                   "--haproxy-config", str(h.config), "--master", h.master, "--stats", h.stats,
                   "--listen", f"127.0.0.1:{port}")


def test_haproxy_listed_beside_balancers_with_its_version(
    qtbot: QtBot, arun: Callable[..., Any], fleet: Fleet, admin_client: MgmtClient, upstream: Any,
    haproxy: Callable[..., RunningHaproxy], tmp_path: Path,
) -> None:
    ups = [upstream("tcp_name", n) for n in ("A", "B")]
    gid = make_group(fleet, {u.name: u.endpoint for u in ups})
    h = haproxy()
    port = free_port()
    run = deploy_cli(fleet, gid, h, port)
    assert run.returncode == 0, run.stderr
    assert f"deployed {gid} version 1 to" in run.stdout and "workers" in run.stdout
    saved = fleet.admin.get(f"/api/admin/pools/{POOL}/groups/{gid}").json()["version"]
    assert f"# BEGIN balancedesk group {gid} version 1 pool {POOL} saved {saved}" in h.config.read_text()
    again = deploy_cli(fleet, gid, h, port)  # nothing changed: not reloaded
    assert again.returncode == 0 and "already deployed: not reloaded" in again.stdout, again

    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps([{"name": "edge-hap", "config": str(h.config), "master": h.master,
                                      "stats": h.stats}]))
    status = hap_cli("status", "--instances", str(instances), "--json")
    assert status.returncode == 0, status.stderr
    row = json.loads(status.stdout)[0]
    assert row["version"].startswith("2.") and row["groups"][0]["connectorID"] == gid and row["error"] is None

    app_settings().setValue(INSTANCES_KEY, str(instances))
    win = BalancersWindow(client=admin_client, is_admin=True, user="admin")
    qtbot.addWidget(win)
    win.show()

    def hap_row() -> InstanceRow | None:
        return next((r for r in win.rows if r.instance_id == "haproxy:edge-hap"), None)

    qtbot.waitUntil(lambda: (r := hap_row()) is not None and not r.lost, timeout=LONG)
    r = hap_row()
    assert r is not None and r.info.pool == POOL and r.info.data_plane.startswith("HAProxy 2.")
    assert [(g.connector_id, g.applied, g.saved, g.status) for g in r.groups] == [(gid, saved, saved, IN_SYNC)]

    # a save elsewhere: the instance is behind until the group is deployed again
    body = fleet.admin.get(f"/api/mgmt/connectors/{gid}")
    group = body.json()
    group["connectorGroup"]["members"][0]["weight"] = 3
    assert fleet.admin.put(f"/api/mgmt/connectors/{gid}", json=group,
                           headers={"If-Match": body.headers["ETag"]}).status_code == 200
    qtbot.waitUntil(lambda: (r := hap_row()) is not None and r.groups[0].status == BEHIND, timeout=LONG)
    assert deploy_cli(fleet, gid, h, port).returncode == 0
    qtbot.waitUntil(lambda: (r := hap_row()) is not None and r.groups[0].status == IN_SYNC, timeout=LONG)
    assert "version 2" in h.config.read_text().split(f"# BEGIN balancedesk group {gid}")[1].splitlines()[0]

    # its live view, through the stats socket
    win.select_instance("haproxy:edge-hap")
    live = arun(win.open_live_view(gid))
    assert isinstance(live, LiveWindow)
    qtbot.addWidget(live)
    qtbot.waitUntil(lambda: len(live.members.members()) == 2, timeout=LONG)
    assert sorted(m.weight for m in live.members.members()) == [1, 3]
    live.shutdown()


def test_haproxy_cli_refuses_and_changes_nothing(haproxy: Callable[..., RunningHaproxy], tmp_path: Path) -> None:
    h = haproxy()
    h.config.write_text(h.config.read_text() + "\nbackend bd_g-cli\n    mode tcp\n")
    before = h.config.read_bytes()
    cfg = tmp_path / "g.json"
    cfg.write_text(json.dumps({"connectorID": "g-cli", "label": "cli", "endpoints": {"a": "127.0.0.1:1"},
                               "connectorGroup": {"members": [{"memberID": "a", "sequence": 1}]}}))
    run = hap_cli("deploy", "--config", str(cfg), "--haproxy-config", str(h.config), "--master", h.master,
                  "--listen", f"127.0.0.1:{free_port()}")
    assert run.returncode == 1 and "haproxy -c refused" in run.stderr and "bd_g-cli" in run.stderr, run
    assert h.config.read_bytes() == before
    bad = hap_cli("deploy", "--config", str(cfg))
    assert bad.returncode == 2 and "give --instances FILE or --haproxy-config PATH" in bad.stderr
    broken = tmp_path / "instances.json"
    broken.write_text(json.dumps([{"name": "x"}]))
    bad = hap_cli("status", "--instances", str(broken))
    assert bad.returncode == 2 and "instances[0].config" in bad.stderr
