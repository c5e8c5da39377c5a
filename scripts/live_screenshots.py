"""Screenshots of the live view mid-failover, for docs/screenshots/live-*.png.

Runs a real balancer (``balancedesk balance``, L4) over three demo members on 127.0.0.1 — connectors
with UUIDs for IDs and labels, as a management server has them, so the window shows labels and badges —
traffic at 120 connections/s (above what the eye can follow, so the topology samples and says so), kills
member B and grabs the window while it is down with its countdown, then restarts it and grabs the
recovery. With ``--mode http`` the balancer runs L7 (HTTP demo members, 120 requests/s) and only the
running and mid-failover views are grabbed, as live-l7-*.png. The window is 1280×800, the size the app must fit.

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/live_screenshots.py
    (QT_QPA_PLATFORM=offscreen works too: the window is grabbed, not the screen; --dark: the dark theme,
    written as live-*-dark.png; QT_SCALE_FACTOR=2 on a 2560x1600 screen: the 200 % check, written as
    live-*-200.png)
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import qasync
from balancedesk.core.model import Connector
from balancedesk.gui.live import LiveWindow
from balancedesk.gui.theme import apply_theme
from PySide6.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SUFFIX = ""  # "-dark" with --dark
MODE = "tcp"  # "http" with --mode http


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(cond: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"live_screenshots: timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _grab(win: LiveWindow, name: str) -> None:
    if MODE == "http":
        name = name.replace("live-", "live-l7-")
    path = OUT / name.replace(".png", f"{SUFFIX}.png")
    win.grab().save(str(path))
    print(f"live_screenshots: wrote {path}", flush=True)


IDS = ("3f2a9c1e-77b0-4c1e-9d55-5b1f0c3a8e21", "8b1d0e44-0c2f-4f6a-a1d3-7e9b2c4d6f80",
       "c7e5a913-5d48-4b2e-8f61-2a0d9e7c3b14")  # members A, B, C
LABELS = dict(zip(IDS, ("orders-fra-1", "orders-fra-2", "orders-dublin-standby"), strict=True))
A, B, C = IDS


async def scenario(win: LiveWindow) -> None:
    win.run_panel.mode.setCurrentIndex(win.run_panel.mode.findData(MODE))  # demo members follow: echo or HTTP
    await _until(lambda: all(s.status == "free" for s in win.demos.slots.values()), "the port probe")
    for mid in win.demos.slots:
        win.demos.start(mid)
    await _until(lambda: all(s.status == "ok" for s in win.demos.slots.values()), "demo members")
    await win.demos.set_mode(C, "slow")
    win.run_local(port=0, mode=MODE)
    await _until(lambda: win.last is not None and len(win.last.members) == 3, "the balancer")
    win.traffic_panel.rate.setValue(120)
    win.start_traffic(120)
    await _until(lambda: win.last is not None and all(m.total > 40 for m in win.last.members), "traffic")
    await asyncio.sleep(3.0)  # let the chart fill a little
    _grab(win, "live-running.png")

    win.demos.stop(B)
    await _until(lambda: win.last is not None and (b := win.last.member(B)) is not None and b.state == "down",
                 "B down")
    await asyncio.sleep(0.6)
    _grab(win, "live-failover.png")
    if MODE == "http":
        return
    await asyncio.sleep(2.6)  # retryDelay 3 s: the balancer probes b again and it fails again
    _grab(win, "live-failover-retry.png")

    win.demos.start(B)
    await _until(lambda: win.last is not None and (b := win.last.member(B)) is not None and b.state == "up"
                 and b.active + b.total > 0, "B back", limit_s=40)
    await asyncio.sleep(2.0)
    win.select_members([A])
    await win.set_state([A], "drain")
    await asyncio.sleep(1.5)
    _grab(win, "live-recovered-drain.png")


def main() -> int:
    global SUFFIX, MODE
    theme = "dark" if "--dark" in sys.argv[1:] else "light"
    MODE = "http" if "--mode" in sys.argv[1:] and "http" in sys.argv[1:] else "tcp"
    SUFFIX = ("-dark" if theme == "dark" else "") + ("-200" if os.environ.get("QT_SCALE_FACTOR") == "2" else "")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    OUT.mkdir(parents=True, exist_ok=True)
    ids = IDS
    endpoints = {mid: f"127.0.0.1:{_free_port()}" for mid in ids}
    group = Connector.model_validate({
        "connectorID": "orders-in", "owner": "ops", "label": "orders inbound",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 3, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": w}
                                       for i, (m, w) in enumerate(zip(ids, (2, 1, 1), strict=True))]},
    })
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    win = LiveWindow(group=group, endpoints=endpoints, labels=LABELS)
    win.resize(1280, 800)
    win.show()
    code = 0
    with loop:
        try:
            loop.run_until_complete(scenario(win))
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            code = 1
        finally:
            win.shutdown()
            loop.run_until_complete(asyncio.sleep(0.2))
    win.deleteLater()
    del win
    return code


if __name__ == "__main__":
    sys.exit(main())
