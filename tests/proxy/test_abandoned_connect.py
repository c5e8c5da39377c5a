"""A client that leaves while its connect is in progress abandons it, on both data planes, L4 and L7: with
``connectionTimeout 0`` (never) the connect to a member whose accept queue is full would otherwise go on for
minutes (the kernel's SYN retries). Seen from the kernel: the balancer's SYN_SENT socket to that member is
gone soon after the client closed. No route event, no health mark, no failure counted."""

from __future__ import annotations

import socket

import pytest
from lbkit import Balancer, StartBalancer, StartUpstream, group_config, wait_until

SYN_SENT = "02"


def syn_sent_to(port: int) -> int:
    """Sockets on this machine in SYN_SENT towards 127.0.0.1:``port`` (from /proc/net/tcp)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == SYN_SENT and int(fields[2].split(":")[1], 16) == port:
                n += 1
    return n


def _abandon(bal: Balancer, port: int, send: bytes) -> None:
    before = syn_sent_to(port)
    c = socket.create_connection(bal.addr, timeout=10)
    if send:
        c.sendall(send)
    wait_until(lambda: syn_sent_to(port) > before, timeout=10, what="the balancer's connect in progress")
    c.close()
    wait_until(lambda: syn_sent_to(port) <= before, timeout=5, what="the abandoned connect aborted")
    snap = bal.snapshot()
    (m,) = snap["members"]
    assert m["health"] == "up" and m["failures"] == 0 and snap["totals"]["failed"] == 0
    assert not [e for e in bal.events() if e["kind"] in ("route", "health")]


def test_l7_client_leaving_during_the_connect_abandons_it(balancer: StartBalancer, upstream: StartUpstream,
                                                          http_plane: str) -> None:
    hole = upstream("blackhole", "hole")
    bal = balancer(group_config([("hole", hole.endpoint, 1)], connection_timeout=0), mode="http")
    _abandon(bal, hole.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")


def test_l4_client_leaving_during_the_connect_abandons_it(balancer: StartBalancer, upstream: StartUpstream,
                                                          data_plane: str) -> None:
    hole = upstream("blackhole", "hole")
    bal = balancer(group_config([("hole", hole.endpoint, 1)], connection_timeout=0), mode="tcp")
    _abandon(bal, hole.port, b"")


@pytest.mark.usefixtures("data_plane")
def test_l4_half_close_during_the_connect_is_not_a_leave(balancer: StartBalancer, upstream: StartUpstream) -> None:
    """A FIN after bytes is a half-close (the bytes are still to go to the member): the connect goes on."""
    hole = upstream("blackhole", "hole")
    bal = balancer(group_config([("hole", hole.endpoint, 1)], connection_timeout=0), mode="tcp")
    before = syn_sent_to(hole.port)
    c = socket.create_connection(bal.addr, timeout=10)
    c.sendall(b"hello\n")
    wait_until(lambda: syn_sent_to(hole.port) > before, timeout=10, what="the balancer's connect in progress")
    c.shutdown(socket.SHUT_WR)
    # the balancer has seen the FIN once it answers a snapshot after it (one loop, events in order)
    bal.snapshot()
    bal.snapshot()
    assert syn_sent_to(hole.port) > before
    assert bal.snapshot()["totals"]["active"] == 1
    c.close()
