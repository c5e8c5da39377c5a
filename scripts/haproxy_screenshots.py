"""Screenshots of the live view attached to HAProxy mid-failover, for docs/screenshots/live-haproxy-*.png.

Starts a real HAProxy (master-worker, ``-W -S``, a stats socket at admin level) in a temporary folder,
three demo members on 127.0.0.1, deploys the group to HAProxy (``core.haproxy.deploy``: managed section,
``haproxy -c``, reload), attaches the live view to the backend through the stats socket, runs traffic at
60 connections/s, kills member ``b`` and grabs the window once HAProxy's check has marked it down; member
``a`` is drained from the view before, so the picture shows a runtime override too. HAProxy is stopped by
its PID at the end.

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/haproxy_screenshots.py
    (--dark: the dark theme, written as live-haproxy-failover-dark.png)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import qasync
from balancedesk.core.haproxy.deploy import Instance, deploy, show_proc
from balancedesk.core.model import Connector, parse_balancer_config
from balancedesk.gui.live import LiveWindow
from balancedesk.gui.theme import apply_theme
from PySide6.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(cond: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"haproxy_screenshots: timed out waiting for {what}")
        await asyncio.sleep(0.05)


def start_haproxy(folder: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    cfg = folder / "haproxy.cfg"
    cfg.write_text(f"global\n    stats socket {folder}/admin.sock mode 600 level admin expose-fd listeners\n"
                   "    nbthread 1\n\ndefaults\n    timeout connect 5s\n    timeout client 1m\n"
                   "    timeout server 1m\n")
    return subprocess.Popen([binary, "-W", "-db", "-S", f"{folder}/master.sock", "-f", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def scenario(win: LiveWindow, folder: Path, group: Connector, endpoints: dict[str, str], suffix: str) -> None:
    await _until(lambda: (folder / "admin.sock").exists() and (folder / "master.sock").exists(), "HAProxy")
    await _until(lambda: all(s.status == "free" for s in win.demos.slots.values()), "the port probe")
    for mid in win.demos.slots:
        win.demos.start(mid)
    await _until(lambda: all(s.status == "ok" for s in win.demos.slots.values()), "demo members")
    listen = f"127.0.0.1:{_free_port()}"
    body = group.to_json()
    body["endpoints"] = endpoints
    body["listener"] = {"mode": "tcp", "port": 1,
                        "healthCheck": {"type": "tcp", "interval": 1, "timeout": 0.5, "fall": 1, "rise": 2}}
    cfg = parse_balancer_config(body)
    inst = Instance(config=folder / "haproxy.cfg", master=str(folder / "master.sock"),
                    stats=str(folder / "admin.sock"), listen=listen, name="edge-1")
    await deploy(cfg, [inst])
    from balancedesk.core.haproxy.engine import HaproxyEngine

    win.attach_client(HaproxyEngine(str(folder / "admin.sock"), f"bd_{group.connector_id}", listen=listen),
                      owned=True)
    win.run_panel.status.setText(f"attached to HAProxy {folder.name}/admin.sock, backend bd_{group.connector_id}")
    await _until(lambda: win.last is not None and len(win.last.members) == 3
                 and all(m.check_ok for m in win.last.members), "HAProxy's first checks")
    win.traffic_panel.rate.setValue(60)
    win.start_traffic(60)
    await _until(lambda: win.last is not None and all(m.total > 20 for m in win.last.members), "traffic")
    await win.set_state(["a"], "drain")
    await asyncio.sleep(2.0)
    win.demos.stop("b")
    await _until(lambda: win.last is not None and (b := win.last.member("b")) is not None and b.state == "down",
                 "b down")
    await asyncio.sleep(2.5)  # the chart shows the drop, the timeline the event
    path = OUT / f"live-haproxy-failover{suffix}.png"
    win.grab().save(str(path))
    print(f"haproxy_screenshots: wrote {path}", flush=True)


def main() -> int:
    theme = "dark" if "--dark" in sys.argv[1:] else "light"
    suffix = "-dark" if theme == "dark" else ""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    OUT.mkdir(parents=True, exist_ok=True)
    ids = ("a", "b", "c")
    endpoints = {mid: f"127.0.0.1:{_free_port()}" for mid in ids}
    group = Connector.model_validate({
        "connectorID": "orders-in", "owner": "ops", "label": "orders inbound",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 3, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": w}
                                       for i, (m, w) in enumerate(zip(ids, (2, 1, 1), strict=True))]},
    })
    folder = Path(tempfile.mkdtemp(prefix="bd-haproxy-shots-"))
    hap = start_haproxy(folder)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    win = LiveWindow(group=group, endpoints=endpoints, instance="HAProxy edge-1")
    win.resize(1280, 800)
    win.show()
    code = 0
    workers: list[int] = []
    with loop:
        try:
            loop.run_until_complete(scenario(win, folder, group, endpoints, suffix))
            workers = [p.pid for p in loop.run_until_complete(show_proc(str(folder / "master.sock")))
                       if p.kind == "worker"]
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            code = 1
        finally:
            win.shutdown()
            loop.run_until_complete(asyncio.sleep(0.2))
    hap.send_signal(signal.SIGTERM)
    try:
        hap.wait(10)
    except subprocess.TimeoutExpired:
        hap.kill()
        hap.wait(10)
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)
    win.deleteLater()
    del win
    return code


if __name__ == "__main__":
    sys.exit(main())
