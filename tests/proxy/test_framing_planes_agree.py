"""The two L7 data planes cannot drift: seeded one-byte mutations of request heads (CR, LF, NUL, space, tab,
colon, comma, DEL, obs-text… inserted, replaced or deleted anywhere) are sent to a native and an asyncio balancer,
each in front of its own strict member; both must give the client the same statuses and forward the same bytes."""

from __future__ import annotations

import random

import httptools
from lbkit import Loop, StartBalancer, connect, group_config, read_response
from test_framing import SENTINEL, StrictMember

BASES = [
    b"GET /a?b=c HTTP/1.1\r\nHost: a.example:8080\r\nAccept: */*\r\nConnection: keep-alive\r\nX-A: one, two\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\nUser-Agent: t/1.0\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nhost: b\r\nCookie: a=b; c=d\r\nConnection: close\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: [::1]:80\r\nContent-Length: 0\r\nTE: trailers\r\nX-B: \xe9t\xe9\r\n\r\n",
]
NASTY = b"\r\n\x00\t :,;\x7f\xe9\"(/@"
MUTATIONS = 1000


def mutate(rng: random.Random, base: bytes) -> bytes:
    head = bytearray(base)
    at = rng.randrange(len(head) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        head.insert(at, rng.choice(NASTY))
    elif kind == 1:
        head[at] = rng.choice(NASTY)
    else:
        del head[at]
    return bytes(head)


def outcome(addr: tuple[str, int], member: StrictMember, data: bytes) -> tuple[list[int | str], list[bytes]]:
    s = connect(addr)
    statuses: list[int | str] = []
    try:
        s.sendall(data)  # an incomplete head is answered 408 after the header timeout, on both planes
        try:
            statuses.append(read_response(s, head_request=data.startswith(b"HEAD"))[0])
        except (OSError, httptools.HttpParserError) as exc:  # a reset, or an answer that is not HTTP
            statuses.append(type(exc).__name__)
    finally:
        s.close()
    t = connect(addr)
    t.sendall(SENTINEL)
    assert read_response(t)[0] == 200
    t.close()
    requests, violations, _ = member.take()
    assert not violations, (data, violations)
    return statuses, requests[:-1]


def test_planes_agree_on_mutated_heads(balancer: StartBalancer) -> None:
    bg = Loop()
    try:
        sides = []
        for plane in ("native", "asyncio"):
            member = StrictMember(bg).start()
            bal = balancer(group_config([("strict", member.endpoint, 1)]), mode="http",
                           args=["--header-timeout", "1"], env={"BALANCEDESK_L7": plane})
            assert bal.snapshot()["dataPlane"] == plane
            sides.append((bal.addr, member))
        rng = random.Random(12)
        differ = []
        forwarded = refused = 0
        for i in range(MUTATIONS):
            data = mutate(rng, BASES[i % len(BASES)])
            (native, asyncio_) = (outcome(addr, member, data) for addr, member in sides)
            if native != asyncio_:
                differ.append(f"{data!r}: native {native}, asyncio {asyncio_}")
            forwarded += bool(native[1])
            refused += 400 in native[0]
        assert not differ, f"{len(differ)} of {MUTATIONS} mutations:\n" + "\n".join(differ[:20])
        assert forwarded > 50 and refused > 50  # the mutations reach both kinds of outcome
    finally:
        bg.close()
