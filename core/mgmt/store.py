"""Storage for users, connectors, the fleet's change log and balancer tokens: one implementation, two engines.
(On a shared database also the logins the servers' throttles share: ``login_events``, see shared_throttle.py.)

The engines (:mod:`.database`): **SQLite** — the embedded default, one file beside the server — and
**PostgreSQL**, which several ``serve`` processes share as one server (``serve --database postgresql://…``).
Every query below is written once; the :class:`~.database.Database` under :attr:`Store.db` runs it on either.

Durability: SQLite runs ``journal_mode=WAL`` with ``synchronous=FULL``, which fsyncs the WAL at every commit,
and the server commits before it answers, so a write that was acknowledged survives ``kill -9`` or a power
cut, and SQLite's journal keeps the file consistent whatever moment the process dies. PostgreSQL flushes its
WAL at COMMIT (``synchronous_commit=on``, its default) with the same promise.

Why FULL and not NORMAL on SQLite: that one fdatasync per commit is most of a PUT's time on the server (about
1-4 ms at the median on the 2-core development VM's disk, 8-16 ms at p99, against well under 1 ms of Python),
and ``synchronous=NORMAL`` in WAL mode would drop it while still surviving ``kill -9`` (the OS keeps the
written WAL). But NORMAL can lose the last acknowledged writes on a power cut or a kernel crash, and this
module promises they survive. Config edits are rare and small, so the promise is kept and the cost paid.

Schema: :data:`MIGRATIONS`, applied in order at open, each in its own write transaction (so two servers
starting on one empty PostgreSQL database migrate it once). The version is SQLite's ``PRAGMA user_version``
(as every earlier release kept it) or PostgreSQL's ``schema_version`` row. A database newer than this program
is refused (:class:`StoreError`) before anything is changed.

Seeing other servers' writes: on a shared database (PostgreSQL) every write transaction raises the one row of
``store_generation``; :meth:`Store.stamp` reads it, so a server's read cache is dropped by a commit of any
server at once. On SQLite the stamp is our commit count and ``PRAGMA data_version`` (a CLI process's commit).

Files (SQLite): the database is created mode 0600 before SQLite opens it, so its ``-wal`` and ``-shm`` files
(which SQLite creates with the database's mode) are 0600 too; a store left by an earlier version with wider
modes is narrowed to 0600 when it is opened. The directory around it is the caller's (``serve`` makes it 0700).

One :class:`Store` owns one connection and is used from one thread (the server's event loop), so a write
transaction (``with store.write():``) never interleaves with another request.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from balancedesk.core.mgmt import idempotency
from balancedesk.core.mgmt.database import Database, DatabaseError, connect, is_postgres, sqlite_path
from balancedesk.core.model import (
    Connector,
    ConnectorGroup,
    KnownConnector,
    ListenerSettings,
    Member,
    user_name_problem,
)

MIGRATIONS: tuple[str, ...] = (
    # 1: users, connectors (plain and groups), members, authorized users
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        pw_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('Administrator', 'User')),
        active INTEGER NOT NULL DEFAULT 1,
        created {real} NOT NULL
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
        created {real} NOT NULL,
        modified {real} NOT NULL
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
        "user" TEXT NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (connector_id, "user")
    );
    CREATE INDEX auth_users_user ON auth_users ("user");
    """,
    # 2: the fleet — a group's listener, the per-pool change log (see feedlog.py), balancer tokens
    """
    ALTER TABLE connectors ADD COLUMN listener TEXT;
    CREATE TABLE fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO fleet_meta (key, value) VALUES ('store_id', {random_id});
    INSERT INTO fleet_meta (key, value) VALUES ('seq', '0');
    INSERT INTO fleet_meta (key, value) VALUES ('floor', '0');
    CREATE TABLE pool_changes (
        pool TEXT NOT NULL,
        group_id TEXT NOT NULL,
        seq {bigint} NOT NULL UNIQUE,
        gone INTEGER NOT NULL,
        PRIMARY KEY (pool, group_id)
    );
    CREATE INDEX pool_changes_seq ON pool_changes (pool, seq);
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL,
        pool TEXT NOT NULL,
        label TEXT NOT NULL,
        created {real} NOT NULL,
        revoked {real}
    );
    """,
    # 3: several servers on one database — the write generation (see Store.stamp), the shared balancer registry
    """
    CREATE TABLE store_generation (n {bigint} NOT NULL);
    INSERT INTO store_generation (n) VALUES (0);
    CREATE TABLE balancers (
        instance_id TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        token_id TEXT NOT NULL,
        heartbeat TEXT NOT NULL,
        last_seen {real} NOT NULL,
        first_seen {real} NOT NULL
    );
    """,
    # 4: idempotency keys — a write's answer kept with its key, so a retried write is applied once (idempotency.py)
    """
    CREATE TABLE idempotency (
        principal TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        body TEXT NOT NULL,
        etag TEXT,
        created {real} NOT NULL,
        PRIMARY KEY (principal, key)
    );
    CREATE INDEX idempotency_created ON idempotency (created);
    """,
    # 5: the failed-login throttle of several servers on one database (see shared_throttle.py): the logins the
    #    other servers must count, numbered by login_seq (raised under the write lock: ids in commit order)
    """
    CREATE TABLE login_seq (n {bigint} NOT NULL);
    INSERT INTO login_seq (n) VALUES (0);
    CREATE TABLE login_events (
        id {bigint} PRIMARY KEY,
        origin TEXT NOT NULL,
        ok INTEGER NOT NULL,
        user_key TEXT NOT NULL,
        source TEXT NOT NULL,
        at {real} NOT NULL
    );
    CREATE INDEX login_events_at ON login_events (at);
    """,
)

ROLES = ("Administrator", "User")


class StoreError(Exception):
    """The data store cannot be used (newer schema, unreadable file…); the message says why."""


@dataclass(frozen=True)
class UserRow:
    name: str
    pw_hash: str
    role: str
    active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == "Administrator"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "active": self.active}


@dataclass(frozen=True)
class Stored:
    """A connector as stored, with its revision (which makes the ETag).

    Its JSON and ETag are computed once (a ``Stored`` is a snapshot; nothing mutates it): treat
    :attr:`document` as read-only.
    """

    connector: Connector
    rev: int
    created: float
    modified: float
    group_id: str | None = None  # for a plain connector: the group using it

    @cached_property
    def document(self) -> dict[str, Any]:
        """The connector's JSON (``Connector.to_json()``), shared: do not mutate."""
        return self.connector.to_json()

    @cached_property
    def etag(self) -> str:
        return etag_for(self.document, self.rev)


def listener_from(text: str | None) -> ListenerSettings | None:
    """A stored ``listener`` column (its JSON, as written by :meth:`Store.save`) → the settings."""
    return None if text is None else ListenerSettings.model_validate(json.loads(text))


def etag_for(body: dict[str, Any], rev: int) -> str:
    # Kept byte-for-byte as first released (stdlib json, default separators): ETags stay valid across upgrades.
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode() + b"|" + str(rev).encode()).hexdigest()
    return f'"{rev}-{digest[:16]}"'


FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def _private(path: Path) -> None:
    """Create the database file 0600 if it is missing; narrow it (and its side files) to 0600 if it is not."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    for file in (path, *(path.with_name(path.name + side) for side in SIDE_FILES)):
        try:
            if file.stat().st_mode & 0o777 != FILE_MODE:
                os.chmod(file, FILE_MODE)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # someone else's file, opened read-only: not ours to change


def open_database(target: Path | str) -> Database:
    """``target``: a SQLite file path, ``sqlite:PATH``, or a ``postgresql://`` URL."""
    text = str(target)
    if not is_postgres(text):
        path = sqlite_path(text)
        try:
            _private(path)
        except OSError as exc:
            raise StoreError(f"cannot open the data store {path}: {exc}") from exc
    try:
        return connect(text)
    except DatabaseError as exc:
        raise StoreError(str(exc)) from exc


class Store:
    def __init__(self, target: Path | str) -> None:
        self.db = open_database(target)
        self.path: Path | None = None if self.db.shared else sqlite_path(str(target))
        self.generation = 0  # bumped at every commit through this Store
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @property
    def shared(self) -> bool:
        """Several servers may use this store at once (PostgreSQL)."""
        return self.db.shared

    def listen(self, wake: Callable[[], None]) -> None:
        """Have ``wake`` called (from another thread) after any server's commit of a fleet change."""
        self.db.listen(wake)

    @property
    def schema_version(self) -> int:
        return self.db.schema_version()

    def _migrate(self) -> None:
        newest = len(MIGRATIONS)
        while True:
            with self.write(bump=False):
                version = self.schema_version
                if version > newest:
                    raise StoreError(
                        f"the data store {self.db.name} has schema version {version}, newer than this Balance Desk "
                        f"understands ({newest}); use a newer balancedesk. Nothing was changed."
                    )
                if version == newest:
                    return
                for statement in self.db.ddl(MIGRATIONS[version]).split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.set_schema_version(version + 1)

    @contextmanager
    def write(self, *, bump: bool = True) -> Iterator[Database]:
        """One write transaction: committed (durably) on success, rolled back on any exception.

        Re-entrant: inside an open transaction it joins it, so a whole request (its checks — If-Match,
        group membership, ownership — and its writes) can be one transaction that another process's
        write cannot slip into (see :mod:`.database`: one writer at a time on either engine)."""
        if self.db.in_transaction:
            yield self.db
            return
        self.db.begin_write()
        try:
            yield self.db
            if bump and self.db.shared:
                self.db.execute("UPDATE store_generation SET n = n + 1")
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()
        self.generation += 1

    def stamp(self) -> tuple[int, int]:
        """Changes whenever the data may have changed: a commit of any server on a shared database; on
        SQLite our commits, or another process's (``data_version``)."""
        if self.db.shared:
            return 0, int(self.db.execute("SELECT n FROM store_generation").fetchone()[0])
        return self.generation, int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # -- users --------------------------------------------------------------------------------------

    def user(self, name: str) -> UserRow | None:
        if user_name_problem(name) is not None:  # no user has such a name (add_user checks): nothing to look up,
            return None  # and a NUL in it could not even be sent to PostgreSQL (a Basic login's name, ?user=)
        row = self.db.execute("SELECT name, pw_hash, role, active FROM users WHERE name=?", (name,)).fetchone()
        return UserRow(row[0], row[1], row[2], bool(row[3])) if row else None

    def users(self) -> list[UserRow]:
        rows = self.db.execute("SELECT name, pw_hash, role, active FROM users ORDER BY name").fetchall()
        return [UserRow(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def existing_users(self, names: Iterable[str]) -> set[str]:
        names = [n for n in names if user_name_problem(n) is None]  # the others name nobody (see user())
        if not names:
            return set()
        out: set[str] = set()
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(r[0] for r in self.db.execute(f"SELECT name FROM users WHERE name IN ({marks})", chunk))
        return out

    def count_users(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    def insert_user(self, name: str, pw_hash: str, role: str) -> None:
        self.db.execute(
            "INSERT INTO users (name, pw_hash, role, active, created) VALUES (?, ?, ?, 1, ?)",
            (name, pw_hash, role, time.time()),
        )

    def update_user(self, name: str, *, pw_hash: str | None, role: str | None, active: bool | None) -> None:
        if pw_hash is not None:
            self.db.execute("UPDATE users SET pw_hash=? WHERE name=?", (pw_hash, name))
        if role is not None:
            self.db.execute("UPDATE users SET role=? WHERE name=?", (role, name))
        if active is not None:
            self.db.execute("UPDATE users SET active=? WHERE name=?", (int(active), name))

    # -- connectors ---------------------------------------------------------------------------------

    def get(self, connector_id: str) -> Stored | None:
        row = self.db.execute(
            "SELECT id, owner, label, endpoint, is_group, connection_timeout, retry_delay, load_balancing, rev, "
            "created, modified, listener FROM connectors WHERE id=?",
            (connector_id,),
        ).fetchone()
        if row is None:
            return None
        auth = tuple(
            r[0]
            for r in self.db.execute('SELECT "user" FROM auth_users WHERE connector_id=? ORDER BY pos', (connector_id,))
        )
        group: ConnectorGroup | None = None
        group_id: str | None = None
        if row[4]:
            members = tuple(
                Member.model_construct(member_id=r[0], sequence=r[1], weight=r[2])
                for r in self.db.execute(
                    "SELECT member_id, sequence, weight FROM members WHERE group_id=? ORDER BY pos", (connector_id,)
                )
            )
            group = ConnectorGroup.model_construct(
                connection_timeout=row[5], retry_delay=row[6], load_balancing=row[7], members=members
            )
        else:
            found = self.db.execute("SELECT group_id FROM members WHERE member_id=?", (connector_id,)).fetchone()
            group_id = found[0] if found else None
        connector = Connector.model_construct(
            connector_id=row[0],
            owner=row[1],
            label=row[2],
            connector_group=group,
            auth_user=auth,
            endpoint=row[3],
            listener=listener_from(row[11]),
        )
        return Stored(connector, row[8], row[9], row[10], group_id)

    def known(self, ids: Iterable[str]) -> dict[str, KnownConnector]:
        """What the group rules need to know about the given connector IDs (unknown IDs are absent)."""
        ids = list(dict.fromkeys(ids))
        out: dict[str, KnownConnector] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                f"SELECT c.id, c.owner, c.is_group, m.group_id FROM connectors c "
                f"LEFT JOIN members m ON m.member_id = c.id WHERE c.id IN ({marks})",
                chunk,
            ):
                out[r[0]] = KnownConnector(connector_id=r[0], owner=r[1], is_group=bool(r[2]), group_id=r[3])
        return out

    def list_ids(self, *, owner: str | None, shared_with: str | None) -> list[str]:
        """IDs in creation order: all (owner None), or owned by ``owner`` (+ shared with ``shared_with``)."""
        where, params = self._visible(owner, shared_with)
        return [r[0] for r in self.db.execute(f"SELECT id FROM connectors{where} ORDER BY created, id", params)]

    @staticmethod
    def _visible(owner: str | None, shared_with: str | None) -> tuple[str, tuple[str, ...]]:
        """The ``WHERE`` clause (and its parameters) selecting the connectors a listing shows."""
        if owner is None:
            return "", ()
        if shared_with is None:
            return " WHERE owner=?", (owner,)
        return ' WHERE owner=? OR id IN (SELECT connector_id FROM auth_users WHERE "user"=?)', (owner, shared_with)

    def list_details(self, *, owner: str | None, shared_with: str | None) -> list[dict[str, Any]]:
        """Full JSON of the listed connectors, built straight from rows (fast for thousands): the same
        documents as ``Connector.to_json()``, in creation order."""
        where, params = self._visible(owner, shared_with)
        rows = self.db.execute(
            "SELECT id, owner, label, endpoint, is_group, connection_timeout, retry_delay, load_balancing, listener "
            f"FROM connectors{where} ORDER BY created, id",
            params,
        ).fetchall()
        wanted = None if owner is None else {r[0] for r in rows}
        members: dict[str, list[dict[str, Any]]] = {}
        for gid, mid, seq, weight in self.db.execute(
            "SELECT group_id, member_id, sequence, weight FROM members ORDER BY group_id, pos"
        ):
            if wanted is None or gid in wanted:
                members.setdefault(gid, []).append({"memberID": mid, "sequence": seq, "weight": weight})
        auth: dict[str, list[str]] = {}
        for cid, user in self.db.execute('SELECT connector_id, "user" FROM auth_users ORDER BY connector_id, pos'):
            if wanted is None or cid in wanted:
                auth.setdefault(cid, []).append(user)
        out: list[dict[str, Any]] = []
        for cid, own, label, endpoint, is_group, ct, rd, lb, listener in rows:
            item: dict[str, Any] = {"connectorID": cid, "owner": own, "label": label}
            if is_group:
                group: dict[str, Any] = {"connectionTimeout": ct, "retryDelay": rd}
                if lb is not None:
                    group["loadBalancing"] = lb
                group["members"] = members.get(cid, [])
                item["connectorGroup"] = group
            item["authUser"] = auth.get(cid, [])
            if endpoint is not None:
                item["endpoint"] = endpoint
            if listener is not None:
                item["listener"] = json.loads(listener)
            out.append(item)
        return out

    def admin_rows(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT c.id, c.label, c.owner, c.endpoint, c.is_group, c.created, c.modified, m.group_id "
            "FROM connectors c LEFT JOIN members m ON m.member_id = c.id ORDER BY c.created, c.id"
        ).fetchall()
        return [
            {
                "connectorID": r[0],
                "label": r[1],
                "owner": r[2],
                "endpoint": r[3],
                "isGroup": bool(r[4]),
                "createdTime": r[5],
                "lastModified": r[6],
                "groupID": r[7],
            }
            for r in rows
        ]

    def save(self, connector: Connector, *, rev: int, created: float | None = None) -> None:
        """Insert or fully replace a connector (its members and authorized users too). In a transaction."""
        cid = connector.connector_id
        assert cid is not None
        now = time.time()
        group = connector.connector_group
        values = (
            connector.owner,
            connector.label,
            connector.endpoint,
            int(group is not None),
            group.connection_timeout if group else None,
            group.retry_delay if group else None,
            group.load_balancing if group else None,
            rev,
            now,
            None if connector.listener is None else json.dumps(connector.listener.to_json()),
        )
        if created is None:
            self.db.execute(
                "INSERT INTO connectors (owner, label, endpoint, is_group, connection_timeout, retry_delay, "
                "load_balancing, rev, modified, listener, id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, cid, now),
            )
        else:
            self.db.execute(
                "UPDATE connectors SET owner=?, label=?, endpoint=?, is_group=?, connection_timeout=?, "
                "retry_delay=?, load_balancing=?, rev=?, modified=?, listener=? WHERE id=?",
                (*values, cid),
            )
            self.db.execute("DELETE FROM members WHERE group_id=?", (cid,))
            self.db.execute("DELETE FROM auth_users WHERE connector_id=?", (cid,))
        if group is not None:
            self.db.executemany(
                "INSERT INTO members (group_id, member_id, sequence, weight, pos) VALUES (?, ?, ?, ?, ?)",
                [(cid, m.member_id, m.sequence, m.weight, i) for i, m in enumerate(group.members)],
            )
        self.db.executemany(
            'INSERT INTO auth_users (connector_id, "user", pos) VALUES (?, ?, ?)',
            [(cid, u, i) for i, u in enumerate(connector.auth_user)],
        )

    def delete(self, connector_id: str) -> None:
        self.db.execute("DELETE FROM members WHERE group_id=?", (connector_id,))
        self.db.execute("DELETE FROM auth_users WHERE connector_id=?", (connector_id,))
        self.db.execute("DELETE FROM connectors WHERE id=?", (connector_id,))

    # -- idempotency keys (idempotency.py) ----------------------------------------------------------

    def remembered(self, principal: str, key: str) -> idempotency.Remembered | None:
        row = self.db.execute(
            "SELECT fingerprint, status, body, etag, created FROM idempotency WHERE principal=? AND key=?",
            (principal, key),
        ).fetchone()
        if row is None:
            return None
        answer = idempotency.Answer(int(row[1]), str(row[2]).encode(), row[3])
        return idempotency.Remembered(str(row[0]), answer, float(row[4]))

    def remember(self, principal: str, key: str, fingerprint: str, answer: idempotency.Answer, now: float) -> None:
        """Keep a write's answer under its key, and forget keys past their time. In the write's transaction."""
        self.db.execute("DELETE FROM idempotency WHERE created <= ?", (now - idempotency.KEEP_S,))
        self.db.execute("DELETE FROM idempotency WHERE principal=? AND key=?", (principal, key))  # an expired one
        self.db.execute(
            "INSERT INTO idempotency (principal, key, fingerprint, status, body, etag, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (principal, key, fingerprint, answer.status, answer.body.decode(), answer.etag, now),
        )
    # -- logins other servers must count (the shared throttle, see shared_throttle.py) ----------------

    def record_login(
        self, origin: str, ok: bool, user: bytes, source: str, at: float, *, forget_before: float, keep: int
    ) -> int:
        """Append one login to ``login_events`` in its own write transaction (not a config change: read caches
        stay), and purge the rows older than ``forget_before`` and all but the newest ``keep``; its id."""
        with self.write(bump=False):
            n = int(self.db.execute("UPDATE login_seq SET n = n + 1 RETURNING n").fetchone()[0])
            self.db.execute(
                "INSERT INTO login_events (id, origin, ok, user_key, source, at) VALUES (?, ?, ?, ?, ?, ?)",
                (n, origin, int(ok), user.hex(), source, at),
            )
            self.db.execute("DELETE FROM login_events WHERE at < ? OR id <= ?", (forget_before, n - keep))
        return n

    def logins_after(self, after: int, limit: int) -> list[tuple[int, str, bool, bytes, str, float]]:
        """At most ``limit`` rows of ``login_events`` with an id above ``after``, oldest first:
        (id, origin, ok, user key, source, at)."""
        rows = self.db.execute(
            "SELECT id, origin, ok, user_key, source, at FROM login_events WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [(int(r[0]), str(r[1]), bool(r[2]), bytes.fromhex(r[3]), str(r[4]), float(r[5])) for r in rows]
