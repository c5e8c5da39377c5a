"""A fleet on 127.0.0.1: save-to-applied time on three balancers, idle CPU, and per-request CPU with many groups.

    .venv/bin/python bench/bench_fleet.py [--saves 100] [--idle 60] [--quiet 30] [--requests 3000] [--groups 100]

1. ``balancedesk serve`` + three ``balancedesk balance --api … --token-file …`` processes (one with
   ``--workers 2``; bound to 127.0.0.1/.2/.3 as three "hosts") serving three groups of pool ``bench``. Then
   ``--saves`` PUTs of one group (a new label each), one at a time; for each, the time from the PUT being sent
   until all three balancers' admin endpoints (``GET /admin/groups``, polled every 5 ms) report the new
   version as applied — by both workers of the ``--workers 2`` one (``versionPerWorker``). p50/p99/max.
2. ``--quiet`` seconds without a save: the number of ``config`` events on every balancer (must be 0).
3. ``--idle`` seconds: CPU (utime+stime from /proc, workers included) of the three idle balancers following
   the server (one long poll each and a heartbeat every interval).
4. One balancer from a ``{"groups": […]}`` file with ``--groups`` L4 groups, then with 1: CPU per connection
   (``--requests`` connections, one line each, to one group) — the ratio should be about 1. And the same
   ``--groups`` with ``--workers 2`` (the workers' shared state: a generation read per pick, counters written
   twice a second), CPU of both workers per connection.

Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

PASSWORD = "bench-admin-password"
POOL = "bench"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
BD = [sys.executable, "-m", "balancedesk.gui.launcher"]
UPSTREAM = str(Path(__file__).resolve().parent.parent / "tests" / "proxy" / "upstreams" / "tcp_name.py")


def cpu_s(pid: int) -> float:
    """utime+stime of ``pid`` and its children still running (a --workers parent's workers)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * TICK_S
    return total


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child whose stdout is read by a thread; ``wait_for`` a line with a deadline."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, rx: str, timeout: float = 30) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if m := re.search(rx, line):
                    return m
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise SystemExit(f"no {rx!r}: " + "\n".join(self.lines[-20:]))

    def stop(self) -> None:
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)


class Admin:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def versions(self, gid: str) -> tuple[int, int]:
        """The server's version ``gid`` is applied at by worker 0, and by every worker (``versionPerWorker``: the
        lowest) of a ``--workers N`` balancer, where each worker follows on its own."""
        g = next(g for g in self.http.get("/admin/groups").json()["groups"] if g["connectorID"] == gid)
        return int(g["version"]), min(g.get("versionPerWorker") or [g["version"]])

    def config_events(self, gid: str) -> int:
        evs = self.http.get(f"/groups/{gid}/events", params={"after": 0, "limit": 10000}).json()["events"]
        return sum(1 for e in evs if e["kind"] == "config")


def start_balancer(procs: list[Proc], folder: Path, args: list[str]) -> tuple[Proc, Admin]:
    folder.mkdir(parents=True, exist_ok=True)
    tok = folder / "admin.token"
    p = Proc([*BD, "balance", *args, "--admin", "127.0.0.1:0", "--admin-token-file", str(tok)])
    procs.append(p)
    m = p.wait_for(r"balancedesk: balancing \d+ groups.* admin (http://\S+)")
    return p, Admin(m[1], tok.read_text().strip())


def fleet_part(args: argparse.Namespace, tmp: Path, procs: list[Proc]) -> None:
    server = Proc([*BD, "serve", "--port", "0", "--data", str(tmp / "mgmt")],
                  env={"BALANCEDESK_ADMIN_PASSWORD": PASSWORD})
    procs.append(server)
    url = server.wait_for(r"balancedesk: serving (http://\S+)")[1]
    api = httpx.Client(base_url=url, auth=("admin", PASSWORD), timeout=30)
    up = Proc([sys.executable, UPSTREAM, "--name", "a"])
    procs.append(up)
    ep = "127.0.0.1:" + up.wait_for(r"listening 127\.0\.0\.1:(\d+)")[1]
    gids = []
    for i in range(3):
        mid = api.post("/api/admin/connectors", json={"label": f"m{i}", "owner": "admin", "endpoint": ep}).json()
        body = {"owner": "admin", "label": f"g{i}", "connectorGroup": {
            "loadBalancing": "Round Robin", "members": [{"memberID": mid["connectorID"], "sequence": 1, "weight": 1}]},
            "listener": {"port": free_port(), "pool": POOL}}
        r = api.post("/api/mgmt/connectors", json=body)
        assert r.status_code == 201, r.text
        gids.append(r.json()["connectorID"])
    token = tmp / "bal.token"
    token.write_text(api.post("/api/admin/tokens", json={"pool": POOL}).json()["token"])
    lbs = [start_balancer(procs, tmp / f"lb{i}", ["--api", url, "--token-file", str(token), "--pool", POOL,
                                                 "--bind", f"127.0.0.{i + 1}", *extra])
           for i, extra in enumerate([[], ["--workers", "2"], []])]
    gid = gids[0]
    times: list[float] = []
    zeros: list[float] = []
    for n in range(args.saves):
        r = api.get(f"/api/mgmt/connectors/{gid}")
        body = r.json()
        body["label"] = f"save {n}"
        t0 = time.perf_counter()
        r = api.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": r.headers["ETag"]})
        assert r.status_code == 200, r.text
        version = api.get(f"/api/admin/pools/{POOL}/groups/{gid}").json()["version"]
        pending = [adm for _, adm in lbs]
        first: float | None = None  # every balancer's worker 0
        end = time.monotonic() + 10
        while pending and time.monotonic() < end:
            got = {id(adm): adm.versions(gid) for adm in pending}
            if first is None and all(got[id(adm)][0] >= version for adm in pending):
                first = time.perf_counter() - t0
            pending = [adm for adm in pending if got[id(adm)][1] < version]
            if pending:
                time.sleep(0.005)
        if pending:
            raise SystemExit(f"save {n} not applied everywhere within 10 s")
        times.append(time.perf_counter() - t0)
        zeros.append(first if first is not None else times[-1])
    for label, vals in (("by every worker", times), ("by each one's worker 0", zeros)):
        ms = [t * 1000 for t in vals]
        print(f"save → applied on 3 balancers {label} ({len(ms)} saves): p50 {statistics.median(ms):.1f} ms, "
              f"p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms  (poll resolution 5 ms per balancer)")
    if args.quiet:
        before = [[adm.config_events(g) for g in gids] for _, adm in lbs]
        time.sleep(args.quiet)  # a watch for events that must not come, over a fixed period
        after = [[adm.config_events(g) for g in gids] for _, adm in lbs]
        new = sum(a - b for ra, rb in zip(after, before, strict=True) for a, b in zip(ra, rb, strict=True))
        print(f"{args.quiet:g} s without a save: {new} config events on 3 balancers x 3 groups")
    if args.idle:
        c0 = [cpu_s(p.p.pid) for p, _ in lbs]
        time.sleep(args.idle)  # measuring idle CPU over a fixed period
        c1 = [cpu_s(p.p.pid) for p, _ in lbs]
        used = [b - a for a, b in zip(c0, c1, strict=True)]
        print(f"idle {args.idle:g} s following the server: CPU {', '.join(f'{u * 1000:.0f} ms' for u in used)} "
              f"({sum(used) / args.idle * 100:.3f} % of one core for all three)")
    for p, _ in lbs:
        p.stop()


def per_request_cpu(args: argparse.Namespace, tmp: Path, procs: list[Proc], n_groups: int, ep: str,
                    extra: tuple[str, ...] = ()) -> float:
    groups = []
    ports = [free_port() for _ in range(n_groups)]
    for i, port in enumerate(ports):
        groups.append({"connectorID": f"g{i}", "label": f"g{i}",
                       "connectorGroup": {"loadBalancing": "Round Robin",
                                          "members": [{"memberID": "a", "sequence": 1, "weight": 1}]},
                       "endpoints": {"a": ep}, "listener": {"port": port, "bind": "127.0.0.1"}})
    path = tmp / f"groups{n_groups}.json"
    path.write_text(json.dumps({"groups": groups}))
    p, _ = start_balancer(procs, tmp / f"many{n_groups}{len(extra)}", ["--config", str(path), *extra])
    target = ("127.0.0.1", ports[0])
    for _ in range(100):  # warm up
        _one(target)
    c0 = cpu_s(p.p.pid)
    for _ in range(args.requests):
        _one(target)
    used = cpu_s(p.p.pid) - c0
    p.stop()
    return used / args.requests


def _one(addr: tuple[str, int]) -> None:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"hi\n")
        buf = b""
        while not buf.endswith(b"\n"):
            got = s.recv(100)
            if not got:
                raise SystemExit("connection closed without an answer")
            buf += got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--saves", type=int, default=100)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--quiet", type=float, default=30)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--groups", type=int, default=100)
    args = ap.parse_args()
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            fleet_part(args, tmp, procs)
            up = Proc([sys.executable, UPSTREAM, "--name", "a"])
            procs.append(up)
            ep = "127.0.0.1:" + up.wait_for(r"listening 127\.0\.0\.1:(\d+)")[1]
            ones: list[float] = []
            manys: list[float] = []
            twos: list[float] = []
            for _ in range(2):  # interleaved, so warm-up and the box's other load fall on every side
                ones.append(per_request_cpu(args, tmp, procs, 1, ep))
                manys.append(per_request_cpu(args, tmp, procs, args.groups, ep))
                twos.append(per_request_cpu(args, tmp, procs, args.groups, ep, ("--workers", "2")))
            print("CPU per connection, interleaved runs: 1 group " + " / ".join(f"{x * 1e6:.0f}" for x in ones)
                  + f" µs, {args.groups} groups " + " / ".join(f"{x * 1e6:.0f}" for x in manys)
                  + f" µs (ratio of the sums {sum(manys) / sum(ones):.2f}), {args.groups} groups --workers 2 "
                  + " / ".join(f"{x * 1e6:.0f}" for x in twos)
                  + f" µs (ratio {sum(twos) / sum(ones):.2f}); {args.requests} connections each")
        finally:
            for p in reversed(procs):
                p.stop()


if __name__ == "__main__":
    main()

