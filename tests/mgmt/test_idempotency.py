"""Idempotency keys (core/mgmt/idempotency.py): a write sent twice with one key is applied once.

Pure rules with explicit ``now``; then a real server on both engines (a replayed POST creates one group and
answers the first answer again; a key reused for another request is a 422; a malformed key a 400; a refusal
is not remembered); then the client's retry end to end: a real TCP relay in front of the server forwards the
first attempt, lets the server commit it, and breaks the connection before the answer reaches the client — the
client sends it again and the server applies it once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from balancedesk.core.client import MgmtClient
from balancedesk.core.mgmt import idempotency
from balancedesk.core.mgmt.errors import ApiFailure
from balancedesk.core.model import Connector, ConnectorGroup, Member
from fleet_helpers import group_body
from mgmt_helpers import ADMIN_PASSWORD, Server

KEY = idempotency.HEADER

# -- the pure rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", " a", "a b", "é", "x" * (idempotency.KEY_MAX + 1), "tab\there"])
def test_a_malformed_key_is_refused_naming_the_header(key: str) -> None:
    with pytest.raises(ApiFailure) as caught:
        idempotency.key_of({KEY.lower(): key})
    assert caught.value.status == 400 and caught.value.problems[0].field == KEY


def test_keys_and_fingerprints() -> None:
    assert idempotency.key_of({}) is None
    assert idempotency.key_of({KEY.lower(): "x" * idempotency.KEY_MAX}) == "x" * idempotency.KEY_MAX
    one = idempotency.fingerprint("post", "/p", "", None, {"a": 1, "b": [1, 2]})
    assert one == idempotency.fingerprint("POST", "/p", "", None, {"b": [1, 2], "a": 1})  # key order is not meaning
    for other in (
        idempotency.fingerprint("PUT", "/p", "", None, {"a": 1, "b": [1, 2]}),
        idempotency.fingerprint("POST", "/q", "", None, {"a": 1, "b": [1, 2]}),
        idempotency.fingerprint("POST", "/p", "user=x", None, {"a": 1, "b": [1, 2]}),
        idempotency.fingerprint("POST", "/p", "", '"1-ab"', {"a": 1, "b": [1, 2]}),
        idempotency.fingerprint("POST", "/p", "", None, {"a": 1, "b": [2, 1]}),
    ):
        assert other != one
    assert idempotency.principal("admin", None) != idempotency.principal("admin", "admin")


def test_a_key_is_kept_for_its_time_and_replays_only_its_own_request() -> None:
    answer = idempotency.Answer(201, b"{}", '"1-x"')
    kept = idempotency.Remembered("f1", answer, created=1000.0)
    assert not idempotency.expired(kept, now=1000.0 + idempotency.KEEP_S - 1)
    assert idempotency.expired(kept, now=1000.0 + idempotency.KEEP_S)
    assert idempotency.check_replay(kept, "f1") is answer
    with pytest.raises(ApiFailure) as caught:
        idempotency.check_replay(kept, "f2")
    assert caught.value.status == 422 and caught.value.problems[0].field == KEY
    assert idempotency.storable(answer) and not idempotency.storable(idempotency.Answer(412, b"{}"))


# -- a real server, both engines ----------------------------------------------------------------------------


def _members(server: Server, n: int = 2) -> list[str]:
    return [server.register(f"idem-m{i}", "admin", port=9300 + i) for i in range(n)]


def _group_count(admin: httpx.Client, label: str) -> int:
    listing = admin.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    return sum(1 for c in listing if c["label"] == label)


def test_a_repeated_post_creates_one_group_and_answers_the_first_answer(server: Server) -> None:
    admin = server.admin
    body = group_body(_members(server), label="idem-once")
    first = admin.post("/api/mgmt/connectors", json=body, headers={KEY: "k-create-1"})
    assert first.status_code == 201, first.text
    again = admin.post("/api/mgmt/connectors", json=body, headers={KEY: "k-create-1"})
    assert again.status_code == 201
    assert again.json() == first.json() and again.headers["etag"] == first.headers["etag"]
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert idempotency.REPLAYED_HEADER.lower() not in first.headers
    assert _group_count(admin, "idem-once") == 1

    # the same key for another request: refused, naming the header, nothing created
    other = admin.post("/api/mgmt/connectors", json={**body, "label": "idem-other"}, headers={KEY: "k-create-1"})
    assert other.status_code == 422
    assert other.json()["error"]["problems"][0]["field"] == KEY
    assert _group_count(admin, "idem-other") == 0

    # a key belongs to its caller: another user's equal key is another key
    server.add_user("idem-bob")
    bob = server.as_user("idem-bob")
    his = [server.register(f"idem-b{i}", "idem-bob", port=9310 + i) for i in range(2)]
    mine = bob.post("/api/mgmt/connectors", json=group_body(his, label="idem-bobs"), headers={KEY: "k-create-1"})
    assert mine.status_code == 201 and idempotency.REPLAYED_HEADER.lower() not in mine.headers


def test_a_malformed_key_gets_a_400_and_changes_nothing(server: Server) -> None:
    admin = server.admin
    body = group_body(_members(server), label="idem-bad-key")
    r = admin.post("/api/mgmt/connectors", json=body, headers={KEY: "has space"})
    assert r.status_code == 400 and r.json()["error"]["problems"][0]["field"] == KEY
    assert _group_count(admin, "idem-bad-key") == 0


def test_a_refusal_is_not_remembered_and_a_put_is_replayed_not_refused(server: Server) -> None:
    admin = server.admin
    created = admin.post("/api/mgmt/connectors", json=group_body(_members(server), label="idem-put"))
    gid, etag = created.json()["connectorID"], created.headers["etag"]
    doc = created.json()
    doc["label"] = "idem-put-2"
    stale = admin.put(f"/api/mgmt/connectors/{gid}", json=doc, headers={KEY: "k-put-stale", "If-Match": '"9-x"'})
    assert stale.status_code == 412
    # the same key and request again: run again (a refusal stored nothing), the same 412
    assert admin.put(f"/api/mgmt/connectors/{gid}", json=doc,
                     headers={KEY: "k-put-stale", "If-Match": '"9-x"'}).status_code == 412

    put = admin.put(f"/api/mgmt/connectors/{gid}", json=doc, headers={KEY: "k-put-1", "If-Match": etag})
    assert put.status_code == 200
    # sent again with the If-Match it had (now stale): without the key this would be a 412; with it, the answer
    again = admin.put(f"/api/mgmt/connectors/{gid}", json=doc, headers={KEY: "k-put-1", "If-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] == put.headers["etag"]
    assert admin.get(f"/api/mgmt/connectors/{gid}").headers["etag"] == put.headers["etag"]  # one revision

    gone = admin.delete(f"/api/mgmt/connectors/{gid}", headers={KEY: "k-del-1"})
    assert gone.status_code == 200
    assert admin.delete(f"/api/mgmt/connectors/{gid}", headers={KEY: "k-del-1"}).status_code == 200  # not a 404
    assert admin.delete(f"/api/mgmt/connectors/{gid}", headers={KEY: "k-del-2"}).status_code == 404


def _put(server: Server, gid: str, doc: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return server.admin.put(f"/api/mgmt/connectors/{gid}", json=doc, headers=headers)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)  # several servers share one database
def test_a_key_stored_by_one_server_is_replayed_by_another(start_server: Any, tmp_path: Any) -> None:
    a = start_server(data=tmp_path / "a")
    b = start_server(data=tmp_path / "b", database=a.database)
    body = group_body(_members(a), label="idem-two-servers")
    first = a.admin.post("/api/mgmt/connectors", json=body, headers={KEY: "k-two"})
    again = b.admin.post("/api/mgmt/connectors", json=body, headers={KEY: "k-two"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert _group_count(b.admin, "idem-two-servers") == 1

    # one key sent to both servers at once, ten times: each time one revision, one ETag, both answered 200
    gid = first.json()["connectorID"]
    for round_ in range(10):
        current = a.admin.get(f"/api/mgmt/connectors/{gid}")
        doc, etag = current.json(), current.headers["etag"]
        doc["label"] = f"idem-round-{round_}"
        headers = {KEY: f"k-race-{round_}", "If-Match": etag}
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(_put, (a, b), (gid, gid), (doc, doc), (headers, headers)))
        assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
        assert answers[0].headers["etag"] == answers[1].headers["etag"]
        assert sorted(r.headers.get(idempotency.REPLAYED_HEADER, "") for r in answers) == ["", "true"]
        rev = int(answers[0].headers["etag"].strip('"').split("-")[0])
        assert rev == int(etag.strip('"').split("-")[0]) + 1  # applied once


# -- the client's retry, through a relay that loses the first answer ------------------------------------------


class LosingRelay:
    """A TCP relay on 127.0.0.1 in front of ``upstream``: on the first connection it forwards the request,
    reads the server's whole answer (so the write is committed), and closes the client's connection without
    relaying it; later connections are relayed both ways."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        self.connections = 0
        self.lost_answers: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="losing-relay", daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, sock=sock))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        if self.connections == 1:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            up_writer.write(head + await reader.readexactly(length))
            await up_writer.drain()
            answer_head = await up_reader.readuntil(b"\r\n\r\n")
            n = next(int(line.split(b":", 1)[1]) for line in answer_head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:"))
            self.lost_answers.append(answer_head + await up_reader.readexactly(n))
            for w in (writer, up_writer):
                w.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def __enter__(self) -> LosingRelay:
        self._thread.start()
        assert self._ready.wait(10), "the relay did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def relay(server: Server) -> Iterator[LosingRelay]:
    with LosingRelay(server.url) as r:
        yield r


def test_the_client_resends_a_write_whose_answer_was_lost_and_it_is_applied_once(
    server: Server, relay: LosingRelay
) -> None:
    ids = _members(server)
    group = Connector(label="idem-client", owner="admin", connector_group=ConnectorGroup(
        members=tuple(Member(member_id=m, sequence=i + 1, weight=1) for i, m in enumerate(ids))))

    async def create() -> tuple[Connector, str]:
        async with MgmtClient(f"http://127.0.0.1:{relay.port}", "admin", ADMIN_PASSWORD) as client:
            return await client.create_group(group)

    created, etag = asyncio.run(create())
    assert relay.connections == 2
    assert relay.lost_answers and relay.lost_answers[0].startswith(b"HTTP/1.1 201")  # the first try was applied
    assert _group_count(server.admin, "idem-client") == 1  # … and the second did not apply it again
    assert server.admin.get(f"/api/mgmt/connectors/{created.connector_id}").headers["etag"] == etag


def test_a_password_change_whose_answer_was_lost_is_confirmed_with_the_new_password(
    server: Server, relay: LosingRelay
) -> None:
    """The resent request carries the old password, which the first attempt changed: a 401 the client
    settles by asking with the new one."""
    new_password = "a-new-admin-password-1"

    async def change() -> Any:
        async with MgmtClient(f"http://127.0.0.1:{relay.port}", "admin", ADMIN_PASSWORD) as client:
            return await client.update_user("admin", password=new_password)

    user = asyncio.run(change())
    assert user.name == "admin" and user.role == "Administrator" and user.active
    assert relay.connections == 2 and relay.lost_answers[0].startswith(b"HTTP/1.1 200")
    assert httpx.get(f"{server.url}/api/mgmt/whoami", auth=("admin", new_password)).status_code == 200
    assert httpx.get(f"{server.url}/api/mgmt/whoami", auth=("admin", ADMIN_PASSWORD)).status_code == 401


def test_the_openapi_document_shows_the_header_on_the_keyed_writes(server: Server) -> None:
    doc = server.anonymous().get("/openapi.json").json()

    def names(path: str, method: str) -> list[str]:
        return [p["name"] for p in doc["paths"][path][method].get("parameters", [])]

    assert KEY in names("/api/mgmt/connectors", "post")
    assert KEY in names("/api/mgmt/connectors/{connector_id}", "put")
    assert KEY in names("/api/admin/users/{name}", "put")
    assert KEY not in names("/api/admin/tokens", "post")  # its answer holds a secret: not kept
    assert KEY not in names("/api/mgmt/connectors/{connector_id}", "get")
