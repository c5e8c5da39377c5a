"""A member that takes a request and never answers (a real process, SIGSTOPped) is a failure, on both L7
data planes: 504 within the group's ``listener.readTimeout``, the member counted failed and disabled, an
idempotent request carried on to the next member, a POST answered 504, the snapshot's totals adding up to what
the clients saw, and the memory a burst of stalled requests took given back. Also: a close before answering a
request with a body (502, counted and marked alike on both planes), a connect the client abandoned (aborted,
L4 and L7, with ``connectionTimeout 0``), and a group of 70 members counted exactly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lbkit import (
    Balancer,
    Members,
    StartBalancer,
    StartUpstream,
    Upstream,
    connect,
    group_config,
    read_response,
    request,
    wait_until,
)

READ_TIMEOUT = 1.0
MARGIN = 3.0  # a loaded 2-core box: the 504 may come this much after the read timeout (sweeper, scheduling)


def config(members: list[tuple[str, str, int]], **kw: Any) -> dict[str, Any]:
    """A group in sequence order (the first member first) with the short read timeout."""
    cfg = group_config(members, round_robin=False, **kw)
    cfg["listener"] = {"readTimeout": READ_TIMEOUT}
    return cfg


@contextlib.contextmanager
def stopped(up: Upstream) -> Iterator[None]:
    """The member process SIGSTOPped (it still accepts in the kernel, never answers); SIGCONT at the end, so
    the teardown's kill finds a running process."""
    os.kill(up.child.pid, signal.SIGSTOP)
    try:
        # a signal takes effect when the process is next scheduled: until then it could still answer
        wait_until(lambda: _all_stopped(up.child.pid), timeout=10, what=f"member {up.name} stopped")
        yield
    finally:
        os.kill(up.child.pid, signal.SIGCONT)


def _all_stopped(pid: int) -> bool:
    """Every thread of ``pid`` is in the stopped state (``T`` in /proc/PID/task/TID/stat)."""
    states = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/task/{tid}/stat") as f:
            states.append(f.read().rsplit(")", 1)[1].split()[0])
    return bool(states) and all(st in ("T", "t") for st in states)


def settled(bal: Balancer) -> dict[str, Any]:
    """The snapshot once no request is in flight."""
    def probe() -> dict[str, Any] | None:
        sn = bal.snapshot()
        return sn if all(m["active"] == 0 for m in sn["members"]) else None

    return wait_until(probe, timeout=10, what="no request active")


def by_id(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["memberID"]: m for m in snap["members"]}


def timed(sock: socket.socket, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, float]:
    t0 = time.monotonic()
    status, _, got = request(sock, method, path, body=body)
    return status, got, time.monotonic() - t0


pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes


def test_a_stalled_member_alone_is_a_504_within_the_read_timeout(balancer: StartBalancer,
                                                                 upstream: StartUpstream) -> None:
    s_up = upstream("http_backend", "s")
    bal = balancer(config([("s", s_up.endpoint, 1)], retry_delay=60), mode="http")
    sock = connect(bal.addr)
    assert request(sock, "GET", "/")[:3:2] == (200, b"s")  # a pooled connection to it exists now
    with stopped(s_up):
        status, body, took = timed(sock, "GET", "/")
        assert status == 504 and b"member s did not answer within 1 s" in body
        assert READ_TIMEOUT * 0.9 <= took <= READ_TIMEOUT + MARGIN, took
        snap = settled(bal)
    s = by_id(snap)["s"]
    assert s["failures"] == 1 and s["health"] == "disabled" and s["total"] == 1
    assert snap["totals"]["failed"] == 1  # the one 504 the client saw
    health = [e for e in bal.events() if e["kind"] == "health"]
    assert [(e["memberID"], e["state"], e["reason"]) for e in health] == [
        ("s", "disabled", "no answer within readTimeout")]
    sock.close()


def test_an_idempotent_request_goes_on_to_the_next_member(balancer: StartBalancer, upstream: StartUpstream,
                                                          members: Members) -> None:
    s_up = upstream("http_backend", "s")
    b = members.http("b")
    bal = balancer(config([("s", s_up.endpoint, 1), ("b", b.endpoint, 1)], retry_delay=60), mode="http")
    sock = connect(bal.addr)
    with stopped(s_up):
        status, body, took = timed(sock, "GET", "/")
        assert (status, body) == (200, b"b") and took <= READ_TIMEOUT + MARGIN
        for _ in range(3):  # s is disabled: the others keep serving, at once
            status, body, took = timed(sock, "GET", "/")
            assert (status, body) == (200, b"b") and took < READ_TIMEOUT
        snap = settled(bal)
    ms = by_id(snap)
    assert ms["s"]["health"] == "disabled" and ms["s"]["failures"] == 1 and ms["s"]["total"] == 0
    assert ms["b"]["total"] == 4 and snap["totals"]["failed"] == 0  # every request answered, each counted once
    # the request's route: s timed out, b took it (the native plane also recorded s's connect before)
    routes = [e for e in bal.events() if e["kind"] == "route"]
    walks = [[(a["memberID"], a["outcome"]) for a in e["attempts"]] for e in routes]
    assert [w[-2:] for w in walks if ("s", "timeout") in w] == [[("s", "timeout"), ("b", "ok")]], walks
    assert [e["memberID"] for e in routes][-4:] == ["b"] * 4 and all(e["outcome"] == "ok" for e in routes)
    sock.close()


def test_a_post_is_answered_504_and_not_sent_again(balancer: StartBalancer, upstream: StartUpstream,
                                                   members: Members) -> None:
    s_up = upstream("http_backend", "s")
    b = members.http("b")
    bal = balancer(config([("s", s_up.endpoint, 1), ("b", b.endpoint, 1)], retry_delay=60), mode="http")
    sock = connect(bal.addr)
    with stopped(s_up):
        status, body, took = timed(sock, "POST", "/", body=b"once only")
        assert status == 504 and b"member s did not answer within 1 s" in body, body
        assert took <= READ_TIMEOUT + MARGIN
        assert not b.requests  # never sent to a second member
        assert timed(sock, "POST", "/", body=b"next")[:2] == (200, b"b")  # s is disabled now
        snap = settled(bal)
    ms = by_id(snap)
    assert ms["s"]["failures"] == 1 and ms["s"]["health"] == "disabled" and ms["s"]["total"] == 0
    assert ms["b"]["total"] == 1
    assert snap["totals"]["failed"] == 1 and snap["totals"]["accepted"] == 1
    sock.close()


def test_a_changed_read_timeout_applies_live(balancer: StartBalancer, upstream: StartUpstream) -> None:
    s_up = upstream("http_backend", "s")
    cfg = config([("s", s_up.endpoint, 1)], retry_delay=60)
    cfg["listener"] = {"readTimeout": 30}
    bal = balancer(cfg, mode="http")
    cfg["listener"] = {"readTimeout": READ_TIMEOUT}
    bal.write_config(cfg)
    sock = connect(bal.addr)
    with stopped(s_up):
        status, body, took = timed(sock, "GET", "/")
    assert status == 504 and b"within 1 s" in body and took <= READ_TIMEOUT + MARGIN
    sock.close()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _burst(addr: tuple[str, int], n: int, body: bytes) -> list[int]:
    """``n`` clients at once, each a POST whose answer never comes (→ 504): their statuses."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr, timeout=30)
        s.settimeout(30)
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        socks.append(s)
    statuses = []
    for s in socks:
        statuses.append(read_response(s)[0])
        s.close()
    return statuses


def test_memory_taken_by_a_burst_of_stalled_requests_is_given_back(balancer: StartBalancer,
                                                                   upstream: StartUpstream) -> None:
    """The issue saw RSS step 44 → 109 MB during a stall and stay there. A burst of 600 clients whose requests
    (each with a 60 KB body) stall: once they are answered and gone, RSS is back near where it was."""
    s_up = upstream("http_backend", "s")
    bal = balancer(config([("s", s_up.endpoint, 1)], retry_delay=0, connection_timeout=5), mode="http",
                   args=["--max-connections", "5000"])
    body = os.urandom(60_000)
    with stopped(s_up):
        assert set(_burst(bal.addr, 50, body)) <= {502, 504}  # warm-up: what a first burst leaves behind
        wait_until(lambda: bal.snapshot()["totals"]["active"] == 0, timeout=10, what="warm-up clients gone")
        before = _rss_kib(bal.child.pid)
        peak: list[int] = []

        def watch(stop: threading.Event) -> None:
            while not stop.is_set():
                peak.append(_rss_kib(bal.child.pid))
                stop.wait(0.05)

        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(stop,), daemon=True)
        watcher.start()
        try:
            statuses = _burst(bal.addr, 600, body)
        finally:
            stop.set()
            watcher.join(5)
        assert set(statuses) <= {502, 504} and len(statuses) == 600
        wait_until(lambda: bal.snapshot()["totals"]["active"] == 0, timeout=10, what="burst clients gone")
        grown = max(peak) - before
        after = wait_until(lambda: (r := _rss_kib(bal.child.pid)) - before < max(4096, grown // 4) and r,
                           timeout=10, what=f"RSS back near {before} KiB (peak {max(peak)} KiB)")
    assert grown > 8192, f"the burst should take memory to give back: {before} → {max(peak)} KiB"
    snap = bal.snapshot()  # every 502/504 the clients saw is counted once, and none on the member
    assert snap["totals"]["failed"] == 650 and snap["members"][0]["total"] == 0
    print(f"RSS KiB: before {before}, peak {max(peak)}, after {after}")
