"""L4 shell: byte-exact relay with half-close, failover on connect, the connection cap, admin disable."""

from __future__ import annotations

import contextlib
import os
import socket
import threading

from lbkit import BlackHole, Members, StartBalancer, connect, group_config, refused_endpoint, wait_until


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


def test_relay_is_byte_exact_with_half_close(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("e1", members.echo(), 1), ("e2", members.echo(), 1)]), mode="tcp")
    payload = os.urandom(4 << 20)
    for _ in range(3):
        assert _roundtrip(bal.addr, payload) == payload
    snap = bal.snapshot()
    assert snap["mode"] == "tcp" and snap["affinityHeader"] is None
    assert sum(m["total"] for m in snap["members"]) == 3
    assert sum(m["bytesIn"] for m in snap["members"]) == 3 * len(payload)
    wait_until(lambda: sum(m["bytesOut"] for m in bal.snapshot()["members"]) == 3 * len(payload),
               what="bytesOut counted")
    assert snap["totals"]["accepted"] == 3


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
