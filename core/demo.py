"""Demo members: small upstream servers so a group can be watched end to end on a fresh machine.

``balancedesk demo-member --listen HOST:PORT --mode tcp|http [--name NAME] [--control HOST:PORT]``

* ``tcp``: an echo server (whatever a client sends comes back).
* ``http``: HTTP/1.1 (keep-alive) answering every request ``200`` with its own name as the body and in an
  ``X-Demo-Member`` header.
* The control endpoint (HTTP, loopback) takes ``POST /mode {"mode": "ok"|"slow"|"refuse"}`` and answers
  ``GET /status``. ``refuse`` stops listening (connects are refused) and resets open connections; ``slow``
  delays every answer by ``--slow-ms`` (or ``"delay_ms"`` in the POST body); ``ok`` listens again on the
  same port.
* Once ready it prints ``balancedesk: demo member NAME on HOST:PORT control http://HOST:PORT``.

``balancedesk demo-traffic --target HOST:PORT --mode tcp|http [--rate R] [--concurrency C] [--duration S]
[--count N] [--affinity-header H --keys K]``: a bounded traffic generator (see the section below), used
by the live view's traffic control and by ``bench/bench_live_view.py``.

Stop = SIGTERM (the member closes its listeners and exits 0) or kill the process.

Who owns a demo process (:class:`DemoRegistry`): the app that starts one records it in a small JSON file in
its data directory — the process's PID and start time, its command (``demo-member``/``demo-traffic``), the
member, its endpoint and control URL, and its owner (the app process's PID and start time, and a window tag).
Rules:

* A process is *ours* only if a process with that PID still runs, started at the recorded time, and runs
  the recorded ``balancedesk`` command (``/proc/PID/stat`` and ``/proc/PID/cmdline``); a PID reused by
  anything else is never signalled. Where ``/proc`` is missing nothing can be checked, so nothing is killed.
* An owner is *alive* if its PID runs with the recorded start time. Records of a live owner are left alone
  (another window's demo: shown, never stopped from here); records of a dead owner are cleaned at the next
  start (:meth:`DemoRegistry.clean_orphans`): its processes that are still ours are stopped (SIGTERM, waited
  for, SIGKILL after the grace) and the records dropped, as are records of processes already gone.
* Reads and writes take an exclusive ``flock`` on the file's lock; the file is replaced atomically.

Imports: the standard library (uvloop when available); no Qt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balancedesk.core.model import parse_endpoint as _parse_model_endpoint


def parse_endpoint(value: str) -> tuple[str, int]:
    """``host:port`` where port 0 means "any free port" (the model's rule otherwise)."""
    if value.strip().endswith(":0"):
        host, _ = _parse_model_endpoint(value.strip()[:-1] + "1")
        return host, 0
    host, port = _parse_model_endpoint(value)
    return str(host), int(port)

MODES = ("ok", "slow", "refuse")
DEMO_COMMANDS = ("demo-member", "demo-traffic")
DEMO_STATE_FILE = "demo-processes.json"  # in the app's data directory
STOP_GRACE_S = 3.0  # SIGTERM → SIGKILL for a demo process being stopped


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` different ports nothing listens on at this moment (the OS picks them; none is held after)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22), or None if
    no such process runs (or there is no ``/proc``)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()  # after "(comm)": field 3 on
    try:
        return int(fields[19]) if fields[0] != b"Z" else None  # a zombie has exited
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


@dataclass(frozen=True)
class DemoRecord:
    """One demo process an app started (see the module docstring for what makes it ours)."""

    pid: int
    start: int
    command: str  # one of DEMO_COMMANDS
    member_id: str
    endpoint: str
    control: str
    owner_pid: int
    owner_start: int
    owner_tag: str  # which window of the owner

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "command": self.command, "memberID": self.member_id,
                "endpoint": self.endpoint, "control": self.control, "ownerPID": self.owner_pid,
                "ownerStart": self.owner_start, "ownerTag": self.owner_tag}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DemoRecord:
        return cls(int(d["pid"]), int(d["start"]), str(d["command"]), str(d.get("memberID") or ""),
                   str(d.get("endpoint") or ""), str(d.get("control") or ""), int(d["ownerPID"]),
                   int(d["ownerStart"]), str(d.get("ownerTag") or ""))

    def ours(self) -> bool:
        """The recorded process still runs: same PID, same start time, the recorded command."""
        return (self.command in DEMO_COMMANDS and process_start(self.pid) == self.start
                and self.command in _cmdline(self.pid))

    def owner_alive(self) -> bool:
        return process_start(self.owner_pid) == self.owner_start


def stop_process(pid: int, start: int, *, grace_s: float = STOP_GRACE_S) -> bool:
    """SIGTERM ``pid`` (only while it is the process that started at ``start``), wait up to ``grace_s`` for it
    to go, then SIGKILL and wait again. True once it is gone."""
    def gone() -> bool:
        return process_start(pid) != start

    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        if gone():
            return True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while not gone() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it, or it stays a zombie
            time.sleep(0.02)  # polling a process's end with a deadline
    return gone()


class DemoRegistry:
    """The demo processes this user's app instances started, in ``path`` (a JSON list of DemoRecord)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[DemoRecord]]:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                records = self._read()
                before = list(records)
                yield records
                if records != before:
                    tmp = self.path.with_name(self.path.name + ".tmp")
                    tmp.write_text(json.dumps([r.to_json() for r in records], indent=1))
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[DemoRecord]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        out = []
        for d in raw if isinstance(raw, list) else ():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                out.append(DemoRecord.from_json(d))
        return out

    def records(self) -> list[DemoRecord]:
        with self._locked() as records:
            return list(records)

    def add(self, record: DemoRecord) -> None:
        with self._locked() as records:
            records[:] = [r for r in records if r.pid != record.pid] + [record]

    def remove(self, pid: int) -> None:
        with self._locked() as records:
            records[:] = [r for r in records if r.pid != pid]

    def clean_orphans(self, *, grace_s: float = STOP_GRACE_S) -> list[DemoRecord]:
        """Stop the processes of owners that are gone (those still ours) and drop their records, and the
        records of processes that ended. Returns the records of the processes stopped."""
        with self._locked() as records:
            stopped, keep = [], []
            for r in records:
                if not r.ours():
                    continue  # ended (or its PID is someone else's now): only the record goes
                if r.owner_alive():
                    keep.append(r)
                elif stop_process(r.pid, r.start, grace_s=grace_s):
                    stopped.append(r)
                else:
                    keep.append(r)
            records[:] = keep
            return stopped
_MAX_HEADER = 64 * 1024


class DemoMember:
    """One demo upstream: a data listener that can be switched ok/slow/refuse, and its counters."""

    def __init__(self, *, name: str, host: str, port: int, mode: str, slow_ms: float) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.proto = mode
        self.mode = "ok"
        self.slow_s = slow_ms / 1000.0
        self.served = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # the data listener ---------------------------------------------------------------------------
    async def listen(self) -> None:
        if self._server is not None:
            return
        handler = self._echo if self.proto == "tcp" else self._http
        self._server = await asyncio.start_server(
            handler, self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def refuse(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    async def set_mode(self, mode: str, delay_ms: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if delay_ms is not None:
            self.slow_s = max(0.0, float(delay_ms)) / 1000.0
        if mode == "refuse":
            await self.refuse()
        else:
            await self.listen()
        self.mode = mode

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode,
            "proto": self.proto,
            "listen": f"{self.host}:{self.port}",
            "slow_ms": round(self.slow_s * 1000.0, 3),
            "served": self.served,
            "active": len(self._writers),
        }

    async def _delay(self) -> None:
        if self.mode == "slow" and self.slow_s > 0:
            await asyncio.sleep(self.slow_s)

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(65536):
                await self._delay()
                writer.write(data)
                await writer.drain()
                self.served += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        body = (self.name + "\n").encode()
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                _method, _path, headers, _body = request
                await self._delay()
                close = headers.get("connection", "").lower() == "close"
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    f"X-Demo-Member: {self.name}\r\nContent-Length: {len(body)}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                )
                writer.write(head.encode() + body)
                await writer.drain()
                self.served += 1
                if close:
                    break
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """Read one HTTP/1.1 request (headers + Content-Length body); None at a clean end of stream."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    if len(raw) > _MAX_HEADER:
        raise ValueError("header too large")
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return parts[0], parts[1], headers, body


def _control_handler(member: DemoMember) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                method, path, _headers, body = request
                status, answer = await _control(member, method, path, body)
                payload = json.dumps(answer).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return handle


async def _control(member: DemoMember, method: str, path: str, body: bytes) -> tuple[str, dict[str, Any]]:
    if path == "/status" and method == "GET":
        return "200 OK", member.status()
    if path == "/mode" and method == "POST":
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            delay = data.get("delay_ms")
            await member.set_mode(str(data.get("mode")), None if delay is None else float(delay))
        except (ValueError, TypeError) as exc:
            return "400 Bad Request", {"error": str(exc)}
        except OSError as exc:  # could not listen again (port taken meanwhile)
            return "409 Conflict", {"error": f"cannot listen on {member.host}:{member.port}: {exc}"}
        return "200 OK", member.status()
    if path in ("/status", "/mode"):
        return "405 Method Not Allowed", {"error": f"{method} not allowed on {path}"}
    return "404 Not Found", {"error": f"no such path {path}"}


async def serve(args: argparse.Namespace) -> int:
    host, port = parse_endpoint(args.listen)
    chost, cport = parse_endpoint(args.control) if args.control else ("127.0.0.1", 0)
    name = args.name or f"{args.mode}-{port}"
    member = DemoMember(name=name, host=host, port=port, mode=args.mode, slow_ms=args.slow_ms)
    try:
        await member.listen()
        control = await asyncio.start_server(_control_handler(member), chost, cport, reuse_address=True)
    except OSError as exc:
        print(f"balancedesk: demo member {name}: cannot listen: {exc}", file=sys.stderr)
        return 1
    if member.name == f"{args.mode}-0":
        member.name = f"{args.mode}-{member.port}"
    cport = control.sockets[0].getsockname()[1]
    print(
        f"balancedesk: demo member {member.name} on {host}:{member.port} control http://{chost}:{cport}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    control.close()
    await member.refuse()
    return 0


# ---------------------------------------------------------------------------------------------------
# demo-traffic: a bounded load generator, run as its own process so load never touches a UI thread.
#
# * tcp: each unit is one connection: connect, send a line, read the echo, close.
# * http: each unit is one request on a keep-alive connection (reconnects after an error), optionally
#   with an affinity header drawn from K keys.
# * --rate 0 goes as fast as C workers can; otherwise units are paced to R per second.
# * Always bounded: stops after --duration seconds (default 600, at most 3600) or --count units.
# * Prints one JSON line of counters every --report seconds and a final one with "done": true.

class _Stats:
    def __init__(self) -> None:
        self.ok = 0
        self.failed = 0
        self.lat_ms: list[float] = []

    def record(self, ok: bool, ms: float) -> None:
        if ok:
            self.ok += 1
            if len(self.lat_ms) < 20000:
                self.lat_ms.append(ms)
        else:
            self.failed += 1


class _Pacer:
    """Hands out start times R per second to any number of workers (no burst after a stall)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_t = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self.next_t = max(self.next_t + self.interval, now - 0.5)
        delay = self.next_t - now
        if delay > 0:
            await asyncio.sleep(delay)


async def _tcp_unit(host: str, port: int, limit_s: float) -> bool:
    writer = None
    try:
        async with asyncio.timeout(limit_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"ping\n")
            data = await reader.readexactly(5)
            return data == b"ping\n"
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()


class _HttpConn:
    def __init__(self, host: str, port: int, header: str | None, keys: int) -> None:
        self.host, self.port, self.header, self.keys = host, port, header, keys
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, limit_s: float) -> bool:
        extra = ""
        if self.header and self.keys > 0:
            extra = f"{self.header}: key-{random.randrange(self.keys)}\r\n"
        try:
            async with asyncio.timeout(limit_s):
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                self.writer.write(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n{extra}\r\n".encode())
                head = await self.reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1] if b" " in head else b""
                length = 0
                keep = True
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    k = k.strip().lower()
                    if k == b"content-length":
                        length = int(v.strip() or 0)
                    elif k == b"connection" and v.strip().lower() == b"close":
                        keep = False
                if length:
                    await self.reader.readexactly(length)
                if not keep:
                    self.close()
                return status.startswith(b"2")
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.close()
            return False


async def traffic(args: argparse.Namespace) -> int:
    host, _, port_s = args.target.rpartition(":")
    port = int(port_s)
    stats = _Stats()
    pacer = _Pacer(args.rate)
    deadline = time.monotonic() + args.duration
    budget = [args.count if args.count > 0 else -1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def more() -> bool:
        if stop.is_set() or time.monotonic() >= deadline or budget[0] == 0:
            return False
        if budget[0] > 0:
            budget[0] -= 1
        return True

    async def worker() -> None:
        conn = _HttpConn(host, port, args.affinity_header, args.keys) if args.mode == "http" else None
        try:
            while more():
                await pacer.wait()
                t0 = time.perf_counter()
                ok = await (conn.request(args.timeout) if conn else _tcp_unit(host, port, args.timeout))
                stats.record(ok, (time.perf_counter() - t0) * 1000.0)
        finally:
            if conn:
                conn.close()

    def report(done: bool) -> None:
        lat = sorted(stats.lat_ms[-5000:])
        p50 = lat[len(lat) // 2] if lat else None
        elapsed = max(1e-6, time.monotonic() - started)
        line = {"ok": stats.ok, "failed": stats.failed, "elapsed_s": round(elapsed, 3),
                "rate": round((stats.ok + stats.failed) / elapsed, 1), "p50_ms": p50, "done": done}
        print(json.dumps(line), flush=True)

    started = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(max(1, args.concurrency))]
    everyone = asyncio.gather(*workers)
    while not everyone.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(everyone), args.report)
        if not everyone.done():
            report(False)
    report(True)
    return 0



def _run(args: argparse.Namespace) -> int:
    if args.mode not in ("tcp", "http"):
        print("balancedesk: demo-member --mode must be tcp or http", file=sys.stderr)
        return 2
    try:
        parse_endpoint(args.listen)
        if args.control:
            parse_endpoint(args.control)
    except ValueError as exc:
        print(f"balancedesk: demo-member: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        return int(uvloop.run(serve(args)))
    except ImportError:  # pragma: no cover - uvloop is optional
        return asyncio.run(serve(args))


def _run_traffic(args: argparse.Namespace) -> int:
    args.duration = min(max(0.0, args.duration), 3600.0)
    try:
        import uvloop

        return int(uvloop.run(traffic(args)))
    except ImportError:  # pragma: no cover
        return asyncio.run(traffic(args))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo-member",
        help="run a small demo upstream (TCP echo or HTTP) with a control endpoint",
        description="A demo member for trying a group locally: TCP echo or HTTP 200 with its name. "
        'Control: POST /mode {"mode": "ok"|"slow"|"refuse"}, GET /status.',
    )
    p.add_argument("--listen", required=True, metavar="HOST:PORT")
    p.add_argument("--mode", required=True, choices=("tcp", "http"))
    p.add_argument("--name", default=None)
    p.add_argument("--control", default=None, metavar="HOST:PORT", help="default 127.0.0.1 on a free port")
    p.add_argument("--slow-ms", type=float, default=400.0, help="delay per answer in slow mode (ms)")
    p.set_defaults(func=_run)

    t = subparsers.add_parser(
        "demo-traffic",
        help="a bounded traffic generator for trying a balancer (TCP connections or HTTP requests)",
        description="Connections (tcp) or requests (http) at --rate per second (0 = as fast as possible), "
        "bounded by --duration and --count; prints a JSON line of counters every --report seconds.",
    )
    t.add_argument("--target", required=True, metavar="HOST:PORT")
    t.add_argument("--mode", choices=("tcp", "http"), default="tcp")
    t.add_argument("--rate", type=float, default=20.0, help="units per second; 0 = as fast as possible")
    t.add_argument("--concurrency", type=int, default=8)
    t.add_argument("--duration", type=float, default=600.0, help="seconds (at most 3600)")
    t.add_argument("--count", type=int, default=0, help="stop after N units (0 = until --duration)")
    t.add_argument("--timeout", type=float, default=5.0)
    t.add_argument("--report", type=float, default=0.5)
    t.add_argument("--affinity-header", default=None)
    t.add_argument("--keys", type=int, default=0, help="number of distinct affinity keys (0 = no header)")
    t.set_defaults(func=_run_traffic)
