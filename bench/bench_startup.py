"""Startup benchmark: a fresh app process → window shown and 100 groups listed.

    .venv/bin/python bench/bench_startup.py [--runs 5] [--groups 100]

Starts ``balancedesk serve --demo`` on 127.0.0.1 with a fresh data directory, registers ``--groups``
groups (two new connectors each) through the management API, then times fresh ``balancedesk`` app
processes until they print ``balancedesk-gui: groups listed N`` (the app prints it when
BALANCEDESK_BENCH_EXIT is set, then quits):

* ``remote``: the app connects to the running server (``--url``);
* ``local``: the "This computer" profile on that data directory, i.e. including starting the embedded
  server (the first server is stopped first).

Prints a table of min / median / max seconds to "groups listed" against the 1.5 s target, the median time
to "window shown" (the app prints ``balancedesk-gui: window shown`` once its event loop runs), the app's CPU
seconds and the load average before and after. Not part of the test run.

Bytecode: an installed app has its ``.pyc`` files; a checkout run with ``PYTHONDONTWRITEBYTECODE=1`` compiles
every module of the package from source at each start (~0.1-0.2 s CPU). By default the app processes get a
private bytecode cache (``PYTHONPYCACHEPREFIX`` in the temporary directory, filled by one untimed start),
which is what users have; ``--no-bytecode-cache`` measures the from-source start instead.
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


def time_app(args: list[str], env: dict[str, str]) -> tuple[float, int, float, float]:
    """(wall seconds to "groups listed", groups listed, CPU seconds the app process used in all,
    wall seconds to "window shown")."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    full_env = {**os.environ, **env, "BALANCEDESK_BENCH_EXIT": "1", "PYTHONUNBUFFERED": "1"}
    if full_env.get("PYTHONPYCACHEPREFIX"):
        full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen(balancedesk_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env)
    assert proc.stdout is not None
    listed = -1
    shown = float("nan")
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        if "balancedesk-gui: window shown" in line:
            shown = time.perf_counter() - t0
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
        raise SystemExit(f"the app did not list groups (rc {proc.returncode}):\n" + "".join(output[-30:]))
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return elapsed, listed, cpu, shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="let the app compile the package from source at each start (PYTHONDONTWRITEBYTECODE)")
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
        cache = {} if ns.no_bytecode_cache else {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
        env = {"BALANCEDESK_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config"), **cache}
        if cache:
            time_app(["--url", url, "--user", "admin"], env)  # untimed: fills the bytecode cache
        load0 = os.getloadavg()[0]
        remote = [time_app(["--url", url, "--user", "admin"], env) for _ in range(ns.runs)]
    finally:
        server.kill()
        server.wait()
    env = {"BALANCEDESK_ADMIN_PASSWORD": PASSWORD, "BALANCEDESK_CONFIG": str(tmp / "config"), **cache}
    local = [time_app(["--data", str(data)], env) for _ in range(ns.runs)]
    print(f"\nload average {load0:.1f} → {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"bytecode {'from source' if ns.no_bytecode_cache else 'cached'}")
    print(f"{'scenario':<40} {'groups':>6} {'min s':>6} {'median s':>9} {'max s':>6} {'shown s':>8} "
          f"{'app CPU s':>10} {'target':>7}")
    for name, rows in (("remote: app start → groups listed", remote),
                       ("local: app + embedded server → listed", local)):
        times = [t for t, _, _, _ in rows]
        cpu = statistics.median(c for _, _, c, _ in rows)
        shown = statistics.median(w for _, _, _, w in rows)
        ok = "ok" if statistics.median(times) <= TARGET_S else "SLOW"
        print(f"{name:<40} {rows[0][1]:>6} {min(times):>6.2f} {statistics.median(times):>9.2f} "
              f"{max(times):>6.2f} {shown:>8.2f} {cpu:>10.2f} {ok:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
