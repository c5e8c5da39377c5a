"""Screenshots of the Manage window (connectors, users and roles), light and dark, at 1280×800 under Xvfb:
``python scripts/manage_screenshots.py``.

Without a DISPLAY it re-runs itself under ``xvfb-run``. For each theme it starts a fresh ``balancedesk serve``
on 127.0.0.1:0, registers a hospital's connectors (two of them in a group) and a few users (one disabled)
through the API, opens the Manage window, and saves:

* ``docs/screenshots/connectors-{theme}.png`` — a connector chosen for editing, an endpoint without its port
  typed: the API's rule shown under the field, nothing sent;
* ``docs/screenshots/users-{theme}.png`` — the users with role and state, the disabled one chosen.

Everything it starts it stops (by PID).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
PASSWORD = "screenshot-pw-1"


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
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(data)],
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


def _populate(url: str) -> str:
    """Users and connectors; returns the connectorID of the one the shot edits."""
    import httpx

    with httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30) as admin:
        users = (("radiology", "User"), ("lab", "User"), ("night-shift", "User"), ("it-ops", "Administrator"))
        for name, role in users:
            admin.post("/api/admin/users", json={"name": name, "password": f"{name}-pw-123", "role": role}
                       ).raise_for_status()
        admin.put("/api/admin/users/night-shift", json={"active": False}).raise_for_status()
        ids = {}
        for label, owner, endpoint in (
            ("PACS archive A", "radiology", "10.20.0.11:4242"), ("PACS archive B", "radiology", "10.20.0.12:4242"),
            ("Orthanc router", "radiology", "orthanc.hospital.example:8042"),
            ("LIS gateway", "lab", "10.30.1.5:2575"), ("Lab analyser bridge", "lab", "[2001:db8:30::9]:2575"),
            ("Teleradiology uplink", "admin", "tele.partner.example:11112"),
        ):
            r = admin.post("/api/admin/connectors", json={"label": label, "owner": owner, "endpoint": endpoint})
            r.raise_for_status()
            ids[label] = r.json()["connectorID"]
        admin.post("/api/mgmt/connectors", json={
            "label": "PACS archives", "owner": "radiology",
            "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 5, "retryDelay": 30,
                               "members": [{"memberID": ids["PACS archive A"], "sequence": 1, "weight": 2},
                                           {"memberID": ids["PACS archive B"], "sequence": 2, "weight": 1}]}},
        ).raise_for_status()
        return ids["Orthanc router"]


def shoot(theme: str) -> int:
    import qasync
    from balancedesk.core.client import MgmtClient
    from balancedesk.gui.manage.window import ManageWindow
    from balancedesk.gui.theme import apply_theme
    from PySide6.QtWidgets import QApplication

    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bd-manage-shots-"))
    server, url = _serve(tmp / "data")
    try:
        edited = _populate(url)
        app = QApplication.instance() or QApplication([sys.argv[0]])
        assert isinstance(app, QApplication)
        apply_theme(app, theme)
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)

        async def scene() -> MgmtClient:
            client = MgmtClient(url, "admin", PASSWORD)
            win = ManageWindow(client=client, user="admin", is_admin=True)
            win.resize(1280, 800)
            win.move(0, 0)
            win.show()
            view = win.connectors
            await view.refresh()
            view.select(edited)
            await asyncio.gather(*view._tasks)  # choosing it reads the connector and its ETag
            view.endpoint_edit.setText("orthanc.hospital.example")  # its port left out
            await view.submit()
            await asyncio.sleep(0.5)  # paint (a script, not a test)
            win.grab().save(str(OUT / f"connectors-{theme}.png"))
            win.show_tab("users")
            await win.users.refresh()
            win.users.select("night-shift")
            await asyncio.sleep(0.5)
            win.grab().save(str(OUT / f"users-{theme}.png"))
            await win.aclose()
            win.close()
            return client

        with loop:
            client = loop.run_until_complete(scene())
            with contextlib.suppress(RuntimeError):  # httpx/anyio after qasync's loop: nothing left to close
                loop.run_until_complete(client.aclose())
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"saved {OUT}/connectors-{theme}.png and users-{theme}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
