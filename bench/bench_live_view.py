"""Does the live view stay responsive while the balancer runs flat out — and does watching cost the
balancer throughput?

Starts two demo members (TCP echo) and ``balancedesk balance`` (L4, one worker) on 127.0.0.1, then drives
the balancer at its maximum rate (``wrk`` is HTTP-only, so L4 load always comes from ``balancedesk
demo-traffic --rate 0``, a separate multi-connection process) in alternating phases:

* ``without``: nobody watches;
* ``with``: a LiveWindow attached to the admin endpoint is open (snapshot 5×/s, events by cursor,
  moving dots, chart, table), with a 10 ms QTimer lag probe and the topology's paint times recorded.

Prints throughput per phase, the ratio with/without (target ≥ 0.9), frame interval p95 (target ≤ 33 ms)
and UI event-loop lag p99 (target ≤ 50 ms). Never part of the test run; every load is bounded.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_live_view.py [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import qasync
from balancedesk.core.command import balancedesk_argv
from balancedesk.gui.live import LiveWindow
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child started by this bench (killed by its PID at the end)."""

    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen(balancedesk_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if m := re.search(pattern, line):
                return m
        raise SystemExit(f"bench: no {pattern!r} from {self.p.args}")

    def kill(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
            self.p.wait(10)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def load(target: str, seconds: float, concurrency: int) -> float:
    """Run one bounded max-rate load process; return its throughput (connections/s)."""
    args = balancedesk_argv("demo-traffic", "--target", target, "--mode", "tcp", "--rate", "0",
                            "--concurrency", str(concurrency), "--duration", str(seconds), "--report", "1",
                            "--timeout", "5")
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    last = json.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1])
    return float(last["ok"]) / float(last["elapsed_s"])


async def run(args: argparse.Namespace, app: QApplication) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    eps = {m: f"127.0.0.1:{_free_port()}" for m in ("a", "b")}
    cfg = {"connectorID": "bench", "owner": "bench", "label": "bench",
           "connectorGroup": {"connectionTimeout": 2, "retryDelay": 2, "loadBalancing": "Round Robin",
                              "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                          for i, m in enumerate(eps)]},
           "endpoints": eps}
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    (tmp / "token").write_text("bench-token")
    procs: list[Proc] = []
    try:
        for mid, ep in eps.items():
            procs.append(Proc(["demo-member", "--listen", ep, "--mode", "tcp", "--name", mid]))
            procs[-1].wait_line("demo member")
        bal = Proc(["balance", "--config", str(tmp / "cfg.json"), "--listen", "127.0.0.1:0", "--mode", "tcp",
                    "--admin", "127.0.0.1:0", "--admin-token-file", str(tmp / "token")])
        procs.append(bal)
        m = bal.wait_line(r"balancedesk: balancing (\S+) admin (http://\S+)")
        target, admin = m.group(1), m.group(2)
        print(f"bench: balancer {target}, {os.cpu_count()} CPUs, load = demo-traffic --rate 0 "
              f"--concurrency {args.concurrency}, {args.seconds:.0f} s per phase, {args.rounds} rounds", flush=True)
        await load(target, 1.0, args.concurrency)  # warm-up

        without: list[float] = []
        with_view: list[float] = []
        frames: list[float] = []
        lags: list[float] = []
        for r in range(args.rounds):
            without.append(await load(target, args.seconds, args.concurrency))
            win = LiveWindow()
            win.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, False)
            win.resize(1400, 950)
            win.show()
            win.attach(admin, "bench-token")
            t0 = time.monotonic()
            while win.last is None and time.monotonic() - t0 < 10:  # noqa: ASYNC110 - a Qt-side condition
                await asyncio.sleep(0.05)
            probe_last = [time.perf_counter()]
            phase_lags: list[float] = []

            def probe(last: list[float] = probe_last, out: list[float] = phase_lags) -> None:
                now = time.perf_counter()
                out.append(max(0.0, (now - last[0]) * 1000.0 - 10.0))
                last[0] = now

            timer = QTimer()
            timer.setTimerType(Qt.TimerType.PreciseTimer)
            timer.setInterval(10)
            timer.timeout.connect(probe)
            await asyncio.sleep(0.5)
            win.topology.frame_times.clear()
            probe_last[0] = time.perf_counter()
            timer.start()
            cpu0 = time.process_time()
            with_view.append(await load(target, args.seconds, args.concurrency))
            cpu_pct = (time.process_time() - cpu0) / args.seconds * 100.0
            timer.stop()
            ft = list(win.topology.frame_times)
            frames += [(b - a) * 1000.0 for a, b in itertools.pairwise(ft)]
            lags += phase_lags
            polls = win.watcher.polls if win.watcher else 0
            print(f"bench: round {r + 1}: without {without[-1]:.0f}/s, with view {with_view[-1]:.0f}/s, "
                  f"view process CPU {cpu_pct:.0f} % of a core, {len(ft)} frames, {polls} polls, "
                  f"shown {win.topology.shown} of {win.topology.routed} "
                  "route events", flush=True)
            win.shutdown()
            win.close()
            win.deleteLater()
            await asyncio.sleep(0.3)
        ratio = statistics.mean(with_view) / statistics.mean(without)
        f95, l99 = pct(frames, 95), pct(lags, 99)
        print()
        print("| measure | value | target |")
        print("|---|---|---|")
        print(f"| throughput without view (conn/s, mean) | {statistics.mean(without):.0f} | |")
        print(f"| throughput with view (conn/s, mean) | {statistics.mean(with_view):.0f} | |")
        print(f"| ratio with / without | {ratio:.3f} | ≥ 0.9 {'✓' if ratio >= 0.9 else '✗'} |")
        print(f"| frame interval p50 / p95 (ms) | {pct(frames, 50):.1f} / {f95:.1f} | p95 ≤ 33 "
              f"{'✓' if f95 <= 33 else '✗'} |")
        print(f"| UI loop lag p50 / p99 / max (ms) | {pct(lags, 50):.1f} / {l99:.1f} / {max(lags):.1f} | p99 ≤ 50 "
              f"{'✓' if l99 <= 50 else '✗'} |")
        return 0
    finally:
        for p in procs:
            p.kill()


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    args.seconds = min(args.seconds, 120.0)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # closing a phase's window must not stop the loop
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(run(args, app))


if __name__ == "__main__":
    sys.exit(main())
