"""Benchmark the management API: 1,000 connectors and 100 groups on a real ``balancedesk serve`` process.

    .venv/bin/python bench/bench_mgmt.py [--connectors 1000] [--groups 100] [--requests 500]

Measures, over HTTP on 127.0.0.1 with keep-alive: GET the list with details (all 1,100 as the admin), GET
one group, PUT a group (full replace with If-Match: a durable, fsynced write). Latency is measured one
request at a time (p50/p99); throughput with 8 concurrent clients. Prints a table; never part of the tests.
Targets on a 2-core machine: PUT p99 <= 20 ms, list-with-details p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

PASSWORD = "bench-admin-password"
CONCURRENCY = 8


def start_server(data: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", data],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(r"balancedesk: serving (\S+)", line):
            return proc, m.group(1)
    raise SystemExit(f"server exited ({proc.wait()}) before serving")


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


async def measure(name: str, n: int, op: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    for i in range(min(20, n)):  # warm-up
        await op(i)
    latencies = []
    for i in range(n):
        t0 = time.perf_counter()
        await op(i)
        latencies.append((time.perf_counter() - t0) * 1000)
    counter = iter(range(10**9))

    async def worker() -> None:
        for _ in range(n // CONCURRENCY):
            await op(next(counter))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - t0
    done = (n // CONCURRENCY) * CONCURRENCY
    return {
        "name": name,
        "n": n,
        "p50": statistics.median(latencies),
        "p99": pct(latencies, 99),
        "rps": done / elapsed,
    }


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-mgmt-") as data:
        proc, url = start_server(data)
        try:
            limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=url, auth=("admin", PASSWORD), timeout=60, limits=limits) as c:
                t0 = time.perf_counter()
                group_ids = await populate(c, args.connectors, args.groups)
                print(
                    f"populated {args.connectors} connectors + {args.groups} groups in {time.perf_counter() - t0:.1f} s"
                )
                listed = (await c.get("/api/mgmt/connectors", params={"details": "true"})).json()["connectors"]
                assert len(listed) == args.connectors + args.groups, len(listed)
                etags: dict[str, str] = {}
                bodies: dict[str, dict[str, Any]] = {}
                for gid in group_ids:
                    r = await c.get(f"/api/mgmt/connectors/{gid}")
                    etags[gid], bodies[gid] = r.headers["ETag"], r.json()

                async def list_details(i: int) -> None:
                    r = await c.get("/api/mgmt/connectors", params={"details": "true"})
                    assert r.status_code == 200

                async def get_one(i: int) -> None:
                    r = await c.get(f"/api/mgmt/connectors/{group_ids[i % len(group_ids)]}")
                    assert r.status_code == 200

                async def put_group(i: int) -> None:
                    gid = group_ids[i % len(group_ids)]
                    body = {**bodies[gid], "label": f"group-{i}"}
                    r = await c.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": etags[gid]})
                    assert r.status_code == 200, r.text
                    etags[gid] = r.headers["ETag"]

                results = [
                    await measure(f"GET list details ({len(listed)})", max(50, args.requests // 5), list_details),
                    await measure("GET one group", args.requests, get_one),
                    await measure("PUT a group (If-Match)", args.requests, put_group),
                ]
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"\n{'operation':<32} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}  (req/s: {CONCURRENCY} clients)")
    for r in results:
        print(f"{r['name']:<32} {r['n']:>6} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['rps']:>8.0f}")
    print(
        f"\ntargets: PUT p99 <= 20 ms ({'met' if results[2]['p99'] <= 20 else 'MISSED'}), "
        f"list-with-details p99 <= 50 ms ({'met' if results[0]['p99'] <= 50 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--requests", type=int, default=500)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
