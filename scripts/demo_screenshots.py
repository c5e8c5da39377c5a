"""Screenshots of demo ownership, for docs/screenshots/live-demo-*.png.

Two live windows of one group at 1280×800: the first starts its demo members (on the members' endpoints) and a
balancer; the second then sees "another window's demo listens there" and starts its own demo members on free
ports (its balancer config follows them). Grabs the second window before and after its Start, then closes both
(every demo process gets SIGTERM and is waited for).

    xvfb-run -a -s "-screen 0 1280x800x24" env QT_QPA_PLATFORM=xcb .venv/bin/python scripts/demo_screenshots.py
    (--dark: the dark theme, written as live-demo-*-dark.png)
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


async def _until(cond: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo_screenshots: timed out waiting for {what}")
        await asyncio.sleep(0.05)


def main() -> int:
    dark = "--dark" in sys.argv[1:]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["BALANCEDESK_DATA"] = tempfile.mkdtemp(prefix="balancedesk-demo-shots-")  # not the user's records
    import qasync
    from balancedesk.core.demo import free_ports
    from balancedesk.core.model import Connector
    from balancedesk.gui.live import LiveWindow
    from balancedesk.gui.theme import apply_theme
    from PySide6.QtWidgets import QApplication

    ids = ("a", "b", "c")
    endpoints = {mid: f"127.0.0.1:{p}" for mid, p in zip(ids, free_ports(len(ids)), strict=True)}
    group = Connector.model_validate({
        "connectorID": "orders-in", "owner": "ops", "label": "orders inbound",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 3, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": 1} for i, m in enumerate(ids)]},
    })
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, "dark" if dark else "light")
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    first = LiveWindow(group=group, endpoints=endpoints)
    second = LiveWindow(group=group, endpoints=endpoints)
    for w in (first, second):
        w.resize(1280, 800)
        w.show()
    suffix = "-dark" if dark else ""

    def grab(name: str) -> None:
        path = OUT / f"{name}{suffix}.png"
        second.grab().save(str(path))
        print(f"demo_screenshots: wrote {path}", flush=True)

    async def scenario() -> None:
        await _until(lambda: all(s.status == "free" for s in first.demos.slots.values()), "the port probe")
        for mid in ids:
            first.demos.start(mid)
        await _until(lambda: all(s.status == "ok" for s in first.demos.slots.values()), "the first's demos")
        await second.demos.probe()
        await _until(lambda: all(s.status == "other" for s in second.demos.slots.values()), "the second's look")
        grab("live-demo-another-window")
        for mid in ids:
            second.demos.start(mid)
        await _until(lambda: all(s.status == "ok" for s in second.demos.slots.values()), "the second's demos")
        second.run_local(port=0, mode="tcp")
        await _until(lambda: second.last is not None and len(second.last.members) == 3, "the balancer")
        second.start_traffic(40)
        await _until(lambda: second.last is not None and all(m.total > 10 for m in second.last.members), "traffic")
        grab("live-demo-free-ports")

    code = 0
    with loop:
        try:
            loop.run_until_complete(scenario())
        except SystemExit as exc:
            print(exc, file=sys.stderr)
            code = 1
        finally:
            for w in (second, first):
                w.close()
            loop.run_until_complete(asyncio.sleep(0.2))
    return code


if __name__ == "__main__":
    sys.exit(main())
