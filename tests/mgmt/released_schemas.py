"""The SQLite schemas as released, verbatim (never edit): tests build stores "made by an earlier version" from them
and check that today's :class:`~balancedesk.core.mgmt.store.Store` opens and upgrades them unchanged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

RELEASED_SCHEMAS: tuple[str, ...] = (
    # 1: users, connectors (plain and groups), members, authorized users
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        pw_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('Administrator', 'User')),
        active INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL
    );
    CREATE TABLE connectors (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        label TEXT NOT NULL,
        endpoint TEXT,
        is_group INTEGER NOT NULL,
        connection_timeout INTEGER,
        retry_delay INTEGER,
        load_balancing TEXT,
        rev INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL,
        modified REAL NOT NULL
    );
    CREATE INDEX connectors_owner ON connectors (owner);
    CREATE TABLE members (
        group_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        member_id TEXT NOT NULL UNIQUE REFERENCES connectors (id),
        sequence INTEGER NOT NULL,
        weight INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (group_id, member_id),
        UNIQUE (group_id, sequence)
    );
    CREATE TABLE auth_users (
        connector_id TEXT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (connector_id, user)
    );
    CREATE INDEX auth_users_user ON auth_users (user);
    """,
    # 2: the fleet — a group's listener, the per-pool change log (see feedlog.py), balancer tokens
    """
    ALTER TABLE connectors ADD COLUMN listener TEXT;
    CREATE TABLE fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO fleet_meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
    INSERT INTO fleet_meta (key, value) VALUES ('seq', '0');
    INSERT INTO fleet_meta (key, value) VALUES ('floor', '0');
    CREATE TABLE pool_changes (
        pool TEXT NOT NULL,
        group_id TEXT NOT NULL,
        seq INTEGER NOT NULL UNIQUE,
        gone INTEGER NOT NULL,
        PRIMARY KEY (pool, group_id)
    );
    CREATE INDEX pool_changes_seq ON pool_changes (pool, seq);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        pool TEXT NOT NULL,
        label TEXT NOT NULL,
        created REAL NOT NULL,
        revoked REAL
    );
    """,
)


def make_released_store(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite file with the released schemas 1..``version`` applied as those releases did (user_version set);
    the open connection is returned for the test to fill."""
    db = sqlite3.connect(path, isolation_level=None)
    for text in RELEASED_SCHEMAS[:version]:
        for statement in text.split(";"):
            if statement.strip():
                db.execute(statement)
    db.execute(f"PRAGMA user_version={version}")
    return db
