"""What an access log costs: the balancer's CPU per request with ``listener.accessLog`` on versus off.

One command, one run, one table::

    python bench/bench_access_log.py            # ~2 min: wrk -t1 -c50 -d4s, 3 interleaved passes
    python bench/bench_access_log.py --quick    # ~30 s: -d2s, 1 pass (a smoke run, not for quoting)

Method: two nginx backends (1 worker, ``return 200 "ok"``) on loopback, as in ``bench_proxy.py`` (whose
helpers this uses). Eight balancers, one process each: {native, asyncio} data plane × {L7, L4} × access log
{off, on (text format, a file in the temp dir)}. L7 is measured with keep-alive (a line per request), L4 with
``Connection: close`` (a new connection per request, so a line per request too). Every pass runs every
cell, in reverse order on alternate passes; the ratio is CPU-µs per request with the log on ÷ off for the
same plane and layer in the same pass. CPU is utime+stime of the balancer process (its writer thread
included) from /proc; the line count of each log file is checked against the requests wrk made.

Installs nginx and wrk with apt-get if missing (needs root). Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp  # the shared bench helpers (nginx backends, wrk, /proc CPU)

MODES = {"L7": "ka", "L4": "close"}


@dataclass
class Cell:
    plane: str
    layer: str
    log: bool
    port: int
    proc: bp.Proc
    log_path: Path | None


def config(tmp: Path, name: str, be: list[tuple[int, int]], log_path: Path | None) -> Path:
    conf = bp.balancedesk_conf(tmp, name, be)
    if log_path is not None:
        body = json.loads(conf.read_text())
        body["listener"] = {"accessLog": {"path": str(log_path), "format": "text"}}
        conf.write_text(json.dumps(body))
    return conf


def count_lines(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def settled(path: Path | None) -> int:
    """The line count once the writer has caught up (unchanged over 3 flush intervals; at most 10 s)."""
    n, deadline = count_lines(path), time.monotonic() + 10
    while path is not None and time.monotonic() < deadline:
        time.sleep(0.3)  # polling a condition with a deadline: the writer's last batch
        m = count_lines(path)
        if m == n:
            break
        n = m
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=4, help="seconds per wrk run (default 4)")
    ap.add_argument("--passes", type=int, default=3, help="interleaved passes (default 3)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="-d2s, 1 pass: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.passes = 2, 1
    missing = [t for t in ("nginx", "wrk") if shutil.which(t) is None]
    if missing:
        print(f"installing {missing}", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="bd-bench-log-"))
    procs: list[bp.Proc] = []
    cpu: dict[tuple[str, str, bool], list[tuple[int, float, float]]] = {}  # → (pass, cpu-µs/req, req/s)
    t_start = time.monotonic()
    try:
        def launch(name: str, cmd: list[str], port: int) -> bp.Proc:
            out = open(tmp / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
            p = bp.Proc(name, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=bp.ROOT))
            procs.append(p)
            bp.wait_port(port, p.popen)
            return p

        be_ports = [bp.free_port(), bp.free_port()]
        for i, port in enumerate(be_ports, 1):
            launch(f"be{i}", ["nginx", "-p", str(tmp), "-c", str(bp.nginx_backend_conf(tmp, f"be{i}", port))], port)
        be = list(zip(be_ports, (3, 1), strict=True))
        cells: list[Cell] = []
        for plane in ("native", "asyncio"):
            for layer in ("L7", "L4"):
                for log in (False, True):
                    name = f"{plane}-{layer}-{'on' if log else 'off'}"
                    log_path = tmp / f"{name}.access.log" if log else None
                    port = bp.free_port()
                    cmd = [sys.executable, "-m", "balancedesk.gui.launcher", "balance",
                           "--config", str(config(tmp, name, be, log_path)), "--listen", f"127.0.0.1:{port}",
                           "--mode", "tcp" if layer == "L4" else "http", "--data-plane", plane]
                    cells.append(Cell(plane, layer, log, port, launch(name, cmd, port), log_path))
        for i in range(args.passes):
            for c in (cells if i % 2 == 0 else list(reversed(cells))):
                close = MODES[c.layer] == "close"
                bp.wrk(c.port, 1, args.connections, close)  # warm-up
                lines0 = settled(c.log_path)
                c0 = bp.cpu_seconds(c.proc.pid)
                text, rc = bp.wrk(c.port, args.duration, args.connections, close)
                c1 = bp.cpu_seconds(c.proc.pid)
                if rc != 0:
                    raise SystemExit(f"wrk failed on {c.plane} {c.layer}: {text}")
                requests = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
                us = (c1 - c0) / requests * 1e6
                cpu.setdefault((c.plane, c.layer, c.log), []).append((i, us, rps))
                note = ""
                if c.log_path is not None:
                    deadline = time.monotonic() + 10
                    while count_lines(c.log_path) - lines0 < requests and time.monotonic() < deadline:
                        time.sleep(0.1)  # polling a condition with a deadline: the writer catches up
                    note = f"  lines +{count_lines(c.log_path) - lines0} (wrk counted {requests})"
                print(f"pass {i + 1}/{args.passes} {c.plane:7} {c.layer} log {'on ' if c.log else 'off'} "
                      f"{rps:10,.0f} req/s  cpu {us:5.1f} µs/req{note}", file=sys.stderr, flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.passes} interleaved pass(es); L7 keep-alive, "
          f"L4 a connection per request; ratio = log on ÷ off, same plane+layer, same pass; median [min–max]\n")
    print("| plane | layer | req/s off | req/s on | CPU-µs/req off | CPU-µs/req on | CPU on ÷ off |")
    print("|---|---|---:|---:|---:|---:|---|")
    for plane in ("native", "asyncio"):
        for layer in ("L7", "L4"):
            off = dict((i, (us, rps)) for i, us, rps in cpu.get((plane, layer, False), []))
            on = dict((i, (us, rps)) for i, us, rps in cpu.get((plane, layer, True), []))
            ratios = [on[i][0] / off[i][0] for i in on if i in off]
            if not ratios:
                continue
            med = statistics.median
            print(f"| {plane} | {layer} {MODES[layer]} | {med(v[1] for v in off.values()):,.0f} "
                  f"| {med(v[1] for v in on.values()):,.0f} | {med(v[0] for v in off.values()):.1f} "
                  f"| {med(v[0] for v in on.values()):.1f} "
                  f"| {med(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}] |")
    print(f"\n(total {time.monotonic() - t_start:.0f} s; {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
