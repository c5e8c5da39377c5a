"""The live view's admin client (gui/live/admin.py) on real sockets: keep-alive reuse, a connection the
endpoint closed while idle, error bodies, a silent endpoint, a refused port, and the real balancer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from balancedesk.gui.live.admin import AdminClient, AdminError, AdminUnavailable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _endpoint(handler: Handler, token: str = "t", *, answer_within: float = 3.0) -> AsyncIterator[AdminClient]:
    """A scripted endpoint on 127.0.0.1 and a client of it; both closed on the way out."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    client = AdminClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", token, timeout=answer_within)
    try:
        yield client
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def _answer(status: int, body: Any, *, close: bool = False) -> bytes:
    raw = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode() + raw


def test_keep_alive_reuse_and_a_connection_closed_while_idle() -> None:
    async def main() -> None:
        conns: list[int] = []
        seen: list[tuple[str, dict[str, str], bytes]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conns.append(1)
            served = 0
            while True:
                try:
                    req = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                seen.append(req)
                served += 1
                writer.write(_answer(200, {"n": len(seen)}))
                await writer.drain()
                if served == 3:  # like an endpoint's idle timeout: close without a word after the 3rd
                    break
            writer.close()

        async with _endpoint(handler, "tok-1") as client:
            for i in range(1, 7):
                assert await client._call("GET", "/admin/snapshot", params={"a": i}) == {"n": i}
                await asyncio.sleep(0.02)  # lets the close after the 3rd reach the client first
            assert len(conns) == 2  # 3 requests per connection; the closed one was replaced, no error
            assert seen[0][0] == "GET /admin/snapshot?a=1 HTTP/1.1"
            assert seen[0][1]["authorization"] == "Bearer tok-1"
            # a POST carries its JSON body
            assert await client._call("POST", "/admin/members/a/state", json={"state": "drain"}) == {"n": 7}
            assert seen[-1][0].startswith("POST /admin/members/a/state ")
            assert json.loads(seen[-1][2]) == {"state": "drain"}

    asyncio.run(main())


def test_a_burst_of_calls_keeps_at_most_four_connections_open() -> None:
    async def main() -> None:
        open_now: set[asyncio.StreamWriter] = set()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            open_now.add(writer)
            try:
                while True:
                    await _read_request(reader)
                    await asyncio.sleep(0.05)  # slow enough that the burst needs one connection per call
                    writer.write(_answer(200, {"ok": True}))
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                open_now.discard(writer)
                writer.close()

        async with _endpoint(handler) as client:
            answers = await asyncio.gather(*(client._call("GET", "/admin/snapshot") for _ in range(10)))
            assert answers == [{"ok": True}] * 10
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(open_now) > 4 and loop.time() < deadline:  # noqa: ASYNC110 - the server side closing
                await asyncio.sleep(0.01)
            assert len(open_now) == 4  # the other six were closed by the client after their answer
            assert await client._call("GET", "/again") == {"ok": True}
            assert len(open_now) == 4  # and the next call reused one of the four

    asyncio.run(main())


def test_error_bodies_become_admin_errors() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line, _, _ = await _read_request(reader)
            if "nojson" in line:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            else:
                writer.write(_answer(401, {"error": {"message": "bad token", "problems": [{"field": "token"}]}},
                                     close=True))
            await writer.drain()
            writer.close()

        async with _endpoint(handler, "wrong") as client:
            with pytest.raises(AdminError) as err:
                await client.snapshot()
            assert err.value.status == 401 and "bad token" in str(err.value)
            assert err.value.problems == [{"field": "token"}]
            with pytest.raises(AdminError, match="not JSON"):
                await client._call("GET", "/nojson")

    asyncio.run(main())


def test_silent_endpoint_and_refused_port_are_unavailable() -> None:
    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)  # reads the request, never answers
            await asyncio.sleep(5)
            writer.close()

        loop = asyncio.get_running_loop()
        async with _endpoint(handler, answer_within=0.3) as client:
            t0 = loop.time()
            with pytest.raises(AdminUnavailable, match=r"no answer within 0\.3 s"):
                await client.snapshot()
            assert loop.time() - t0 < 2.0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: refused
            refused = AdminClient(f"http://127.0.0.1:{port}", "t")
            with pytest.raises(AdminUnavailable, match=re.escape("127.0.0.1")):
                await refused.snapshot()

    asyncio.run(main())


def test_bad_url_is_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="admin URL must be http"):
        AdminClient("ftp://127.0.0.1:1", "t")


def test_against_the_real_balancer(spawn: Callable[..., Any], tmp_path: Path) -> None:
    cfg = {"connectorID": "g", "owner": "o", "label": "g",
           "connectorGroup": {"connectionTimeout": 1, "retryDelay": 2, "loadBalancing": "Round Robin",
                              "members": [{"memberID": "a", "sequence": 1, "weight": 2}]},
           "endpoints": {"a": "127.0.0.1:9"}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "token").write_text("real-token\n")
    child = spawn([sys.executable, "-m", "balancedesk.gui.launcher", "balance", "--config", str(tmp_path / "cfg.json"),
                   "--listen", "127.0.0.1:0", "--mode", "tcp", "--admin", "127.0.0.1:0",
                   "--admin-token-file", str(tmp_path / "token")])
    url = child.wait_for(r"balancedesk: balancing \S+ admin (http://\S+)", timeout=30).group(1)

    async def main() -> None:
        client = AdminClient(url, "real-token")
        try:
            snap = await client.snapshot()
            assert [m.member_id for m in snap.members] == ["a"] and snap.members[0].weight == 2
            batch = await client.events(None, 10, newest=True)
            assert batch.newest and any(e.get("kind") == "config" for e in batch.events)
            await client.set_weight("a", 3)
            assert (await client.snapshot()).members[0].weight == 3
            with pytest.raises(AdminError) as err:
                await client.set_state("nobody", "drain")
            assert err.value.status == 404
            with pytest.raises(AdminError) as bad:
                await AdminClient(url, "wrong").snapshot()
            assert bad.value.status == 401
        finally:
            await client.aclose()

    asyncio.run(main())


def test_https_endpoint_verified_against_a_ca_file(tmp_path: Path) -> None:
    import ssl

    from tests.conftest import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)

    async def main() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                while True:
                    _, headers, _ = await _read_request(reader)
                    writer.write(_answer(200, {"auth": headers.get("authorization")}))
                    await writer.drain()
            writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            trusted = AdminClient(url, "tls-token", verify=str(cert))
            try:
                assert await trusted._call("GET", "/admin/snapshot") == {"auth": "Bearer tls-token"}
                assert await trusted._call("GET", "/admin/snapshot") == {"auth": "Bearer tls-token"}  # kept alive
                assert len(trusted._open) == 1
            finally:
                await trusted.aclose()
            untrusted = AdminClient(url, "tls-token")  # the system's CAs do not know a self-signed certificate
            with pytest.raises(AdminUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await untrusted.snapshot()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())
