"""Several ``balancedesk serve`` processes on one PostgreSQL database behave as one server.

Two real servers (separate processes, separate data folders) on one fresh database of the session's cluster:
a write acknowledged by one is read by the other at once; a stale ETag is refused across servers (and two
concurrent PUTs with one ETag give exactly one 200); users and tokens are shared; a balancer that follows one
server applies a change made on the other (woken by NOTIFY, well before its long poll ends); every server
lists every balancer; ``kill -9`` of one server under a write loop loses no acknowledged write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fleet_helpers import as_token, group_body, heartbeat_body, make_token, new_pool
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, Server

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

StartServer = Callable[..., Server]


def two_servers(start_server: StartServer, tmp_path: Path) -> tuple[Server, Server]:
    a = start_server(data=tmp_path / "a")
    assert a.database is not None
    b = start_server(data=tmp_path / "b", database=a.database)
    return a, b


def _group(server: Server, label: str = "g", **listener: Any) -> tuple[str, dict[str, Any], str]:
    members = [server.register(f"{label}-m{i}", "admin", port=9300 + i) for i in range(2)]
    body = group_body(members, label=label, listener=listener or None)
    r = server.admin.post("/api/mgmt/connectors", json=body)
    assert r.status_code == 201, r.text
    return r.json()["connectorID"], r.json(), r.headers["ETag"]


def test_a_write_on_one_server_is_read_on_the_other_at_once(start_server: StartServer, tmp_path: Path) -> None:
    a, b = two_servers(start_server, tmp_path)
    gid, doc, etag = _group(a)
    for _ in range(2):  # the second read may come from b's cache: it must still be the latest
        got = b.admin.get(f"/api/mgmt/connectors/{gid}")
        assert got.status_code == 200 and got.json() == doc and got.headers["ETag"] == etag
    put = a.admin.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "renamed"}, headers={"If-Match": etag})
    assert put.status_code == 200, put.text
    got = b.admin.get(f"/api/mgmt/connectors/{gid}")
    assert got.json()["label"] == "renamed" and got.headers["ETag"] == put.headers["ETag"] != etag
    listed = b.admin.get("/api/mgmt/connectors", params={"details": "true"}).json()["connectors"]
    assert [c["label"] for c in listed if c["connectorID"] == gid] == ["renamed"]
    assert b.admin.delete(f"/api/mgmt/connectors/{gid}").status_code in (200, 204)
    assert a.admin.get(f"/api/mgmt/connectors/{gid}").status_code == 404


def test_a_stale_etag_is_refused_across_servers(start_server: StartServer, tmp_path: Path) -> None:
    a, b = two_servers(start_server, tmp_path)
    gid, doc, etag = _group(a)
    url = f"/api/mgmt/connectors/{gid}"
    assert b.admin.get(url).headers["ETag"] == etag
    first = a.admin.put(url, json={**doc, "label": "by a"}, headers={"If-Match": etag})
    assert first.status_code == 200, first.text
    second = b.admin.put(url, json={**doc, "label": "by b"}, headers={"If-Match": etag})
    assert second.status_code == 412, second.text
    assert a.admin.get(url).json()["label"] == "by a"

    # two admins on two servers, one ETag, at the same moment: exactly one wins, every round
    for n in range(10):
        current = a.admin.get(url)
        tag, body = current.headers["ETag"], current.json()
        start = threading.Barrier(2)

        def put(server: Server, label: str, tag: str = tag, body: dict[str, Any] = body,
                start: threading.Barrier = start) -> int:
            client = httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=15)
            with client:
                start.wait(15)
                return client.put(url, json={**body, "label": label}, headers={"If-Match": tag}).status_code

        with ThreadPoolExecutor(2) as pool:
            codes = sorted(pool.map(lambda sl: put(*sl), [(a, f"a{n}"), (b, f"b{n}")]))
        assert codes == [200, 412], (n, codes)
        assert b.admin.get(url).json()["label"] in (f"a{n}", f"b{n}")


def test_users_and_tokens_are_shared(start_server: StartServer, tmp_path: Path) -> None:
    a, b = two_servers(start_server, tmp_path)
    a.add_user("carol")
    assert b.as_user("carol").get("/api/mgmt/whoami").json()["user"] == "carol"
    assert b.admin.put("/api/admin/users/carol", json={"active": False}).status_code == 200
    assert httpx.get(f"{a.url}/api/mgmt/whoami", auth=("carol", PASSWORD)).status_code == 401
    pool = new_pool()
    token = make_token(a, pool)
    token_id = token.split("_")[1]
    assert as_token(b, token).get(f"/api/admin/pools/{pool}/groups").status_code == 200
    assert b.admin.delete(f"/api/admin/tokens/{token_id}").status_code == 200
    assert as_token(a, token).get(f"/api/admin/pools/{pool}/groups").status_code == 401


def test_the_feed_on_one_server_wakes_for_a_change_on_the_other(start_server: StartServer, tmp_path: Path) -> None:
    a, b = two_servers(start_server, tmp_path)
    pool = new_pool()
    token = make_token(a, pool)
    follower = as_token(b, token)
    start = follower.get(f"/api/admin/pools/{pool}/groups").json()
    answer: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        r = follower.get(f"/api/admin/pools/{pool}/changes",
                         params={"cursor": start["cursor"], "wait": 30, "store": start["storeID"]}, timeout=60)
        answer.update(r.json(), elapsed=time.monotonic() - t0)

    waiter = threading.Thread(target=poll)
    waiter.start()
    # the poll is held on b before the change: b's changes endpoint answers only once it has one
    gid, _, _ = _group(a, "fed", port=7000, pool=pool)
    waiter.join(60)
    assert not waiter.is_alive()
    assert [c["connectorID"] for c in answer["changes"]] == [gid], answer
    assert answer["elapsed"] < 20, answer  # woken by the commit on a (NOTIFY), not by the end of the wait


def test_a_balancer_following_one_server_applies_a_change_made_on_the_other(
    start_server: StartServer, tmp_path: Path, spawn: Callable[..., Any]
) -> None:
    from mgmt_helpers import SERVE

    a, b = two_servers(start_server, tmp_path)
    pool = new_pool()
    token = make_token(a, pool)
    gid, doc, etag = _group(a, "lb", port=_free_port(), pool=pool)
    token_file = tmp_path / "pool.token"
    token_file.write_text(token + "\n")
    admin_file = tmp_path / "admin.token"
    balancer = spawn([*SERVE[:-1], "balance", "--api", b.url, "--token-file", str(token_file), "--pool", pool,
                      "--bind", "127.0.0.1", "--admin", "127.0.0.1:0", "--admin-token-file", str(admin_file)])
    admin_url = balancer.wait_for(r"balancedesk: balancing \d+ groups.* admin (http://\S+)", timeout=30)[1]
    headers = {"Authorization": f"Bearer {admin_file.read_text().strip()}"}

    def applied() -> int:
        groups = httpx.get(f"{admin_url}/admin/groups", headers=headers, timeout=15).json()["groups"]
        return max([int(g["version"]) for g in groups if g["connectorID"] == gid] or [0])

    def served() -> int:
        return int(a.admin.get(f"/api/admin/pools/{pool}/groups/{gid}").json()["version"])

    first = served()
    _wait(lambda: applied() == first, "the balancer serves the group")
    put = a.admin.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "lb renamed"}, headers={"If-Match": etag})
    assert put.status_code == 200, put.text
    assert served() > first
    _wait(lambda: applied() == served(), "the balancer applies the change made on the other server")

    # it heartbeats to b; a lists it too (the registry is in the database)
    _wait(lambda: any(x["pool"] == pool for x in a.admin.get("/api/admin/balancers").json()["balancers"]),
          "the balancer is listed by the server it does not talk to")
    (listed,) = [x for x in a.admin.get("/api/admin/balancers").json()["balancers"] if x["pool"] == pool]
    assert listed["state"] == "alive" and listed["hasAdminToken"] is True
    via_a = a.admin.get(f"/api/admin/balancers/{listed['instanceID']}/admin").json()
    assert via_a["adminURL"] == admin_url


def test_every_server_lists_every_balancer(start_server: StartServer, tmp_path: Path) -> None:
    a, b = two_servers(start_server, tmp_path)
    pool = new_pool()
    token = make_token(a, pool)
    for server, iid in ((a, "bal-a"), (b, "bal-b")):
        r = as_token(server, token).post("/api/admin/balancers/heartbeat", json=heartbeat_body(iid))
        assert r.status_code == 200, r.text
    for server in (a, b):
        listed = server.admin.get("/api/admin/balancers", params={"pool": pool}).json()["balancers"]
        assert sorted(x["instanceID"] for x in listed) == ["bal-a", "bal-b"]
    assert a.admin.delete("/api/admin/balancers/bal-b").status_code == 200
    assert [x["instanceID"] for x in b.admin.get("/api/admin/balancers", params={"pool": pool}).json()["balancers"]] \
        == ["bal-a"]


def test_kill_9_of_one_server_under_a_write_loop_loses_no_acknowledged_write(
    start_server: StartServer, tmp_path: Path
) -> None:
    a, b = two_servers(start_server, tmp_path)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    enough = threading.Event()

    def writer(server: Server, n: int) -> None:
        with httpx.Client(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=15) as client:
            for i in range(2000):  # bounded; ends at stop, or when its server is gone
                if stop.is_set():
                    return
                body = {"label": f"w{n}-{i}", "owner": "admin", "endpoint": f"127.0.0.1:{1000 + i}"}
                try:
                    r = client.post("/api/admin/connectors", json=body)
                except httpx.TransportError:
                    return
                assert r.status_code == 201, r.text
                with lock:
                    acked.append(r.json()["connectorID"])
                    if len(acked) >= 60:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(s, n)) for n, s in enumerate((a, a, a, b, b))]
    for t in threads:
        t.start()
    assert enough.wait(120), f"only {len(acked)} writes acknowledged"
    a.child.kill()  # SIGKILL, mid-loop: a's writers are still sending
    time.sleep(0)  # (no wait: b's writers go on against the survivor)
    with lock:
        at_kill = len(acked)
    _wait(lambda: len(acked) >= at_kill + 20, "the other server keeps acknowledging writes")
    stop.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    listed = set(b.admin.get("/api/mgmt/connectors").json()["connectorIDs"])
    missing = [cid for cid in acked if cid not in listed]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost"
    assert b.database is not None
    with psycopg.connect(b.database) as conn:  # consistent: no half-written request, no lock left behind
        assert conn.execute("SELECT COUNT(*) FROM connectors").fetchone()[0] == len(listed)
        assert conn.execute("SELECT COUNT(*) FROM members m LEFT JOIN connectors c ON c.id = m.member_id "
                            "WHERE c.id IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0
    again = start_server(data=tmp_path / "a", database=a.database)
    assert set(again.admin.get("/api/mgmt/connectors").json()["connectorIDs"]) == listed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(probe: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)  # polling interval of a condition wait


def test_a_server_reconnects_after_its_database_connections_are_cut(
    start_server: StartServer, tmp_path: Path
) -> None:
    a, b = two_servers(start_server, tmp_path)
    assert a.database is not None
    assert a.admin.get("/api/mgmt/whoami").status_code == 200
    name = a.database.rsplit("/", 1)[1]
    admin_url = a.database.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:  # what a database restart or failover does
        cut = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                           "AND pid <> pg_backend_pid()", (name,)).fetchall()
    assert len(cut) >= 2  # each server's connection (LISTEN ones start with the first long poll)
    assert a.admin.get("/api/mgmt/whoami").status_code == 200
    cid = a.register("after-the-cut", "admin", port=9600)
    assert b.admin.get(f"/api/mgmt/connectors/{cid}").status_code == 200
