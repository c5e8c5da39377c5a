"""Time a wrong password for a user that exists against one for a name that does not, on a real server.

    .venv/bin/python bench/bench_login_timing.py [--samples 60] [--rounds 3]

Each login is one ``GET /api/mgmt/whoami`` on a fresh connection from its own loopback address (127.1.x.y),
so the login throttle admits every one of them (a source's first guess is never held back) and each costs
exactly what a first guess costs: one argon2 verification, against the stored hash or the dummy one. The two
kinds are interleaved, so load from elsewhere on the box hits both alike. Printed: the median and p90 of each
kind per round and the ratio of medians (unknown / known; 1.0 means the timing does not tell which names
exist). Never part of the tests.

One run on the shared 2-core box (2026-12-02, other test suites running, so the absolute times are high):
this branch 1.005, 1.074, 0.993 (median 1.005); the same script against main's server before the dummy hash,
0.077 and 0.083 (unknown names ~8-10 ms against ~110 ms: connect and HTTP without argon2, against with it).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

PASSWORD = "bench-admin-password"


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
    raise SystemExit("the server did not start")


def one_login(url: str, source: str, user: str) -> float:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as client:
        t0 = time.perf_counter()
        status = client.get("/api/mgmt/whoami", auth=(user, "not-the-password")).status_code
        ms = (time.perf_counter() - t0) * 1000
    if status != 401:
        raise SystemExit(f"expected 401 from {source} as {user}, got {status}")
    return ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60, help="logins of each kind per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        proc, url = start_server(data)
        try:
            n = 0
            print(f"{'round':>5} {'known p50 ms':>13} {'unknown p50 ms':>15} {'known p90':>10} {'unknown p90':>12} "
                  f"{'ratio p50':>10}")
            ratios = []
            for rnd in range(1, args.rounds + 1):
                known: list[float] = []
                unknown: list[float] = []
                for _ in range(args.samples):
                    n += 1
                    source = f"127.1.{n // 250}.{n % 250 + 1}"
                    known.append(one_login(url, source, "admin"))
                    unknown.append(one_login(url, source, f"nobody-{n}"))
                k50, u50 = statistics.median(known), statistics.median(unknown)
                k90 = statistics.quantiles(known, n=10)[-1]
                u90 = statistics.quantiles(unknown, n=10)[-1]
                ratios.append(u50 / k50)
                print(f"{rnd:>5} {k50:>13.2f} {u50:>15.2f} {k90:>10.2f} {u90:>12.2f} {u50 / k50:>10.3f}")
            print(f"median ratio of medians (unknown / known): {statistics.median(ratios):.3f}")
        finally:
            proc.kill()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
