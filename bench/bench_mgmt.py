"""Benchmark the management API: 1,000 connectors and 100 groups on real ``balancedesk serve`` processes.

    .venv/bin/python bench/bench_mgmt.py [--connectors 1000] [--groups 100] [--requests 300] [--rounds 5]
                                         [--setups sqlite,postgresql,lb]

Setups, measured side by side in one run (rounds interleaved across them): ``sqlite`` — one server on its
embedded store; ``postgresql`` — one server on PostgreSQL (a cluster the bench makes with ``initdb`` in a
temporary directory, PostgreSQL's durable defaults: fsync on, synchronous_commit on; started as in
tests/mgmt/pg_cluster.py, which it reuses); ``lb`` — two servers on one PostgreSQL database behind a
Balance Desk L7 balancer (``balance --config … --mode http --data-plane asyncio``, as the README says),
requests sent to the balancer, the servers' and the balancer's CPU counted together. Each setup has its own data.

Measures, over HTTP on 127.0.0.1 with keep-alive: GET the list with details (all 1,100 as the admin), GET
one group, PUT a group (full replace with If-Match: a durable, committed write), the same PUT with an
``Idempotency-Key`` as the app sends it (its answer is stored in the write's transaction: the key's cost).
Latency is measured one request at a time (p50/p99); throughput with 8 concurrent clients (threads). The
requests are sent by a lean socket client, not httpx, so the bench's own CPU stays small beside the
server's on the 2 cores.
Every operation is measured in several rounds (interleaved, so a burst of load from elsewhere on the box
hits all of them alike); the table shows the median of the rounds' p50 and p99, the spread of p99
(min-max), and the CPU time per request of the server (utime+stime from /proc/PID/stat: work done, not
time spent waiting for a core) and of the bench itself. "GET list, just after a PUT" times only the list
request that follows each PUT (the first reader after a write, which no cache can answer); its CPU columns
count both requests. The load average is printed too: on a shared 2-core box a high one inflates tails.
Targets on a 2-core machine: PUT p99 <= 20 ms, list-with-details p99 <= 50 ms. Never part of the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from balancedesk.core.mgmt.installation import front_config

PASSWORD = "bench-admin-password"
CONCURRENCY = 8
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
TARGETS_MS = {"list": 50.0, "put": 20.0}  # p99, from issue 2

Op = Callable[["Conn", int], float | None]  # returns the ms to count, if not the whole call


BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]


def _started(cmd: list[str], ready: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(ready, line):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
            return proc, m.group(1)
    raise SystemExit(f"{cmd[3]} exited ({proc.wait()}) before it was ready")


def start_server(data: str, database: str | None = None) -> tuple[subprocess.Popen[str], str]:
    cmd = [*BALANCEDESK, "serve", "--port", "0", "--data", data, *(["--database", database] if database else [])]
    return _started(cmd, r"balancedesk: serving (\S+)")


def start_front(folder: Path, urls: list[str]) -> tuple[subprocess.Popen[str], str]:
    """A Balance Desk L7 balancer in front of the management servers at ``urls`` (README: a load-balancer
    installation)."""
    config = front_config(urls)  # as `balancedesk front-config` prints it
    path = folder / "mgmt.json"
    path.write_text(json.dumps(config))
    proc, listen = _started([*BALANCEDESK, "balance", "--config", str(path), "--listen", "127.0.0.1:0", "--mode",
                             "http", "--data-plane", "asyncio"], r"balancedesk: balancing (127\.0\.0\.1:\d+)")
    return proc, f"http://{listen}"


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in ms."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) * TICK_MS  # utime, stime (fields 14 and 15 of the man page)


def own_cpu_ms() -> float:
    t = os.times()
    return (t.user + t.system) * 1000


async def populate(client: httpx.AsyncClient, connectors: int, groups: int) -> list[str]:
    sem = asyncio.Semaphore(CONCURRENCY)

    async def register(i: int) -> str:
        async with sem:
            body = {"label": f"opc-{i}", "owner": "admin", "endpoint": f"127.0.0.1:{10000 + i}"}
            r = await client.post("/api/admin/connectors", json=body)
            r.raise_for_status()
            return str(r.json()["connectorID"])

    ids = await asyncio.gather(*(register(i) for i in range(connectors)))
    per_group = max(1, min(5, connectors // max(1, groups)))

    async def group(g: int) -> str:
        async with sem:
            members = [
                {"memberID": ids[g * per_group + k], "sequence": k + 1, "weight": k + 1} for k in range(per_group)
            ]
            body = {"label": f"group-{g}", "connectorGroup": {"loadBalancing": "Round Robin", "members": members}}
            r = await client.post("/api/mgmt/connectors", json=body)
            r.raise_for_status()
            return str(r.json()["connectorID"])

    return list(await asyncio.gather(*(group(g) for g in range(groups))))


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Conn:
    """A lean blocking HTTP/1.1 keep-alive client, so the bench's own CPU (which shares the 2 cores with
    the server) is a small part of each measured request; httpx costs milliseconds per request."""

    IDLE_S = 2.0  # reconnect after this long idle: uvicorn drops idle keep-alive connections after 5 s

    def __init__(self, url: str, auth: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.base = f"Host: {parts.netloc}\r\nAuthorization: Basic {auth}\r\n"
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.used = time.monotonic()

    def request(self, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[int, dict[str, str], bytes]:
        if time.monotonic() - self.used > self.IDLE_S:
            self.close()
            self._connect()
        self.used = time.monotonic()
        head = f"{method} {path} HTTP/1.1\r\n{self.base}"
        if body or method in ("PUT", "POST"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
        self.sock.sendall(head.encode() + b"\r\n" + body)
        status_line = self.file.readline()
        if not status_line:
            raise ConnectionError(f"the server closed the connection ({method} {path})")
        status = int(status_line.split(b" ", 2)[1])
        got: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        data = self.file.read(int(got.get("content-length", "0")))
        self.used = time.monotonic()
        return status, got, data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@dataclass
class Rounds:
    """One operation's results, a value per round."""

    key: str
    name: str
    n: int
    throughput: bool = True  # False: the op is not one request (its rps would mean nothing)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)  # ms per request
    client_cpu: list[float] = field(default_factory=list)  # ms per request

    def median(self, values: list[float]) -> float:
        return statistics.median(values)


def measure_round(result: Rounds, op: Op, conns: list[Conn], pids: list[int], *, start: int) -> None:
    n, conn = result.n, conns[0]
    for i in range(min(10, n)):  # warm-up (also refills any cache a previous round's writes dropped)
        op(conn, start + i)
    latencies = []
    server0, client0 = sum(map(cpu_ms, pids)), own_cpu_ms()
    for i in range(n):
        t0 = time.perf_counter()
        timed = op(conn, start + i)
        latencies.append((time.perf_counter() - t0) * 1000 if timed is None else timed)
    result.server_cpu.append((sum(map(cpu_ms, pids)) - server0) / n)
    result.client_cpu.append((own_cpu_ms() - client0) / n)
    result.p50.append(statistics.median(latencies))
    result.p99.append(pct(latencies, 99))
    if not result.throughput:
        return
    counter = itertools.count(start + n)  # next() on it is atomic under the GIL

    errors: list[BaseException] = []

    def worker(c: Conn) -> None:
        try:
            for _ in range(n // CONCURRENCY):
                op(c, next(counter))
        except BaseException as exc:  # reported below: a failed worker must not pass for a fast one
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns[:CONCURRENCY]]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{result.name}: {len(errors)} of {len(threads)} clients failed") from errors[0]
    result.rps.append((n // CONCURRENCY) * CONCURRENCY / elapsed)


async def prepare(url: str, args: argparse.Namespace) -> list[str]:
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, auth=("admin", PASSWORD), timeout=60, limits=limits) as c:
        t0 = time.perf_counter()
        group_ids = await populate(c, args.connectors, args.groups)
    print(f"populated {args.connectors} connectors + {args.groups} groups in {time.perf_counter() - t0:.1f} s")
    return group_ids


@dataclass
class Setup:
    """One installation under test: where to send requests, whose CPU to count, what to stop."""

    name: str
    url: str
    pids: list[int]
    procs: list[subprocess.Popen[str]]
    conns: list[Conn] = field(default_factory=list)
    ops: list[tuple[Rounds, Op]] = field(default_factory=list)


def start_setups(names: list[str], folder: Path, cluster: Any) -> list[Setup]:
    setups = []
    for name in names:
        data = folder / name
        data.mkdir()
        if name == "sqlite":
            proc, url = start_server(str(data))
            setups.append(Setup(name, url, [proc.pid], [proc]))
        elif name == "postgresql":
            proc, url = start_server(str(data), cluster.new_database())
            setups.append(Setup(name, url, [proc.pid], [proc]))
        elif name == "lb":
            database = cluster.new_database()
            servers = [start_server(str(data / f"s{i}"), database) for i in range(2)]
            front, url = start_front(data, [u for _, u in servers])
            procs = [p for p, _ in servers] + [front]
            setups.append(Setup("2 servers + balancer", url, [p.pid for p in procs], procs))
        else:
            raise SystemExit(f"unknown setup {name!r}: sqlite, postgresql or lb")
    return setups


def make_ops(setup: Setup, args: argparse.Namespace) -> None:
    """Populate the setup's store and build its operations (each with its own ETags and bodies)."""
    url = setup.url
    group_ids = asyncio.run(prepare(url, args))
    auth = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    setup.conns = conns = [Conn(url, auth) for _ in range(CONCURRENCY)]
    status, _, raw = conns[0].request("GET", "/api/mgmt/connectors?details=true")
    listed = json.loads(raw)["connectors"]
    assert status == 200 and len(listed) == args.connectors + args.groups, len(listed)
    etags: dict[str, str] = {}
    bodies: dict[str, dict[str, Any]] = {}
    for gid in group_ids:
        status, headers, raw = conns[0].request("GET", f"/api/mgmt/connectors/{gid}")
        etags[gid], bodies[gid] = headers["etag"], json.loads(raw)

    def list_details(c: Conn, i: int) -> None:
        status, _, raw = c.request("GET", "/api/mgmt/connectors?details=true")
        assert status == 200 and raw.startswith(b'{"connectors":['), status

    def get_one(c: Conn, i: int) -> None:
        status, _, _ = c.request("GET", f"/api/mgmt/connectors/{group_ids[i % len(group_ids)]}")
        assert status == 200, status

    def put_group(c: Conn, i: int) -> None:
        gid = group_ids[i % len(group_ids)]
        body = json.dumps({**bodies[gid], "label": f"group-{i}"}).encode()
        status, headers, raw = c.request("PUT", f"/api/mgmt/connectors/{gid}", body, If_Match=etags[gid])
        assert status == 200, raw
        etags[gid] = headers["etag"]

    def put_keyed(c: Conn, i: int) -> None:
        """The same PUT with an Idempotency-Key, as the app sends it (the answer is stored with the write)."""
        gid = group_ids[i % len(group_ids)]
        body = json.dumps({**bodies[gid], "label": f"keyed-{i}"}).encode()
        status, headers, raw = c.request("PUT", f"/api/mgmt/connectors/{gid}", body, If_Match=etags[gid],
                                         Idempotency_Key=uuid.uuid4().hex)
        assert status == 200, raw
        etags[gid] = headers["etag"]

    def list_after_put(c: Conn, i: int) -> float:
        """The list's cost when a write has just changed it (the first reader after a write)."""
        put_group(c, i)
        t0 = time.perf_counter()
        list_details(c, i)
        return (time.perf_counter() - t0) * 1000

    setup.ops = [
        (Rounds("list", f"GET list details ({len(listed)})", max(50, args.requests // 3)), list_details),
        (Rounds("one", "GET one group", args.requests), get_one),
        (Rounds("put", "PUT a group (If-Match)", args.requests), put_group),
        (Rounds("put-keyed", "PUT, with an Idempotency-Key", args.requests), put_keyed),
        (Rounds("list-cold", "GET list, just after a PUT", max(50, args.requests // 3), throughput=False),
         list_after_put),
    ]


def run(args: argparse.Namespace) -> tuple[list[Setup], list[float]]:
    loads: list[float] = []
    names = [n.strip() for n in args.setups.split(",") if n.strip()]
    cluster = None
    setups: list[Setup] = []
    with tempfile.TemporaryDirectory(prefix="bench-mgmt-") as tmp:
        try:
            if any(n != "sqlite" for n in names):
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mgmt"))
                from pg_cluster import start_cluster

                cluster = start_cluster(durable=True)
            setups = start_setups(names, Path(tmp), cluster)
            for setup in setups:
                make_ops(setup, args)
            for round_ in range(args.rounds):
                loads.append(os.getloadavg()[0])
                for setup in setups:
                    for result, op in setup.ops:
                        measure_round(result, op, setup.conns, setup.pids, start=round_ * 100 * args.requests)
                    print(f"round {round_ + 1}/{args.rounds} {setup.name}: load {loads[-1]:.1f}; p99 ms "
                          + ", ".join(f"{r.key} {r.p99[-1]:.1f}" for r, _ in setup.ops), flush=True)
            loads.append(os.getloadavg()[0])
        finally:
            for setup in setups:
                for c in setup.conns:
                    c.close()
                for proc in setup.procs:
                    proc.terminate()
                    proc.wait(10)
            if cluster is not None:
                cluster.stop()
    return setups, loads


def report(setups: list[Setup], loads: list[float], rounds: int) -> None:
    print(
        f"\nmedian of {rounds} rounds; load average (1 min) {min(loads):.1f}-{max(loads):.1f} "
        f"on {os.cpu_count()} CPUs; req/s with {CONCURRENCY} clients; CPU ms per request (sequential phase; "
        "server CPU: every server process, and the balancer, of the setup)"
    )
    base = setups[0]
    for setup in setups:
        print(f"\n== {setup.name}" + ("" if setup is base else f"  (p50 ratio: against {base.name})"))
        print(
            f"{'operation':<28} {'n':>5} {'p50 ms':>7} {'p99 ms':>7} {'p99 min-max':>13} {'req/s':>7} "
            f"{'server CPU':>10} {'bench CPU':>9} {'p50 ratio':>9}"
        )
        for (r, _), (b, _) in zip(setup.ops, base.ops, strict=True):
            spread = f"{min(r.p99):.1f}-{max(r.p99):.1f}"
            rps = f"{r.median(r.rps):.0f}" if r.rps else "-"
            ratio = r.median(r.p50) / b.median(b.p50)
            print(
                f"{r.name:<28} {r.n:>5} {r.median(r.p50):>7.2f} {r.median(r.p99):>7.2f} {spread:>13} "
                f"{rps:>7} {r.median(r.server_cpu):>10.2f} {r.median(r.client_cpu):>9.2f} {ratio:>8.2f}x"
            )
        by_key = {r.key: r for r, _ in setup.ops}
        verdicts = []
        for key, label in (("put", "PUT"), ("list", "list-with-details")):
            got = by_key[key].median(by_key[key].p99)
            verdict = "met" if got <= TARGETS_MS[key] else "MISSED"
            verdicts.append(f"{label} p99 {got:.1f} <= {TARGETS_MS[key]:.0f} ms: {verdict}")
        print("targets (median p99 over rounds): " + "; ".join(verdicts))
    if max(loads) > (os.cpu_count() or 1):
        print(f"note: the load average exceeded {os.cpu_count()} CPUs during the run; tails include waiting for a core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--requests", type=int, default=300, help="sequential requests per operation per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--setups", default="sqlite,postgresql,lb",
                        help="comma-separated: sqlite, postgresql, lb (two servers on PostgreSQL behind a balancer)")
    args = parser.parse_args()
    setups, loads = run(args)
    report(setups, loads, args.rounds)


if __name__ == "__main__":
    main()
