"""What watching costs, per engine: one live-view poll (snapshot + events) against Balance Desk's balancer
(admin endpoint) and against HAProxy (Runtime API over its stats socket), side by side in one run.

Starts three demo members (``balancedesk demo-member``), a ``balancedesk balance`` with an admin endpoint and
an HAProxy (master-worker, stats socket at admin level) serving the same 3-member tcp group, all on
127.0.0.1. Then polls each engine ``--polls`` times (default 400) the way the live view does — snapshot and
events concurrently, one poll at a time — in interleaved rounds (each round reverses the order, so drift in
the box's load falls on both), and prints per engine:

* wall ms per poll (median and p95);
* the poller's own CPU-µs per poll (this process: what the GUI pays);
* the engine's CPU-µs per poll (utime+stime from /proc of the balancer, or of HAProxy's worker: what the
  watched engine pays — the cost a viewer takes from the traffic);
* and the ratios HAProxy / Balance Desk.

CPU times come from /proc in clock ticks (10 ms here): the per-poll figures need the default thousands of
polls to mean anything. Never asserted; numbers depend on the box.
``python bench/bench_haproxy.py [--polls N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from balancedesk.core.engines import Engine
from balancedesk.core.haproxy.deploy import Instance, deploy, show_proc
from balancedesk.core.haproxy.engine import HaproxyEngine
from balancedesk.core.model import parse_balancer_config
from balancedesk.gui.live.admin import AdminClient

BD = [sys.executable, "-m", "balancedesk.gui.launcher"]
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_line(proc: subprocess.Popen[str], pattern: str, limit_s: float = 30.0) -> re.Match[str]:
    deadline = time.monotonic() + limit_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(pattern, line):
            return m
        if not line and proc.poll() is not None:
            break
    raise SystemExit(f"bench_haproxy: no line matching {pattern!r}")


async def poll(engine: Engine, n: int) -> tuple[list[float], float]:
    cursor: int | None = None
    walls = []
    t_cpu = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        _snap, batch = await asyncio.gather(engine.snapshot(), engine.events(cursor, 50, newest=True))
        cursor = batch.cursor
        walls.append((time.perf_counter() - t0) * 1000)
    return walls, time.process_time() - t_cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    folder = Path(tempfile.mkdtemp(prefix="bench-haproxy-"))
    procs: list[subprocess.Popen[str]] = []
    workers: list[int] = []
    try:
        endpoints = {}
        for name in ("a", "b", "c"):
            ep = f"127.0.0.1:{free_port()}"
            p = subprocess.Popen([*BD, "demo-member", "--listen", ep, "--mode", "tcp", "--name", name],
                                 stdout=subprocess.PIPE, text=True)
            procs.append(p)
            wait_line(p, "demo member")
            endpoints[name] = ep
        group = {"connectorID": "bench", "label": "bench",
                 "connectorGroup": {"loadBalancing": "Round Robin", "retryDelay": 5,
                                    "members": [{"memberID": m, "sequence": i + 1, "weight": 3 - i}
                                                for i, m in enumerate(endpoints)]},
                 "endpoints": endpoints, "listener": {"mode": "tcp", "port": 1}}
        (folder / "group.json").write_text(json.dumps(group))
        (folder / "token").write_text("bench-token\n")
        bal = subprocess.Popen([*BD, "balance", "--config", str(folder / "group.json"), "--listen", "127.0.0.1:0",
                                "--mode", "tcp", "--admin", "127.0.0.1:0", "--admin-token-file",
                                str(folder / "token")], stdout=subprocess.PIPE, text=True)
        procs.append(bal)
        admin_url = wait_line(bal, r"admin (http://\S+)")[1]
        cfg = folder / "haproxy.cfg"
        cfg.write_text(f"global\n    stats socket {folder}/admin.sock level admin\n    nbthread 1\n\ndefaults\n"
                       "    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n")
        hap = subprocess.Popen([binary, "-W", "-db", "-S", f"{folder}/master.sock", "-f", str(cfg)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        procs.append(hap)
        deadline = time.monotonic() + 20
        while not (folder / "master.sock").exists() or not (folder / "admin.sock").exists():
            if time.monotonic() > deadline:
                raise SystemExit("bench_haproxy: HAProxy did not start")
            time.sleep(0.05)  # polling for the sockets, with a deadline
        inst = Instance(config=cfg, master=str(folder / "master.sock"), stats=str(folder / "admin.sock"),
                        listen=f"127.0.0.1:{free_port()}")
        asyncio.run(deploy(parse_balancer_config(group), [inst]))
        workers = [p.pid for p in asyncio.run(show_proc(str(folder / "master.sock"))) if p.kind == "worker"
                   and not p.old]
        engines: dict[str, tuple[Any, int]] = {
            "balancedesk": (lambda: AdminClient(admin_url, "bench-token"), bal.pid),
            "haproxy": (lambda: HaproxyEngine(str(folder / "admin.sock"), "bd_bench"), workers[0]),
        }
        walls: dict[str, list[float]] = {k: [] for k in engines}
        mine: dict[str, float] = dict.fromkeys(engines, 0.0)
        theirs: dict[str, float] = dict.fromkeys(engines, 0.0)
        order = list(engines)
        for r in range(args.rounds):
            for kind in order if r % 2 == 0 else reversed(order):
                make, pid = engines[kind]

                async def one(make: Any = make) -> tuple[list[float], float]:
                    engine = make()
                    try:
                        await poll(engine, 10)  # warm: connections, first snapshot
                        return await poll(engine, args.polls)
                    finally:
                        await engine.aclose()

                before = cpu_s(pid)
                w, c = asyncio.run(one())
                theirs[kind] += cpu_s(pid) - before
                walls[kind] += w
                mine[kind] += c
        n = args.polls * args.rounds
        print(f"live-view polls (snapshot + events), {n} per engine, {args.rounds} interleaved rounds, 3 members")
        print(f"{'engine':<12} {'wall ms p50':>11} {'p95':>7} {'viewer CPU-µs/poll':>19} {'engine CPU-µs/poll':>19}")
        rows = {}
        for kind in engines:
            ws = sorted(walls[kind])
            r = rows[kind] = (statistics.median(ws), ws[int(len(ws) * 0.95)], mine[kind] / n * 1e6,
                              theirs[kind] / n * 1e6)
            print(f"{kind:<12} {r[0]:>11.2f} {r[1]:>7.2f} {r[2]:>19.0f} {r[3]:>19.0f}")
        a, b = rows["haproxy"], rows["balancedesk"]
        print(f"{'ratio h/bd':<12} {a[0] / b[0]:>11.2f} {a[1] / b[1]:>7.2f} {a[2] / b[2]:>19.2f} "
              f"{(a[3] / b[3]) if b[3] else float('nan'):>19.2f}")
        return 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
