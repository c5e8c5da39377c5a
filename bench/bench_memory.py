"""Memory per held connection: balancedesk (native and asyncio data planes) against nginx with one worker.

    .venv/bin/python bench/bench_memory.py                  # 10,000 connections per cell, L7 and L4 (~4 min)
    .venv/bin/python bench/bench_memory.py -n 2000 --layer L7

For every (load balancer, scenario) cell a fresh balancer is started in front of one nginx member (1 worker,
``return 200 "ok"``), warmed with 200 requests on 20 connections, and its RSS read (the process's VmRSS;
for nginx the worker's). Then N connections are opened one after another from this process and held:

* ``idle``: connected, nothing sent;
* ``partial``: the first half of a request head sent (``GET / HTTP/1.1`` and a ``Host`` line, no blank line);
* ``keep-alive``: one whole request sent and its answer read; then the connection idles (what a pooled
  client connection costs between two requests);

L4 (``tcp`` / nginx ``stream``) has ``idle`` and ``keep-alive`` (the request goes through the relay to the
member). Once the balancer holds all N (counted in /proc), RSS is read again once it is steady: ΔRSS / N is the
cost of one held connection. All N are then reset and, once the balancer holds none, RSS is read a third time:
how much of the growth was returned. With ``--malloc-trim`` each balancedesk is then made to call glibc's
``malloc_trim(0)`` (through gdb) and its RSS read a fourth time: was what it kept free heap? Member-side sockets
(the L7 pool, the L4 relays) are counted and reported, not subtracted. Kernel socket buffers are not in RSS and
not in these numbers.

Timeouts are raised (balancedesk ``--header-timeout``/``--idle-timeout``, nginx ``client_header_timeout``/
``keepalive_timeout``/``proxy_timeout``, all 600 s) so that every connection is still held while measured.
RLIMIT_NOFILE is raised to 65,536 (or the hard limit) here and inherited by the children; where the hard limit
is lower, N is lowered to what it allows (balancedesk holds at most RLIMIT_NOFILE/2 − 32 connections: an L4
client and its relay need two fds), and the table says so. Installs nginx and libnginx-mod-stream with apt-get if
missing. Only 127.0.0.1 and free ports; every process started here is ended by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
NOFILE = 65536  # asked for; the hard limit may be lower (raising it needs CAP_SYS_RESOURCE)
HELD_S = 600  # every timeout that could end a held connection while it is measured
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
PARTIAL = b"GET / HTTP/1.1\r\nHost: bench\r\n"
LBS = ("balancedesk native", "balancedesk asyncio", "nginx")
SCENARIOS = {"L7": ("idle", "partial", "keep-alive"), "L4": ("idle", "keep-alive")}


def ensure_nginx() -> None:
    if shutil.which("nginx") is None or not STREAM_MODULE.exists():
        print("installing nginx libnginx-mod-stream", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx", "libnginx-mod-stream"], check=True, env=env)


def raise_nofile() -> int:
    """RLIMIT_NOFILE raised to NOFILE, or to the hard limit where that is lower. Returns the soft limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(NOFILE, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        time.sleep(0.05)  # polling a condition with a deadline
    raise SystemExit(f"nothing listening on {port} after {deadline_s} s: {proc.args!r}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a child started here by its PID: SIGTERM (an nginx master then ends its worker), SIGKILL after 10 s."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def held_sockets(pid: int, port: int) -> tuple[int, int]:
    """(sockets of ``pid`` connected to a client of ``port``, its other connected TCP sockets)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            t = os.readlink(fd)
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    clients = others = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[9] not in inodes or parts[3] == "0A":  # not this process's, or a listener
                    continue
                if int(parts[1].rsplit(":", 1)[1], 16) == port:
                    clients += 1
                else:
                    others += 1
    return clients, others


def wait_for(probe: object, what: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not probe():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {deadline_s} s: {what}")
        time.sleep(0.1)  # polling a condition with a deadline


def steady_rss(pid: int, deadline_s: float = 10.0) -> int:
    """RSS once three reads 0.3 s apart agree within 64 KB (the balancer has digested what it was sent)."""
    deadline = time.monotonic() + deadline_s
    last = [rss_kb(pid)]
    while time.monotonic() < deadline:
        time.sleep(0.3)  # the interval between two reads of a settling value
        last = [*last[-2:], rss_kb(pid)]
        if len(last) == 3 and max(last) - min(last) <= 64:
            break
    return last[-1]


# --- configs -----------------------------------------------------------------------------------------------


def nginx_member_conf(tmp: Path, port: int) -> Path:
    conf = tmp / "member.conf"
    (tmp / "member").mkdir(exist_ok=True)
    conf.write_text(textwrap.dedent(f"""\
        worker_processes 1; daemon off; pid {tmp}/member.pid; error_log {tmp}/member.err warn;
        worker_rlimit_nofile {nofile()};
        events {{ worker_connections 30000; }}
        http {{
          access_log off; keepalive_requests 1000000; keepalive_timeout {HELD_S}s;
          client_header_timeout {HELD_S}s; client_body_temp_path {tmp}/member; proxy_temp_path {tmp}/member;
          fastcgi_temp_path {tmp}/member; uwsgi_temp_path {tmp}/member; scgi_temp_path {tmp}/member;
          server {{ listen {HOST}:{port} backlog=4096; location / {{ return 200 "ok"; }} }}
        }}
        """))
    return conf


def nginx_lb_conf(tmp: Path, port: int, member: int, layer: str) -> Path:
    conf = tmp / f"nginx-{layer}.conf"
    (tmp / "lb").mkdir(exist_ok=True)
    head = (f"worker_processes 1; daemon off; pid {tmp}/lb.pid; error_log {tmp}/lb.err warn;\n"
            f"worker_rlimit_nofile {nofile()}; events {{ worker_connections 30000; }}\n")
    if layer == "L4":
        body = (f"stream {{ upstream be {{ server {HOST}:{member}; }} server {{ listen {HOST}:{port} backlog=4096; "
                f"proxy_pass be; proxy_timeout {HELD_S}s; }} }}\n")
        conf.write_text(f"load_module {STREAM_MODULE};\n" + head + body)
    else:
        temps = " ".join(f"{k}_temp_path {tmp}/lb;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        body = (f"http {{ access_log off; keepalive_requests 1000000; keepalive_timeout {HELD_S}s; "
                f"client_header_timeout {HELD_S}s; {temps}\n"
                f"  upstream be {{ server {HOST}:{member}; keepalive 64; }}\n"
                f"  server {{ listen {HOST}:{port} backlog=4096; location / {{ proxy_pass http://be; "
                f"proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n")
        conf.write_text(head + body)
    return conf


def balancedesk_conf(tmp: Path, member: int) -> Path:
    conf = tmp / "balancedesk.json"
    conf.write_text(json.dumps({
        "connectorID": "mem", "label": "mem",
        "connectorGroup": {"connectionTimeout": 5, "retryDelay": 10, "loadBalancing": "Round Robin",
                           "members": [{"memberID": "be1", "sequence": 1, "weight": 1}]},
        "endpoints": {"be1": f"{HOST}:{member}"}}))
    return conf


@contextlib.contextmanager
def started_lb(lb: str, layer: str, tmp: Path, member: int) -> Iterator[tuple[int, int]]:
    """A fresh load balancer: (its port, the PID whose RSS is measured)."""
    port = free_port()
    log = open(tmp / "lb.log", "ab")  # noqa: SIM115 - closed with the process
    if lb == "nginx":
        cmd = ["nginx", "-p", str(tmp), "-c", str(nginx_lb_conf(tmp, port, member, layer))]
    else:
        cmd = [sys.executable, "-m", "balancedesk.gui.launcher", "balance", "--config",
               str(balancedesk_conf(tmp, member)), "--listen", f"{HOST}:{port}",
               "--mode", "tcp" if layer == "L4" else "http", "--data-plane", lb.split()[1],
               "--max-connections", "30000", "--idle-timeout", str(HELD_S), "--header-timeout", str(HELD_S)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_port(port, proc)
        pid = proc.pid
        if lb == "nginx":
            wait_for(lambda: children(proc.pid), "the nginx worker", 10)
            pid = children(proc.pid)[0]
        yield port, pid
    finally:
        stop(proc)
        log.close()


# --- clients -----------------------------------------------------------------------------------------------


def read_answer(s: socket.socket) -> None:
    """Read one answer of the member (``ok`` with a Content-Length) on ``s``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"answer {head[:100]!r}")
    n = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length"))
    while len(body) < n:
        body += s.recv(4096)


def open_held(port: int, n: int, scenario: str) -> list[socket.socket]:
    held = []
    for _ in range(n):
        s = socket.create_connection((HOST, port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with a reset
        held.append(s)
        if scenario == "partial":
            s.sendall(PARTIAL)
        elif scenario == "keep-alive":
            s.sendall(REQUEST)
            read_answer(s)
    return held


def warm(port: int) -> None:
    socks = open_held(port, 20, "keep-alive")
    for _ in range(9):
        for s in socks:
            s.sendall(REQUEST)
            read_answer(s)
    for s in socks:
        s.close()


@dataclass
class Cell:
    lb: str
    layer: str
    scenario: str
    n: int
    before_kb: int
    held_kb: int
    after_kb: int
    others: int
    trimmed_kb: int | None = None

    @property
    def per_conn(self) -> float:
        return (self.held_kb - self.before_kb) * 1024 / self.n


def malloc_trim(pid: int) -> int | None:
    """RSS after gdb made the (idle) process call glibc's ``malloc_trim(0)``: what of the memory kept after
    the connections closed is free heap that glibc did not give back. None if gdb could not do it."""
    try:
        out = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return rss_kb(pid) if "$1 = " in out.stdout else None


def measure(lb: str, layer: str, scenario: str, n: int, tmp: Path, member: int, *, trim: bool) -> Cell:
    with started_lb(lb, layer, tmp, member) as (port, pid):
        warm(port)
        wait_for(lambda: held_sockets(pid, port)[0] == 0, "the warm-up connections to close", 20)
        before = steady_rss(pid)
        held = open_held(port, n, scenario)
        try:
            wait_for(lambda: held_sockets(pid, port)[0] >= n, f"the balancer to hold {n} connections", 60)
            during = steady_rss(pid)
            others = held_sockets(pid, port)[1]
        finally:
            for s in held:
                s.close()
        wait_for(lambda: held_sockets(pid, port)[0] == 0, "the balancer to let go of every connection", 60)
        after = steady_rss(pid)
        trimmed = malloc_trim(pid) if trim and lb != "nginx" else None
        return Cell(lb, layer, scenario, n, before, during, after, others, trimmed)


def rss_text(c: Cell) -> str:
    trimmed = f" (trimmed {c.trimmed_kb / 1024:.1f})" if c.trimmed_kb is not None else ""
    return f"{c.before_kb / 1024:.1f} → {c.held_kb / 1024:.1f} → {c.after_kb / 1024:.1f}{trimmed}"


def report(cells: list[Cell], args: argparse.Namespace) -> str:
    out = [f"{args.n:,} connections held per cell, each against a fresh balancer; RSS = VmRSS (nginx: its worker); "
           "per connection = ΔRSS ÷ N; after = once all N were reset"
           + ("; trimmed = after malloc_trim(0)" if args.malloc_trim else ""), *([args.note] if args.note else []), ""]
    for layer in args.layer.split(","):
        scen = SCENARIOS[layer]
        out += [f"| {layer} | " + " | ".join(f"{s}: B/conn" for s in scen) + " | " +
                " | ".join(f"{s}: RSS before → held → after, MB" for s in scen) + " | member sockets held |",
                "|---|" + "---:|" * len(scen) + "---|" * len(scen) + "---|"]
        ref = {c.scenario: c.per_conn for c in cells if c.layer == layer and c.lb == "nginx"}
        for lb in args.lbs:
            row = {c.scenario: c for c in cells if c.layer == layer and c.lb == lb}
            if not row:
                continue
            per = []
            for s in scen:
                c = row[s]
                ratio = f" ({c.per_conn / ref[s]:.1f}× nginx)" if lb != "nginx" and ref.get(s) else ""
                per.append(f"{c.per_conn:,.0f}{ratio}")
            rss = [rss_text(row[s]) for s in scen]
            others = " / ".join(str(row[s].others) for s in scen)
            out.append(f"| {lb} | " + " | ".join(per) + " | " + " | ".join(rss) + f" | {others} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10_000, help="connections held per cell (default 10000)")
    ap.add_argument("--layer", default="L7,L4", help="comma list: L7, L4 (default both)")
    ap.add_argument("--lb", default=",".join(LBS), help=f"comma list of {', '.join(LBS)}")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir with configs and logs")
    ap.add_argument("--malloc-trim", action="store_true",
                    help="after the connections closed, make each balancedesk call malloc_trim(0) (with gdb, "
                    "apt-get install gdb) and read its RSS once more: is the memory it kept free heap?")
    args = ap.parse_args()
    if args.malloc_trim and shutil.which("gdb") is None:
        ap.error("--malloc-trim needs gdb")
    args.lbs = [x.strip() for x in args.lb.split(",") if x.strip()]
    nofile = raise_nofile()
    fit = nofile // 2 - 100  # below balancedesk's own cap (RLIMIT_NOFILE/2 - 32), with room for its other fds
    args.note = ""
    if args.n > fit:
        args.note = (f"-n {args.n} lowered to {fit}: RLIMIT_NOFILE is {nofile} here (its hard limit; raising it "
                     f"needs CAP_SYS_RESOURCE) and an L4 connection held through a balancer takes two of its fds")
        print(args.note, file=sys.stderr)
        args.n = fit
    ensure_nginx()
    tmp = Path(tempfile.mkdtemp(prefix="bd-mem-"))
    t0 = time.monotonic()
    cells = []
    member_port = free_port()
    member = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(nginx_member_conf(tmp, member_port))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_port(member_port, member)
        for layer in args.layer.split(","):
            for scenario in SCENARIOS[layer]:
                for lb in args.lbs:
                    cell = measure(lb, layer, scenario, args.n, tmp, member_port, trim=args.malloc_trim)
                    cells.append(cell)
                    trimmed = f" (trimmed {cell.trimmed_kb / 1024:.1f})" if cell.trimmed_kb is not None else ""
                    print(f"{layer} {scenario:10} {lb:20} {cell.per_conn:8,.0f} B/conn  RSS {cell.before_kb / 1024:.1f}"
                          f" → {cell.held_kb / 1024:.1f} → {cell.after_kb / 1024:.1f}{trimmed} MB  "
                          f"member sockets {cell.others}", file=sys.stderr, flush=True)
    finally:
        stop(member)
        if args.keep:
            print(f"configs and logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(cells, args))
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    print(f"(total {time.monotonic() - t0:.0f} s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {nginx_v})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
