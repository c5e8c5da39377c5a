"""framing.decide on its own: the verdicts the L7 planes carry out (the wire cases are tests/proxy/framing_cases.py)."""

from __future__ import annotations

import pytest
from balancedesk.core.proxy.framing import FRAMING, HOP_BY_HOP, Framing, Refused, decide
from balancedesk.core.proxy.limits import REQUEST_HEADERS_MAX as MAX_HEADERS


def fields(*pairs: tuple[bytes, bytes]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


HOST = (b"host", b"a")


@pytest.mark.parametrize(("version", "pairs", "status"), [
    ("0.9", [], 400),
    ("2.0", [HOST], 505),
    ("1.1", [], 400),
    ("1.1", [HOST, (b"host", b"a")], 400),
    ("1.1", [(b"host", b"a, b")], 400),
    ("1.1", [HOST, (b"content-length", b"5"), (b"content-length", b"5")], 400),
    ("1.1", [HOST, (b"content-length", b"5, 5")], 400),
    ("1.1", [HOST, (b"content-length", b"5"), (b"transfer-encoding", b"chunked")], 400),
    ("1.1", [HOST, (b"transfer-encoding", b"chunked, gzip")], 400),
    ("1.1", [HOST, (b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"chunked")], 400),
    ("1.1", [HOST, (b"transfer-encoding", b"gzip, chunked")], 501),
    ("1.0", [(b"transfer-encoding", b"chunked")], 400),
    ("1.1", [HOST, (b"expect", b"teapot")], 417),
    ("1.1", [HOST, (b"connection", b"a b")], 400),
])
def test_refused(version: str, pairs: list[tuple[bytes, bytes]], status: int) -> None:
    verdict = decide(b"GET", version, fields(*pairs), len(pairs))
    assert isinstance(verdict, Refused) and verdict.status == status, verdict


def test_connect_and_too_many_headers() -> None:
    assert decide(b"CONNECT", "1.1", fields(HOST), 1) == Refused(
        501, "CONNECT is not supported: this is a reverse proxy, it opens no tunnels")
    assert isinstance(v := decide(b"GET", "1.1", fields(HOST), MAX_HEADERS + 1), Refused) and v.status == 431
    assert isinstance(decide(b"GET", "1.1", fields(HOST), MAX_HEADERS), Framing)


def test_connection_never_drops_a_framing_header() -> None:
    v = decide(b"POST", "1.1", fields(HOST, (b"content-length", b"5"),
                                      (b"connection", b"Content-Length, Host, Transfer-Encoding, X-A, close")), 3)
    assert isinstance(v, Framing)
    assert v.length == 5 and v.close and v.drop == {b"x-a", b"close"}
    assert not v.drop & FRAMING and {b"transfer-encoding"} == FRAMING & HOP_BY_HOP


def test_upgrades() -> None:
    ws = decide(b"GET", "1.1", fields(HOST, (b"connection", b"Upgrade"), (b"upgrade", b"websocket")), 3)
    assert isinstance(ws, Framing) and ws.upgrade == b"websocket" and ws.offered
    h2c = decide(b"GET", "1.1", fields(HOST, (b"connection", b"Upgrade, HTTP2-Settings"), (b"upgrade", b"h2c")), 3)
    assert isinstance(h2c, Framing) and h2c.upgrade is None and h2c.offered
    bare = decide(b"GET", "1.1", fields(HOST, (b"upgrade", b"websocket")), 2)
    assert isinstance(bare, Framing) and bare.upgrade is None and not bare.offered


def test_http10_without_host_gets_an_empty_one() -> None:
    v = decide(b"GET", "1.0", {}, 0)
    assert isinstance(v, Framing) and v.add_host and not v.chunked and v.length == 0
