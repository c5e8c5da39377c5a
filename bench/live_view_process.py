"""The live view as its own process, for ``bench_live_view.py``'s ``process`` and ``background`` phases:
what ``python -m balancedesk.gui.live --attach URL --token-file F`` shows, plus the bench's probes.

    python bench/live_view_process.py --attach URL --token-file F --seconds S [--background]

Prints ``ready`` once the first snapshot is shown, then measures for ``--seconds`` (frame intervals from the
topology's paints, a 10 ms lag probe, the process's CPU) and prints one JSON line, then exits.

``--background`` is an experiment, not a product mode: it runs the view process at Linux ``SCHED_IDLE``
(idle CPU priority), so the view only gets CPU time nothing else wants. It shows the trade-off on a box
the balancer and the load generator saturate: the balancer keeps its throughput, the view's frames come
late. It is not offered in the app because a process at ``SCHED_IDLE`` cannot return to normal priority
without privileges, and everything it starts (a balancer, demo members) would inherit the idle priority
(``SCHED_RESET_ON_FORK`` resets only real-time policies and negative nice values).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time


def enter_background() -> str:
    """The whole process at idle CPU priority; before Qt starts, so its threads inherit it (and Qt's paint
    thread pool is off, so painting stays on the GUI thread)."""
    if not hasattr(os, "SCHED_IDLE"):
        return "SCHED_IDLE not available: normal priority"
    os.environ["QT_NO_GUI_THREADPOOL"] = "1"
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    return "SCHED_IDLE"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--attach", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--background", action="store_true")
    args = p.parse_args()
    note = enter_background() if args.background else "normal priority"
    # Qt and the probes only after the priority is set: every thread Qt starts inherits it
    import qasync
    from balancedesk.gui.live import LiveWindow
    from bench_live_view import Lateness
    from PySide6.QtWidgets import QApplication

    with open(args.token_file) as f:
        token = f.read().strip()
    app = QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)

    async def run() -> dict[str, object]:
        win = LiveWindow()
        win.resize(1400, 950)
        win.show()
        win.attach(args.attach, token)
        deadline = time.monotonic() + 15
        while win.last is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a Qt-side condition
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        lag = Lateness(10, [])
        win.topology.frame_times.clear()
        print("ready", flush=True)
        c0, t0 = time.process_time(), time.monotonic()
        lag.start()
        await asyncio.sleep(args.seconds)
        lag.stop()
        cpu = (time.process_time() - c0) / (time.monotonic() - t0) * 100.0
        frames = [(b - a) * 1000.0 for a, b in itertools.pairwise(list(win.topology.frame_times))]
        win.shutdown()
        win.close()
        return {"note": note, "frames": frames, "lags": lag.out, "cpu": cpu,
                "shown": win.topology.shown, "routed": win.topology.routed}

    with loop:
        result = loop.run_until_complete(run())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
