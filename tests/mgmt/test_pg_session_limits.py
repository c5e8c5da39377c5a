"""One hung server cannot stop the others (core/mgmt/database.py: SessionLimits).

Real PostgreSQL. A write that finds the write lock held answers 503 with Retry-After after the lock timeout,
instead of hanging the server; a session that sits idle inside a transaction (a server stopped mid-write)
is ended by PostgreSQL, so the lock comes back to the others; the limits are the ones every connection gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from balancedesk.core.mgmt.database import WRITE_LOCK, PostgresDatabase, SessionLimits
from fleet_helpers import group_body
from mgmt_helpers import Server

ON_POSTGRESQL = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)


def test_the_limits_are_sent_as_session_options() -> None:
    args = SessionLimits(lock_timeout_s=2, idle_in_transaction_s=3.5, statement_timeout_s=4).connect_args()
    assert args["options"] == ("-c lock_timeout=2000 -c idle_in_transaction_session_timeout=3500 "
                               "-c statement_timeout=4000")
    assert args["keepalives"] == 1 and args["connect_timeout"] == SessionLimits().connect_timeout_s


@ON_POSTGRESQL
def test_every_connection_has_them(start_server: Callable[..., Server], tmp_path: Path) -> None:
    server = start_server(data=tmp_path / "a")
    assert server.database is not None
    db = PostgresDatabase(server.database)
    try:
        shown = {name: db.execute(f"SHOW {name}").fetchone()[0]
                 for name in ("lock_timeout", "idle_in_transaction_session_timeout", "statement_timeout")}
        limits = SessionLimits()
        assert shown == {"lock_timeout": f"{int(limits.lock_timeout_s)}s",
                         "idle_in_transaction_session_timeout": f"{int(limits.idle_in_transaction_s)}s",
                         "statement_timeout": f"{int(limits.statement_timeout_s)}s"}
    finally:
        db.close()


@ON_POSTGRESQL
def test_a_write_behind_a_stuck_lock_holder_answers_503_and_the_next_one_works(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(data=tmp_path / "a")
    assert server.database is not None
    members = [server.register(f"lock-m{i}", "admin", port=9400 + i) for i in range(2)]
    holder = psycopg.connect(server.database, autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))  # a server stuck mid-write
        t0 = time.monotonic()
        r = server.admin.post("/api/mgmt/connectors", json=group_body(members, label="behind-the-lock"))
        waited = time.monotonic() - t0
        assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
        assert "database" in r.json()["error"]["message"]["value"]
        assert waited < SessionLimits().lock_timeout_s + 10  # bounded by the lock timeout, not by the holder
        assert server.admin.get("/api/mgmt/whoami").status_code == 200  # reads go on meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = server.admin.post("/api/mgmt/connectors", json=group_body(members, label="after-the-lock"))
    assert r.status_code == 201, r.text


@ON_POSTGRESQL
def test_a_session_idle_inside_a_transaction_is_ended_and_gives_the_lock_back(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = start_server(data=tmp_path / "a")  # a migrated database
    assert server.database is not None
    quick = SessionLimits(idle_in_transaction_s=1.0, lock_timeout_s=20.0)
    stuck, other = PostgresDatabase(server.database, quick), PostgresDatabase(server.database, quick)
    try:
        stuck.begin_write()  # takes the lock, then does nothing (its process "stopped")
        t0 = time.monotonic()
        other.begin_write()  # waits; PostgreSQL ends the idle session after 1 s and the lock is free
        assert time.monotonic() - t0 < 15
        other.commit()
        with pytest.raises(stuck.unavailable_errors):  # the stopped one finds its session gone: a 503, then
            stuck.execute("SELECT 1")
            stuck.commit()
        assert stuck.execute("SELECT 1").fetchone()[0] == 1  # … its next request reconnects
    finally:
        stuck.close()
        other.close()
