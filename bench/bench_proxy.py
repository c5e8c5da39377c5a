"""Balance Desk's balancer against nginx and HAProxy, L4 and L7, keep-alive and connection-per-request.

One command, one run, one table::

    python bench/bench_proxy.py            # ~5 min: wrk -t1 -c50 -d5s, 3 interleaved passes
    python bench/bench_proxy.py --quick    # ~1.5 min: -d2s, 1 pass (a smoke run, not for quoting)

Method (the setup published nginx/HAProxy comparisons use): two nginx backends (1 worker, ``return 200 "ok"``)
on loopback, weights 3:1; each LB runs single-process/single-thread (nginx 1 worker, haproxy nbthread 1,
balancedesk one process). Load is ``wrk -t1 -c50 -d{D}s --latency`` after a 1 s warm-up; the close variant
adds ``Connection: close`` (a new client connection per request). Every pass runs every (config, mode) cell,
in reverse order on alternate passes; each run is divided by the nginx run of the same layer and mode in the
same pass (nearest in time). Reported: medians over passes, the [min–max] of the ratios, p50/p99 of wrk, and
the LB's CPU-µs per request from /proc/PID/stat utime+stime deltas (LB process and children). The be1 share
(from the backends' stub_status) checks that every LB really applies the 3:1 weights.

Installs nginx, libnginx-mod-stream, haproxy and wrk with apt-get if missing (needs root). Generated
configs live in a temp dir (kept with --keep). Every process it starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {("L4", "ka"): 1.0, ("L4", "close"): 0.75, ("L7", "ka"): 0.65}


# --- setup ------------------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [t for t in ("nginx", "haproxy", "wrk") if shutil.which(t) is None]
    if missing or not STREAM_MODULE.exists():
        print(f"installing nginx libnginx-mod-stream haproxy wrk (missing: {missing or 'stream module'})",
              file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-stream", "haproxy", "wrk"],
                       check=True, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process {proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit(f"nothing listening on {port} after {deadline_s}s: {proc.args}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        stop(self.popen)


def stop(popen: subprocess.Popen[Any]) -> None:
    """End a child this bench started, by its PID: SIGTERM first (an nginx master killed outright leaves its
    workers running), SIGKILL after 5 s."""
    if popen.poll() is None:
        os.kill(popen.pid, signal.SIGTERM)
        try:
            popen.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(10)


def tree_pids(pid: int) -> list[int]:
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                out += tree_pids(int(child))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


# --- configs ----------------------------------------------------------------------------------------


def nginx_backend_conf(tmp: Path, name: str, port: int) -> Path:
    conf = tmp / f"{name}.conf"
    (tmp / name).mkdir()
    conf.write_text(textwrap.dedent(f"""\
        worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err warn;
        events {{ worker_connections 4096; }}
        http {{
          access_log off; keepalive_requests 1000000; client_body_temp_path {tmp}/{name};
          proxy_temp_path {tmp}/{name}; fastcgi_temp_path {tmp}/{name}; uwsgi_temp_path {tmp}/{name};
          scgi_temp_path {tmp}/{name};
          server {{
            listen 127.0.0.1:{port} reuseport backlog=4096;
            location = /__status {{ stub_status; }}
            location / {{ return 200 "ok"; }}
          }}
        }}
        """))
    return conf


def nginx_lb_conf(tmp: Path, name: str, port: int, be: list[tuple[int, int]], layer: str) -> Path:
    conf = tmp / f"{name}.conf"
    (tmp / name).mkdir()
    servers = " ".join(f"server 127.0.0.1:{p} weight={w};" for p, w in be)
    temps = (f"client_body_temp_path {tmp}/{name}; proxy_temp_path {tmp}/{name}; "
             f"fastcgi_temp_path {tmp}/{name}; uwsgi_temp_path {tmp}/{name}; scgi_temp_path {tmp}/{name};")
    if layer == "L4":
        body = (f"load_module {STREAM_MODULE};\n"
                f"worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err warn;\n"
                f"events {{ worker_connections 8192; }}\n"
                f"stream {{ upstream be {{ {servers} }} server {{ listen 127.0.0.1:{port} backlog=4096; "
                f"proxy_pass be; }} }}\n")
    else:
        body = (f"worker_processes 1; daemon off; pid {tmp}/{name}.pid; error_log {tmp}/{name}.err warn;\n"
                f"events {{ worker_connections 8192; }}\n"
                f"http {{ access_log off; keepalive_requests 1000000; {temps}\n"
                f"  upstream be {{ {servers} keepalive 64; }}\n"
                f"  server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ proxy_pass http://be; "
                f"proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n")
    conf.write_text(body)
    return conf


def haproxy_conf(tmp: Path, name: str, port: int, be: list[tuple[int, int]], layer: str) -> Path:
    conf = tmp / f"{name}.cfg"
    mode = "tcp" if layer == "L4" else "http"
    servers = "\n".join(f"  server be{i} 127.0.0.1:{p} weight {w}" for i, (p, w) in enumerate(be, 1))
    conf.write_text(textwrap.dedent(f"""\
        global
          nbthread 1
          maxconn 8000
        defaults
          mode {mode}
          timeout connect 5s
          timeout client 30s
          timeout server 30s
          retries 2
          option redispatch 1
        frontend fe
          bind 127.0.0.1:{port}
          default_backend be
        backend be
          balance roundrobin
        """) + servers + "\n")
    return conf


def balancedesk_conf(tmp: Path, name: str, be: list[tuple[int, int]]) -> Path:
    import json

    conf = tmp / f"{name}.json"
    members = [{"memberID": f"be{i}", "sequence": i, "weight": w} for i, (_, w) in enumerate(be, 1)]
    conf.write_text(json.dumps({
        "connectorID": "bench", "label": "bench",
        "connectorGroup": {"connectionTimeout": 5, "retryDelay": 10, "loadBalancing": "Round Robin",
                           "members": members},
        "endpoints": {f"be{i}": f"127.0.0.1:{p}" for i, (p, _) in enumerate(be, 1)},
    }))
    return conf


# --- runs -------------------------------------------------------------------------------------------


@dataclass
class Cell:
    config: str  # direct / nginx / haproxy / balancedesk
    layer: str  # L4 / L7 / -
    port: int
    proc: Proc | None


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non2xx: int
    cpu_us: float | None
    be1_share: float | None


@dataclass
class Results:
    runs: dict[tuple[str, str, str], list[tuple[int, Run]]] = field(default_factory=dict)


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not m:
        return float("nan")
    return float(m[1]) * _UNIT[m[2]]


def stub_requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__status", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return int(lines[2].split()[2])


def wrk(port: int, seconds: int, conns: int, close: bool) -> tuple[str, int]:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"]
    if close:
        cmd[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    return out.stdout, out.returncode


def measure(cell: Cell, mode: str, args: argparse.Namespace, be_ports: list[int]) -> Run:
    close = mode == "close"
    wrk(cell.port, 1, args.connections, close)  # warm-up
    s0 = [stub_requests(p) for p in be_ports]
    c0 = cpu_seconds(cell.proc.pid) if cell.proc else None
    text, rc = wrk(cell.port, args.duration, args.connections, close)
    c1 = cpu_seconds(cell.proc.pid) if cell.proc else None
    s1 = [stub_requests(p) for p in be_ports]
    if rc != 0:
        raise SystemExit(f"wrk failed on {cell}: {text}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", text)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", text)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", text)[1])  # type: ignore[index]
    err = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in err.groups()) if err else 0
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    d = [b - a for a, b in zip(s0, s1, strict=True)]
    share = d[0] / sum(d) if sum(d) > 0 else None
    cpu_us = (c1 - c0) / requests * 1e6 if c0 is not None and c1 is not None and requests else None
    return Run(rps, p50, p99, requests, errors, int(non[1]) if non else 0, cpu_us, share)


@contextlib.contextmanager
def started(tmp: Path, only: set[str]) -> Iterator[tuple[list[Cell], list[int], list[Proc]]]:
    procs: list[Proc] = []

    def launch(name: str, cmd: list[str], port: int, **kw: object) -> Proc:
        log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        p = Proc(name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw))  # type: ignore[call-overload]
        procs.append(p)
        wait_port(port, p.popen)
        return p

    try:
        be_ports = [free_port(), free_port()]
        for i, port in enumerate(be_ports, 1):
            launch(f"be{i}", ["nginx", "-p", str(tmp), "-c", str(nginx_backend_conf(tmp, f"be{i}", port))], port)
        be = list(zip(be_ports, (3, 1), strict=True))
        cells = [Cell("direct", "-", be_ports[0], None)]
        for layer in ("L4", "L7"):
            port = free_port()
            conf = nginx_lb_conf(tmp, f"nginx-{layer}", port, be, layer)
            cells.append(Cell("nginx", layer, port,
                              launch(f"nginx-{layer}", ["nginx", "-p", str(tmp), "-c", str(conf)], port)))
            if "haproxy" in only:
                port = free_port()
                conf = haproxy_conf(tmp, f"haproxy-{layer}", port, be, layer)
                cells.append(Cell("haproxy", layer, port,
                                  launch(f"haproxy-{layer}", ["haproxy", "-db", "-f", str(conf)], port)))
            if "balancedesk" in only:
                port = free_port()
                conf = balancedesk_conf(tmp, f"balancedesk-{layer}", be)
                cmd = [sys.executable, "-m", "balancedesk.gui.launcher", "balance", "--config", str(conf),
                       "--listen", f"127.0.0.1:{port}", "--mode", "tcp" if layer == "L4" else "http"]
                cells.append(Cell("balancedesk", layer, port,
                                  launch(f"balancedesk-{layer}", cmd, port, cwd=ROOT)))
            if "bd-asyncio" in only:  # the portable shells (tcp.py, http.py), as a control for the native plane
                port = free_port()
                conf = balancedesk_conf(tmp, f"bd-asyncio-{layer}", be)
                cmd = [sys.executable, "-m", "balancedesk.gui.launcher", "balance", "--config", str(conf),
                       "--listen", f"127.0.0.1:{port}", "--mode", "tcp" if layer == "L4" else "http",
                       "--data-plane", "asyncio"]
                cells.append(Cell("bd-asyncio", layer, port, launch(f"bd-asyncio-{layer}", cmd, port, cwd=ROOT)))
            if "minimal" in only and layer == "L4":
                port = free_port()
                cmd = [sys.executable, str(ROOT / "bench" / "minimal_l4.py"), str(port), *map(str, be_ports)]
                cells.append(Cell("minimal", layer, port, launch("minimal-L4", cmd, port)))
        yield cells, be_ports, procs
    finally:
        for p in reversed(procs):
            p.stop()


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(res: Results, args: argparse.Namespace) -> str:
    lines = [
        f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.passes} interleaved pass(es); "
        f"ratio = run ÷ nginx same layer+mode same pass; median [min–max]",
        "",
        "| layer | LB | mode | req/s | ratio vs nginx | p50 ms | p99 ms | LB CPU-µs/req | CPU ÷ nginx "
        "| be1 share | errors |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = [("-", "direct")] + [(la, c) for la in ("L4", "L7")
                                 for c in ("nginx", "haproxy", "balancedesk", "bd-asyncio", "minimal")]
    verdicts = []
    for layer, config in order:
        for mode in ("ka", "close"):
            runs = res.runs.get((layer, config, mode))
            if not runs:
                continue
            ref = dict(res.runs.get((layer if layer != "-" else "L7", "nginx", mode), []))
            ratios = [r.rps / ref[i].rps for i, r in runs if i in ref]
            cpu_ratios = [r.cpu_us / ref[i].cpu_us for i, r in runs
                          if i in ref and r.cpu_us and ref[i].cpu_us]
            rs = [r for _, r in runs]
            ratio_s = (f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}]"
                       if ratios and config not in ("nginx", "direct") else ("1.00×" if config == "nginx" else "-"))
            cpu = [r.cpu_us for r in rs if r.cpu_us is not None]
            shares = [r.be1_share for r in rs if r.be1_share is not None]
            lines.append(
                f"| {layer} | {config} | {mode} | {statistics.median(r.rps for r in rs):,.0f} | {ratio_s} "
                f"| {statistics.median(r.p50_ms for r in rs):.2f} | {statistics.median(r.p99_ms for r in rs):.2f} "
                f"| {fmt(statistics.median(cpu) if cpu else None, '.1f')} "
                f"| {fmt(statistics.median(cpu_ratios) if cpu_ratios else None, '.2f')} "
                f"| {fmt(statistics.median(shares) if shares else None, '.2f')} "
                f"| {sum(r.errors + r.non2xx for r in rs)} |"
            )
            target = TARGETS.get((layer, mode))
            if config == "balancedesk" and target and ratios:
                med = statistics.median(ratios)
                verdicts.append(f"{layer} {mode}: {med:.2f}× nginx (target ≥ {target:.2f}×) → "
                                f"{'MET' if med >= target else 'MISSED'}")
    return "\n".join([*lines, "", "Targets (balancedesk throughput ÷ nginx, median):", *verdicts])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--passes", type=int, default=3, help="interleaved passes (default 3)")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="-d2s, 1 pass: a smoke run")
    ap.add_argument("--only", default="",
                    help="comma list of configs (direct,nginx,haproxy,balancedesk; controls: minimal = a bare "
                    "uvloop L4 relay, bd-asyncio = balancedesk on --data-plane asyncio). Default: all but "
                    "the controls")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with configs and logs")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.passes = 2, 1
    ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="bd-bench-"))
    res = Results()
    only = {c for c in args.only.split(",") if c} or {"direct", "nginx", "haproxy", "balancedesk"}
    t_start = time.monotonic()
    try:
        with started(tmp, only) as (cells, be_ports, _):
            plan = [(c, m) for c in cells if c.config in only or c.config == "nginx" for m in ("ka", "close")]
            for i in range(args.passes):
                for cell, mode in (plan if i % 2 == 0 else list(reversed(plan))):
                    run = measure(cell, mode, args, be_ports)
                    res.runs.setdefault((cell.layer, cell.config, mode), []).append((i, run))
                    print(f"pass {i + 1}/{args.passes} {cell.layer} {cell.config:11} {mode:5} "
                          f"{run.rps:10,.0f} req/s  p99 {run.p99_ms:6.2f} ms  "
                          f"cpu {fmt(run.cpu_us, '.1f')} µs/req  share {fmt(run.be1_share, '.2f')}  "
                          f"err {run.errors + run.non2xx}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"configs and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(res, args))
    print(f"\n(total {time.monotonic() - t_start:.0f} s; {os.cpu_count()} CPUs; "
          f"{subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
