"""What sticky affinity and the workers' shared state cost per pick: ``Runtime.first_pick`` in one process.

One command, one table::

    python bench/bench_sticky.py            # ~20 s: 5 interleaved passes of 200,000 picks per cell
    python bench/bench_sticky.py --quick    # 1 pass of 50,000 (a smoke run, not for quoting)

Cells: {one worker (its own sticky table), ``--workers`` (the shared mapping: a generation check per pick, the
shared table for keys)} × {no key, a key without entry (its rendezvous choice), a key with an entry (displaced
while its member was down, kept after it came back)}, and "unsticky": a key with the store taken away (the rule
before sticky affinity, rendezvous hashing alone). Every member is up, so every pick is the hot path
(``first_pick``), which is what the data planes call per L7 request (native and asyncio) or L4 connection.
Printed: the median ns per pick over the passes, and each cell's ratio to "one worker, no key". Nothing
here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from balancedesk.core.model import parse_balancer_config
from balancedesk.core.proxy.runtime import Runtime
from balancedesk.core.proxy.shared import SharedState

CONFIG = {
    "connectorID": "grp-bench", "owner": "alice", "label": "bench", "authUser": [],
    "connectorGroup": {"connectionTimeout": 2, "retryDelay": 30, "loadBalancing": "Round Robin",
                       "members": [{"memberID": f"m{i}", "sequence": i + 1, "weight": 1} for i in range(3)]},
    "endpoints": {f"m{i}": f"127.0.0.1:{9000 + i}" for i in range(3)},
}
KEYS = [f"transfer-{i}" for i in range(1000)]


async def cell(shared: SharedState | None, kind: str, n: int) -> float:
    rt = Runtime(parse_balancer_config(CONFIG), mode="http", affinity_header="sender-transfer-id", shared=shared)
    try:
        now = rt.loop.time()
        if kind == "unsticky":  # the rule before sticky affinity: rendezvous alone
            rt.balancer.sticky = None
        if kind == "held":  # displace every key once: its first choice fails, the walk remembers where it went
            for k in KEYS:
                first = rt.first_pick(k, now)
                assert first is not None
                sel = rt.begin(now, k, first)
                rt.connect_failed(sel, first, now)
                moved = sel.next(now=now)
                assert moved is not None and moved != first
                rt.balancer.mark_succeeded(first, now=now)  # back up at once
                if rt.shared is not None:
                    rt.shared.publish(first, None)
        keys = [None] * len(KEYS) if kind == "none" else KEYS
        pick = rt.first_pick
        t0 = time.perf_counter_ns()
        for i in range(n):
            pick(keys[i % 1000], now)
        return (time.perf_counter_ns() - t0) / n
    finally:
        rt.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    passes, n = (1, 50_000) if args.quick else (5, 200_000)
    cells = [("one worker", "unsticky"),
             *((w, k) for w in ("one worker", "--workers") for k in ("none", "fresh", "held"))]
    got: dict[tuple[str, str], list[float]] = {c: [] for c in cells}
    for p in range(passes):
        for w, k in cells if p % 2 == 0 else reversed(cells):
            shared = SharedState(workers=2) if w == "--workers" else None
            got[(w, k)].append(asyncio.run(cell(shared, k, n)))
            if shared is not None:
                shared.close()
    base = statistics.median(got[("one worker", "none")])
    print(f"{'state':<12} {'key':<8} {'ns/pick':>9} {'ratio':>7}")
    for c in cells:
        med = statistics.median(got[c])
        print(f"{c[0]:<12} {c[1]:<8} {med:9.0f} {med / base:7.2f}")


if __name__ == "__main__":
    main()
