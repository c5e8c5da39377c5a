"""Screenshots of the Balancers view, light and dark, at 1280×800 under Xvfb: ``python scripts/fleet_screenshots.py``.

Without a DISPLAY it re-runs itself under ``xvfb-run``. For each theme it starts a fresh ``balancedesk
serve`` on 127.0.0.1:0 (heartbeat interval 1 s), makes two pools of groups and a token per balancer, and
heartbeats four balancer instances with those tokens from a thread (as ``balancedesk balance --api …
--pool …`` does): one applied an older version of a group than the one saved (drift), one has overrides
set live, one stopped heartbeating (lost). Then it opens the Balancers window, chooses the drifting
instance, and saves the window grab to docs/screenshots/balancers-{theme}.png.

Then the aggregated live view (docs/screenshots/fleet-live-{theme}.png), from real processes: another
fresh server, three demo members (TCP echo), one group, two ``balancedesk balance --api … --pool …``
processes (on 127.0.0.2 and 127.0.0.3), traffic through both (``balancedesk demo-traffic``), and one member
killed mid-traffic (down, retry countdown). Everything it starts it stops (by PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshot-pw-1"
INTERVAL_S = 1.0


def main() -> int:
    if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", sys.executable, __file__, *sys.argv[1:]]
        return subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
    themes = sys.argv[1:] or ["light", "dark"]
    if len(themes) > 1:  # one process per theme: a fresh QApplication each
        return max(subprocess.call([sys.executable, __file__, t]) for t in themes)
    return shoot(themes[0])


def _serve(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(data),
         "--heartbeat-interval", str(INTERVAL_S)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "BALANCEDESK_ADMIN_PASSWORD": PASSWORD})
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if m := re.search(r"balancedesk: serving (https?://\S+)", line):
            threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("the management server did not start")


def _populate(url: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Groups in two pools; the heartbeat bodies and tokens of four instances."""
    import httpx

    admin = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30)

    def group(pool: str, label: str, port: int, members: list[tuple[str, int]]) -> str:
        ids = []
        for name, mport in members:
            r = admin.post("/api/admin/connectors", json={"label": name, "owner": "admin",
                                                          "endpoint": f"10.0.0.{mport % 250}:{mport}"})
            r.raise_for_status()
            ids.append(r.json()["connectorID"])
        r = admin.post("/api/mgmt/connectors", json={
            "label": label, "owner": "admin", "listener": {"port": port, "pool": pool, "mode": "http"},
            "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 5, "retryDelay": 30,
                               "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                           for i, m in enumerate(ids)]}})
        r.raise_for_status()
        return str(r.json()["connectorID"])

    orthanc = group("radiology", "Orthanc push", 8042, [("orthanc-a", 8142), ("orthanc-b", 8143)])
    dicom = group("radiology", "DICOM web", 8080, [("dicomweb-a", 8180), ("dicomweb-b", 8181)])
    lab = group("lab", "LIS gateway", 9000, [("lis-1", 9100), ("lis-2", 9101)])

    def versions(pool: str) -> dict[str, int]:
        return {g["connectorID"]: g["version"] for g in admin.get(f"/api/admin/pools/{pool}/groups").json()["groups"]}

    rad_before = versions("radiology")
    # a save after rad-3 applied: rad-3 stays behind on Orthanc push
    body = admin.get(f"/api/mgmt/connectors/{orthanc}")
    doc = body.json()
    doc["connectorGroup"]["members"][1]["weight"] = 3
    admin.put(f"/api/mgmt/connectors/{orthanc}", json=doc,
              headers={"If-Match": body.headers["ETag"]}).raise_for_status()
    rad, labv = versions("radiology"), versions("lab")
    tokens = {}
    for inst, pool in (("rad-1", "radiology"), ("rad-2", "radiology"), ("rad-3", "radiology"), ("lab-1", "lab")):
        r = admin.post("/api/admin/tokens", json={"pool": pool, "label": f"{inst}.hospital.example"})
        r.raise_for_status()
        tokens[inst] = r.json()["token"]
    now = time.time()

    ports = {orthanc: 8042, dicom: 8080, lab: 9000}

    def hb(inst: str, applied: dict[str, int], *, workers: int, overrides: list[dict[str, Any]] | None = None,
           started: float) -> dict[str, Any]:
        return {"instanceID": inst, "host": f"{inst}.hospital.example", "adminURL": None, "adminToken": None,
                "dataPlane": "native", "workers": workers, "startedAt": now - started,
                "groups": [{"connectorID": c, "version": v, "listen": f"0.0.0.0:{ports[c]}"}
                           for c, v in sorted(applied.items())],
                "overrides": overrides or []}

    first_member = doc["connectorGroup"]["members"][0]["memberID"]
    dicom_second = admin.get(f"/api/mgmt/connectors/{dicom}").json()["connectorGroup"]["members"][1]["memberID"]
    bodies = {
        "rad-1": hb("rad-1", rad, workers=4, started=3 * 86400 + 3600),
        "rad-2": hb("rad-2", rad, workers=2, started=7200, overrides=[
            {"connectorID": orthanc, "memberID": first_member, "state": "drain"},
            {"connectorID": dicom, "memberID": dicom_second, "weight": 5}]),
        "rad-3": hb("rad-3", {**rad, orthanc: rad_before[orthanc]}, workers=2, started=86400),
        "lab-1": hb("lab-1", labv, workers=1, started=600),
    }
    admin.close()
    return bodies, tokens


def _heartbeat(url: str, bodies: dict[str, dict[str, Any]], tokens: dict[str, str], stop: threading.Event,
               quiet: set[str]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 120  # bounded
        while not stop.is_set() and time.monotonic() < deadline:
            for inst, body in bodies.items():
                if inst not in quiet and not stop.is_set():
                    with contextlib.suppress(httpx.HTTPError):  # the server is being stopped
                        http.post("/api/admin/balancers/heartbeat", json=body,
                                  headers={"Authorization": f"Bearer {tokens[inst]}"})
            stop.wait(INTERVAL_S / 2)


async def _until(win: Any, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for ``ready()`` after each refresh of the window, up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise SystemExit("the Balancers view did not show the scene in time")
        got = asyncio.Event()
        win.refreshed.connect(got.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got.wait(), max(0.1, deadline - time.monotonic()))
        win.refreshed.disconnect(got.set)


def _child(cmd: list[str], pattern: str, procs: list[subprocess.Popen[str]], env: dict[str, str] | None = None,
           ) -> re.Match[str]:
    """Start ``cmd`` (a balancedesk command), wait for its ready line, keep reading its output."""
    proc = subprocess.Popen([sys.executable, "-m", "balancedesk.gui.launcher", *cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    procs.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if m := re.search(pattern, line):
            threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
            return m
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"{cmd[0]} did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shoot_live(theme: str) -> None:
    """The aggregated live view of one group on two real balancers, mid-traffic, one member down."""
    import httpx
    import qasync
    from balancedesk.core.client import MgmtClient
    from balancedesk.gui.live.fleetlive import FleetLiveWindow
    from PySide6.QtWidgets import QApplication

    tmp = Path(tempfile.mkdtemp(prefix="bd-fleet-live-shots-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        url = _child(["serve", "--port", "0", "--data", str(tmp / "data"), "--heartbeat-interval", "1"],
                     r"balancedesk: serving (https?://\S+)", procs, {"BALANCEDESK_ADMIN_PASSWORD": PASSWORD}).group(1)
        admin = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30)
        ids, members = [], {}
        for name in ("orthanc-a", "orthanc-b", "orthanc-c"):
            m = _child(["demo-member", "--listen", "127.0.0.1:0", "--mode", "tcp", "--name", name],
                       r"balancedesk: demo member \S+ on (\S+)", procs)
            members[name] = procs[-1]
            r = admin.post("/api/admin/connectors", json={"label": name, "owner": "admin", "endpoint": m.group(1)})
            r.raise_for_status()
            ids.append(r.json()["connectorID"])
        port = _free_port()
        r = admin.post("/api/mgmt/connectors", json={
            "label": "Orthanc push", "owner": "admin", "listener": {"port": port, "pool": "radiology", "mode": "tcp"},
            "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 2, "retryDelay": 60,
                               "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                           for i, m in enumerate(ids)]}})
        r.raise_for_status()
        gid = r.json()["connectorID"]
        token = tmp / "balancer.token"
        token.write_text(admin.post("/api/admin/tokens", json={"pool": "radiology"}).json()["token"] + "\n")
        for i, bind in enumerate(("127.0.0.2", "127.0.0.3")):
            _child(["balance", "--api", url, "--token-file", str(token), "--pool", "radiology", "--bind", bind,
                    "--admin", "127.0.0.1:0", "--admin-token-file", str(tmp / f"admin-{i}.token")],
                   r"balancedesk: balancing", procs)
        for bind, rate in (("127.0.0.2", 40), ("127.0.0.3", 25)):
            traffic = subprocess.Popen(
                [sys.executable, "-m", "balancedesk.gui.launcher", "demo-traffic", "--target", f"{bind}:{port}",
                 "--mode", "tcp", "--rate", str(rate), "--concurrency", "4", "--duration", "90"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(traffic)
        group = admin.get(f"/api/mgmt/connectors/{gid}").json()
        endpoints = admin.get(f"/api/admin/pools/radiology/groups/{gid}").json()["config"]["endpoints"]
        admin.close()

        app = QApplication.instance() or QApplication([sys.argv[0]])
        assert isinstance(app, QApplication)
        app.setQuitOnLastWindowClosed(False)  # the Balancers window of the first scene has closed
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def scene() -> MgmtClient:
            from balancedesk.core.model import Connector

            client = MgmtClient(url, "admin", PASSWORD)
            win = FleetLiveWindow(group=Connector.model_validate(group), endpoints=endpoints, mgmt=client,
                                  pool="radiology")
            win.resize(1280, 800)
            win.move(0, 0)
            win.show()
            deadline = time.monotonic() + 60
            while win.agg.answering < 2 or win.agg.snapshot is None:
                if time.monotonic() > deadline:
                    raise SystemExit("the aggregated view did not see both balancers in time")
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # traffic shows in the chart
            members["orthanc-c"].kill()  # a member dies mid-traffic: down on both balancers
            members["orthanc-c"].wait(timeout=10)
            while not (win.agg.snapshot and any(m.state == "down" for m in win.agg.snapshot.members)):
                if time.monotonic() > deadline:
                    raise SystemExit("no member went down in time")
                await asyncio.sleep(0.2)
            await asyncio.sleep(4)
            win.grab().save(str(OUT / f"fleet-live-{theme}.png"))
            win.shutdown()
            win.close()
            await asyncio.sleep(0.3)
            return client

        with loop:
            client = loop.run_until_complete(scene())
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(client.aclose())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}/fleet-live-{theme}.png")


def shoot(theme: str) -> int:
    import qasync
    from balancedesk.core.client import MgmtClient
    from balancedesk.gui.fleet.window import BalancersWindow
    from balancedesk.gui.theme import apply_theme
    from PySide6.QtWidgets import QApplication

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bd-fleet-shots-"))
    server, url = _serve(tmp / "data")
    stop, quiet = threading.Event(), set()
    try:
        bodies, tokens = _populate(url)
        beat = threading.Thread(target=_heartbeat, args=(url, bodies, tokens, stop, quiet), daemon=True)
        beat.start()
        app = QApplication.instance() or QApplication([sys.argv[0]])
        assert isinstance(app, QApplication)
        apply_theme(app, theme)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def scene() -> None:
            client = MgmtClient(url, "admin", PASSWORD)
            win = BalancersWindow(client=client, is_admin=True, user="admin")
            win.resize(1280, 800)
            win.move(0, 0)
            win.show()
            await _until(win, lambda: len(win.rows) == 4)
            quiet.add("lab-1")  # stops heartbeating: lost after three missed intervals
            await _until(win, lambda: any(r.lost for r in win.rows))
            await asyncio.sleep(2.5)  # "last seen" a few seconds ago
            win.select_instance("rad-3")
            win.table.resizeColumnsToContents()
            await asyncio.sleep(1.5)  # a refresh and its paint (a script, not a test)
            win.grab().save(str(OUT / f"balancers-{theme}.png"))
            win.tabs.setCurrentWidget(win.token_panel)
            await win.refresh_tokens()
            await asyncio.sleep(0.5)
            win.grab().save(str(OUT / f"balancers-tokens-{theme}.png"))
            await win.aclose()
            win.close()
            win.deleteLater()
            return client

        with loop:
            client = loop.run_until_complete(scene())
            with contextlib.suppress(RuntimeError):  # httpx/anyio after qasync's loop: nothing left to close
                loop.run_until_complete(client.aclose())
    finally:
        stop.set()
        server.kill()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {OUT}/balancers-{theme}.png and balancers-tokens-{theme}.png")
    shoot_live(theme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
