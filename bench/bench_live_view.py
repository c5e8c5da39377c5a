"""Does the live view stay responsive while the balancer runs flat out — and does watching cost the
balancer throughput?

Starts two members (``--members nginx``, the default when installed: two one-worker nginx as in
``bench_proxy.py``, so the balancer rather than its members limits the rate; or ``demo``: balancedesk's
Python demo members) and ``balancedesk balance`` (one worker) on 127.0.0.1 for each load, then drives
the balancer at its maximum rate in interleaved phases (each round runs them in the reverse order of the
round before, so drift in the box's load falls on every side):

* ``without``: nobody watches;
* ``with``: a LiveWindow attached to the admin endpoint is open (snapshots, events by cursor, moving dots,
  chart, table) — the throughput ratio target is measured here;
* ``probed``: the same, plus the UI-loop probes below. The probes are instrumentation, not the product:
  a 10 ms and a 16 ms precise timer wake the UI thread 160 times a second, four times as often as the
  view's own 36 fps animation, and on this box every wake-up of another process costs the balancer
  throughput. So responsiveness is measured here and throughput in ``with``; the ``probed`` throughput is
  printed too.
* ``still``: the view with "animate routed connections" off (no frames between snapshots);
* ``process`` and ``background`` (skip with ``--no-processes``): the view as its own process
  (``bench/live_view_process.py``, with the same frame and lag probes), at normal priority and at idle CPU
  priority (Linux ``SCHED_IDLE``, an experiment; see that file for why the app does not offer it).

Loads (``--loads``, default ``l4-wrk,l7-wrk``):

* ``l4-wrk``: balancer ``--mode tcp`` in front of HTTP members, ``wrk -H 'Connection: close'`` — one new
  TCP connection (one L4 route) per request;
* ``l7-wrk``: balancer ``--mode http``, ``wrk`` keep-alive — one L7 route per request;
* ``l4-py``: balancer ``--mode tcp`` in front of echo members, ``balancedesk demo-traffic --rate 0`` (the
  Python generator the first version of this bench used; noisier, and it costs the box more CPU).

Measured per phase: throughput (from the load tool), the balancer's CPU-µs per request (utime+stime
from /proc/PID/stat of the balancer and its children, over requests served — the cost the view imposes
on the core itself, e.g. the admin endpoint serialising events, independent of how busy the box is), the
view process's CPU, and the 1-minute load average. During ``probed`` phases three probes run on the UI
thread:

* frame interval: time between the topology view's real paints (``drawForeground`` of each paint event);
* UI loop lag: a 10 ms precise QTimer, lateness of each tick;
* 16 ms frame probe: a 16 ms precise QTimer, lateness of each tick (what a 60 Hz animation would see).

Reported: per-round lines, then medians over rounds (ratio = median of per-round with/without ratios) and
pooled percentiles of the probes (frame intervals from ``with`` and ``probed``, lag from ``probed``).
Targets: throughput ratio ≥ 0.9, frame interval p95 ≤ 33 ms, lag
p99 ≤ 50 ms. Never part of the test run; every load is bounded; every child is killed by its PID.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_live_view.py [--seconds 6] [--rounds 4]
    xvfb-run -a -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb .venv/bin/python bench/bench_live_view.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import qasync
from balancedesk.core.command import balancedesk_argv
from balancedesk.gui.live import LiveWindow
from bench_proxy import cpu_seconds, free_port, nginx_backend_conf, stop, wait_port
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

LOADS = ("l4-wrk", "l7-wrk", "l4-py")


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Proc:
    """A child started by this bench (killed by its PID at the end): a ``balancedesk`` subcommand, or with
    ``raw`` any command."""

    def __init__(self, args: list[str], *, raw: bool = False) -> None:
        self.p = subprocess.Popen(args if raw else balancedesk_argv(*args), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_line(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            if m := re.search(pattern, line):
                return m
        raise SystemExit(f"bench: no {pattern!r} from {self.p.args!r}")

    def kill(self) -> None:
        stop(self.p)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def run_load(kind: str, target: str, seconds: float, concurrency: int) -> tuple[float, int]:
    """One bounded max-rate load; (requests or connections per second, how many)."""
    if kind == "l4-py":
        args = balancedesk_argv("demo-traffic", "--target", target, "--mode", "tcp", "--rate", "0",
                                "--concurrency", str(concurrency), "--duration", str(seconds), "--report", "1",
                                "--timeout", "5")
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        last = json.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1])
        return float(last["ok"]) / float(last["elapsed_s"]), int(last["ok"])
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", f"http://{target}/"]
    if kind == "l4-wrk":
        cmd[1:1] = ["-H", "Connection: close"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out_b, _ = await proc.communicate()
    text = out_b.decode()
    m_rps, m_n = re.search(r"Requests/sec:\s+([\d.]+)", text), re.search(r"(\d+) requests in", text)
    if proc.returncode != 0 or m_rps is None or m_n is None:
        raise SystemExit(f"bench: wrk failed: {text}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    n = int(m_n[1]) - (int(bad[1]) if bad else 0)
    return float(m_rps[1]) * n / max(1, int(m_n[1])), n


@dataclass
class Phase:
    rate: float
    cpu_us: float  # balancer CPU-µs per request
    bal_cpu: float  # balancer CPU, % of a core
    load: float


@dataclass
class Probes:
    frames: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    own_lags: list[float] = field(default_factory=list)
    probe16: list[float] = field(default_factory=list)
    view_cpu: list[float] = field(default_factory=list)
    probed_cpu: list[float] = field(default_factory=list)


class Lateness:
    """A precise QTimer of ``ms``; records how late each tick came (ms) in ``out``, and in ``own`` the part
    of it the UI thread could have caused: at most the CPU time the thread used since the last tick
    (``time.thread_time``). Lateness beyond that was spent waiting for a CPU — the box, not the view."""

    def __init__(self, ms: int, out: list[float]) -> None:
        self.ms, self.out = ms, out
        self.own: list[float] = []
        self.cpu = 0.0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self.on_timer_timeout)
        self.last = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.cpu = time.thread_time()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def on_timer_timeout(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        late = max(0.0, (now - self.last) * 1000.0 - self.ms)
        self.out.append(late)
        self.own.append(min(late, (cpu - self.cpu) * 1000.0))
        self.last, self.cpu = now, cpu


async def phase(kind: str, bal: Proc, target: str, args: argparse.Namespace,
                view: Callable[[], LiveWindow] | None, probes: Probes, *, probe: bool = False) -> tuple[Phase, str]:
    win = view() if view is not None else None
    lag, p16 = Lateness(10, []), Lateness(16, [])
    if win is not None:
        t0 = time.monotonic()
        while win.last is None and time.monotonic() - t0 < 10:  # noqa: ASYNC110 - a Qt-side condition
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        win.topology.frame_times.clear()
        if probe:
            lag.start()
            p16.start()
    load0, c0, v0, w0 = _loadavg(), cpu_seconds(bal.p.pid), time.process_time(), time.monotonic()
    rate, n = await run_load(kind, target, args.seconds, args.concurrency)
    c1, v1, wall = cpu_seconds(bal.p.pid), time.process_time(), time.monotonic() - w0
    ph = Phase(rate, (c1 - c0) / max(1, n) * 1e6, (c1 - c0) / wall * 100.0, (load0 + _loadavg()) / 2)
    note = ""
    if win is not None:
        lag.stop()
        p16.stop()
        ft = list(win.topology.frame_times)
        probes.frames += [(b - a) * 1000.0 for a, b in itertools.pairwise(ft)]
        probes.lags += lag.out
        probes.own_lags += lag.own
        probes.probe16 += p16.out
        cpu = (v1 - v0) / wall * 100.0
        (probes.probed_cpu if probe else probes.view_cpu).append(cpu)
        w = win.watcher
        note = (f"view CPU {cpu:.0f} %, {len(ft)} paints, {w.polls if w else 0} polls, "
                + (f"lag p99 {pct(lag.out, 99):.0f} ms, " if probe else "")
                + f"shown {win.topology.shown} of {win.topology.routed} routes")
        win.shutdown()
        win.close()
        win.deleteLater()
        await asyncio.sleep(0.3)
    return ph, note


@dataclass
class ProcProbes:
    """What the view processes of the ``process``/``background`` phases measured (frames, lag, CPU)."""

    frames: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def process_phase(kind: str, bal: Proc, target: str, args: argparse.Namespace, admin: str, token: Path,
                        out: ProcProbes, *, background: bool) -> tuple[Phase, str]:
    """The view as its own process (``bench/live_view_process.py``), at normal or at idle CPU priority."""
    cmd = [sys.executable, str(Path(__file__).with_name("live_view_process.py")), "--attach", admin,
           "--token-file", str(token), "--seconds", str(args.seconds + 1.0), *(["--background"] if background else [])]
    view = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    assert view.stdout is not None
    try:
        line = await asyncio.wait_for(view.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise SystemExit(f"bench: the view process said {line!r}")
        load0, c0, w0 = _loadavg(), cpu_seconds(bal.p.pid), time.monotonic()
        rate, n = await run_load(kind, target, args.seconds, args.concurrency)
        c1, wall = cpu_seconds(bal.p.pid), time.monotonic() - w0
        result = json.loads(await asyncio.wait_for(view.stdout.readline(), 30))
        await view.wait()
    finally:
        if view.returncode is None:
            view.kill()
            await view.wait()
    out.frames += result["frames"]
    out.lags += result["lags"]
    out.cpu.append(result["cpu"])
    ph = Phase(rate, (c1 - c0) / max(1, n) * 1e6, (c1 - c0) / wall * 100.0, (load0 + _loadavg()) / 2)
    return ph, (f"view CPU {result['cpu']:.0f} %, lag p99 {pct(result['lags'], 99):.0f} ms, "
                f"frame p95 {pct(result['frames'], 95):.0f} ms")


async def bench_load(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    member_mode = "tcp" if kind == "l4-py" else "http"
    bal_mode = "http" if kind == "l7-wrk" else "tcp"
    eps = {m: f"127.0.0.1:{free_port()}" for m in ("a", "b")}
    cfg = {"connectorID": "bench", "owner": "bench", "label": "bench",
           "connectorGroup": {"connectionTimeout": 2, "retryDelay": 2, "loadBalancing": "Round Robin",
                              "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                          for i, m in enumerate(eps)]},
           "endpoints": eps}
    (tmp / f"{kind}.json").write_text(json.dumps(cfg))
    (tmp / "token").write_text("bench-token")
    procs: list[Proc] = []
    try:
        for mid, ep in eps.items():
            if args.members == "nginx" and member_mode == "http":
                port = int(ep.rpartition(":")[2])
                conf = nginx_backend_conf(tmp, f"{kind}-{mid}", port)
                procs.append(Proc(["nginx", "-p", str(tmp), "-c", str(conf)], raw=True))
                wait_port(port, procs[-1].p)
            else:
                procs.append(Proc(["demo-member", "--listen", ep, "--mode", member_mode, "--name", mid]))
                procs[-1].wait_line("demo member")
        bal = Proc(["balance", "--config", str(tmp / f"{kind}.json"), "--listen", "127.0.0.1:0", "--mode", bal_mode,
                    "--admin", "127.0.0.1:0", "--admin-token-file", str(tmp / "token"), "--no-affinity"])
        procs.append(bal)
        m = bal.wait_line(r"balancedesk: balancing (\S+) admin (http://\S+)")
        target, admin = m.group(1), m.group(2)
        await run_load(kind, target, 1.0, args.concurrency)  # warm-up

        def view(animate: bool = True) -> LiveWindow:
            win = LiveWindow()
            win.resize(1400, 950)
            win.animate.setChecked(animate)
            win.show()
            win.attach(admin, "bench-token")
            return win

        without: list[Phase] = []
        with_view: list[Phase] = []
        probed: list[Phase] = []
        probes = Probes()
        procs_out = {"process": ProcProbes(), "background": ProcProbes()}
        separate: dict[str, list[Phase]] = {"process": [], "background": []}
        still: list[Phase] = []
        still_cpu: list[float] = []
        phases = ("without", "with", "probed", "still", *(("process", "background") if args.processes else ()))
        for r in range(args.rounds):
            order = phases if r % 2 == 0 else tuple(reversed(phases))
            notes: dict[str, str] = {}
            for name in order:
                if name in separate:
                    ph, note = await process_phase(kind, bal, target, args, admin, tmp / "token", procs_out[name],
                                                   background=name == "background")
                    separate[name].append(ph)
                elif name == "still":
                    still_probes = Probes()
                    ph, note = await phase(kind, bal, target, args, lambda: view(animate=False), still_probes)
                    still.append(ph)
                    still_cpu += still_probes.view_cpu
                else:
                    ph, note = await phase(kind, bal, target, args, None if name == "without" else view, probes,
                                           probe=name == "probed")
                    {"without": without, "with": with_view, "probed": probed}[name].append(ph)
                notes[name] = note
            a, b, c = without[-1], with_view[-1], probed[-1]
            extra = "".join(f", {name} {ps[-1].rate:.0f}/s (ratio {ps[-1].rate / a.rate:.2f}; {notes[name]})"
                            for name, ps in (("still", still), *separate.items()) if ps)
            print(f"bench: {kind} round {r + 1} ({'→'.join(order)}, load {(a.load + b.load + c.load) / 3:.1f}): "
                  f"without {a.rate:.0f}/s {a.cpu_us:.0f} µs/req, with {b.rate:.0f}/s {b.cpu_us:.0f} µs/req "
                  f"(ratio {b.rate / a.rate:.2f}; {notes['with']}), probed {c.rate:.0f}/s (ratio "
                  f"{c.rate / a.rate:.2f}; {notes['probed']}){extra}", flush=True)
        med = statistics.median
        return {
            "without": med(p.rate for p in without), "with": med(p.rate for p in with_view),
            "ratio": med(b.rate / a.rate for a, b in zip(without, with_view, strict=True)),
            "ratio_min": min(b.rate / a.rate for a, b in zip(without, with_view, strict=True)),
            "ratio_max": max(b.rate / a.rate for a, b in zip(without, with_view, strict=True)),
            "us_without": med(p.cpu_us for p in without), "us_with": med(p.cpu_us for p in with_view),
            "bal_cpu_without": med(p.bal_cpu for p in without), "bal_cpu_with": med(p.bal_cpu for p in with_view),
            "view_cpu": med(probes.view_cpu), "probed_cpu": med(probes.probed_cpu),
            "probed": med(p.rate for p in probed),
            "probed_ratio": med(c.rate / a.rate for a, c in zip(without, probed, strict=True)),
            "frame50": pct(probes.frames, 50), "frame95": pct(probes.frames, 95),
            "lag50": pct(probes.lags, 50), "lag99": pct(probes.lags, 99), "lagmax": max(probes.lags, default=0),
            "own99": pct(probes.own_lags, 99), "ownmax": max(probes.own_lags, default=0),
            "p16_95": pct(probes.probe16, 95), "p16_99": pct(probes.probe16, 99),
            "load": med([p.load for p in without + with_view]),
            "still_ratio": med(x.rate / a.rate for a, x in zip(without, still, strict=True)),
            "still_ratio_min": min(x.rate / a.rate for a, x in zip(without, still, strict=True)),
            "still_ratio_max": max(x.rate / a.rate for a, x in zip(without, still, strict=True)),
            "still_cpu": med(still_cpu),
            **{f"{name}_{k}": v for name, ps in separate.items() if ps for k, v in {
                "ratio": med(x.rate / a.rate for a, x in zip(without, ps, strict=True)),
                "ratio_min": min(x.rate / a.rate for a, x in zip(without, ps, strict=True)),
                "ratio_max": max(x.rate / a.rate for a, x in zip(without, ps, strict=True)),
                "us": med(x.cpu_us for x in ps), "cpu": med(procs_out[name].cpu),
                "frame95": pct(procs_out[name].frames, 95), "lag99": pct(procs_out[name].lags, 99),
                "lagmax": max(procs_out[name].lags, default=0.0)}.items()},
        }
    finally:
        for p in procs:
            p.kill()


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    platform = QApplication.platformName()
    print(f"bench: {os.cpu_count()} CPUs, QPA {platform}, load average {_loadavg():.2f} at start, "
          f"-c{args.concurrency}, {args.members} members, {args.seconds:.0f} s per phase, {args.rounds} rounds "
          "(order reversed every round)", flush=True)
    results: dict[str, dict[str, float]] = {}
    try:
        for kind in args.loads:
            results[kind] = await bench_load(kind, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average {_loadavg():.2f} at the end; medians over {args.rounds} rounds, QPA {platform}\n")
    kinds = list(results)
    print("| measure | " + " | ".join(kinds) + " | target |")
    print("|---|" + "---|" * len(kinds) + "---|")

    def row(name: str, fmt: Callable[[dict[str, float]], str], target: str = "") -> None:
        print(f"| {name} | " + " | ".join(fmt(results[k]) for k in kinds) + f" | {target} |")

    row("load average (median of phases)", lambda r: f"{r['load']:.1f}")
    row("throughput without view (/s)", lambda r: f"{r['without']:.0f}")
    row("throughput with view (/s)", lambda r: f"{r['with']:.0f}")
    row("ratio with / without [min–max]",
        lambda r: f"{r['ratio']:.3f} {_mark(r['ratio'] >= 0.9)} [{r['ratio_min']:.2f}–{r['ratio_max']:.2f}]", "≥ 0.9")
    row("balancer CPU-µs / request without → with",
        lambda r: f"{r['us_without']:.0f} → {r['us_with']:.0f} ({r['us_with'] / r['us_without'] - 1:+.1%})")
    row("balancer CPU % of a core without → with",
        lambda r: f"{r['bal_cpu_without']:.0f} → {r['bal_cpu_with']:.0f}")
    row("view process CPU (% of a core), with / probed", lambda r: f"{r['view_cpu']:.1f} / {r['probed_cpu']:.1f}")
    row("throughput with view and probes (/s), ratio", lambda r: f"{r['probed']:.0f}, {r['probed_ratio']:.3f}")
    row("frame interval p50 / p95 (ms)",
        lambda r: f"{r['frame50']:.1f} / {r['frame95']:.1f} {_mark(r['frame95'] <= 33)}", "p95 ≤ 33")
    row("UI loop lag p50 / p99 / max (ms) (probed phases)",
        lambda r: f"{r['lag50']:.1f} / {r['lag99']:.1f} / {r['lagmax']:.0f} {_mark(r['lag99'] <= 50)}", "p99 ≤ 50")
    row("  of which the UI thread's own CPU, p99 / max (ms)", lambda r: f"{r['own99']:.1f} / {r['ownmax']:.0f}")
    row("16 ms probe lateness p95 / p99 (ms)", lambda r: f"{r['p16_95']:.1f} / {r['p16_99']:.1f}")
    row("**view with animation off**: ratio [min–max]; view CPU %", lambda r: (
        f"{r['still_ratio']:.3f} {_mark(r['still_ratio'] >= 0.9)} [{r['still_ratio_min']:.2f}–"
        f"{r['still_ratio_max']:.2f}]; {r['still_cpu']:.1f}"), "≥ 0.9")
    for name, title in (("process", "view as its own process, normal priority"),
                        ("background", "view as its own process at SCHED_IDLE (experiment)")):
        if f"{name}_ratio" not in results[kinds[0]]:
            continue
        row(f"**{title}**: ratio [min–max]", lambda r, n=name: (
            f"{r[n + '_ratio']:.3f} {_mark(r[n + '_ratio'] >= 0.9)} "
            f"[{r[n + '_ratio_min']:.2f}–{r[n + '_ratio_max']:.2f}]"), "≥ 0.9")
        row("  balancer CPU-µs / request; view CPU %", lambda r, n=name: f"{r[n + '_us']:.0f}; {r[n + '_cpu']:.1f}")
        row("  frame interval p95 / lag p99 / lag max (ms)", lambda r, n=name: (
            f"{r[n + '_frame95']:.1f} {_mark(r[n + '_frame95'] <= 33)} / {r[n + '_lag99']:.1f} "
            f"{_mark(r[n + '_lag99'] <= 50)} / {r[n + '_lagmax']:.0f}"), "p95 ≤ 33 / p99 ≤ 50")
    return 0


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--loads", default="l4-wrk,l7-wrk", help=f"comma-separated, from {', '.join(LOADS)}")
    p.add_argument("--no-processes", dest="processes", action="store_false",
                   help="skip the phases with the view as its own process (normal and --background priority)")
    p.add_argument("--members", choices=("nginx", "demo"), default="nginx" if shutil.which("nginx") else "demo",
                   help="HTTP members: nginx (as in bench_proxy.py: the balancer, not the members, limits the "
                        "rate) or balancedesk's Python demo members (default: nginx when installed)")
    args = p.parse_args()
    args.seconds = min(args.seconds, 120.0)
    args.rounds = max(1, min(args.rounds, 20))
    args.loads = [k for k in args.loads.split(",") if k]
    if bad := [k for k in args.loads if k not in LOADS]:
        p.error(f"unknown load {bad}")
    if any(k.endswith("wrk") for k in args.loads) and shutil.which("wrk") is None:
        p.error("wrk is not installed (apt-get install wrk), or use --loads l4-py")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # closing a phase's window must not stop the loop
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return int(loop.run_until_complete(run(args)))


if __name__ == "__main__":
    sys.exit(main())
