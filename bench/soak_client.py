"""The load of ``bench/soak.py``: checked requests through the balancer, every byte verified.

    python bench/soak_client.py --port P --mode http|tcp --until EPOCH_S --budget N --out F [--sessions 12]

Runs ``--sessions`` concurrent client sessions until ``--until`` (wall clock, shared with the soak) or until
``--budget`` requests were sent, then writes one JSON object to ``--out``: ``requests``, ``ok``, ``failed``,
``corrupted`` (each a ``{reason: count}``), ``bytes`` and a sample of latencies. A request that got no answer,
a cut or refused one is *failed* (why: the exception or the status); an answer with wrong bytes, an answer meant
for another request, or a member that saw a corrupt body is *corrupted* — the number that must stay 0.

HTTP sessions (``soak_member.py``'s routes): a keep-alive connection carrying 1–20 requests, each a ``POST
/echo`` of random bytes (sometimes answered chunked) or a ``GET /gen/N/SEED`` (chunked when N is odd), about
one in ten with ``Connection: close``; the client parses the answer itself (Content-Length, chunked or close).
TCP sessions: a connection carrying 1–10 framed echoes (``soak_member.py``'s frames) of random size.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from soak_member import FRAME_HEAD, gen

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
    uvloop = None  # type: ignore[assignment]

HOST = "127.0.0.1"
# body sizes: mostly small, some across several socket buffers (the engine's 64 KiB scratch, partial writes)
SIZES = ((0.25, 0, 0), (0.35, 1, 2048), (0.3, 2049, 65536), (0.1, 65537, 512 * 1024))
LATENCY_SAMPLE = 20000


class Corrupt(Exception):
    """An answer whose bytes are not what was asked for (the reason is the message)."""


class Failed(Exception):
    """A request that got no usable answer (the reason is the message)."""


def body_size(rng: random.Random) -> int:
    x = rng.random()
    for p, lo, hi in SIZES:
        if x < p:
            return rng.randint(lo, hi)
        x -= p
    return 0


@dataclass
class Tally:
    requests: int = 0
    ok: int = 0
    bytes: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    corrupted: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def json(self) -> str:
        return json.dumps({"requests": self.requests, "ok": self.ok, "bytes": self.bytes, "failed": self.failed,
                           "corrupted": self.corrupted, "latencies": self.latencies})


def why(exc: BaseException, *, started: bool) -> str:
    """A failure's reason, grouped: what broke and whether any of the answer had arrived."""
    if isinstance(exc, Failed):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timeout (no complete answer)" if started else "timeout (no answer)"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed mid-answer" if started or exc.partial else "closed before any answer"
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    if isinstance(exc, ConnectionResetError):
        return "reset mid-answer" if started else "reset before any answer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe while sending"
    if isinstance(exc, OSError):
        return f"{type(exc).__name__} errno {exc.errno}"
    return f"{type(exc).__name__}: {exc}"


# --- HTTP ---------------------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader, progress: list[bool]) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 answer: status, headers (lower-case names; a repeated one is a failure), body. ``progress``
    is set once the first byte arrived (a timeout or cut after it is "mid-answer")."""
    first = await reader.readexactly(1)
    progress[0] = True
    head = first + await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise Corrupt(f"not an HTTP status line: {lines[0][:60]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise Corrupt(f"bad header line {line[:60]!r}")
        name = name.strip().lower()
        if name in headers:
            raise Corrupt(f"header {name.decode()} twice")
        headers[name] = value.strip()
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        chunks = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise Corrupt("chunk not followed by CRLF")
        body = b"".join(chunks)
    elif b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    else:
        body = await reader.read(-1)
    return int(parts[1]), headers, body


def check_http(status: int, headers: dict[bytes, bytes], body: bytes, *, req: bytes, want: bytes) -> None:
    if status == 422:
        raise Corrupt("member received a corrupt body (422)")
    if headers.get(b"x-req") not in (req, None):
        raise Corrupt("answer of another request (X-Req differs)")
    if status != 200:
        raise Failed(f"HTTP {status}")
    if headers.get(b"x-req") != req:
        raise Corrupt("200 without this request's X-Req")
    if body != want:
        raise Corrupt(f"body differs ({len(body)} bytes, wanted {len(want)})")
    digest = headers.get(b"x-sha256")
    if digest is not None and digest != hashlib.sha256(want).hexdigest().encode():
        raise Corrupt("member's X-Sha256 differs from what was sent")


async def http_session(port: int, rng: random.Random, tally: Tally, *, tag: str, until: float, per_request_s: float,
                       budget: list[int]) -> None:
    try:
        async with asyncio.timeout(per_request_s):
            reader, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError) as exc:
        tally.requests += 1
        budget[0] -= 1
        tally.failed[why(exc, started=False)] += 1
        return
    try:
        for _ in range(rng.randint(1, 20)):
            if time.time() >= until or budget[0] <= 0:
                return
            budget[0] -= 1
            tally.requests += 1
            req = f"{tag}-{tally.requests}".encode()
            close = rng.random() < 0.1
            extra = b"Connection: close\r\n" if close else b""
            if rng.random() < 0.5:
                body = rng.randbytes(body_size(rng))
                if rng.random() < 0.3:
                    extra += b"X-Chunked: 1\r\n"
                msg = (b"POST /echo HTTP/1.1\r\nHost: soak\r\nX-Req: %s\r\nX-Sha256: %s\r\nContent-Length: %d\r\n%s\r\n"
                       % (req, hashlib.sha256(body).hexdigest().encode(), len(body), extra)) + body
                want = body
            else:
                n, seed = body_size(rng), rng.getrandbits(48)
                msg = b"GET /gen/%d/%d HTTP/1.1\r\nHost: soak\r\nX-Req: %s\r\n%s\r\n" % (n, seed, req, extra)
                want = gen(n, seed)
            progress = [False]
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(per_request_s):
                    writer.write(msg)
                    await writer.drain()
                    status, headers, got = await read_response(reader, progress)
                check_http(status, headers, got, req=req, want=want)
            except Corrupt as exc:
                tally.corrupted[str(exc)] += 1
                return
            except Failed as exc:
                tally.failed[f"{exc} to a {msg.split(b' ', 1)[0].decode()}"] += 1
                if headers.get(b"connection", b"").lower() == b"close":
                    return
                continue
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                tally.failed[why(exc, started=progress[0])] += 1
                return
            tally.ok += 1
            tally.bytes += len(msg) + len(got)
            if len(tally.latencies) < LATENCY_SAMPLE:
                tally.latencies.append(time.monotonic() - t0)
            if close or headers.get(b"connection", b"").lower() == b"close":
                return
    finally:
        writer.close()


# --- TCP ----------------------------------------------------------------------------------------------------


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes,
                   progress: list[bool]) -> bytes:
    """One framed echo; returns the answering member's name. Raises Corrupt on any byte that differs."""
    digest = hashlib.sha256(payload).digest()
    writer.write(FRAME_HEAD.pack(b"F", len(payload), digest) + payload)
    await writer.drain()
    kind = await reader.readexactly(1)
    progress[0] = True
    if kind not in (b"K", b"X"):
        raise Corrupt(f"frame kind {kind!r}")
    name = await reader.readexactly((await reader.readexactly(1))[0])
    n, got_digest = struct.unpack(">I32s", await reader.readexactly(36))
    if kind == b"X":
        raise Corrupt("member received a corrupt frame")
    if n != len(payload) or got_digest != digest:
        raise Corrupt("echoed frame head differs")
    if await reader.readexactly(n) != payload:
        raise Corrupt("echoed payload differs")
    return name


async def tcp_session(port: int, rng: random.Random, tally: Tally, *, until: float, per_request_s: float,
                      budget: list[int]) -> None:
    try:
        async with asyncio.timeout(per_request_s):
            reader, writer = await asyncio.open_connection(HOST, port)
    except (OSError, TimeoutError) as exc:
        tally.requests += 1
        budget[0] -= 1
        tally.failed[why(exc, started=False)] += 1
        return
    try:
        for _ in range(rng.randint(1, 10)):
            if time.time() >= until or budget[0] <= 0:
                return
            budget[0] -= 1
            tally.requests += 1
            payload = rng.randbytes(body_size(rng))
            progress = [False]
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(per_request_s):
                    await exchange(reader, writer, payload, progress)
            except Corrupt as exc:
                tally.corrupted[str(exc)] += 1
                return
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                tally.failed[why(exc, started=progress[0])] += 1
                return
            tally.ok += 1
            tally.bytes += 2 * len(payload)
            if len(tally.latencies) < LATENCY_SAMPLE:
                tally.latencies.append(time.monotonic() - t0)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> Tally:
    tally = Tally()
    budget = [args.budget]

    async def session_loop(i: int) -> None:
        rng = random.Random(f"{args.seed}-{i}")
        while time.time() < args.until and budget[0] > 0:
            if args.mode == "http":
                await http_session(args.port, rng, tally, tag=f"{args.seed}.{i}", until=args.until,
                                   per_request_s=args.timeout, budget=budget)
            else:
                await tcp_session(args.port, rng, tally, until=args.until, per_request_s=args.timeout, budget=budget)

    await asyncio.gather(*(session_loop(i) for i in range(args.sessions)))
    return tally


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("http", "tcp"), required=True)
    ap.add_argument("--until", type=float, required=True, help="stop at this wall-clock time (epoch seconds)")
    ap.add_argument("--budget", type=int, required=True, help="at most this many requests")
    ap.add_argument("--sessions", type=int, default=12)
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per request before it counts as failed")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--out", required=True, help="file for the JSON result")
    args = ap.parse_args()
    tally = (uvloop.run if uvloop is not None else asyncio.run)(run(args))
    Path(args.out).write_text(tally.json())


if __name__ == "__main__":
    main()
