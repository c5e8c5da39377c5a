"""L4 shell: byte-exact relay with half-close, failover on connect, the connection cap, admin disable."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from lbkit import BlackHole, Members, StartBalancer, connect, group_config, refused_endpoint, wait_until

pytestmark = pytest.mark.usefixtures("data_plane")  # every test runs on the native engine and on asyncio


def _roundtrip(addr: tuple[str, int], payload: bytes) -> bytes:
    """Send ``payload`` while reading the echo, then half-close and read to EOF."""
    s = connect(addr)
    got: list[bytes] = []

    def reader() -> None:
        while data := s.recv(1 << 16):
            got.append(data)

    t = threading.Thread(target=reader)
    t.start()
    view = memoryview(payload)
    for i in range(0, len(payload), 50_000):
        s.sendall(view[i:i + 50_000])
    s.shutdown(socket.SHUT_WR)  # half-close: the echo must still come back in full
    t.join(30)
    s.close()
    return b"".join(got)


def test_relay_is_byte_exact_with_half_close(balancer: StartBalancer, members: Members, data_plane: str) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1), ("e2", members.echo(), 1)]), mode="tcp")
    payload = os.urandom(4 << 20)
    for _ in range(3):
        assert _roundtrip(bal.addr, payload) == payload
    snap = bal.snapshot()
    assert snap["mode"] == "tcp" and snap["affinityHeader"] is None
    assert snap["dataPlane"] == data_plane
    assert sum(m["total"] for m in snap["members"]) == 3
    assert sum(m["bytesIn"] for m in snap["members"]) == 3 * len(payload)
    wait_until(lambda: sum(m["bytesOut"] for m in bal.snapshot()["members"]) == 3 * len(payload),
               what="bytesOut counted")
    assert snap["totals"]["accepted"] == 3
    # time to the member's first byte, per member that answered: a few ms on loopback, never negative
    lat = [(m["latencyP50_ms"], m["latencyP99_ms"]) for m in bal.snapshot()["members"] if m["total"]]
    assert lat and all(p50 is not None and 0 < p50 <= p99 < 5000 for p50, p99 in lat)
    wait_until(lambda: bal.snapshot()["totals"]["active"] == 0, what="every connection closed")


def test_client_that_speaks_before_connect_loses_nothing(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp")
    s = socket.create_connection(bal.addr)
    s.sendall(b"hello ")  # sent at once, before the balancer can have connected upstream
    s.sendall(b"world")
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    got = b""
    while data := s.recv(4096):
        got += data
    assert got == b"hello world"


def test_refused_member_fails_over_and_is_disabled(balancer: StartBalancer, members: Members) -> None:
    cfg = group_config([("dead", refused_endpoint(), 1), ("live", members.echo(), 1)], round_robin=False,
                       retry_delay=60)
    bal = balancer(cfg, mode="tcp")
    assert _roundtrip(bal.addr, b"ping") == b"ping"
    dead = bal.member("dead")
    assert dead["health"] == "disabled" and dead["failures"] == 1
    assert 0 < dead["retryIn_s"] <= 60
    ev = bal.admin("GET", "/admin/events", params={"after": 0}).json()["events"]
    route = next(e for e in ev if e["kind"] == "route")
    assert [(a["memberID"], a["outcome"]) for a in route["attempts"]] == [("dead", "refused"), ("live", "ok")]
    assert route["memberID"] == "live" and route["outcome"] == "ok"
    health = [e for e in ev if e["kind"] == "health"]
    assert health and health[0]["memberID"] == "dead" and health[0]["state"] == "disabled"
    # disabled for retryDelay: the next connection goes straight to the live member
    assert _roundtrip(bal.addr, b"pong") == b"pong"
    assert bal.member("dead")["failures"] == 1


def test_connect_timeout_then_failover(balancer: StartBalancer, members: Members) -> None:
    hole = BlackHole()
    try:
        cfg = group_config([("hole", hole.endpoint, 1), ("live", members.echo(), 1)], round_robin=False,
                           connection_timeout=1)
        bal = balancer(cfg, mode="tcp")
        assert _roundtrip(bal.addr, b"x" * 1000) == b"x" * 1000
        ev = bal.admin("GET", "/admin/events").json()["events"]
        route = next(e for e in ev if e["kind"] == "route")
        assert [a["outcome"] for a in route["attempts"]] == ["timeout", "ok"]
    finally:
        hole.close()


def test_every_member_failed_closes_the_client(balancer: StartBalancer) -> None:
    cfg = group_config([("d1", refused_endpoint(), 1), ("d2", refused_endpoint(), 1)])
    bal = balancer(cfg, mode="tcp")
    s = connect(bal.addr)
    with contextlib.suppress(ConnectionResetError):
        assert s.recv(10) == b""
    snap = wait_until(lambda: (sn := bal.snapshot())["totals"]["failed"] == 1 and sn, what="failed counted")
    assert {m["health"] for m in snap["members"]} == {"disabled"}


def test_max_connections_refuses_excess_cleanly(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp", args=["--max-connections", "2"])
    held = [connect(bal.addr) for _ in range(2)]
    for s in held:  # both relayed
        s.sendall(b"a")
        assert s.recv(1) == b"a"
    extra = connect(bal.addr)
    with contextlib.suppress(ConnectionResetError):
        assert extra.recv(1) == b""
    assert bal.snapshot()["totals"]["refused"] == 1
    held[0].close()
    wait_until(lambda: bal.snapshot()["totals"]["active"] == 1, what="slot freed")
    again = connect(bal.addr)
    again.sendall(b"b")
    assert again.recv(1) == b"b"
    for s in [*held, extra, again]:
        s.close()


def test_admin_disable_closes_live_connections_drain_keeps_them(
    balancer: StartBalancer, members: Members
) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1), ("e2", members.echo(), 1)], round_robin=False),
                   mode="tcp")
    s = connect(bal.addr)
    s.sendall(b"1")
    assert s.recv(1) == b"1"
    r = bal.admin("POST", "/admin/members/e1/state", json={"state": "drain"})
    assert r.status_code == 200 and r.json()["admin"] == "drain"
    s.sendall(b"2")
    assert s.recv(1) == b"2"  # drain: the live connection goes on
    t = connect(bal.addr)  # a new one goes to e2
    t.sendall(b"3")
    assert t.recv(1) == b"3"
    assert bal.member("e2")["total"] == 1
    bal.admin("POST", "/admin/members/e1/state", json={"state": "disabled"})
    with contextlib.suppress(ConnectionResetError):
        assert s.recv(1) == b""  # disabled: closed at once
    s.close()
    t.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_client_that_does_not_read_is_held_back_not_buffered(balancer: StartBalancer, members: Members) -> None:
    """Flow control: 96 MB sent to an echo member by a client that reads nothing. The kernel's socket
    buffers fill, the balancer stops reading, the client's send blocks — and the balancer's memory does
    not grow by what is in flight. Then everything comes back, byte-exact."""
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp")
    rss0 = _rss_kb(bal.child.pid)
    payload = os.urandom(96 << 20)
    s = connect(bal.addr)
    sent = [0]

    def sender() -> None:
        view = memoryview(payload)
        for i in range(0, len(payload), 1 << 20):
            s.sendall(view[i:i + (1 << 20)])
            sent[0] = i + (1 << 20)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    last = [-1, time.monotonic()]

    def stalled() -> bool:  # the sender made no progress for 0.5 s: everything on the way is full
        if sent[0] != last[0]:
            last[0], last[1] = sent[0], time.monotonic()
            return False
        return time.monotonic() - last[1] > 0.5

    wait_until(stalled, what="the client's send to block", timeout=30)
    assert 0 < sent[0] < len(payload)
    grown_mb = (_rss_kb(bal.child.pid) - rss0) / 1024
    assert grown_mb < 16, f"the balancer grew by {grown_mb:.1f} MB while the client did not read"
    got = bytearray()
    s.settimeout(30)
    while data := s.recv(1 << 20):
        got += data
    t.join(30)
    s.close()
    assert got == payload


def test_idle_connections_are_closed_busy_ones_are_not(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp", args=["--idle-timeout", "1.5"])
    idle, busy = connect(bal.addr), connect(bal.addr)
    for c in (idle, busy):
        c.sendall(b"x")
        assert c.recv(1) == b"x"
    idle.settimeout(10)

    def talk() -> None:  # the busy client's own pace: a byte each 0.2 s, well inside the idle timeout
        busy.sendall(b"y")
        assert busy.recv(1) == b"y"

    start = time.monotonic()
    while time.monotonic() - start < 3.0:
        talk()
        time.sleep(0.2)  # the client's own pace, not a wait for the balancer
    with contextlib.suppress(ConnectionResetError):
        assert idle.recv(1) == b""  # ended (a reset, or EOF)

    def only_busy_left() -> bool:
        talk()  # every poll keeps the busy one busy, however slow the box
        return bool(bal.snapshot()["totals"]["active"] == 1)

    wait_until(only_busy_left, what="the idle connection gone, the busy one kept")
    idle.close()
    busy.close()


def test_workers_share_the_port_and_stop_cleanly(balancer: StartBalancer, members: Members, data_plane: str) -> None:
    """``--workers 2``: each worker runs its own engine on the shared port (SO_REUSEPORT); every connection
    is relayed whichever worker takes it; SIGTERM stops both with exit code 0."""
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp", args=["--workers", "2"])
    assert bal.snapshot()["dataPlane"] == data_plane
    for i in range(40):
        assert _roundtrip(bal.addr, f"hello {i}".encode()) == f"hello {i}".encode()
    assert bal.snapshot()["totals"]["accepted"] <= 40  # worker 0's own view
    bal.child.kill(signal.SIGTERM)
    assert bal.child.proc.returncode == 0


def test_graceful_stop_lets_a_live_connection_finish(balancer: StartBalancer, members: Members) -> None:
    """SIGTERM: no new connections, but one in flight keeps relaying until it ends on its own."""
    bal = balancer(group_config([("e1", members.echo(), 1)]), mode="tcp")
    s = connect(bal.addr)
    s.sendall(b"a")
    assert s.recv(1) == b"a"
    os.kill(bal.child.pid, signal.SIGTERM)
    wait_until(lambda: _refuses(bal.addr), what="the listener closed")
    s.sendall(b"b")  # still relayed
    assert s.recv(1) == b"b"
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    assert s.recv(1) == b""
    s.close()
    assert bal.child.proc.wait(20) == 0


def _refuses(addr: tuple[str, int]) -> bool:
    try:
        socket.create_connection(addr, timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:  # caught while the listener was closing (CI saw it): ask again
        return False
    return False


def test_a_member_named_by_host_name_is_reached(balancer: StartBalancer, members: Members) -> None:
    """``localhost:PORT`` (from /etc/hosts, no DNS): the native plane resolves names before the first client."""
    port = members.echo().rsplit(":", 1)[1]
    bal = balancer(group_config([("named", f"localhost:{port}", 1)]), mode="tcp")
    assert _roundtrip(bal.addr, b"by name") == b"by name"
    assert bal.member("named")["total"] == 1


def test_a_new_connection_timeout_applies_to_the_next_connect(balancer: StartBalancer, members: Members) -> None:
    """connectionTimeout changed in a live config: the next connect to a black hole gives up after the
    new bound (1 s), not the old one (20 s)."""
    hole = BlackHole()
    try:
        live = members.echo()
        bal = balancer(group_config([("hole", hole.endpoint, 1), ("live", live, 1)], round_robin=False,
                                    connection_timeout=20), mode="tcp")
        bal.write_config(group_config([("hole", hole.endpoint, 1), ("live", live, 1)], round_robin=False,
                                      connection_timeout=1))
        assert _roundtrip(bal.addr, b"x") == b"x"
        route = next(e for e in bal.events() if e["kind"] == "route")
        assert [a["outcome"] for a in route["attempts"]] == ["timeout", "ok"]
        assert 900 <= route["attempts"][0]["ms"] < 5000
    finally:
        hole.close()
