"""The HTTP/1.1 request framing table: raw request bytes → what the client gets and the exact bytes a member
receives. The rule is the expected outcome; ``test_framing.py`` runs every case against both data planes.

The rules are those of ``core/proxy/framing.py`` (RFC 9112 §2–§7, RFC 9110 §5, §7.6): a refused request is
answered by the balancer (400, 417, 431, 501, 505) and nothing of it reaches a member; an accepted one reaches it
re-framed as ``Name: value`` lines, hop-by-hop headers dropped, ``X-Forwarded-For`` added, a chunked body
re-chunked (extensions and trailers dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

XFF = b"X-Forwarded-For: 127.0.0.1\r\n"
H = b"Host: a\r\n"
TE = b"Transfer-Encoding: chunked\r\n"


@dataclass(frozen=True)
class Case:
    """``send`` in one write on a new connection; the client reads one answer per ``statuses`` entry; the
    member must receive exactly ``member`` (every request it parsed, in order; empty: nothing at all)."""

    name: str
    send: bytes
    statuses: tuple[int, ...]
    member: bytes = b""
    rule: str = ""
    cut: bool = False  # streamed before the fault was read: the member may see the start of it, then a reset


def fwd(head: bytes, body: bytes = b"", *, chunked: bool = False) -> bytes:
    """A forwarded request: its request line and kept header lines, then X-Forwarded-For (and the re-chunking
    Transfer-Encoding), the blank line, the body."""
    return head + XFF + (TE if chunked else b"") + b"\r\n" + body


def refused(name: str, send: bytes, status: int = 400, rule: str = "") -> Case:
    return Case(name, send, (status,), b"", rule)


def ok(name: str, send: bytes, member: bytes, rule: str = "", statuses: tuple[int, ...] = (200,)) -> Case:
    return Case(name, send, statuses, member, rule)


GET = b"GET / HTTP/1.1\r\n"
POST = b"POST / HTTP/1.1\r\n"
CL5 = b"Content-Length: 5\r\n"
CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"

CASES: list[Case] = [
    # the usual requests -----------------------------------------------------------------------------------
    ok("get", GET + H + b"\r\n", fwd(GET + H)),
    ok("post_content_length", POST + H + CL5 + b"\r\nhello", fwd(POST + H + CL5, b"hello")),
    ok("content_length_zero", POST + H + b"Content-Length: 0\r\n\r\n", fwd(POST + H + b"Content-Length: 0\r\n")),
    ok("content_length_leading_zeros", POST + H + b"Content-Length: 005\r\n\r\nhello",
       fwd(POST + H + b"Content-Length: 005\r\n", b"hello"), "1*DIGIT"),
    ok("content_length_with_ows", POST + H + b"Content-Length:   5  \r\n\r\nhello",
       fwd(POST + H + CL5, b"hello"), "OWS around a field value is not part of it"),
    ok("header_ows_normalised", GET + H + b"X-A:\t v \t\r\n\r\n", fwd(GET + H + b"X-A: v\r\n")),
    ok("header_no_space_after_colon", GET + b"Host:a\r\n\r\n", fwd(GET + H)),
    ok("obs_text_in_value", GET + H + b"X-A: caf\xe9\r\n\r\n", fwd(GET + H + b"X-A: caf\xe9\r\n"),
       "obs-text is allowed in a field value"),
    ok("chunked", POST + H + TE + b"\r\n" + CHUNKED_HELLO, fwd(POST + H, CHUNKED_HELLO, chunked=True)),
    ok("chunked_coding_name_case", POST + H + b"Transfer-Encoding: Chunked\r\n\r\n" + CHUNKED_HELLO,
       fwd(POST + H, CHUNKED_HELLO, chunked=True), "coding names are case-insensitive"),
    ok("chunked_two_chunks_upper_hex", POST + H + TE + b"\r\n005\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n",
       fwd(POST + H, b"5\r\nhello\r\na\r\n0123456789\r\n0\r\n\r\n", chunked=True)),
    ok("chunk_extensions_dropped", POST + H + TE + b"\r\n5;a=b;c=\"d e\"\r\nhello\r\n0;x=y\r\n\r\n",
       fwd(POST + H, CHUNKED_HELLO, chunked=True), "§7.1.1: extensions a recipient does not understand are ignored"),
    ok("chunked_trailers_dropped", POST + H + TE + b"\r\n5\r\nhello\r\n0\r\nX-T: 1\r\nHost: b\r\n\r\n",
       fwd(POST + H, CHUNKED_HELLO, chunked=True), "trailer fields never frame the message"),
    Case("chunked_trailer_content_length", POST + H + TE + b"\r\n5\r\nhello\r\n0\r\nContent-Length: 9\r\n\r\n",
         (400,), b"", "§6.5: a framing field in the trailer section is refused", cut=True),
    Case("chunked_trailer_transfer_encoding",
         POST + H + TE + b"\r\n5\r\nhello\r\n0\r\nTransfer-Encoding: identity\r\n\r\n", (400,), b"", cut=True),
    ok("lowercase_header_names", b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n",
       fwd(b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n")),
    ok("absolute_form_target", b"GET http://a/x?y HTTP/1.1\r\n" + H + b"\r\n",
       fwd(b"GET http://a/x?y HTTP/1.1\r\n" + H), "§3.2.2: absolute-form is accepted, forwarded as it is"),
    ok("asterisk_form", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", fwd(b"OPTIONS * HTTP/1.1\r\n" + H)),
    ok("rarer_method", b"PURGE /x HTTP/1.1\r\n" + H + b"\r\n", fwd(b"PURGE /x HTTP/1.1\r\n" + H)),
    ok("two_spaces_after_method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", fwd(GET + H),
       "§3: a recipient may split the request line on whitespace; the line is rebuilt"),
    ok("leading_empty_line", b"\r\n" + GET + H + b"\r\n", fwd(GET + H), "§2.2: an empty line before is ignored"),
    ok("empty_host", GET + b"Host:\r\n\r\n", fwd(GET + b"Host: \r\n"), "§3.2: an empty Host is allowed"),
    ok("host_with_port", GET + b"Host: a.example:8080\r\n\r\n", fwd(GET + b"Host: a.example:8080\r\n")),
    ok("host_ip_literal", GET + b"Host: [::1]:80\r\n\r\n", fwd(GET + b"Host: [::1]:80\r\n")),
    ok("host_percent_encoded", GET + b"Host: caf%C3%A9\r\n\r\n", fwd(GET + b"Host: caf%C3%A9\r\n")),
    ok("http10_without_host", b"GET / HTTP/1.0\r\n\r\n", fwd(GET + b"Host: \r\n"),
       "HTTP/1.0 needs no Host; forwarded as HTTP/1.1 with an empty one"),
    ok("http10_with_host", b"GET / HTTP/1.0\r\n" + H + b"\r\n", fwd(GET + H)),
    ok("x_forwarded_for_joined", GET + H + b"X-Forwarded-For: 10.0.0.1\r\n\r\n",
       GET + H + b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n\r\n"),
    ok("hop_by_hop_dropped", GET + H + b"Keep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nTrailer: X\r\n\r\n",
       fwd(GET + H)),
    ok("upgrade_without_connection_option", GET + H + b"Upgrade: websocket\r\n\r\n", fwd(GET + H),
       "Upgrade is hop-by-hop; without Connection: upgrade it is no offer"),
    ok("exactly_max_headers", GET + H + b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n",
       fwd(GET + H + b"".join(b"X-%d: v\r\n" % i for i in range(99))), "100 header lines are allowed"),
    # Connection never removes a framing header -------------------------------------------------------------
    ok("connection_content_length", POST + H + b"Connection: content-length\r\n" + CL5 + b"\r\nhello",
       fwd(POST + H + CL5, b"hello"), "Connection never removes Content-Length"),
    ok("connection_content_length_smuggle",
       POST + H + b"Connection: Content-Length\r\nContent-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
       fwd(POST + H + b"Content-Length: %d\r\n" % len(SMUGGLED), SMUGGLED),
       "the body stays a body: one request reaches the member"),
    ok("connection_transfer_encoding", POST + H + b"Connection: transfer-encoding\r\n" + TE + b"\r\n" + CHUNKED_HELLO,
       fwd(POST + H, CHUNKED_HELLO, chunked=True), "Connection never removes Transfer-Encoding"),
    ok("connection_host", GET + H + b"Connection: host\r\n\r\n", fwd(GET + H), "Connection never removes Host"),
    ok("connection_close_and_content_length", POST + H + b"Connection: close, content-length\r\n" + CL5 + b"\r\nhello",
       fwd(POST + H + CL5, b"hello")),
    ok("connection_custom_header_dropped", GET + H + b"Connection: x-a\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
       fwd(GET + H + b"X-B: 2\r\n"), "a header named by Connection is hop-by-hop"),
    # h2c offers are ignored ------------------------------------------------------------------------------
    ok("h2c_offer_ignored", GET + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", fwd(GET + H), "an h2c offer is answered over HTTP/1.1"),
    ok("h2c_offer_with_body", POST + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + CL5 + b"\r\nhello",
       fwd(POST + H + CL5, b"hello")),
    ok("h2c_offer_with_chunked_body_then_get", POST + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + TE + b"\r\n" + CHUNKED_HELLO + GET + H + b"\r\n",
       fwd(POST + H, CHUNKED_HELLO, chunked=True) + fwd(GET + H), statuses=(200, 200)),
    # expectations ----------------------------------------------------------------------------------------
    ok("expect_100_continue", POST + H + CL5 + b"Expect: 100-continue\r\n\r\nhello", fwd(POST + H + CL5, b"hello"),
       "the balancer answers the expectation itself"),
    refused("expect_unknown", GET + H + b"Expect: teapot\r\n\r\n", 417),
    # pipelining ------------------------------------------------------------------------------------------
    ok("pipelined_two_gets", GET + H + b"\r\n" + b"GET /2 HTTP/1.1\r\n" + H + b"\r\n",
       fwd(GET + H) + fwd(b"GET /2 HTTP/1.1\r\n" + H), statuses=(200, 200)),
    ok("pipelined_after_content_length_body", POST + H + CL5 + b"\r\nhello" + GET + H + b"\r\n",
       fwd(POST + H + CL5, b"hello") + fwd(GET + H), statuses=(200, 200)),
    ok("pipelined_after_chunked_body", POST + H + TE + b"\r\n" + CHUNKED_HELLO + GET + H + b"\r\n",
       fwd(POST + H, CHUNKED_HELLO, chunked=True) + fwd(GET + H), statuses=(200, 200)),
    Case("pipelined_then_bare_cr", GET + H + b"\r\n" + GET + H + b"X: a\rb\r\n\r\n", (200, 400), fwd(GET + H),
         "the bad request after a good one reaches no member"),
    refused("refused_then_pipelined", POST + H + CL5 + TE + b"\r\n0\r\n\r\n" + GET + H + b"\r\n", 400,
            "nothing after a refused request is read as a request"),
    # Content-Length --------------------------------------------------------------------------------------
    refused("content_length_duplicate_identical", POST + H + CL5 + CL5 + b"\r\nhello",
            rule="§6.3: a duplicate Content-Length is refused, even an identical one"),
    refused("content_length_duplicate_different", POST + H + CL5 + b"Content-Length: 6\r\n\r\nhello!"),
    refused("content_length_list", POST + H + b"Content-Length: 5, 5\r\n\r\nhello"),
    refused("content_length_plus", POST + H + b"Content-Length: +5\r\n\r\nhello"),
    refused("content_length_minus", POST + H + b"Content-Length: -5\r\n\r\nhello"),
    refused("content_length_hex", POST + H + b"Content-Length: 0x5\r\n\r\nhello"),
    refused("content_length_inner_space", POST + H + b"Content-Length: 5 5\r\n\r\nhello"),
    refused("content_length_overflow", POST + H + b"Content-Length: 99999999999999999999999\r\n\r\nhello"),
    refused("content_length_empty", POST + H + b"Content-Length:\r\n\r\nhello"),
    # Transfer-Encoding -----------------------------------------------------------------------------------
    refused("cl_then_te", POST + H + CL5 + TE + b"\r\n" + CHUNKED_HELLO, rule="§6.3: both framings → 400"),
    refused("te_then_cl", POST + H + TE + CL5 + b"\r\n" + CHUNKED_HELLO),
    refused("te_chunked_not_last", POST + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n" + CHUNKED_HELLO,
            rule="§6.3: chunked not final → 400"),
    refused("te_unknown_coding_before_chunked", POST + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + CHUNKED_HELLO,
            501, "§6.1: a transfer coding not understood → 501"),
    refused("te_unknown_only", POST + H + b"Transfer-Encoding: foo\r\n\r\nhello"),
    refused("te_identity", POST + H + b"Transfer-Encoding: identity\r\n\r\nhello"),
    refused("te_chunked_twice_one_line", POST + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n" + CHUNKED_HELLO),
    refused("te_chunked_twice_two_lines", POST + H + TE + TE + b"\r\n" + CHUNKED_HELLO),
    refused("te_empty", POST + H + b"Transfer-Encoding:\r\n\r\n" + CHUNKED_HELLO),
    refused("te_http10", b"POST / HTTP/1.0\r\n" + H + TE + b"\r\n" + CHUNKED_HELLO,
            rule="§6.1: Transfer-Encoding in HTTP/1.0 is faulty framing"),
    refused("te_xchunked", POST + H + b"Transfer-Encoding: xchunked\r\n\r\n" + CHUNKED_HELLO),
    # chunk syntax ----------------------------------------------------------------------------------------
    refused("chunk_size_overflow", POST + H + TE + b"\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n"),
    refused("chunk_size_invalid_char", POST + H + TE + b"\r\n5g\r\nhello\r\n0\r\n\r\n"),
    refused("chunk_size_0x", POST + H + TE + b"\r\n0x5\r\nhello\r\n0\r\n\r\n"),
    refused("chunk_size_negative", POST + H + TE + b"\r\n-5\r\nhello\r\n0\r\n\r\n"),
    refused("chunk_size_trailing_space", POST + H + TE + b"\r\n5 \r\nhello\r\n0\r\n\r\n"),
    refused("chunk_size_bare_lf", POST + H + TE + b"\r\n5\nhello\r\n0\r\n\r\n"),
    refused("chunk_extension_bare_lf", POST + H + TE + b"\r\n5;a\nb\r\nhello\r\n0\r\n\r\n"),
    refused("chunk_data_longer_than_size", POST + H + TE + b"\r\n5\r\nhelloXX\r\n0\r\n\r\n"),
    # line ends and control characters in the head --------------------------------------------------------
    refused("bare_lf_line_ends", b"GET / HTTP/1.1\nHost: a\n\n", rule="line ends are CRLF"),
    refused("bare_lf_one_header", GET + b"Host: a\nX-A: b\r\n\r\n"),
    refused("bare_cr_in_value", GET + H + b"X-A: a\rb\r\n\r\n", rule="a bare CR anywhere in a head → 400"),
    refused("bare_cr_end_of_line", GET + H + b"X-A: a\r\r\n\r\n"),
    refused("bare_cr_in_name", GET + H + b"X\rA: b\r\n\r\n"),
    refused("bare_cr_in_request_line", b"GET /\r HTTP/1.1\r\n" + H + b"\r\n"),
    refused("bare_cr_line_start", GET + H + b"\rX-A: b\r\n\r\n"),
    refused("bare_cr_smuggled_header", GET + H + b"X-A: a\rContent-Length: 5\r\n\r\nhello"),
    refused("nul_in_value", GET + H + b"X-A: a\x00b\r\n\r\n"),
    refused("ctl_in_value", GET + H + b"X-A: a\x01b\r\n\r\n"),
    refused("del_in_value", GET + H + b"X-A: a\x7fb\r\n\r\n"),
    refused("obs_fold", GET + H + b"X-A: a\r\n b\r\n\r\n", rule="§5.2: obs-fold in a request → 400"),
    refused("obs_fold_tab", GET + H + b"X-A: a\r\n\tb\r\n\r\n"),
    refused("space_before_colon", GET + b"Host : a\r\n\r\n", rule="§5.1: whitespace before the colon → 400"),
    refused("tab_before_colon", GET + H + b"X-A\t: b\r\n\r\n"),
    refused("header_name_invalid_tchar", GET + H + b"X(A): b\r\n\r\n"),
    refused("header_name_non_ascii", GET + H + b"X\xe9: b\r\n\r\n"),
    refused("header_name_empty", GET + H + b": b\r\n\r\n"),
    refused("header_line_without_colon", GET + H + b"X-A b\r\n\r\n"),
    # Host ------------------------------------------------------------------------------------------------
    refused("host_missing_http11", GET + b"X-A: b\r\n\r\n", rule="§3.2: HTTP/1.1 without Host → 400"),
    refused("host_twice", GET + H + b"Host: b\r\n\r\n", rule="§3.2: more than one Host → 400"),
    refused("host_twice_identical", GET + H + H + b"\r\n"),
    refused("host_list", GET + b"Host: a, b\r\n\r\n"),
    refused("host_with_path", GET + b"Host: a/b\r\n\r\n"),
    refused("host_twice_http10", b"GET / HTTP/1.0\r\n" + H + b"Host: b\r\n\r\n"),
    # request line ----------------------------------------------------------------------------------------
    refused("http09_request", b"GET /\r\n\r\n", rule="HTTP/0.9 is not served"),
    refused("missing_version", b"GET /\r\n" + H + b"\r\n"),
    refused("http2_version", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    refused("http12_version", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    refused("lowercase_version", b"GET / http/1.1\r\n" + H + b"\r\n"),
    refused("space_after_version", b"GET / HTTP/1.1 \r\n" + H + b"\r\n"),
    refused("ctl_in_target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n"),
    refused("tab_in_target", b"GET /a\tb HTTP/1.1\r\n" + H + b"\r\n"),
    refused("non_ascii_target", b"GET /caf\xe9 HTTP/1.1\r\n" + H + b"\r\n", rule="a target is ASCII (RFC 3986)"),
    refused("target_not_a_path", b"GET a HTTP/1.1\r\n" + H + b"\r\n"),
    refused("lowercase_method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 501,
            "methods are case-sensitive: get is not GET, and not one the balancer knows"),
    refused("unknown_method", b"FROB / HTTP/1.1\r\n" + H + b"\r\n", 501),
    refused("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501, "a reverse proxy opens no tunnels"),
    # sizes -----------------------------------------------------------------------------------------------
    refused("header_line_1mb", GET + H + b"X-Big: " + b"v" * (1 << 20) + b"\r\n\r\n", 431),
    refused("too_many_headers", GET + H + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431,
            "more than 100 header lines → 431"),
]
