"""L7 shell: keep-alive both sides, streaming (Content-Length, chunked), 100-continue, header rules,
affinity, and the limits with their answers (400/408/431/502/503/504)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from typing import Any

import pytest
from lbkit import (
    BlackHole,
    Members,
    StartBalancer,
    chunks,
    connect,
    group_config,
    read_response,
    refused_endpoint,
    request,
    wait_until,
)

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes


def test_keep_alive_both_sides_and_round_robin(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    cfg = group_config([("a", a.endpoint, 3), ("b", b.endpoint, 1)])
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    names = []
    for _ in range(40):
        status, headers, body = request(s, "GET", "/")
        assert status == 200 and "connection" not in headers
        names.append(body.decode())
    assert names.count("a") == 30 and names.count("b") == 10  # smooth WRR: exact shares per window
    assert a.connections == 1 and b.connections == 1  # pooled: one upstream connection each
    snap = bal.snapshot()
    assert snap["totals"]["accepted"] == 1
    ma = next(m for m in snap["members"] if m["memberID"] == "a")
    assert ma["total"] == 30 and ma["configuredShare"] == 0.75 and ma["actualShare"] == 0.75
    assert ma["latencyP50_ms"] is not None and ma["latencyP99_ms"] >= ma["latencyP50_ms"]
    s.close()


def test_hop_by_hop_dropped_and_x_forwarded_for_added(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/echo?q=1", headers={
        "Connection": "keep-alive, X-Secret", "X-Secret": "drop me", "Keep-Alive": "timeout=5",
        "X-Forwarded-For": "10.0.0.1", "X-Kept": "yes", "TE": "trailers"})
    assert status == 200
    seen = json.loads(body)
    names = {k.lower(): v for k, v in seen["headers"]}
    assert seen["url"] == "/echo?q=1"
    assert names["x-kept"] == "yes" and names["host"] == "test"
    assert names["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    for hop in ("connection", "keep-alive", "x-secret", "te"):
        assert hop not in names, hop
    s.close()


def test_http10_client_and_connection_close(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 200 and body == b"a" and headers["connection"].lower() == "close"
    assert s.recv(10) == b""
    s = connect(bal.addr)
    status, headers, body = request(s, "GET", "/", headers={"Connection": "close"})
    assert status == 200 and headers["connection"].lower() == "close"
    assert s.recv(10) == b""


def test_large_put_is_streamed_both_framings(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    payload = os.urandom(8 << 20)
    digest = hashlib.sha256(payload).hexdigest()
    s = connect(bal.addr)
    # Content-Length
    s.sendall(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload))
    for part in chunks(payload, 1 << 16):
        s.sendall(part)
    status, _, body = read_response(s)
    info = json.loads(body)
    assert status == 200 and info["length"] == len(payload) and info["sha256"] == digest
    # chunked, on the same client connection
    s.sendall(b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    for part in chunks(payload, 100_000):
        s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
    s.sendall(b"0\r\n\r\n")
    status, _, body = read_response(s)
    info = json.loads(body)
    assert status == 200 and info["length"] == len(payload) and info["sha256"] == digest
    assert bal.member("a")["bytesIn"] >= 2 * len(payload)
    s.close()


def test_upload_reaches_member_before_it_is_complete(balancer: StartBalancer, members: Members) -> None:
    """Streaming, not buffering: the member sees body bytes while the client still holds most of them."""
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (8 << 20))
    s.sendall(b"x" * (1 << 20))
    wait_until(lambda: a.first_body_at, what="member got body bytes before the client sent the rest")
    s.sendall(b"x" * (7 << 20))
    status, _, body = read_response(s)
    assert status == 200 and json.loads(body)["length"] == 8 << 20
    s.close()


def test_chunked_response_and_until_close_response(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    status, headers, body = request(s, "GET", "/chunked")
    assert status == 200 and headers["transfer-encoding"] == "chunked" and body == b"a-a"
    status, headers, body = request(s, "GET", "/close")  # member ends the body by closing
    assert status == 200 and body == b"a" and headers.get("transfer-encoding") == "chunked"
    status, _, body = request(s, "GET", "/")  # the client connection lives on
    assert status == 200 and body == b"a"
    status, headers, body = request(s, "HEAD", "/")
    assert status == 200 and headers["content-length"] == "1" and body == b""
    status, _, body = request(s, "GET", "/")
    assert status == 200 and body == b"a"
    s.close()


def test_expect_100_continue(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # only then does the client send the body
    s.sendall(b"hello")
    status, _, body = read_response(s)
    info = json.loads(body)
    assert status == 200 and info["length"] == 5
    assert "expect" not in {k.lower() for k, _ in info["headers"]}
    s.close()


def test_affinity_header_routes_by_value(balancer: StartBalancer, members: Members) -> None:
    ms = {n: members.http(n) for n in ("a", "b", "c")}
    bal = balancer(group_config([(n, m.endpoint, 1) for n, m in ms.items()]), mode="http",
                   args=["--affinity-header", "X-Transfer"])
    assert bal.snapshot()["affinityHeader"] == "X-Transfer"
    s = connect(bal.addr)
    for key in ("t1", "t2", "t3", "t4"):
        seen = {request(s, "GET", "/", headers={"x-transfer": key})[2] for _ in range(6)}
        assert len(seen) == 1, key
    ev = bal.admin("GET", "/admin/events").json()["events"]
    assert {e["key"] for e in ev if e["kind"] == "route"} == {"t1", "t2", "t3", "t4"}
    s.close()


def test_malformed_request_400(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost t\r\nbroken header\r\n\r\n")
    status, headers, body = read_response(s)
    assert status == 400 and headers["connection"] == "close" and b"malformed" in body


def test_oversized_head_431(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http",
                   args=["--max-header-bytes", "4096"])
    s = connect(bal.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"v" * 8000 + b"\r\n\r\n")
    status, _, _ = read_response(s)
    assert status == 431
    s = connect(bal.addr)  # the same, dribbled in small pieces
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    with pytest.raises((ConnectionResetError, BrokenPipeError, AssertionError)):
        for _ in range(200):
            s.sendall(b"X-Many: " + b"v" * 50 + b"\r\n")
        raise AssertionError("never refused")
    status, _, _ = read_response(s)
    assert status == 431


def test_slow_head_408(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http",
                   args=["--header-timeout", "0.5"])
    s = connect(bal.addr)
    s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # and nothing more
    status, _, body = read_response(s)
    assert status == 408 and b"not complete" in body


def test_every_member_refused_502_names_group_and_members(balancer: StartBalancer) -> None:
    cfg = group_config([("m1", refused_endpoint(), 1), ("m2", refused_endpoint(), 1)], label="payments")
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/")
    text = body.decode()
    assert status == 502 and "payments" in text and "grp-1" in text
    assert "m1 (refused" in text and "m2 (refused" in text
    # the client connection stays usable; every member disabled at once → both tried again
    status, _, body = request(s, "GET", "/")
    assert status == 502
    snap = bal.snapshot()
    assert snap["totals"]["failed"] == 2
    ev = bal.admin("GET", "/admin/events").json()["events"]
    failed = [e for e in ev if e["kind"] == "route" and e["outcome"] == "failed"]
    assert failed and failed[0]["memberID"] is None and len(failed[0]["attempts"]) == 2


def test_connect_timeout_504(balancer: StartBalancer) -> None:
    hole = BlackHole()
    try:
        bal = balancer(group_config([("slow", hole.endpoint, 1)], connection_timeout=1), mode="http")
        s = connect(bal.addr)
        status, _, body = request(s, "GET", "/")
        assert status == 504 and b"slow (timeout" in body
    finally:
        hole.close()


def test_refused_member_fails_over_per_request(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    cfg = group_config([("dead", refused_endpoint(), 1), ("a", a.endpoint, 1)])
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    for _ in range(5):
        assert request(s, "POST", "/", body=b"data")[:3:2] == (200, b"a")
    assert bal.member("dead")["health"] == "disabled"


def test_dead_pooled_connection_retried_only_when_idempotent(
    balancer: StartBalancer, members: Members
) -> None:
    """A pooled connection the member closed just as the request came: GET is retried on a fresh
    connection (the client sees nothing), POST is not (nginx's rule) and gets a 502."""
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    assert request(s, "GET", "/drop-next")[0] == 200
    assert request(s, "GET", "/")[:3:2] == (200, b"a")
    assert a.connections == 2
    assert request(s, "GET", "/drop-next")[0] == 200
    status, _, body = request(s, "POST", "/", body=b"not twice")
    assert status == 502 and b"cannot be replayed" in body
    # three requests were answered; the two the member dropped unanswered are not counted on it
    assert bal.member("a")["total"] == 3
    assert bal.member("a")["health"] == "up"  # a dead pooled connection is not the member's failure
    s.close()


def test_max_connections_503(balancer: StartBalancer, members: Members) -> None:
    bal = balancer(group_config([("a", members.http("a").endpoint, 1)]), mode="http",
                   args=["--max-connections", "1"])
    s = connect(bal.addr)
    assert request(s, "GET", "/")[0] == 200
    t = connect(bal.addr)
    status, headers, _ = read_response(t)
    assert status == 503 and headers["connection"] == "close"
    assert bal.snapshot()["totals"]["refused"] == 1
    s.close()
    wait_until(lambda: bal.snapshot()["totals"]["active"] == 0, what="slot freed")
    u = connect(bal.addr)
    assert request(u, "GET", "/")[0] == 200


def test_pipelined_requests_answered_in_order(balancer: StartBalancer, members: Members) -> None:
    a, b = members.http("a"), members.http("b")
    bal = balancer(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(6)))
    urls = [json.loads(read_response(s)[2])["url"] for _ in range(6)]
    assert urls == [f"/echo/{i}" for i in range(6)]
    s.close()


def test_graceful_stop_finishes_in_flight(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
    wait_until(lambda: a.first_body_at, what="request in flight")
    bal.child.proc.send_signal(15)
    with pytest.raises(OSError):
        wait_until(lambda: socket.create_connection(bal.addr, timeout=1).close() and False,
                   timeout=5, what="listener closed")
    s.sendall(b"world")
    status, headers, body = read_response(s)
    assert status == 200 and json.loads(body)["length"] == 10 and headers["connection"] == "close"
    assert bal.child.proc.wait(15) == 0


def test_member_answering_garbage_is_a_502_naming_it(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/garbage")
    assert status == 502 and b"bad response from member" in body and b"a" in body
    s.close()


def test_member_dying_mid_answer_cuts_the_client_off(balancer: StartBalancer, members: Members) -> None:
    """An answer cut by the member must reach the client cut (not as a complete, shorter answer)."""
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    s.sendall(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 100" in head
    assert body == b"0123456789"  # the 10 bytes sent, then the connection ended: visibly short of 100
    s.close()


def test_no_answer_within_the_idle_timeout_is_a_504(balancer: StartBalancer, members: Members) -> None:
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http", args=["--idle-timeout", "1"])
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/hang")
    assert status == 504 and b"did not answer within 1 s" in body
    s.close()


def test_usual_and_unusual_requests_share_one_connection(balancer: StartBalancer, members: Members,
                                                         http_plane: str) -> None:
    """On the native plane the engine forwards the usual request and hands the connection to http.py at
    the first unusual one (here a chunked upload); the client sees one connection answering them all."""
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    assert bal.snapshot()["dataPlane"] == http_plane
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/echo/1", headers={"X-Forwarded-For": "10.0.0.1"})
    assert status == 200
    names = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert names["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    payload = os.urandom(100_000)
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks(payload, 7_000)) + b"0\r\n\r\n"
    status, _, body = request(s, "POST", "/echo/2", headers={"Transfer-Encoding": "chunked"}, body=framed)
    seen = json.loads(body)
    assert status == 200 and seen["length"] == len(payload)
    assert seen["sha256"] == hashlib.sha256(payload).hexdigest()
    status, _, body = request(s, "GET", "/echo/3")
    assert status == 200 and json.loads(body)["url"] == "/echo/3"
    s.close()
    snap = bal.snapshot()
    assert snap["totals"]["accepted"] == 1
    assert next(m for m in snap["members"] if m["memberID"] == "a")["total"] == 3


def test_every_request_counted_once_while_a_member_is_down(balancer: StartBalancer, members: Members) -> None:
    """A refusing member is walked past (then skipped while disabled, so picks go through the group walk
    rather than the first pick); on keep-alive connections to the others every request is counted once,
    on the member that answered, and none stays active."""
    a, b = members.http("a"), members.http("b")
    bal = balancer(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1), ("dead", refused_endpoint(), 1)],
                                retry_delay=30), mode="http")
    socks = [connect(bal.addr) for _ in range(4)]
    for _ in range(10):
        for s in socks:
            assert request(s, "GET", "/")[0] == 200
    for s in socks:
        s.close()
    def settled() -> dict[str, Any] | None:
        sn = bal.snapshot()
        return sn if all(m["active"] == 0 for m in sn["members"]) else None

    snap = wait_until(settled, timeout=5, what="no request active")
    totals = {m["memberID"]: m["total"] for m in snap["members"]}
    assert totals == {"a": totals["a"], "b": totals["b"], "dead": 0} and totals["a"] + totals["b"] == 40
    assert len(a.requests) + len(b.requests) == 40


def test_an_answer_with_both_framings_is_refused_as_bad(balancer: StartBalancer, members: Members) -> None:
    """Content-Length beside chunked can split a response in two places (response smuggling): the answer
    is refused as a bad one (RFC 9112 §6.3 "ought to be handled as an error"), the client's connection
    goes on."""
    a = members.http("a")
    bal = balancer(group_config([("a", a.endpoint, 1)]), mode="http")
    s = connect(bal.addr)
    status, _, body = request(s, "GET", "/both")
    assert status == 502 and b"bad response from member" in body
    assert request(s, "GET", "/")[:3:2] == (200, b"a")
    s.close()
