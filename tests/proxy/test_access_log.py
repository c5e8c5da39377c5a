"""Access logs on real balancers: one line per L4 connection and per L7 request, on both data planes, in the
text and JSON formats, and reopened on SIGUSR1 without losing a line.

Waits are on the file's content with a deadline (the writer thread appends every 100 ms).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

from lbkit import (
    Balancer,
    Members,
    StartBalancer,
    ask,
    connect,
    group_config,
    refused_endpoint,
    request,
    wait_until,
)

# accesslog.py's text format: client - - [time] "request"|- status|- bytesOut bytesIn member= total_ms= first_ms=
TEXT_RX = re.compile(
    r'^(?P<client>\S+) - - \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3} \+0000)\] (?P<request>"[^"]*"|-) '
    r"(?P<status>\d{3}|-) (?P<out>\d+) (?P<inb>\d+) member=(?P<member>\S+) total_ms=(?P<total>[\d.]+) "
    r"first_ms=(?P<first>[\d.]+|-) outcome=(?P<outcome>ok|failed|reset|abandoned)$")


def logged(cfg: dict[str, Any], path: Path, fmt: str) -> dict[str, Any]:
    return {**cfg, "listener": {"accessLog": {"path": str(path), "format": fmt}}}


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def wait_lines(path: Path, n: int, *, timeout: float = 15.0) -> list[str]:
    def enough() -> list[str] | None:
        got = lines(path)
        return got if len(got) >= n else None

    return wait_until(enough, timeout=timeout, what=f"{n} lines in {path.name}")


def text_fields(line: str) -> dict[str, str]:
    m = TEXT_RX.match(line)
    assert m is not None, f"not an access log line: {line!r}"
    return m.groupdict()


def test_l4_one_text_line_per_connection(data_plane: str, balancer: StartBalancer, members: Members,
                                         tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lb = balancer(logged(group_config([("a", members.echo(), 1)]), log, "text"))

    async def clients() -> list[str | None]:
        return [await ask(lb.addr, b"hello\n") for _ in range(5)]

    assert asyncio.run(clients()) == ["hello\n"] * 5  # the echo member: no space, the whole line
    got = [text_fields(x) for x in wait_lines(log, 5)]
    assert len(got) == 5
    for f in got:
        assert f["client"].startswith("127.0.0.1:") and f["request"] == "-" and f["status"] == "-"
        assert f["member"] == "a" and f["outcome"] == "ok"
        assert f["inb"] == "6" and f["out"] == "6"  # "hello\n" each way
        assert f["first"] != "-" and float(f["first"]) <= float(f["total"])
    assert len({f["client"] for f in got}) == 5  # a line per connection
    snap = lb.snapshot()["accessLog"]
    assert snap["written"] == 5 and snap["dropped"] == 0 and snap["error"] is None


def test_l4_a_connection_no_member_took_is_failed(data_plane: str, balancer: StartBalancer, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    lb = balancer(logged(group_config([("x", refused_endpoint(), 1)]), log, "json"))
    assert asyncio.run(ask(lb.addr)) is None
    rec = json.loads(wait_lines(log, 1)[0])
    assert rec["member"] is None and rec["outcome"] == "failed" and rec["status"] is None
    assert rec["first_ms"] is None and rec["bytesOut"] == 0 and rec["request"] is None


def test_l7_json_lines_per_request(http_plane: str, balancer: StartBalancer, members: Members,
                                   tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    a = members.http("a")
    cfg = group_config([("a", a.endpoint, 1), ("x", refused_endpoint(), 1)], round_robin=False)
    lb = balancer(logged(cfg, log, "json"), mode="http")
    with connect(lb.addr) as s:  # one keep-alive connection, several requests
        assert request(s, "GET", "/one")[0] == 200
        assert request(s, "POST", "/echo/two", body=b"x" * 1000)[0] == 200
        # a chunked upload: on the native plane this one is handed to http.py, which logs it the same way
        head = "POST /echo/three HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        s.sendall(head.encode() + b"5\r\nhello\r\n0\r\n\r\n")
        from lbkit import read_response

        assert read_response(s)[0] == 200
    recs = [json.loads(x) for x in wait_lines(log, 3)]
    by_req = {r["request"]: r for r in recs}
    assert set(by_req) == {"GET /one HTTP/1.1", "POST /echo/two HTTP/1.1", "POST /echo/three HTTP/1.1"}
    for r in recs:
        assert r["status"] == 200 and r["member"] == "a" and r["outcome"] == "ok"
        assert r["client"].startswith("127.0.0.1:") and r["time"].endswith("Z")
        assert r["bytesOut"] > 0 and 0 <= r["first_ms"] <= r["total_ms"]
    assert len({r["client"] for r in recs}) == 1  # the same connection
    assert by_req["POST /echo/two HTTP/1.1"]["bytesIn"] > 1000 > by_req["GET /one HTTP/1.1"]["bytesIn"]


def test_l7_a_routing_failure_logs_the_balancers_status(http_plane: str, balancer: StartBalancer,
                                                        tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lb = balancer(logged(group_config([("x", refused_endpoint(), 1)]), log, "text"), mode="http")
    with connect(lb.addr) as s:
        assert request(s, "GET", "/nobody")[0] == 502
    f = text_fields(wait_lines(log, 1)[0])
    assert f["request"] == '"GET /nobody HTTP/1.1"' and f["status"] == "502" and f["outcome"] == "failed"
    assert f["member"] == "-" and int(f["out"]) > 0


def test_sigusr1_reopens_the_log_and_nothing_is_lost(http_plane: str, balancer: StartBalancer, members: Members,
                                                     tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    rotated_path = tmp_path / "access.log.1"
    lb: Balancer = balancer(logged(group_config([("a", members.http("a").endpoint, 1)]), log, "text"),
                            mode="http")
    total = 300
    sent = [0]
    rotate_at, rotated = threading.Event(), threading.Event()

    def client() -> None:  # a third before the rotation, a third during it, a third once it was handled
        with connect(lb.addr) as s:
            for i in range(total):
                if i == 2 * total // 3:
                    assert rotated.wait(30)
                assert request(s, "GET", f"/r{i}")[0] == 200
                sent[0] += 1
                if i == total // 3:
                    rotate_at.set()

    t = threading.Thread(target=client)
    t.start()
    try:
        assert rotate_at.wait(30)
        wait_lines(log, 1)
        os.rename(log, rotated_path)  # while requests keep coming
        os.kill(lb.child.pid, signal.SIGUSR1)
        wait_until(lambda: lb.snapshot()["accessLog"]["reopened"] == 1, what="the balancer to handle SIGUSR1")
        rotated.set()
    finally:
        rotated.set()
        t.join(60)
    assert sent[0] == total
    wait_until(lambda: len(lines(rotated_path)) + len(lines(log)) >= total, timeout=15,
               what="every request in one of the two files")
    old, new = lines(rotated_path), lines(log)
    assert new, "nothing went to the reopened file"
    paths = [text_fields(x)["request"].split()[1] for x in old + new]
    assert sorted(paths) == sorted(f"/r{i}" for i in range(total))  # each once: none lost, none twice
    assert {f"/r{i}" for i in range(2 * total // 3, total)} <= {text_fields(x)["request"].split()[1] for x in new}


def test_with_workers_the_parent_forwards_sigusr1(balancer: StartBalancer, members: Members, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    lb = balancer(logged(group_config([("a", members.echo(), 1)]), log, "text"), args=["--workers", "2"])

    async def clients(n: int) -> list[str | None]:
        return [await ask(lb.addr, b"hello\n") for _ in range(n)]

    assert asyncio.run(clients(20)) == ["hello\n"] * 20
    wait_lines(log, 20)  # both workers append to the one path
    os.rename(log, tmp_path / "access.log.1")
    os.kill(lb.child.pid, signal.SIGUSR1)  # the parent, which forwards it to every worker
    wait_until(lambda: lb.snapshot()["accessLog"]["reopened"] == 1, what="worker 0 to reopen its log")
    assert asyncio.run(clients(20)) == ["hello\n"] * 20
    wait_until(lambda: len(lines(tmp_path / "access.log.1")) + len(lines(log)) >= 40, timeout=15,
               what="all 40 lines in the two files")
    assert lines(log) and len(lines(tmp_path / "access.log.1")) >= 20
