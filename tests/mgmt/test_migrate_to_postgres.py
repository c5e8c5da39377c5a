"""``serve --migrate-from sqlite:PATH --database postgresql://…`` and the schema-version rules of both engines.

A real SQLite server is filled through the API (users, plain connectors, groups with members, listeners and
authorized users, edits that raise revisions, a deleted group, a balancer token), killed, and its store
copied into a fresh PostgreSQL database; a server on PostgreSQL then answers every connector with the same
document and ETag, the same users (who log in with their passwords), the same token, and the same change-log
position (a balancer's cursor follows on without a resync). A second copy into the now non-empty database is
refused, and the source file is left as it was. A database newer than the program is refused, unchanged.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from balancedesk.core.mgmt.store import MIGRATIONS, Store, StoreError
from balancedesk.core.model import ListenerSettings
from fleet_helpers import as_token, group_body, make_token, new_pool
from mgmt_helpers import ADMIN_PASSWORD, PASSWORD, SERVE, SERVING_RX, Server
from pg_cluster import Cluster
from released_schemas import make_released_store

StartServer = Callable[..., Server]


def _sqlite_server(spawn: Callable[..., Any], folder: Path) -> Server:
    child = spawn([*SERVE, "--port", "0", "--data", str(folder)], env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    return Server(url=child.wait_for(SERVING_RX, timeout=30).group(1), data=folder, child=child)


def _fill(s: Server) -> tuple[str, str]:
    """Users, connectors and groups of every kind; returns (pool, token)."""
    alice = s.add_user("alice")
    s.add_user("root2", role="Administrator")
    pool = new_pool()
    plain = [s.register(f"p{i}", "alice", port=9400 + i) for i in range(6)]
    for n in range(2):
        listener = {"port": 7100 + n, "mode": "http", "pool": pool} if n == 0 else None
        r = alice.post("/api/mgmt/connectors", json=group_body(plain[3 * n: 3 * n + 3], label=f"g{n}",
                                                                 listener=listener))
        assert r.status_code == 201, r.text
        gid, doc = r.json()["connectorID"], r.json()
        for k in range(n + 2):  # revisions above 1
            r = alice.put(f"/api/mgmt/connectors/{gid}", json={**doc, "label": f"g{n}.{k}"},
                          headers={"If-Match": r.headers["ETag"]})
            assert r.status_code == 200, r.text
        assert alice.post(f"/api/mgmt/connectors/{gid}/authuser", json={"authUser": ["root2"]}).status_code == 200
    gone = alice.post("/api/mgmt/connectors", json=group_body([s.register("x", "alice", port=9499)], label="gone",
                                                              listener={"port": 7199, "mode": "tcp", "pool": pool}))
    assert alice.delete(f"/api/mgmt/connectors/{gone.json()['connectorID']}").status_code in (200, 204)
    return pool, make_token(s, pool)


def _everything(s: Server) -> dict[str, Any]:
    ids = s.admin.get("/api/mgmt/connectors").json()["connectorIDs"]
    got = {cid: s.admin.get(f"/api/mgmt/connectors/{cid}") for cid in ids}
    return {
        "connectors": {cid: (r.json(), r.headers["ETag"]) for cid, r in got.items()},
        "details": s.admin.get("/api/mgmt/connectors", params={"details": "true"}).json(),
        "users": s.admin.get("/api/admin/users").json(),
    }


def _migrate(source: Path, database: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, "--migrate-from", f"sqlite:{source}", "--database", database],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_sqlite_store_moves_into_postgresql_whole(
    spawn: Callable[..., Any], start_server: StartServer, tmp_path: Path, pg_cluster: Cluster
) -> None:
    old = _sqlite_server(spawn, tmp_path / "old")
    pool, token = _fill(old)
    before = _everything(old)
    feed_before = as_token(old, token).get(f"/api/admin/pools/{pool}/groups").json()
    assert len(before["connectors"]) == 9 and len(before["users"]["users"]) == 3
    old.child.kill()  # SIGKILL: what was acknowledged is in the file (or its WAL)
    source = tmp_path / "old" / "balancedesk.sqlite3"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    database = pg_cluster.new_database()
    done = _migrate(source, database)
    assert done.returncode == 0, done.stderr
    assert "checked it" in done.stdout and "9 connectors" in done.stdout and "3 users" in done.stdout, done.stdout
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest  # the source is not touched

    new = start_server(data=tmp_path / "new", database=database)
    assert _everything(new) == before  # every connector's document and ETag, the listing, the users
    assert httpx.get(f"{new.url}/api/mgmt/whoami", auth=("alice", PASSWORD)).status_code == 200
    follower = as_token(new, token)  # the same token works
    assert follower.get(f"/api/admin/pools/{pool}/groups").json() == feed_before
    feed = follower.get(f"/api/admin/pools/{pool}/changes",
                        params={"cursor": feed_before["cursor"], "store": feed_before["storeID"]}).json()
    assert feed["resync"] is False and feed["changes"] == []

    again = _migrate(source, database)
    assert again.returncode == 1 and "not empty" in again.stderr, again.stderr
    assert _everything(new) == before


def test_migrate_from_refuses_what_it_cannot_do(tmp_path: Path, pg_cluster: Cluster) -> None:
    missing = _migrate(tmp_path / "nothing.sqlite3", pg_cluster.new_database())
    assert missing.returncode == 1 and "no SQLite store" in missing.stderr
    no_target = subprocess.run([*SERVE, "--migrate-from", f"sqlite:{tmp_path}/x"], capture_output=True, text=True,
                               timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert no_target.returncode == 1 and "--database postgresql://" in no_target.stderr


def _serve_fails(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*SERVE, "--port", "0", *args], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    assert r.returncode == 1, (r.stdout, r.stderr)
    return r


def test_a_newer_sqlite_store_is_refused_unchanged(tmp_path: Path) -> None:
    Store(tmp_path / "balancedesk.sqlite3").close()
    db = sqlite3.connect(tmp_path / "balancedesk.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.close()
    digest = hashlib.sha256((tmp_path / "balancedesk.sqlite3").read_bytes()).hexdigest()
    r = _serve_fails("--data", str(tmp_path))
    assert "schema version 99, newer than this Balance Desk" in r.stderr and "Nothing was changed" in r.stderr
    assert hashlib.sha256((tmp_path / "balancedesk.sqlite3").read_bytes()).hexdigest() == digest
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "balancedesk.sqlite3")


def test_a_newer_postgresql_database_is_refused_unchanged(tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.new_database()
    Store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    r = _serve_fails("--data", str(tmp_path), "--database", url)
    assert "schema version 99, newer than this Balance Desk" in r.stderr, r.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == 99
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0  # no admin was made


def test_an_unreachable_database_is_one_clear_line(tmp_path: Path, pg_cluster: Cluster) -> None:
    url = f"postgresql://bd:secret-pw@127.0.0.1:{pg_cluster.port}/no_such_db"
    r = _serve_fails("--data", str(tmp_path), "--database", url)
    assert "cannot connect to the database" in r.stderr and "secret-pw" not in r.stderr, r.stderr


def test_a_store_made_by_the_previous_release_upgrades_keeping_etags(tmp_path: Path) -> None:
    path = tmp_path / "balancedesk.sqlite3"
    db = make_released_store(path, 2)
    db.execute("INSERT INTO users (name, pw_hash, role, active, created) VALUES ('u', 'h', 'User', 1, 1.0)")
    db.execute("INSERT INTO connectors (id, owner, label, endpoint, is_group, rev, created, modified) "
               "VALUES ('m', 'u', 'm', '127.0.0.1:1', 0, 1, 1.0, 1.0)")
    listener = json.dumps(ListenerSettings.model_validate({"port": 7000, "mode": "tcp", "pool": "p"}).to_json())
    db.execute("INSERT INTO connectors (id, owner, label, is_group, connection_timeout, retry_delay, rev, created, "
               "modified, listener) VALUES ('g', 'u', 'g', 1, 15, 120, 4, 2.0, 2.0, ?)", (listener,))
    db.execute("INSERT INTO members (group_id, member_id, sequence, weight, pos) VALUES ('g', 'm', 1, 1, 0)")
    db.execute("INSERT INTO auth_users (connector_id, user, pos) VALUES ('g', 'u', 0)")
    db.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        got = store.get("g")
        assert got is not None and got.rev == 4 and got.etag.startswith('"4-')
        assert got.document["authUser"] == ["u"] and got.document["listener"]["port"] == 7000
        plain = store.get("m")
        assert plain is not None and plain.group_id == "g"
        assert store.list_details(owner="u", shared_with="u") == [plain.document, got.document]
    finally:
        store.close()
