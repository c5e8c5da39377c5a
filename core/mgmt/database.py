"""The two engines under :class:`~balancedesk.core.mgmt.store.Store`: SQLite (embedded, the default) and PostgreSQL.

Every query of the management server is written once, in the SQL both engines share, with ``?`` for a
parameter and ``"user"`` quoted (a reserved word in PostgreSQL). A :class:`Database` is the thin dialect layer
that runs it: it rewrites the placeholders for psycopg, and it owns the few things the engines do differently:

* **where the schema version lives** — SQLite: ``PRAGMA user_version`` (as every earlier release kept it, so
  old stores open and upgrade unchanged); PostgreSQL: the one row of table ``schema_version``;
* **how a write transaction excludes other writers** — SQLite: ``BEGIN IMMEDIATE`` (the file's write lock);
  PostgreSQL: ``BEGIN`` then ``pg_advisory_xact_lock`` on :data:`WRITE_LOCK`, held to COMMIT. Either way one
  writer at a time *across every process on the database*, so a request's checks (If-Match, ownership, group
  rules) read what its write replaces — two servers editing one group answer one 200 and one 412;
* **column types and two expressions** in the schema text (:meth:`Database.ddl`): ``{real}`` (SQLite REAL,
  PostgreSQL DOUBLE PRECISION: PostgreSQL's REAL is 4 bytes), ``{bigint}``, ``{random_id}``;
* **waking other servers** — PostgreSQL: ``NOTIFY`` :data:`CHANNEL` in the transaction that recorded a fleet
  change (delivered at COMMIT, to every server that LISTENs: :meth:`PostgresDatabase.listen`); SQLite: nothing
  (one server per file).

Durability: SQLite runs WAL with ``synchronous=FULL`` (an fsync per commit, see store.py); PostgreSQL commits
with its server's ``synchronous_commit`` (on by default: the WAL is flushed before COMMIT returns).

URLs: ``sqlite:PATH`` (or a bare path) and ``postgresql://…`` / ``postgres://…`` (libpq's URI form).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

WRITE_LOCK = 0x6264_6573_6B00  # "bdesk": the advisory lock every PostgreSQL write transaction holds
CHANNEL = "balancedesk_changes"  # NOTIFY channel: a fleet change was committed
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:"


@dataclass(frozen=True)
class SessionLimits:
    """How long a PostgreSQL session may wait, so one hung server cannot stop the others (and a gone database
    is noticed). Set on every connection a server opens (libpq ``options`` and keepalives):

    * ``lock_timeout_s`` — a write waits this long for :data:`WRITE_LOCK`; then its request answers 503 with
      ``Retry-After`` (and the client tries again) instead of waiting behind a stuck holder;
    * ``idle_in_transaction_s`` — PostgreSQL ends a session that sits inside a transaction doing nothing this
      long: a server stopped (SIGSTOP, a frozen VM) or cut off mid-write gives the lock back to the others.
      Our transactions take milliseconds; the stopped server's next request finds its connection gone and
      reconnects;
    * ``statement_timeout_s`` — no single statement runs longer;
    * ``keepalive_idle_s``, ``keepalive_interval_s``, ``keepalive_count`` — TCP keepalives, so a database
      that vanished from the network is noticed in about idle + interval × count seconds, not the OS's
      two hours.
    """

    connect_timeout_s: int = 10
    lock_timeout_s: float = 5.0
    idle_in_transaction_s: float = 15.0
    statement_timeout_s: float = 30.0
    keepalive_idle_s: int = 10
    keepalive_interval_s: int = 5
    keepalive_count: int = 3

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``."""
        options = " ".join(
            f"-c {name}={int(seconds * 1000)}"
            for name, seconds in (("lock_timeout", self.lock_timeout_s),
                                  ("idle_in_transaction_session_timeout", self.idle_in_transaction_s),
                                  ("statement_timeout", self.statement_timeout_s))
        )
        return {"connect_timeout": self.connect_timeout_s, "options": options, "keepalives": 1,
                "keepalives_idle": self.keepalive_idle_s, "keepalives_interval": self.keepalive_interval_s,
                "keepalives_count": self.keepalive_count}


class DatabaseError(Exception):
    """The database cannot be reached or used; the message says why (never the password)."""


class Rows(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


def redacted(url: str) -> str:
    """A database URL fit for a message: any password replaced by ``***``."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def sqlite_path(url: str) -> Path:
    """``sqlite:PATH`` (or a bare PATH) → the path."""
    return Path(url[len(SQLITE_SCHEME):] if url.startswith(SQLITE_SCHEME) else url)


class Database:
    """One connection, used from one thread; the engine-specific parts of the store (see the module text)."""

    engine = ""
    shared = False  # several servers may use this database at once
    errors: tuple[type[BaseException], ...] = ()  # the engine's exception classes
    integrity_errors: tuple[type[BaseException], ...] = ()  # a UNIQUE/PRIMARY KEY/FOREIGN KEY refused a write
    unavailable_errors: tuple[type[BaseException], ...] = ()  # the database is away or busy: a 503, not a bug
    name = ""  # for messages: the file, or the URL without its password

    @property
    def in_transaction(self) -> bool:
        raise NotImplementedError

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def begin_write(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def schema_version(self) -> int:
        raise NotImplementedError

    def set_schema_version(self, version: int) -> None:
        raise NotImplementedError

    def ddl(self, text: str) -> str:
        raise NotImplementedError

    def json_text(self, column: str, key: str) -> str:
        """An SQL expression: the JSON object in ``column``'s member ``key``, as text."""
        raise NotImplementedError

    def notify(self) -> None:
        """In a write transaction that recorded a fleet change: wake the other servers at COMMIT."""

    def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` whenever another server committed a fleet change (nothing to do on SQLite)."""

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    engine = "sqlite"
    errors = (sqlite3.Error,)
    integrity_errors = (sqlite3.IntegrityError,)
    unavailable_errors = (sqlite3.OperationalError,)  # "database is locked" past busy_timeout, disk I/O

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA busy_timeout=10000")
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open the data store {path}: {exc}") from exc

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.db.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.db.executemany(sql, rows)

    def begin_write(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version={int(version)}")

    def ddl(self, text: str) -> str:
        return text.format(real="REAL", bigint="INTEGER", random_id="lower(hex(randomblob(16)))")

    def json_text(self, column: str, key: str) -> str:
        return f"CAST(json_extract({column}, '$.{key}') AS TEXT)"

    def close(self) -> None:
        self.db.close()


def _placeholders(sql: str) -> str:
    """``?`` → ``%s`` (and a literal ``%`` doubled) for psycopg; the shared SQL has no ``?`` in a string."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase(Database):
    engine = "postgresql"
    shared = True

    def __init__(self, url: str, limits: SessionLimits | None = None) -> None:
        import psycopg

        self.url = url
        self.limits = limits or SessionLimits()
        self.name = redacted(url)
        self.errors = (psycopg.Error,)
        self.integrity_errors = (psycopg.errors.IntegrityError,)
        # the database is away, a lock or statement timed out, or the session was ended (SessionLimits); and
        # DatabaseError: a reconnect failed
        self.unavailable_errors = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout,
                                   DatabaseError)
        self._listener: threading.Thread | None = None
        self._closed = False
        self._sql: dict[str, str] = {}
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, **self.limits.connect_args())
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to the database {self.name}: {exc}".strip()) from exc

    def _usable(self) -> None:
        """Outside a transaction, a connection the server broke (restart, failover, idle kill) is replaced:
        the request that notices runs on the new one. Inside a transaction the error is the request's."""
        if self.conn.broken or self.conn.closed:
            self.conn.close()
            self.conn = self._connect()

    def _text(self, sql: str) -> str:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = _placeholders(sql)
        return text

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR,
                                                     TransactionStatus.ACTIVE)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        import psycopg

        if not self.in_transaction:
            self._usable()
            try:
                cur = self.conn.cursor()
                cur.execute(self._text(sql), tuple(params), prepare=None)
                return cur
            except psycopg.OperationalError:
                if not self.conn.broken:
                    raise
                self._usable()  # it broke while idle (the server closed it): once more, on a new connection
        cur = self.conn.cursor()
        cur.execute(self._text(sql), tuple(params), prepare=None)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.conn.cursor().executemany(self._text(sql), rows)

    def begin_write(self) -> None:
        import psycopg

        self._usable()
        self.conn.execute("BEGIN")
        try:
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except BaseException:
            # the lock timed out (or the session ended): leave no failed transaction behind for the next request
            with suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")
            raise

    def schema_version(self) -> int:
        found = self.conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return 0
        row = self.conn.execute("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, version: int) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        self.conn.execute("DELETE FROM schema_version")
        self.conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def ddl(self, text: str) -> str:
        return text.format(real="DOUBLE PRECISION", bigint="BIGINT",
                           random_id="md5(random()::text || clock_timestamp()::text)")

    def json_text(self, column: str, key: str) -> str:
        return f"(({column})::json ->> '{key}')"

    def notify(self) -> None:
        self.conn.execute(f"NOTIFY {CHANNEL}")

    def listen(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (on a background thread) after every COMMIT that notified :data:`CHANNEL`, from any
        server. Started once; the thread ends when the database is closed. If the listening connection
        breaks it reconnects, and wakes once (a change may have passed meanwhile)."""
        if self._listener is not None:
            return
        self._listener = threading.Thread(target=self._listen, args=(wake,), name="balancedesk-listen",
                                          daemon=True)
        self._listener.start()

    def _listen(self, wake: Callable[[], None]) -> None:
        import time

        import psycopg

        while not self._closed:
            try:
                with psycopg.connect(self.url, autocommit=True, **self.limits.connect_args()) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    wake()
                    while not self._closed:
                        for _ in conn.notifies(timeout=1.0):
                            wake()
            except psycopg.Error:
                if self._closed:
                    return
                time.sleep(0.5)  # the database is away; try again (bounded: one attempt per half second)

    def close(self) -> None:
        self._closed = True  # the listening thread sees it within a second and closes its connection
        self.conn.close()


def connect(url: str) -> Database:
    """A :class:`Database` for ``url`` (see the module text); :class:`DatabaseError` if it cannot be opened."""
    if is_postgres(url):
        return PostgresDatabase(url)
    return SqliteDatabase(sqlite_path(url))


@contextmanager
def write_transaction(db: Database) -> Iterator[bool]:
    """One write transaction (yields True), or — inside one already — joins it (yields False)."""
    if db.in_transaction:
        yield False
        return
    db.begin_write()
    try:
        yield True
    except BaseException:
        db.rollback()
        raise
    db.commit()
