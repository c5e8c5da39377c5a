"""A bounded chaos soak of the balancer: checked requests while its members are killed, stopped and restarted.

    .venv/bin/python bench/soak.py                       # both planes × http and tcp, 30 s each (~2.5 min)
    .venv/bin/python bench/soak.py --duration 10 --data-plane native --mode http

For every (data plane, mode) run: a real ``balancedesk balance`` process (its admin endpoint on) in front of
``--members`` real member processes (``bench/soak_member.py``: checksum-verifying HTTP/1.1 or framed TCP echo),
loaded by ``--clients`` client processes (``bench/soak_client.py``) that send random bodies and verify every
byte of every answer. Meanwhile chaos, one action at a time, in rotation, 1–2.5 s apart:

* **kill**: SIGKILL a member, restart it on the same port 0.3–2 s later;
* **stop**: SIGSTOP a member, then SIGCONT — in turn after more than the client's ``--timeout``, up to
  ``--stop-max`` s (a stalled member: its clients give up), and after 1–3 s (its requests only slowed down);
* **kill in flight** (http): four ``GET /slow`` requests held mid-answer (half the body sent, the member
  pausing and saying so), then SIGKILL of the member holding the most of them, within its pause — those must
  fail, never complete wrong;
* **kill mid-upload** (http): a 1 MiB ``POST /echo`` sent half, the member announcing it is receiving it,
  then SIGKILL of that member; (tcp) a connection holding half a frame, its member SIGKILLed.

The group's ``listener.readTimeout`` is ``--read-timeout`` (2 s, below the clients' 5 s): a stalled member is
then answered for with a 504 (an idempotent request carried on to the next member) instead of a client timeout.

Bounded: ``--duration`` seconds and ``--max-requests`` per run, a ``--timeout`` per request. After the chaos
every member runs again; the soak waits (bounded) until the balancer holds no client socket, checks that 100
requests in a row succeed, and reads the balancer's fds and RSS. Printed: one table (requests, ok, failed,
corrupted — which must be 0 —, req/s, latency, fds and RSS at start/peak/end, the chaos done, the balancer's
own totals), then every failure and corruption grouped by its reason.

Only 127.0.0.1 and free ports; every process is started here and ended by its PID (also on Ctrl+C or SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_client import Corrupt, exchange, read_response, why
from soak_member import FRAME_HEAD, gen

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PY = sys.executable
HOST = "127.0.0.1"
SLOW_N = 200_000  # bytes of a held /slow answer
STARTED: dict[int, asyncio.subprocess.Process] = {}  # every child by PID: ended by cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


async def spawn(*cmd: str, stdout: Any = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=stdout, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
    STARTED[proc.pid] = proc
    return proc


async def end(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    """End a child started here, by its PID (a stopped one is continued first so SIGTERM can act)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    STARTED.pop(proc.pid, None)


async def cleanup() -> None:
    await asyncio.gather(*(end(p, signal.SIGTERM) for p in list(STARTED.values())), return_exceptions=True)


# --- the balancer's own numbers ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sockets_by_role(pid: int, listen_port: int, member_ports: set[int]) -> tuple[int, int, int]:
    """(all fds, TCP sockets with a client, TCP sockets to a member) of process ``pid``."""
    inodes = set()
    fds = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    clients = members = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[9] not in inodes or f[3] == "0A":  # not ours, or a listener
                    continue
                local, remote = int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16)
                if local == listen_port:
                    clients += 1
                elif remote in member_ports:
                    members += 1
    return fds, clients, members


@dataclass
class Sample:
    fds: int
    clients: int
    members: int
    rss: float

    def __str__(self) -> str:
        return f"{self.fds} fds ({self.clients} client, {self.members} member sockets), {self.rss:.1f} MB"


# --- members ----------------------------------------------------------------------------------------------


@dataclass
class Member:
    name: str
    mode: str
    port: int
    slow_s: float
    proc: asyncio.subprocess.Process | None = None
    said: asyncio.Queue[tuple[str, str, float]] = field(default_factory=asyncio.Queue)  # (upload|paused, req, t)
    starts: int = 0

    async def start(self) -> None:
        deadline = time.monotonic() + 15
        while True:  # a port just freed by a SIGKILL may be busy for a moment
            self.proc = await spawn(PY, str(BENCH / "soak_member.py"), "--name", self.name, "--mode", self.mode,
                                    "--port", str(self.port), "--slow-s", str(self.slow_s))
            assert self.proc.stdout is not None
            line = await asyncio.wait_for(self.proc.stdout.readline(), 15)
            if line.startswith(b"member "):
                break
            await end(self.proc)
            if time.monotonic() > deadline:
                raise SystemExit(f"member {self.name} would not start on {self.port}: {line!r}")
            await asyncio.sleep(0.2)  # retry interval of a bounded wait for the port
        self.starts += 1
        asyncio.get_running_loop().create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            if line.startswith((b"upload ", b"paused ")):
                kind, req = line.decode().split()
                self.said.put_nowait((kind, req, time.monotonic()))

    def forget(self) -> None:
        while not self.said.empty():
            self.said.get_nowait()

    async def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        STARTED.pop(self.proc.pid, None)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)


# --- chaos ------------------------------------------------------------------------------------------------


@dataclass
class Chaos:
    members: list[Member]
    port: int
    mode: str
    rng: random.Random
    stop_max: float
    timeout: float
    slow_s: float
    done: Counter[str] = field(default_factory=Counter)
    probes: Counter[str] = field(default_factory=Counter)  # outcomes of the held requests the kills caught
    corrupted: Counter[str] = field(default_factory=Counter)

    async def kill(self) -> None:
        m = self.rng.choice(self.members)
        await m.kill()
        await asyncio.sleep(self.rng.uniform(0.3, 2.0))  # how long the member stays dead
        await m.start()
        self.done["kill + restart"] += 1

    async def stop(self) -> None:
        """SIGSTOP a member, SIGCONT it later: in turn past the clients' timeout (up to ``stop_max``: they give
        up on it) and briefly (1–3 s: its requests are only slowed down)."""
        m = self.rng.choice(self.members)
        long = self.done["SIGSTOP … SIGCONT, 1–3 s"] >= self.done["SIGSTOP … SIGCONT, past the client timeout"]
        stalled_s = self.rng.uniform(self.timeout + 0.5, max(self.stop_max, self.timeout + 0.5)) if long \
            else self.rng.uniform(1.0, 3.0)
        m.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(stalled_s)  # how long the member is stalled
        finally:
            m.signal(signal.SIGCONT)
        self.done["SIGSTOP … SIGCONT, past the client timeout" if long else "SIGSTOP … SIGCONT, 1–3 s"] += 1

    async def kill_in_flight(self) -> None:
        """Four /slow answers held mid-body (each member announces the pause it holds an answer in); SIGKILL
        of the member holding most of them, within its pause: those must fail, never complete wrong."""
        for m in self.members:
            m.forget()
        held: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter, int]] = {}
        try:
            for i in range(4):
                r, w = await asyncio.open_connection(HOST, self.port)
                seed = self.rng.getrandbits(40)
                req = f"slow-{self.done.total()}-{i}"
                w.write(b"GET /slow/%d/%d HTTP/1.1\r\nHost: soak\r\nX-Req: %s\r\n\r\n" % (SLOW_N, seed, req.encode()))
                held[req] = (r, w, seed)
            paused: dict[str, tuple[Member, float]] = {}
            deadline = time.monotonic() + 10
            while len(paused) < len(held) and time.monotonic() < deadline:
                for m in self.members:
                    while not m.said.empty():
                        kind, req, t = m.said.get_nowait()
                        if kind == "paused" and req in held:
                            paused[req] = (m, t)
                await asyncio.sleep(0.02)  # polling the members' announcements, with a deadline
            if not paused:
                self.probes["held: no member announced a paused answer within 10 s"] += 1
                return
            victim = Counter(m.name for m, _ in paused.values()).most_common(1)[0][0]
            member = next(m for m in self.members if m.name == victim)
            first = min(t for m, t in paused.values() if m is member)
            if time.monotonic() - first > self.slow_s - 1.0:
                self.probes["held: too late to catch (the pause was nearly over)"] += 1
                return
            await member.kill()
            for req, (r, _w, seed) in held.items():
                caught = req in paused and paused[req][0] is member
                try:
                    async with asyncio.timeout(self.slow_s + 5):
                        status, headers, body = await read_response(r, [False])
                    if status == 200 and (headers.get(b"x-req") != req.encode() or body != gen(SLOW_N, seed)):
                        self.corrupted["held answer completed with wrong bytes"] += 1
                    else:
                        self.probes[f"held: HTTP {status}, completed" +
                                    (" although its member was killed mid-answer" if caught else "")] += 1
                except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                    self.probes[f"held: {why(exc, started=True)}" + (" (its member killed)" if caught else "")] += 1
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            await member.start()
            self.done["SIGKILL with answers in flight"] += 1
        finally:
            for _, w, _ in held.values():
                w.close()

    async def kill_mid_upload(self) -> None:
        """Send half of a 1 MiB body; SIGKILL the member that announced it is reading it; finish the upload."""
        for m in self.members:
            m.forget()
        body = self.rng.randbytes(1 << 20)
        req = f"upload-{self.done.total()}".encode()
        r, w = await asyncio.open_connection(HOST, self.port)
        try:
            w.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nX-Req: %s\r\nX-Announce: 1\r\nX-Sha256: %s\r\n"
                    b"Content-Length: %d\r\n\r\n" % (req, hashlib.sha256(body).hexdigest().encode(), len(body)))
            w.write(body[: len(body) // 2])
            await w.drain()
            victim = None
            deadline = time.monotonic() + 10
            while victim is None and time.monotonic() < deadline:
                for m in self.members:
                    while not m.said.empty():
                        if m.said.get_nowait()[:2] == ("upload", req.decode()):
                            victim = m
                await asyncio.sleep(0.02)  # polling the members' announcements, with a deadline
            if victim is None:
                self.probes["upload: no member announced it within 10 s"] += 1
                return
            await victim.kill()
            progress = [False]
            try:
                async with asyncio.timeout(10):
                    w.write(body[len(body) // 2:])
                    await w.drain()
                    status, headers, got = await read_response(r, progress)
                if status == 200 and (headers.get(b"x-req") != req or got != body):
                    self.corrupted["upload answered 200 with wrong bytes"] += 1
                else:
                    self.probes[f"upload: HTTP {status}"] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                self.probes[f"upload: {why(exc, started=progress[0])}"] += 1
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            await victim.start()
            self.done["SIGKILL mid-upload"] += 1
        finally:
            w.close()

    async def kill_mid_frame(self) -> None:
        """TCP: one echo to learn the member, half a frame sent, that member SIGKILLed: the client must see
        the connection end, never an echo."""
        r, w = await asyncio.open_connection(HOST, self.port)
        try:
            async with asyncio.timeout(10):
                name = (await exchange(r, w, b"hello", [False])).decode()
            victim = next(m for m in self.members if m.name == name)
            payload = self.rng.randbytes(100_000)
            w.write(FRAME_HEAD.pack(b"F", len(payload), hashlib.sha256(payload).digest()) + payload[:50_000])
            await w.drain()
            await victim.kill()
            try:
                async with asyncio.timeout(10):
                    got = await r.read(1)
                self.probes["frame: connection ended" if not got else "frame: an answer after its member died"] += 1
            except (OSError, TimeoutError) as exc:
                self.probes[f"frame: {why(exc, started=False)}"] += 1
            await asyncio.sleep(self.rng.uniform(0.3, 1.0))
            await victim.start()
            self.done["SIGKILL mid-frame"] += 1
        except Corrupt as exc:
            self.corrupted[str(exc)] += 1
        finally:
            w.close()

    async def run(self, until: float) -> None:
        actions = [self.kill, self.stop, self.kill_in_flight, self.kill_mid_upload] if self.mode == "http" \
            else [self.kill, self.stop, self.kill_mid_frame]
        i = 0
        while time.time() < until - 2:
            await asyncio.sleep(self.rng.uniform(1.0, 2.5))  # the pause between two chaos actions
            if time.time() >= until - 2:
                break
            try:
                await actions[i % len(actions)]()
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:  # the probe itself was cut
                self.probes[f"probe failed: {why(exc, started=False)}"] += 1
                for m in self.members:  # whatever happened, every member runs again
                    if m.proc is None or m.proc.returncode is not None:
                        await m.start()
            i += 1


# --- one run ----------------------------------------------------------------------------------------------


@dataclass
class Result:
    plane: str
    mode: str
    seconds: float
    requests: int = 0
    ok: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    corrupted: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    start: Sample | None = None
    peak_rss: float = 0.0
    peak_fds: int = 0
    end: Sample | None = None
    after_ok: int = 0
    chaos: Counter[str] = field(default_factory=Counter)
    probes: Counter[str] = field(default_factory=Counter)
    totals: dict[str, Any] = field(default_factory=dict)


def group_config(members: list[Member], read_timeout: float) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "connectorID": "soak", "label": "soak",
        "connectorGroup": {"connectionTimeout": 2, "retryDelay": 2, "loadBalancing": "Round Robin",
                           "members": [{"memberID": m.name, "sequence": i + 1, "weight": 1}
                                       for i, m in enumerate(members)]},
        "endpoints": {m.name: f"{HOST}:{m.port}" for m in members}}
    if read_timeout > 0:
        cfg["listener"] = {"readTimeout": read_timeout}
    return cfg


async def check_after(port: int, mode: str, n: int) -> int:
    """How many of ``n`` sequential requests succeed once every member runs again."""
    ok = 0
    for i in range(n):
        try:
            r, w = await asyncio.open_connection(HOST, port)
            try:
                async with asyncio.timeout(5):
                    if mode == "http":
                        w.write(b"GET /gen/100/%d HTTP/1.1\r\nHost: soak\r\nX-Req: after\r\nConnection: close\r\n\r\n"
                                % i)
                        status, _, body = await read_response(r, [False])
                        ok += status == 200 and body == gen(100, i)
                    else:
                        await exchange(r, w, b"after %d" % i, [False])
                        ok += 1
            finally:
                w.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, Corrupt):
            pass
    return ok


async def until_no_clients(pid: int, port: int, member_ports: set[int], deadline_s: float) -> None:
    """Wait (at most ``deadline_s``) until the balancer holds no socket with a client."""
    deadline = time.monotonic() + deadline_s
    while True:
        if not sockets_by_role(pid, port, member_ports)[1] or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.2)  # polling a condition with a deadline


async def soak_one(plane: str, mode: str, args: argparse.Namespace, tmp: Path) -> Result:
    res = Result(plane, mode, args.duration)
    rng = random.Random(f"{args.seed}-{plane}-{mode}")
    members = [Member(f"m{i + 1}", mode, free_port(), args.slow_s) for i in range(args.members)]
    background: list[asyncio.Future[Any]] = []  # the chaos and the sampler: cancelled before anything is ended
    clients: list[asyncio.subprocess.Process] = []
    bal: asyncio.subprocess.Process | None = None
    log = os.open(tmp / f"{plane}-{mode}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # closed below
    try:
        for m in members:
            await m.start()
        conf = tmp / f"{plane}-{mode}.json"
        conf.write_text(json.dumps(group_config(members, args.read_timeout)))
        token = tmp / f"{plane}-{mode}.token"
        bal = await spawn(PY, "-m", "balancedesk.gui.launcher", "balance", "--config", str(conf), "--listen",
                          f"{HOST}:0", "--mode", mode, "--data-plane", plane, "--admin", f"{HOST}:0",
                          "--admin-token-file", str(token), stdout=log)
        text = ""
        deadline = time.monotonic() + 20
        while "balancedesk: balancing" not in text:
            if bal.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"the balancer did not start: {text}")
            await asyncio.sleep(0.05)  # polling the log for the readiness line, with a deadline
            text = (tmp / f"{plane}-{mode}.log").read_text()
        line = next(ln for ln in text.splitlines() if "balancedesk: balancing" in ln).split()
        port, admin = int(line[2].rsplit(":", 1)[1]), line[4]
        member_ports = {m.port for m in members}
        res.start = Sample(*sockets_by_role(bal.pid, port, member_ports), rss_mb(bal.pid))
        until = time.time() + args.duration
        clients += [await spawn(PY, str(BENCH / "soak_client.py"), "--port", str(port), "--mode", mode,
                               "--until", str(until), "--budget", str(args.max_requests // args.clients),
                               "--sessions", str(args.sessions), "--timeout", str(args.timeout),
                               "--seed", f"{args.seed}-{plane}-{mode}-{k}",
                               "--out", str(tmp / f"{plane}-{mode}-client{k}.json"))
                   for k in range(args.clients)]
        chaos = Chaos(members, port, mode, rng, args.stop_max, args.timeout, args.slow_s)
        chaos_task = asyncio.ensure_future(chaos.run(until))
        background.append(chaos_task)

        async def sample() -> None:
            while True:
                s = Sample(*sockets_by_role(bal.pid, port, member_ports), rss_mb(bal.pid))
                res.peak_rss, res.peak_fds = max(res.peak_rss, s.rss), max(res.peak_fds, s.fds)
                await asyncio.sleep(0.25)  # the sampling interval

        sampler = asyncio.ensure_future(sample())
        background.append(sampler)
        outs = await asyncio.gather(*(c.communicate() for c in clients))
        for c in clients:
            STARTED.pop(c.pid, None)
        await chaos_task
        sampler.cancel()
        for k, (out, _) in enumerate(outs):
            try:
                tally = json.loads((tmp / f"{plane}-{mode}-client{k}.json").read_text())
            except (OSError, ValueError):
                raise SystemExit(f"client {k} left no result: {out.decode()[-2000:]}") from None
            res.requests += tally["requests"]
            res.ok += tally["ok"]
            res.failed.update(tally["failed"])
            res.corrupted.update(tally["corrupted"])
            res.latencies += tally["latencies"]
        res.chaos, res.probes = chaos.done, chaos.probes
        res.corrupted.update(chaos.corrupted)
        # settle: every member runs; the balancer should let go of every client socket
        await until_no_clients(bal.pid, port, member_ports, args.settle)
        res.after_ok = await check_after(port, mode, 100)
        await until_no_clients(bal.pid, port, member_ports, args.settle)
        res.end = Sample(*sockets_by_role(bal.pid, port, member_ports), rss_mb(bal.pid))
        with contextlib.suppress(OSError, ValueError):
            rq = urllib.request.Request(admin + "/admin/snapshot",
                                        headers={"Authorization": f"Bearer {token.read_text().strip()}"})
            with urllib.request.urlopen(rq, timeout=5) as r:  # noqa: ASYNC210 - one short local call at the end
                res.totals = json.loads(r.read())["totals"]
        return res
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for c in clients:
            await end(c)
        if bal is not None:
            await end(bal, signal.SIGTERM)
        os.close(log)
        for m in members:
            if m.proc is not None:
                await end(m.proc)


# --- report -----------------------------------------------------------------------------------------------


def pct(xs: list[float], q: int) -> float:
    return statistics.quantiles(xs, n=100)[q - 1] * 1e3 if len(xs) >= 2 else float("nan")


def report(results: list[Result], args: argparse.Namespace) -> str:
    read_timeout = f"{args.read_timeout:g} s" if args.read_timeout > 0 else "the balancer's default"
    out = [f"soak: {args.duration:g} s per run, ≤ {args.max_requests} requests, {args.members} members, "
           f"{args.clients}×{args.sessions} client sessions, timeout {args.timeout:g} s, "
           f"SIGSTOP ≤ {args.stop_max:g} s, readTimeout {read_timeout}",
           "",
           "| plane | mode | requests | ok | failed | corrupted | req/s | p50 / p99 ms | balancer at start | peak "
           "| at end | 100 after | chaos |",
           "|---|---|---:|---:|---:|---:|---:|---|---|---|---|---:|---|"]
    for r in results:
        assert r.start is not None and r.end is not None
        chaos = ", ".join(f"{v}× {k}" for k, v in r.chaos.items())
        out.append(f"| {r.plane} | {r.mode} | {r.requests:,} | {r.ok:,} | {sum(r.failed.values()):,} "
                   f"| **{sum(r.corrupted.values())}** | {r.ok / r.seconds:,.0f} "
                   f"| {pct(r.latencies, 50):.1f} / {pct(r.latencies, 99):.0f} | {r.start} "
                   f"| {r.peak_fds} fds, {r.peak_rss:.1f} MB | {r.end} | {r.after_ok}/100 | {chaos} |")
    for r in results:
        out += ["", f"{r.plane} {r.mode}:"]
        for k, v in r.failed.most_common():
            out.append(f"  failed     {v:6,}  {k}")
        for k, v in r.corrupted.most_common():
            out.append(f"  CORRUPTED  {v:6,}  {k}")
        for k, v in r.probes.most_common():
            out.append(f"  probe      {v:6,}  {k}")
        if r.totals:
            out.append("  balancer's totals: " + ", ".join(f"{k} {v}" for k, v in r.totals.items()))
    return "\n".join(out)


async def main_async(args: argparse.Namespace, tmp: Path) -> list[Result]:
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # (SIGINT too: a shell starts a background job with it ignored)
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    results = []
    try:
        for plane in args.data_plane.split(","):
            for mode in args.mode.split(","):
                print(f"soak: {plane} {mode} for {args.duration:g} s …", file=sys.stderr, flush=True)
                results.append(await soak_one(plane, mode, args, tmp))
    finally:
        await cleanup()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-plane", default="native,asyncio", help="comma list (default native,asyncio)")
    ap.add_argument("--mode", default="http,tcp", help="comma list (default http,tcp)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per run (default 30)")
    ap.add_argument("--max-requests", type=int, default=300_000, help="requests per run at most")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--clients", type=int, default=2, help="client processes")
    ap.add_argument("--sessions", type=int, default=12, help="concurrent sessions per client process")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    ap.add_argument("--read-timeout", type=float, default=2.0,
                    help="the group's listener.readTimeout, seconds (L7: no answer byte from a member within it → "
                    "504, the member counted as failed; default 2, below --timeout; 0: the balancer's default)")
    ap.add_argument("--stop-max", type=float, default=8.0, help="longest SIGSTOP, seconds (default 8)")
    ap.add_argument("--slow-s", type=float, default=3.0, help="the pause inside a held /slow answer")
    ap.add_argument("--settle", type=float, default=15.0, help="seconds to wait for the balancer to let go")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--keep", action="store_true", help="keep the balancer logs and configs")
    args = ap.parse_args()
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bd-soak-"))
    try:
        results = asyncio.run(main_async(args, tmp))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak: interrupted; every process it started was ended", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"logs and configs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(results, args))
    print(f"\n(total {time.monotonic() - t0:.0f} s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"{os.cpu_count()} CPUs)")
    return 1 if any(sum(r.corrupted.values()) for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
