"""``balancedesk serve --migrate-from sqlite:PATH --database postgresql://…``: an embedded store into PostgreSQL.

Rules:

* The source is read from a private copy (SQLite's online backup into a temporary file), upgraded there to
  the current schema: the source file itself is not changed, and a server may even be running on it.
* The target must be empty — no user, connector, token or change-log row — else nothing is written (a second
  run cannot double or mix data). It is migrated to the current schema first, like any store at open.
* Everything is copied in **one** transaction: users (with their password hashes), connectors, members,
  authorized users, the change log with its ``storeID``, ``seq`` and ``floor`` (so the balancers' cursors stay
  valid: they follow on without a resync), and balancer tokens (hashes: the same tokens keep working).
  Revisions are copied, so every ETag is the same after the move.
* Checked before success is reported: every table's row count equal, and every connector read back through
  :meth:`Store.get` on both sides with the same document and ETag, every user with the same hash and role.
  A mismatch rolls the whole copy back.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

from balancedesk.core.mgmt.database import is_postgres, redacted, sqlite_path
from balancedesk.core.mgmt.store import Store, StoreError

# in foreign-key order; balancers (who heartbeats now), idempotency keys (kept a day, for retries in flight)
# and login_events (the shared throttle's last hour of logins, see shared_throttle.py) are not data to move
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("users", ("name", "pw_hash", "role", "active", "created")),
    ("connectors", ("id", "owner", "label", "endpoint", "is_group", "connection_timeout", "retry_delay",
                    "load_balancing", "rev", "created", "modified", "listener")),
    ("members", ("group_id", "member_id", "sequence", "weight", "pos")),
    ("auth_users", ("connector_id", '"user"', "pos")),
    ("pool_changes", ("pool", "group_id", "seq", "gone")),
    ("tokens", ("id", "secret_hash", "pool", "label", "created", "revoked")),
)
META_KEYS = ("store_id", "seq", "floor")


class MigrationError(StoreError):
    """The migration was refused or its check failed; nothing was kept in the target."""


def _counts(store: Store) -> dict[str, int]:
    return {t: int(store.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t, _ in TABLES}


def _meta(store: Store) -> dict[str, str]:
    return {str(k): str(v) for k, v in store.db.execute("SELECT key, value FROM fleet_meta")}


def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy ``source`` into the empty ``target`` and check it (see the module text); the row counts copied."""
    with target.write():
        if any(_counts(target).values()):
            raise MigrationError(f"the target database {target.db.name} is not empty; nothing was copied")
        for table, columns in TABLES:
            cols = ", ".join(columns)
            rows = source.db.execute(f"SELECT {cols} FROM {table}").fetchall()
            marks = ", ".join("?" * len(columns))
            target.db.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)
        meta = _meta(source)
        for key in META_KEYS:
            target.db.execute("UPDATE fleet_meta SET value=? WHERE key=?", (meta[key], key))
        _check(source, target)
    return _counts(target)


def _check(source: Store, target: Store) -> None:
    want, got = _counts(source), _counts(target)
    if want != got:
        raise MigrationError(f"the copy's row counts differ: {got} in the target for {want}; nothing was kept")
    if {k: _meta(source)[k] for k in META_KEYS} != {k: _meta(target)[k] for k in META_KEYS}:
        raise MigrationError("the change log's storeID/seq/floor differ after the copy; nothing was kept")
    for cid in source.list_ids(owner=None, shared_with=None):
        a, b = source.get(cid), target.get(cid)
        if a is None or b is None or a.document != b.document or a.etag != b.etag:
            raise MigrationError(f"connector {cid} reads back differently from the target; nothing was kept")
    if [(u.name, u.pw_hash, u.role, u.active) for u in source.users()] != [
        (u.name, u.pw_hash, u.role, u.active) for u in target.users()
    ]:
        raise MigrationError("the users read back differently from the target; nothing was kept")


def _snapshot(path: Path, into: Path) -> None:
    """A consistent copy of the SQLite store at ``path`` (the online backup API: safe beside a live server)."""
    if not path.is_file():
        raise MigrationError(f"there is no SQLite store at {path}")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dst = sqlite3.connect(into)
    try:
        src.backup(dst)
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read the SQLite store {path}: {exc}") from exc
    finally:
        dst.close()
        src.close()


def migrate_command(source_url: str, database: str | None) -> int:
    """The command: copy, check, print what was copied. Errors raise :class:`StoreError` (one line, exit 1)."""
    from balancedesk.core.mgmt.server import database_url

    target_url = database_url(database)
    if target_url is None or not is_postgres(target_url):
        raise MigrationError("--migrate-from needs the target: --database postgresql://… (or BALANCEDESK_DATABASE)")
    if not source_url.startswith("sqlite:"):
        raise MigrationError(f"--migrate-from takes sqlite:PATH, not {source_url!r}")
    with tempfile.TemporaryDirectory(prefix="balancedesk-migrate-") as tmp:
        copy = Path(tmp) / "source.sqlite3"
        _snapshot(sqlite_path(source_url), copy)
        source = Store(copy)
        try:
            target = Store(target_url)
            try:
                counts = copy_store(source, target)
            finally:
                target.close()
        finally:
            source.close()
    shown = ", ".join(f"{n} {t}" for t, n in counts.items())
    print(f"balancedesk: copied {sqlite_path(source_url)} into {redacted(target_url)} and checked it: {shown}",
          file=sys.stdout, flush=True)
    return 0
