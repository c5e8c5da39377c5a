"""Access logs (``listener.accessLog``, opt-in): one line per request (L7) or per connection (L4), written
by a thread of its own so the data plane never waits on a disk.

What a line says (the same fields in both formats):

* ``time`` — when the request (L7) or connection (L4) began, UTC, milliseconds.
* ``client`` — the client's address and port.
* ``request`` — L7: the request line as received (``GET /x HTTP/1.1``; at most :data:`REQUEST_LINE_MAX`
  bytes of it), L4: none.
* ``status`` — L7: the status the client got (the member's, or the balancer's own 502/503/504), L4: none.
* ``member`` — the memberID the request was sent to (L7) or the connection relayed to (L4); none if the
  balancer found no member for it.
* ``bytesIn`` / ``bytesOut`` — bytes forwarded client → member / sent to the client (heads included, L7).
* ``total_ms`` — until the answer was complete (L7) or the connection closed (L4);
  ``first_ms`` — L7: until the first byte of the answer's head, L4: until the member connect succeeded.
* ``outcome`` — ``ok`` (answered / relayed and closed), ``failed`` (no member could take it: the
  balancer answered an error or closed), ``reset`` (cut: a reset, an aborted answer, an idle timeout),
  ``abandoned`` (the client went away before a member took it).

``text`` is a combined-log-like line, missing values as ``-``::

    127.0.0.1:50312 - - [02/Dec/2026:04:33:01.123 +0000] "GET /x HTTP/1.1" 200 512 78 member=a
        total_ms=1.234 first_ms=0.812 outcome=ok              (one line; wrapped here)

(after the time: request, status, bytesOut, bytesIn as in Apache's ``%r %>s %b``, then ``key=value``
fields; a ``"`` or ``\\`` or control byte in the request line is written ``\\xHH``). ``json`` is one JSON
object per line with the names above (missing values ``null``).

Never blocking, never unbounded: the data plane appends a tuple to the current batch (the native engine
keeps fixed-size records in C and they are drained every :data:`FLUSH_S`); a full batch or the flush
timer hands the batch to the writer thread through a queue of at most :data:`QUEUE_BATCHES` batches of
at most :data:`BATCH_MAX` records. When the writer falls behind, whole batches are dropped and counted
(``dropped`` in the snapshot). Formatting and writing happen in the writer thread.

Reopen (log rotation): ``SIGUSR1`` (server.py) → :meth:`AccessLogger.reopen`: lines already handed over
are written to the file that was open, and then the writer opens ``path`` again (a new file once the old
one was renamed). Nothing is lost across it. With ``--workers N`` every worker appends its own lines to the
same path (``O_APPEND``, one ``write`` per batch).
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from balancedesk.core.model import AccessLog
from balancedesk.core.proxy.limits import (
    ACCESS_LOG_BATCH_RECORDS,
    ACCESS_LOG_ENGINE_RECORDS,
    ACCESS_LOG_FLUSH_S,
    ACCESS_LOG_QUEUE_BATCHES,
    ACCESS_LOG_REQUEST_LINE_BYTES,
)

# the bounds (core/proxy/limits.py), by the names this module uses
REQUEST_LINE_MAX = ACCESS_LOG_REQUEST_LINE_BYTES  # the engine's LOG_REQ_MAX, checked by native.py
BATCH_MAX = ACCESS_LOG_BATCH_RECORDS
QUEUE_BATCHES = ACCESS_LOG_QUEUE_BATCHES
FLUSH_S = ACCESS_LOG_FLUSH_S
ENGINE_RECORDS = ACCESS_LOG_ENGINE_RECORDS
FILE_MODE = 0o640

OUTCOMES = ("ok", "failed", "reset", "abandoned")  # index = the engine's LOG_* outcome code
OK, FAILED, RESET, ABANDONED = OUTCOMES

# a record (the data plane's tuple): (start, client, request, status, member, bytes_in, bytes_out,
#   total_s, first_s, outcome); start is time.monotonic() seconds; client a (host, port[, ...]) tuple
Record = tuple[float, Any, bytes | None, int | None, str | None, int, int, float, float | None, str]

# the engine's record (``log_rec_t`` in engine/engine.h): start, total, first (<0: none), bytes in, bytes out,
# target (-1: none), status (0: none), outcome, port, family (4/6), request length, address, request line
ENGINE_RECORD = struct.Struct(f"=dddQQiiiHBB16s{REQUEST_LINE_MAX}s")

_ESC = {i: f"\\x{i:02X}" for i in [*range(0x20), 0x22, 0x5C, *range(0x7F, 0x100)]}
_UNSAFE = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')  # bytes a request line is escaped for (text format)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Clock:
    """Wall-clock stamps of the second a record falls in, made once per second (gmtime is not free)."""

    __slots__ = ("iso", "sec", "text")

    def __init__(self) -> None:
        self.sec = -1
        self.text = self.iso = ""

    def set(self, sec: int) -> None:
        tm = time.gmtime(sec)
        self.sec = sec
        self.text = (f"{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:{tm.tm_hour:02d}:"
                     f"{tm.tm_min:02d}:{tm.tm_sec:02d}")
        self.iso = time.strftime("%Y-%m-%dT%H:%M:%S", tm)


def _addr(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "-"


def _request_text(req: bytes | None) -> str:
    if req is None:
        return "-"
    if _UNSAFE.search(req) is None:
        return f'"{req.decode("ascii")}"'
    return f'"{req.decode("latin-1").translate(_ESC)}"'


def _js(value: str | None) -> str:
    if value is None:
        return "null"
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


def format_text(recs: list[Record], offset: float, clock: _Clock) -> str:
    """Text lines of ``recs`` (``offset``: wall clock minus monotonic clock). One loop, locals only: this
    runs for every record, in the writer thread."""
    out = []
    last_peer: Any = None
    client = "-"
    for start, peer, req, status, member, b_in, b_out, total, first, outcome in recs:
        sec, ms = divmod(round((start + offset) * 1000.0), 1000)
        if sec != clock.sec:
            clock.set(sec)
        if peer is not last_peer:  # a keep-alive connection's requests share one peer tuple
            last_peer, client = peer, _addr(peer)
        out.append(
            f"{client} - - [{clock.text}.{ms:03d} +0000] {_request_text(req)} "
            f"{status or '-'} {b_out} {b_in} member={member or '-'} total_ms={total * 1000.0:.3f} "
            f"first_ms={'-' if first is None else format(first * 1000.0, '.3f')} outcome={outcome}\n")
    return "".join(out)


def format_json(recs: list[Record], offset: float, clock: _Clock) -> str:
    """JSON lines of ``recs``, as :func:`format_text`."""
    out = []
    last_peer: Any = None
    client = "null"
    for start, peer, req, status, member, b_in, b_out, total, first, outcome in recs:
        sec, ms = divmod(round((start + offset) * 1000.0), 1000)
        if sec != clock.sec:
            clock.set(sec)
        if peer is not last_peer:
            last_peer, client = peer, _js(_addr(peer)) if isinstance(peer, tuple) else "null"
        out.append(
            f'{{"time":"{clock.iso}.{ms:03d}Z","client":{client},'
            f'"request":{_js(req.decode("latin-1") if req is not None else None)},"status":{status or "null"},'
            f'"member":{_js(member)},"bytesIn":{b_in},"bytesOut":{b_out},"total_ms":{total * 1000.0:.3f},'
            f'"first_ms":{"null" if first is None else format(first * 1000.0, ".3f")},"outcome":"{outcome}"}}\n')
    return "".join(out)


def text_line(rec: Record, wall: float) -> str:
    """One record's text line, its start at ``wall`` (seconds since the epoch)."""
    return format_text([rec], wall - rec[0], _Clock())


def json_line(rec: Record, wall: float) -> str:
    return format_json([rec], wall - rec[0], _Clock())


def engine_records(raw: bytes, members: list[str]) -> list[Record]:
    """The engine's fixed-size records → Record tuples (``members``: target index → memberID). Records of one
    client connection (keep-alive) share one peer tuple, so the formatters format its address once."""
    out: list[Record] = []
    last: tuple[int, int, bytes] | None = None
    peer: Any = None
    n_members = len(members)
    for (start, total, first, b_in, b_out, target, status, outcome, port, family, req_len, addr,
         req) in ENGINE_RECORD.iter_unpack(raw):
        if (family, port, addr) != last:
            last = (family, port, addr)
            if family == 4:
                peer = (socket.inet_ntop(socket.AF_INET, addr[:4]), port)
            elif family == 6:
                peer = (socket.inet_ntop(socket.AF_INET6, addr), port)
            else:
                peer = None
        out.append((start, peer, req[:req_len] if req_len else None, status or None,
                    members[target] if 0 <= target < n_members else None, b_in, b_out, total,
                    first if first >= 0 else None, OUTCOMES[outcome] if 0 <= outcome < len(OUTCOMES) else "?"))
    return out


class _Writer(threading.Thread):
    """Takes batches from the queue, formats them and appends them to the file; reopens on request."""

    def __init__(self, spec: AccessLog, q: queue.Queue[Any]) -> None:
        super().__init__(name="balancedesk-access-log", daemon=True)
        self.path = spec.path
        self.fmt: Callable[[list[Record], float, _Clock], str] = (
            format_json if spec.format == "json" else format_text)
        self.clock = _Clock()
        self.q = q
        self.fd = -1
        self.written = 0
        self.unwritten = 0  # records the file could not take (not open, a write error): counted as dropped
        self.error: str | None = None
        self.reopen_asked = threading.Event()  # a reopen that did not fit in the queue

    def _open(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            self.error = None
        except OSError as exc:
            error = f"cannot open {self.path}: {exc.strerror}"
            if error != self.error:  # said once, not at every batch
                print(f"balancedesk: access log: {error}", file=sys.stderr, flush=True)
            self.error = error

    def run(self) -> None:
        self._open()  # here, not in the loop's thread: an open may block too (a FIFO, a network disk)
        while True:
            item = self.q.get()
            if item is None:
                break
            if item == "reopen":
                self._open()
                continue
            self._write(item)
            if self.reopen_asked.is_set():
                self.reopen_asked.clear()
                self._open()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _write(self, item: tuple[str, Any, Any]) -> None:
        kind, payload, members = item
        recs: list[Record] = engine_records(payload, members) if kind == "engine" else payload
        offset = time.time() - time.monotonic()  # monotonic start → wall clock
        data = self.fmt(recs, offset, self.clock).encode("utf-8", "backslashreplace")
        if self.fd < 0:
            self._open()
            if self.fd < 0:
                self.unwritten += len(recs)
                return
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        except OSError as exc:
            self.error = f"cannot write {self.path}: {exc.strerror}"
            self.unwritten += len(recs)
            return
        self.written += len(recs)


class AccessLogger:
    """One worker's access log while ``listener.accessLog`` is set; :meth:`add` is the data plane's call.

    ``sources`` are called before each hand-over to drain records kept elsewhere (the native engine's).
    A loop timer hands the batch over every :data:`FLUSH_S`.
    """

    def __init__(self, spec: AccessLog, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.loop = loop
        self.batch: list[Record] = []
        self.dropped = 0
        self.reopened = 0
        self.sources: list[Callable[[], None]] = []
        self._q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._writer = _Writer(spec, self._q)
        self._writer.start()
        self._timer: asyncio.TimerHandle | None = loop.call_later(FLUSH_S, self._tick)

    def _tick(self) -> None:
        self.hand_over()
        self._timer = self.loop.call_later(FLUSH_S, self._tick)

    def add(self, rec: Record) -> None:
        batch = self.batch
        batch.append(rec)
        if len(batch) >= BATCH_MAX:
            self.hand_over()

    def hand_over(self) -> None:
        """The current batch to the writer (dropped and counted if the writer is behind)."""
        for drain in self.sources:
            drain()
        batch = self.batch
        if batch:
            self.batch = []
            self.put(("rows", batch, None), len(batch))

    def put(self, item: tuple[str, Any, Any], n: int) -> None:
        try:
            self._q.put_nowait(item)
        except queue.Full:
            self.dropped += n

    def reopen(self) -> None:
        """SIGUSR1: what was handed over goes to the open file, what follows to ``path`` opened again."""
        self.hand_over()
        self.reopened += 1
        try:
            self._q.put_nowait("reopen")
        except queue.Full:  # behind: the writer reopens after the batch it is writing instead
            self._writer.reopen_asked.set()

    def close(self) -> None:
        """Write everything handed over, then stop the writer (bounded wait)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.hand_over()
        try:
            self._q.put(None, timeout=5.0)
        except queue.Full:
            return
        self._writer.join(5.0)

    def stats(self) -> dict[str, Any]:
        return {"path": self.spec.path, "format": self.spec.format, "written": self._writer.written,
                "dropped": self.dropped + self._writer.unwritten, "queued": self._q.qsize(), "reopened": self.reopened,
                "error": self._writer.error}
