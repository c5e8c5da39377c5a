"""How fast the change feed tells a pool's followers about a save, and what idle followers cost the server.

    .venv/bin/python bench/bench_feed.py [--followers 3] [--saves 100] [--idle 20]

Starts a real ``balancedesk serve`` on 127.0.0.1, one group with a listener in pool ``bench``, a balancer
token, and N followers (threads, one keep-alive httpx client each) that long-poll
``/api/admin/pools/bench/changes?wait=25`` as a balancer does. Then, one at a time, ``--saves`` PUTs of the
group (a new label each: a durable commit) and, for each, the time until every follower has the change:
from the PUT being sent (includes the commit's fsync) and from its answer arriving. Then ``--idle`` seconds
with the followers waiting and nothing saved: the server's CPU over that time (utime+stime from
/proc/PID/stat), which should be about zero (no polling inside the server). Never part of the tests.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import httpx

PASSWORD = "bench-admin-password"
POOL = "bench"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Follower(threading.Thread):
    """Long-polls the pool's feed; records when each version arrives."""

    def __init__(self, url: str, token: str, cursor: int) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        self.cursor = cursor
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()
        self.stop = False

    def run(self) -> None:
        while not self.stop:
            try:
                r = self.http.get(f"/api/admin/pools/{POOL}/changes", params={"cursor": self.cursor, "wait": 25})
            except httpx.TransportError:
                return  # the server was stopped at the end of the bench
            now = time.perf_counter()
            body: dict[str, Any] = r.json()
            with self.cond:
                for change in body["changes"]:
                    self.seen[change["version"]] = now
                self.cursor = body["cursor"]
                self.cond.notify_all()

    def wait_past(self, cursor: int, deadline: float) -> float:
        with self.cond:
            while True:
                hit = [t for v, t in self.seen.items() if v > cursor]
                if hit:
                    return min(hit)
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise TimeoutError("a follower did not see the change")
                self.cond.wait(left)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--followers", type=int, default=3)
    ap.add_argument("--saves", type=int, default=100)
    ap.add_argument("--idle", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen(
            [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", data],
            stdout=subprocess.PIPE, text=True,
            env={**os.environ, "BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            url = ""
            for line in proc.stdout:
                if m := re.search(r"balancedesk: serving (\S+)", line):
                    url = m.group(1)
                    break
            admin = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30)
            mid = admin.post("/api/admin/connectors",
                             json={"label": "m", "owner": "admin", "endpoint": "127.0.0.1:9101"}).json()["connectorID"]
            group = admin.post("/api/mgmt/connectors", json={
                "label": "g", "listener": {"port": 18080, "pool": POOL},
                "connectorGroup": {"members": [{"memberID": mid, "sequence": 1}]}}).json()
            token = admin.post("/api/admin/tokens", json={"pool": POOL}).json()["token"]
            cursor = admin.get(f"/api/admin/pools/{POOL}/groups").json()["cursor"]
            followers = [Follower(url, token, cursor) for _ in range(args.followers)]
            for f in followers:
                f.start()
            time.sleep(0.5)  # let every follower's first poll reach the server (bench only)
            from_send: list[float] = []
            from_answer: list[float] = []
            put_ms: list[float] = []
            for i in range(args.saves):
                before = admin.get(f"/api/admin/pools/{POOL}/groups").json()["cursor"]
                sent = time.perf_counter()
                r = admin.put(f"/api/mgmt/connectors/{group['connectorID']}", json={**group, "label": f"g{i}"})
                answered = time.perf_counter()
                assert r.status_code == 200, r.text
                last = max(f.wait_past(before, answered + 10) for f in followers)
                from_send.append(1000 * (last - sent))
                from_answer.append(1000 * (last - answered))
                put_ms.append(1000 * (answered - sent))
            cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle_pct = 100 * (_cpu_s(proc.pid) - cpu0) / (time.perf_counter() - t0)
            for f in followers:
                f.stop = True
            print(f"{args.followers} followers, {args.saves} saves, load average {os.getloadavg()[0]:.2f}")
            print(f"{'':34} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
            for name, values in (("PUT (commit, fsync)", put_ms), ("save sent -> all followers have it", from_send),
                                 ("PUT answered -> all followers", from_answer)):
                print(f"{name:34} {statistics.median(values):8.2f} {_pct(values, 99):8.2f} {max(values):8.2f}")
            print(f"server CPU with {args.followers} idle followers over {args.idle:.0f} s: {idle_pct:.2f} % of a core")
        finally:
            proc.kill()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
