"""Profile the balancer under wrk load with py-spy: where its CPU goes, as a short text table.

    python bench/profile_proxy.py --layer L4 --mode close [--seconds 8] [--svg out.svg]

Same backends and config as bench_proxy.py (two nginx, weights 3:1). Prints the top functions by own
samples and by cumulative samples (collapsed stacks from ``py-spy record --format raw``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_proxy as bp


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", choices=("L4", "L7"), default="L4")
    ap.add_argument("--mode", choices=("ka", "close"), default="close")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--svg", help="also write a flame graph here")
    ap.add_argument("--native", action="store_true", help="include C frames (uvloop/libuv)")
    args = ap.parse_args()
    bp.ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="bd-prof-"))
    with bp.started(tmp, {"balancedesk"}) as (cells, _be, _procs):
        cell = next(c for c in cells if c.config == "balancedesk" and c.layer == args.layer)
        assert cell.proc is not None
        raw = tmp / "profile.txt"
        load = threading.Thread(target=bp.wrk, args=(cell.port, args.seconds + 2, 50, args.mode == "close"))
        load.start()
        spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(cell.proc.pid),
               "-d", str(args.seconds), "-r", "250", *(["--native"] if args.native else ["--nonblocking"])]
        subprocess.run([*spy, "--format", "raw", "-o", str(raw)], check=True, capture_output=True)
        load.join()
        if args.svg:
            load = threading.Thread(target=bp.wrk, args=(cell.port, 5, 50, args.mode == "close"))
            load.start()
            subprocess.run([*spy[:5], "3", *spy[6:], "-o", args.svg], check=True, capture_output=True)
            load.join()
    own: Counter[str] = Counter()
    cum: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        count = int(n)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for f in set(frames):
            cum[f] += count
    print(f"{args.layer} {args.mode}: {total} samples")
    print("\nown time:")
    for f, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    print("\ncumulative:")
    for f, n in cum.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
