"""HTTP/1.1 request framing, decided once (RFC 9112 §2–§7, RFC 9110 §7.6): which request the balancer forwards,
and which it refuses before a byte reaches a member.

Both data planes obey these rules. http.py parses with httptools (llhttp in its strict mode: bare CR or LF,
obs-fold, whitespace before a colon, a bad token, a CTL in a value, a bad or doubled Content-Length, a bad chunk
size or chunk line are errors there → 400) and then asks :func:`decide` about what llhttp leaves to its caller.
The native engine forwards only a canonical subset itself (see ``_engine.c``'s HTTP section) and hands every other
request to http.py, so the answer to anything unusual is this module's.

The rules, in the order they are checked:

* version: HTTP/1.1 or HTTP/1.0; HTTP/0.9 (no version) → 400; any other version → 505.
* ``CONNECT`` → 501: a reverse proxy has no tunnels to open. A method llhttp does not know → 501.
* ``Host``: exactly one on HTTP/1.1, at most one on HTTP/1.0, its value ``uri-host [":" port]`` without a comma
  (two Host lines, a list, a space, a missing Host on 1.1 → 400). An HTTP/1.0 request without one is forwarded
  (as HTTP/1.1) with an empty ``Host:``, which RFC 9112 §3.2 allows.
* ``Content-Length``: one header, digits only (a list, a sign, hex, a duplicate even if identical → 400).
* ``Transfer-Encoding``: not on HTTP/1.0 (400); not beside Content-Length (400); ``chunked`` exactly once and
  last (else 400); any other coding before it → 501 (not implemented).
* ``Connection`` options name headers to drop, but never a framing header: ``Content-Length``,
  ``Transfer-Encoding`` and ``Host`` stay (the framing the balancer read is the framing the member reads).
* ``Expect``: ``100-continue`` is answered by the balancer; any other expectation → 417.
* ``Upgrade`` (with ``Connection: upgrade``): ``h2c`` alone is ignored (Upgrade and HTTP2-Settings dropped, the
  request answered over HTTP/1.1); other protocols are passed to the member, and after its 101 the connection is
  relayed both ways.
* a head of more than ``limits.REQUEST_HEADERS_MAX`` header lines → 431.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from balancedesk.core.proxy.limits import REQUEST_HEADERS_MAX

# request headers the balancer decides itself and never forwards as received: the hop-by-hop ones (RFC 9110 §7.6.1),
# Transfer-Encoding (re-framed), Expect (answered here), X-Forwarded-For (rebuilt), HTTP2-Settings (an h2c offer)
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
     b"http2-settings"}
)
REQ_SPECIAL = HOP_BY_HOP | {b"expect", b"x-forwarded-for"}
# headers that frame the message: a Connection option never removes them
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})
# headers decide() looks at (on_header keeps their values aside)
WATCHED = REQ_SPECIAL | FRAMING

_HOST_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:"  # the usual host: no regex needed
# uri-host [":" port]: an IP-literal, or a reg-name / IPv4 (unreserved, pct-encoded, sub-delims but ",")
_HOST = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~%!$&'()*+;=]*)(?::[0-9]*)?")
_USUAL_OPTIONS = frozenset({b"keep-alive", b"close"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Refused(NamedTuple):
    """The request is answered by the balancer with ``status`` and ``why``; the connection closes."""

    status: int
    why: str


class Framing(NamedTuple):
    """How to forward an accepted request: its body (``length`` bytes, or ``chunked``), the extra header names to
    drop (Connection options), and what the balancer itself takes care of."""

    length: int
    chunked: bool
    drop: frozenset[bytes]
    close: bool  # Connection: close
    expect_continue: bool
    upgrade: bytes | None  # the Upgrade value to pass to the member (h2c offers never are)
    offered: bool  # Upgrade with Connection: upgrade (llhttp stops after such a head, whatever is done with it)
    add_host: bool  # HTTP/1.0 without Host: forwarded with an empty one


_NONE: frozenset[bytes] = frozenset()
_PLAIN = Framing(length=0, chunked=False, drop=_NONE, close=False, expect_continue=False, upgrade=None,
                 offered=False, add_host=False)  # the usual request: one Host, no body, nothing else to decide


def _list(values: list[bytes]) -> list[bytes]:
    """A comma-separated field's elements (every line of it), trimmed and lower-cased; empty ones kept."""
    return [t.strip(b" \t").lower() for v in values for t in v.split(b",")]


def decide(method: bytes, version: str, fields: dict[bytes, list[bytes]], n_headers: int) -> Refused | Framing:
    """The verdict on a request head: ``fields`` maps each :data:`WATCHED` name (lower case) present to its values
    in order; ``n_headers`` counts every header line."""
    if version not in ("1.1", "1.0"):
        if version == "0.9":
            return Refused(400, "HTTP/0.9 requests (no version in the request line) are not accepted")
        return Refused(505, f"HTTP/{version} is not supported; send HTTP/1.1")
    if method == b"CONNECT":
        return Refused(501, "CONNECT is not supported: this is a reverse proxy, it opens no tunnels")
    if n_headers > REQUEST_HEADERS_MAX:
        return Refused(431, f"more than {REQUEST_HEADERS_MAX} header lines")
    http10 = version == "1.0"
    hosts = fields.get(b"host", [])
    if len(hosts) > 1:
        return Refused(400, "more than one Host header")
    if not hosts and not http10:
        return Refused(400, "an HTTP/1.1 request needs a Host header")
    if hosts and hosts[0].translate(None, _HOST_PLAIN) and not _HOST.fullmatch(hosts[0].strip(b" \t")):
        return Refused(400, "the Host header is not one host[:port]")
    if len(fields) == 1 and hosts:
        return _PLAIN
    cls = fields.get(b"content-length", [])
    if len(cls) > 1:
        return Refused(400, "more than one Content-Length header")
    length = 0
    if cls:
        v = cls[0].strip(b" \t")
        if not v.isdigit() or len(v) > 18:
            return Refused(400, "Content-Length is not a number of bytes")
        length = int(v)
    tes = fields.get(b"transfer-encoding")
    chunked = False
    if tes is not None:
        if http10:
            return Refused(400, "Transfer-Encoding in an HTTP/1.0 request")
        if cls:
            return Refused(400, "both Content-Length and Transfer-Encoding")
        codings = _list(tes)
        if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") != 1 or b"" in codings:
            return Refused(400, "Transfer-Encoding must end with chunked, once")
        if len(codings) > 1:
            return Refused(501, f"transfer coding {codings[0].decode('latin-1')!r} is not implemented")
        chunked = True
    conn = fields.get(b"connection")
    options = _list(conn) if conn is not None else []
    drop = _NONE
    if options and not (len(options) == 1 and options[0] in _USUAL_OPTIONS):
        if any(o and not _TOKEN.fullmatch(o) for o in options):
            return Refused(400, "a Connection option is not a token")
        drop = frozenset(o for o in options if o and o not in FRAMING)
    expect = fields.get(b"expect")
    expect_continue = False
    if expect is not None:
        if _list(expect) != [b"100-continue"]:
            return Refused(417, "the only expectation supported is 100-continue")
        expect_continue = True
    upgrade = None
    ups = fields.get(b"upgrade")
    if ups is not None and b"upgrade" in options:
        protocols = [p for p in (x.strip(b" \t") for v in ups for x in v.split(b",")) if p]
        wanted = [p for p in protocols if p.lower() != b"h2c" and not p.lower().startswith(b"h2c/")]
        if wanted:
            upgrade = b", ".join(wanted)
    return Framing(length=length, chunked=chunked, drop=drop, close=b"close" in options,
                   expect_continue=expect_continue, upgrade=upgrade, offered=ups is not None and b"upgrade" in options,
                   add_host=not hosts)
