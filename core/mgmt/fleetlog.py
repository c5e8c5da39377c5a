"""The change log a pool's balancers follow, kept in the store beside the groups (so cursors survive restarts).

The rules (docs/ARCHITECTURE.md, "The control plane", states them for clients):

* One global sequence ``seq`` (``fleet_meta``), raised by every recorded change, in the same transaction as
  the change itself. A cursor is a value of it: "I have seen everything up to here".
* ``pool_changes`` holds one row per (pool, group): the ``seq`` of the group's latest change as that pool
  sees it, and whether the group is ``gone`` from the pool (deleted, moved to another pool, listener
  removed). A change replaces the row (the log is compacted: a follower learns the latest state, not every
  step). A group's **version** in a pool is its row's ``seq``; it rises whenever what a balancer serves for
  the group changes — the group's document or a member's endpoint — and only then.
* A group that moves from pool A to pool B gets a ``gone`` row in A and a changed row in B, so A's followers
  close its listener whatever happened in between.
* ``gone`` rows are pruned beyond :data:`MAX_TOMBSTONES`; ``floor`` is the highest ``seq`` pruned. A cursor
  below ``floor`` (or above ``seq``: a store restored from an older copy), or a ``storeID`` other than this
  store's, cannot be followed: the answer says ``resync`` and the follower re-reads its pool.

* On a shared database (several servers on one PostgreSQL) the log table is the truth every server reads;
  a ``record`` also NOTIFYs, so the other servers wake their long-polling followers at COMMIT.

Every function here runs on the caller's :class:`~balancedesk.core.mgmt.store.Store` connection (either
engine); the ``record`` functions only inside a write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from balancedesk.core.fleet import CHANGED, GONE
from balancedesk.core.mgmt.store import Store

MAX_TOMBSTONES = 10_000


@dataclass(frozen=True)
class Change:
    group_id: str
    version: int
    gone: bool

    def as_json(self) -> dict[str, Any]:
        return {"connectorID": self.group_id, "version": self.version, "state": GONE if self.gone else CHANGED}


def _meta(store: Store, key: str) -> str:
    return str(store.db.execute("SELECT value FROM fleet_meta WHERE key=?", (key,)).fetchone()[0])


def store_id(store: Store) -> str:
    return _meta(store, "store_id")


def current_seq(store: Store) -> int:
    return int(_meta(store, "seq"))


def floor(store: Store) -> int:
    return int(_meta(store, "floor"))


def record(store: Store, group_id: str, *, old_pool: str | None, new_pool: str | None) -> bool:
    """Record that what ``group_id`` serves changed: gone from ``old_pool`` (if it left it), changed in
    ``new_pool``. In a write transaction. True if anything was recorded."""
    if old_pool is None and new_pool is None:
        return False
    seq = current_seq(store)
    upsert = (
        "INSERT INTO pool_changes (pool, group_id, seq, gone) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (pool, group_id) DO UPDATE SET seq=excluded.seq, gone=excluded.gone"
    )
    if old_pool is not None and old_pool != new_pool:
        seq += 1
        store.db.execute(upsert, (old_pool, group_id, seq, 1))
    if new_pool is not None:
        seq += 1
        store.db.execute(upsert, (new_pool, group_id, seq, 0))
    store.db.execute("UPDATE fleet_meta SET value=? WHERE key='seq'", (str(seq),))
    _prune(store)
    store.db.notify()
    return True


def _prune(store: Store) -> None:
    count = int(store.db.execute("SELECT COUNT(*) FROM pool_changes WHERE gone=1").fetchone()[0])
    if count <= MAX_TOMBSTONES:
        return
    cut = store.db.execute(
        "SELECT seq FROM pool_changes WHERE gone=1 ORDER BY seq LIMIT 1 OFFSET ?", (count - MAX_TOMBSTONES - 1,)
    ).fetchone()[0]
    store.db.execute("DELETE FROM pool_changes WHERE gone=1 AND seq<=?", (cut,))
    store.db.execute("UPDATE fleet_meta SET value=? WHERE key='floor'", (str(max(floor(store), int(cut))),))


def since(store: Store, pool: str, cursor: int, limit: int) -> list[Change]:
    """The pool's changes after ``cursor``, oldest first, at most ``limit``."""
    rows = store.db.execute(
        "SELECT group_id, seq, gone FROM pool_changes WHERE pool=? AND seq>? ORDER BY seq LIMIT ?",
        (pool, cursor, limit),
    ).fetchall()
    return [Change(r[0], int(r[1]), bool(r[2])) for r in rows]


def members_of(store: Store, pool: str) -> list[tuple[str, int]]:
    """The groups now in ``pool`` with their versions, in creation order."""
    rows = store.db.execute(
        "SELECT p.group_id, p.seq FROM pool_changes p JOIN connectors c ON c.id = p.group_id "
        "WHERE p.pool=? AND p.gone=0 ORDER BY c.created, c.id",
        (pool,),
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def version_in(store: Store, pool: str, group_id: str) -> int | None:
    """The group's version in ``pool``, or None if it is not (or no longer) in it."""
    row = store.db.execute(
        "SELECT seq FROM pool_changes WHERE pool=? AND group_id=? AND gone=0", (pool, group_id)
    ).fetchone()
    return None if row is None else int(row[0])


def pool_mark(store: Store, pool: str) -> int:
    """The newest ``seq`` the pool has seen (0 if none): it changes whenever any group of the pool does."""
    row = store.db.execute("SELECT MAX(seq) FROM pool_changes WHERE pool=?", (pool,)).fetchone()
    return int(row[0] or 0)


def endpoints_of(store: Store, ids: list[str]) -> dict[str, str]:
    """connectorID → ``host:port`` for those of ``ids`` that are registered with an endpoint."""
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for cid, endpoint in store.db.execute(
            f"SELECT id, endpoint FROM connectors WHERE id IN ({marks}) AND endpoint IS NOT NULL", chunk
        ):
            out[str(cid)] = str(endpoint)
    return out


def labels_of(store: Store, ids: list[str]) -> dict[str, str]:
    """connectorID → label for those of ``ids`` that are registered (with a label that is not empty)."""
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for cid, label in store.db.execute(f"SELECT id, label FROM connectors WHERE id IN ({marks})", chunk):
            if label:
                out[str(cid)] = str(label)
    return out


def listeners_on(store: Store, pool: str, port: int, exclude: str | None = None) -> list[tuple[str, str, str, str]]:
    """(id, owner, label, listener JSON) of the groups (but ``exclude``) whose listener is on ``port`` in
    ``pool``: the candidates for a socket clash."""
    db = store.db
    rows = db.execute(
        "SELECT id, owner, label, listener FROM connectors WHERE listener IS NOT NULL "
        "AND (CAST(? AS TEXT) IS NULL OR id <> ?) "
        f"AND {db.json_text('listener', 'pool')} = ? AND {db.json_text('listener', 'port')} = ?",
        (exclude, exclude, pool, str(port)),
    ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]
