"""Access log lines (text and JSON), the engine's record layout, and the logger's bound: a writer that
cannot write makes the logger drop and count, never block or grow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import time
from pathlib import Path

from balancedesk.core.model import AccessLog
from balancedesk.core.proxy import accesslog as al

WALL = 1_764_650_001.123  # 2025-12-02T04:33:21.123Z
REC: al.Record = (100.0, ("127.0.0.1", 50312), b"GET /x HTTP/1.1", 200, "a", 61, 39, 0.001332, 0.000646, "ok")


def test_text_line() -> None:
    assert al.text_line(REC, WALL) == (
        '127.0.0.1:50312 - - [02/Dec/2025:04:33:21.123 +0000] "GET /x HTTP/1.1" 200 39 61 member=a '
        "total_ms=1.332 first_ms=0.646 outcome=ok\n")


def test_text_line_of_a_failed_l4_connection_and_an_odd_request_line() -> None:
    l4 = (100.0, ("::1", 5, 0, 0), None, None, None, 0, 0, 0.5, None, "failed")
    assert al.text_line(l4, WALL) == ("[::1]:5 - - [02/Dec/2025:04:33:21.123 +0000] - - 0 0 member=- "
                                      "total_ms=500.000 first_ms=- outcome=failed\n")
    odd = (100.0, None, b'GET /"a\\b\x01\xff HTTP/1.1', 400, None, 0, 10, 0.0, None, "failed")
    line = al.text_line(odd, WALL)
    assert '"GET /\\x22a\\x5Cb\\x01\\xFF HTTP/1.1"' in line and line.count('"') == 2


def test_json_line_parses_with_the_same_fields() -> None:
    rec = json.loads(al.json_line(REC, WALL))
    assert rec == {"time": "2025-12-02T04:33:21.123Z", "client": "127.0.0.1:50312", "request": "GET /x HTTP/1.1",
                   "status": 200, "member": "a", "bytesIn": 61, "bytesOut": 39, "total_ms": 1.332,
                   "first_ms": 0.646, "outcome": "ok"}
    odd = json.loads(al.json_line((1.0, None, b'GET /"\\\x01 HTTP/1.1', None, 'm"x', 0, 0, 0.0, None,
                                   "reset"), WALL))
    assert odd["request"] == 'GET /"\\\x01 HTTP/1.1' and odd["member"] == 'm"x' and odd["status"] is None
    assert odd["client"] is None


def test_engine_records_unpack() -> None:
    addr4 = socket.inet_pton(socket.AF_INET, "127.0.0.1") + bytes(12)
    addr6 = socket.inet_pton(socket.AF_INET6, "::1")
    raw = (al.ENGINE_RECORD.pack(5.0, 0.25, 0.125, 10, 20, 1, 200, 0, 4242, 4, 6, addr4, b"GET / ")
           + al.ENGINE_RECORD.pack(6.0, 0.5, -1.0, 3, 0, -1, 0, 3, 7, 6, 0, addr6, b""))
    a, b = al.engine_records(raw, ["x", "y"])
    assert a == (5.0, ("127.0.0.1", 4242), b"GET / ", 200, "y", 10, 20, 0.25, 0.125, "ok")
    assert b == (6.0, ("::1", 7), None, None, None, 3, 0, 0.5, None, "abandoned")


def test_a_stuck_writer_costs_dropped_lines_not_memory_or_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it for writing blocks until a reader comes: the writer thread is stuck

    async def run() -> tuple[int, float]:
        logger = al.AccessLogger(AccessLog(path=str(fifo)), asyncio.get_running_loop())
        t0 = time.monotonic()
        n = (al.QUEUE_BATCHES + 3) * al.BATCH_MAX
        for _ in range(n):
            logger.add(REC)
        logger.hand_over()
        spent = time.monotonic() - t0
        dropped = logger.dropped
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unstick it, so close() can finish
        try:
            drain = asyncio.get_running_loop().run_in_executor(None, _read_all, reader)
            logger.close()
            await drain
        finally:
            os.close(reader)
        return dropped, spent

    dropped, spent = asyncio.run(run())
    assert dropped >= 2 * al.BATCH_MAX  # everything past the queue's bound was dropped and counted
    assert dropped % al.BATCH_MAX == 0 and spent < 5.0


def _read_all(fd: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.read(fd, 1 << 20) == b"":
                return
        except BlockingIOError:
            time.sleep(0.01)  # polling a non-blocking pipe until the writer closes it


def test_the_text_format_regex_in_the_proxy_tests_matches() -> None:
    # the same pattern tests/proxy/test_access_log.py parses lines with
    rx = re.compile(r'^\S+ - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3} \+0000\] ("[^"]*"|-) (\d{3}|-) \d+ \d+ ')
    assert rx.match(al.text_line(REC, WALL))


def test_a_path_that_cannot_be_opened_counts_its_lines_as_dropped(tmp_path: Path) -> None:
    async def run() -> dict[str, object]:
        logger = al.AccessLogger(AccessLog(path=str(tmp_path / "no-such-dir" / "access.log")),
                                 asyncio.get_running_loop())
        for _ in range(3):
            logger.add(REC)
        logger.close()
        return logger.stats()

    stats = asyncio.run(run())
    assert stats["dropped"] == 3 and stats["written"] == 0
    assert isinstance(stats["error"], str) and "cannot open" in stats["error"]
