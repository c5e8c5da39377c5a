"""A load-balancer installation: two management servers on one PostgreSQL behind a Balance Desk L7 balancer.

Everything reaches the API through the balancer (``balancedesk balance --config mgmt.json --mode http``, a
group whose members are the two servers): an admin's reads and If-Match writes, and a pool's balancer that
follows its change feed (long polls) and heartbeats. One management server is killed (SIGKILL) in the middle;
the admin goes on working, the following balancer applies the next change, and nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from balancedesk.core.mgmt.installation import HEALTH_PATH, front_config
from fleet_helpers import group_body, make_token, new_pool
from mgmt_helpers import ADMIN_PASSWORD, SERVE, Server

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

BALANCE = [*SERVE[:-1], "balance"]


def _wait(probe: Callable[[], Any], what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)  # polling interval of a condition wait
    return value


def test_the_api_behind_a_balancer_survives_a_server_killed(
    start_server: Callable[..., Server], spawn: Callable[..., Any], tmp_path: Path
) -> None:
    a = start_server(data=tmp_path / "a")
    b = start_server(data=tmp_path / "b", database=a.database)
    config = tmp_path / "mgmt.json"
    config.write_text(json.dumps(front_config([a.url, b.url])))
    front = spawn([*BALANCE, "--config", str(config), "--listen", "127.0.0.1:0", "--mode", "http",
                   "--data-plane", "asyncio"])  # it replays a PUT whose server died mid-request (README)
    url = "http://" + front.wait_for(r"balancedesk: balancing (127\.0\.0\.1:\d+)", timeout=30)[1]
    api = Server(url=url, data=tmp_path / "a", child=None, database=a.database)
    admin = httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=30)

    # a pool's balancer follows the pool through the front balancer
    pool = new_pool()
    token_file = tmp_path / "pool.token"
    token_file.write_text(make_token(api, pool) + "\n")
    members = [api.register(f"m{i}", "admin", port=9500 + i) for i in range(2)]
    listen_port = _free_port()
    r = admin.post("/api/mgmt/connectors", json=group_body(members, listener={"port": listen_port, "pool": pool}))
    assert r.status_code == 201, r.text
    gid, doc, etag = r.json()["connectorID"], r.json(), r.headers["ETag"]
    admin_token = tmp_path / "bal-admin.token"
    follower = spawn([*BALANCE, "--api", url, "--token-file", str(token_file), "--pool", pool, "--bind", "127.0.0.1",
                      "--admin", "127.0.0.1:0", "--admin-token-file", str(admin_token)])
    bal_admin = follower.wait_for(r"balancedesk: balancing \d+ groups.* admin (http://\S+)", timeout=30)[1]
    headers = {"Authorization": f"Bearer {admin_token.read_text().strip()}"}

    def applied() -> int:
        groups = httpx.get(f"{bal_admin}/admin/groups", headers=headers, timeout=15).json()["groups"]
        return max([int(g["version"]) for g in groups if g["connectorID"] == gid] or [0])

    def served() -> int:
        return int(admin.get(f"/api/admin/pools/{pool}/groups/{gid}").json()["version"])

    _wait(lambda: applied() == served(), "the pool's balancer serves the group")
    _wait(lambda: [x for x in admin.get("/api/admin/balancers").json()["balancers"] if x["pool"] == pool],
          "the pool's balancer is listed (its heartbeats go through the front balancer)")

    acked: list[str] = []
    for i in range(10):
        r = admin.post("/api/admin/connectors", json={"label": f"before-{i}", "owner": "admin",
                                                      "endpoint": f"127.0.0.1:{2000 + i}"})
        assert r.status_code == 201, r.text
        acked.append(r.json()["connectorID"])

    a.child.kill()  # one management server dies; nobody is told

    for i in range(10):
        r = admin.post("/api/admin/connectors", json={"label": f"after-{i}", "owner": "admin",
                                                      "endpoint": f"127.0.0.1:{3000 + i}"})
        assert r.status_code == 201, r.text
        acked.append(r.json()["connectorID"])
    put = admin.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "edited after the kill"},
                    headers={"If-Match": etag})
    assert put.status_code == 200, put.text
    stale = admin.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": "stale"}, headers={"If-Match": etag})
    assert stale.status_code == 412, stale.text
    listed = set(admin.get("/api/mgmt/connectors").json()["connectorIDs"])
    assert set(acked) <= listed
    _wait(lambda: applied() == served(), "the pool's balancer applies the change made after the kill")
    balancers = admin.get("/api/admin/balancers", params={"pool": pool}).json()["balancers"]
    assert [x["state"] for x in balancers] == ["alive"]
    admin.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_server_that_hangs_is_left_out_by_the_health_check(
    start_server: Callable[..., Server], spawn: Callable[..., Any], tmp_path: Path
) -> None:
    """A stopped server (SIGSTOP: it takes connections and never answers) fails its health checks and gets no
    new requests; once it answers again it is back. Nothing is asked of it meanwhile."""
    a = start_server(data=tmp_path / "a")
    b = start_server(data=tmp_path / "b", database=a.database)
    assert httpx.get(f"{a.url}{HEALTH_PATH}").json() == {"status": "ok"}
    config = tmp_path / "mgmt.json"
    config.write_text(json.dumps(front_config([a.url, b.url])))
    token_file = tmp_path / "front-admin.token"
    front = spawn([*BALANCE, "--config", str(config), "--listen", "127.0.0.1:0", "--mode", "http",
                   "--data-plane", "asyncio", "--admin", "127.0.0.1:0", "--admin-token-file", str(token_file)])
    m = front.wait_for(r"balancedesk: balancing (127\.0\.0\.1:\d+) admin (http://\S+)", timeout=30)
    url, front_admin = f"http://{m[1]}", m[2]
    _wait(token_file.exists, "the front's admin token file")
    auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}

    def state(member: str) -> dict[str, Any]:
        members = httpx.get(f"{front_admin}/admin/snapshot", headers=auth, timeout=10).json()["members"]
        return next(m for m in members if m["memberID"] == member)

    def checked(member: str) -> str:
        return str((state(member).get("check") or {}).get("state"))

    _wait(lambda: checked("mgmt-1") == "up" and (state("mgmt-1")["check"] or {}).get("ok") is True,
          "a's first good check")
    os.kill(a.child.pid, signal.SIGSTOP)
    try:
        _wait(lambda: checked("mgmt-1") == "down", "the front leaves the stopped server out", timeout=20)
        with httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=5) as admin:
            for _ in range(20):  # every one answered by b, none left waiting on a
                assert admin.get("/api/mgmt/whoami").status_code == 200
    finally:
        os.kill(a.child.pid, signal.SIGCONT)
    _wait(lambda: checked("mgmt-1") == "up", "a is back after its good checks", timeout=20)


def test_the_health_check_says_503_while_the_database_is_away(start_server: Callable[..., Server]) -> None:
    server = start_server()
    assert httpx.get(f"{server.url}{HEALTH_PATH}").status_code == 200
    assert server.database is not None
    name = server.database.rsplit("/", 1)[1]
    admin_url = server.database.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            r = httpx.get(f"{server.url}{HEALTH_PATH}")
            assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
        finally:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    _wait(lambda: httpx.get(f"{server.url}{HEALTH_PATH}").status_code == 200, "healthy again")
