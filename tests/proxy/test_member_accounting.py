"""Members counted alike on both L7 data planes: a member that closes a fresh connection before answering a
request with a body (502, counted failed and disabled — the request cannot be sent again), and a group of
70 members (past any 64-bit mask: every request and route event counted exactly, none left active)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from lbkit import Members, StartBalancer, connect, group_config, request, wait_until

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes


class Closer:
    """A member that reads each request (head and Content-Length body) and closes without answering."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            with c:
                c.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := c.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length and (chunk := c.recv(65536)):
                    body += chunk
                self.requests += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def closer() -> Iterator[Closer]:
    c = Closer()
    yield c
    c.close()


def test_a_close_before_answering_a_request_with_a_body_is_a_counted_failure(
        balancer: StartBalancer, members: Members, closer: Closer) -> None:
    b = members.http("b")
    bal = balancer(group_config([("x", closer.endpoint, 1), ("b", b.endpoint, 1)], round_robin=False,
                                retry_delay=60), mode="http")
    s = connect(bal.addr)
    status, _, body = request(s, "POST", "/", body=b"cannot be sent twice")
    assert status == 502 and b"member x closed the connection before answering" in body, body
    assert closer.requests == 1 and not b.requests  # not sent again
    assert request(s, "POST", "/", body=b"next")[:3:2] == (200, b"b")  # x is disabled: b takes it
    snap = wait_until(lambda: (sn := bal.snapshot())["totals"]["failed"] == 1 and sn, timeout=5,
                      what="the 502 counted")
    ms = {m["memberID"]: m for m in snap["members"]}
    assert ms["x"]["failures"] == 1 and ms["x"]["health"] == "disabled" and ms["x"]["total"] == 0
    assert ms["b"]["total"] == 1 and ms["b"]["failures"] == 0
    health = [(e["memberID"], e["state"], e["reason"]) for e in bal.events() if e["kind"] == "health"]
    assert health == [("x", "disabled", "closed before answering")]
    s.close()


def test_seventy_members_are_counted_exactly(balancer: StartBalancer, members: Members) -> None:
    """Round robin over 70 members on one keep-alive client connection: the first round opens a connection to
    each, the second uses the pooled ones (members 65–70 included) — each member's total is 2, none stays
    active, and there is one route event per request naming the member that answered it."""
    n = 70
    ms = [members.http(f"m{i:02d}") for i in range(n)]
    bal = balancer(group_config([(m.name, m.endpoint, 1) for m in ms], retry_delay=60), mode="http")
    s = connect(bal.addr)
    answered = [request(s, "GET", "/")[2].decode() for _ in range(2 * n)]
    s.close()
    assert sorted(answered) == sorted(m.name for m in ms for _ in range(2))
    assert all(m.connections == 1 for m in ms)  # the second round went over the pooled connections

    def settled() -> dict[str, Any] | None:
        sn = bal.snapshot()
        return sn if all(m["active"] == 0 for m in sn["members"]) and sn["totals"]["active"] == 0 else None

    snap = wait_until(settled, timeout=10, what="nothing active")
    assert {m["memberID"]: (m["total"], m["active"], m["failures"]) for m in snap["members"]} == {
        m.name: (2, 0, 0) for m in ms}
    routes = [e for e in bal.events() if e["kind"] == "route"]
    assert snap["totals"]["sampledAway"] == 0
    assert [e["memberID"] for e in routes] == answered
    assert all(e["outcome"] == "ok" for e in routes)
