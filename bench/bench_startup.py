"""Startup benchmark: a fresh app process → window shown and 100 groups listed.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--groups 100]

Starts ``balancedesk serve --demo`` on 127.0.0.1 with a fresh data directory, registers ``--groups``
groups (two new connectors each) through the management API, then times fresh ``balancedesk`` app
processes until they print ``balancedesk-gui: groups listed N`` (the app prints it when
BALANCEDESK_BENCH_EXIT is set, then quits):

* ``remote``: the app connects to the running server (``--url``);
* ``local``: the "This computer" profile on that data directory, i.e. including starting the embedded
  server (the first server is stopped first).

Prints a table of min / median / max seconds against the 1.5 s target. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from balancedesk.core.client import MgmtClient
from balancedesk.core.command import balancedesk_argv
from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member

PASSWORD = "bench-admin-pw-1"
TARGET_S = 1.5


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        balancedesk_argv("serve", "--host", "127.0.0.1", "--port", "0", "--data", str(data), "--demo"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if m := re.search(r"balancedesk: serving (\S+)", line):
            return proc, m.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("the management server did not start")


async def register(url: str, groups: int) -> int:
    async with MgmtClient(url, "admin", PASSWORD, timeout=30) as client:
        for g in range(groups):
            ids = []
            for k in range(2):
                reg = await client.register_connector(
                    label=f"bench-{g:03d}-{k}", owner="admin", endpoint=f"127.0.0.1:{20000 + 2 * g + k}"
                )
                ids.append(reg.connector_id)
            await client.create_group(Connector(
                owner="admin", label=f"Bench group {g:03d}",
                connector_group=ConnectorGroup(load_balancing=ROUND_ROBIN, members=tuple(
                    Member(member_id=i, sequence=n + 1, weight=n + 1) for n, i in enumerate(ids))),
            ))
        return len([c for c in await client.list_connectors(details=True) if c.is_group])


def time_app(args: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """(wall seconds to the marker, groups listed, CPU seconds the app process used in all)."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(balancedesk_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env, "BALANCEDESK_BENCH_EXIT": "1", "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    listed = -1
    for line in proc.stdout:
        if m := re.search(r"balancedesk-gui: groups listed (\d+)", line):
            listed = int(m.group(1))
            break
    elapsed = time.perf_counter() - t0
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if listed < 0:
        raise SystemExit(f"the app did not list groups (rc {proc.returncode})")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return elapsed, listed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--groups", type=int, default=100)
    ns = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="bd-bench-"))
    data = tmp / "data"
    server, url = start_server(data)
    try:
        t0 = time.perf_counter()
        total = asyncio.run(register(url, ns.groups))
        print(f"registered {ns.groups} groups ({total} on the server) in {time.perf_counter() - t0:.1f} s; "
              f"platform {os.environ['QT_QPA_PLATFORM']}")
        env = {"BALANCEDESK_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config")}
        remote = [time_app(["--url", url, "--user", "admin"], env) for _ in range(ns.runs)]
    finally:
        server.kill()
        server.wait()
    env = {"BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config")}
    local = [time_app(["--data", str(data)], env) for _ in range(ns.runs)]
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'scenario':<44} {'groups':>6} {'min s':>7} {'median s':>9} {'max s':>7} {'app CPU s':>10} {'target':>7}")
    for name, rows in (("remote: app start → groups listed", remote),
                       ("local: app + embedded server → listed", local)):
        times = [t for t, _, _ in rows]
        cpu = statistics.median(c for _, _, c in rows)
        ok = "ok" if statistics.median(times) <= TARGET_S else "SLOW"
        print(f"{name:<44} {rows[0][1]:>6} {min(times):>7.2f} {statistics.median(times):>9.2f} "
              f"{max(times):>7.2f} {cpu:>10.2f} {ok:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
