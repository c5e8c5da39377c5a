"""The balancer registry of an installation of several servers on one database: kept in table ``balancers``.

Same rules as :class:`~balancedesk.core.mgmt.registry.Registry` (alive/lost, the cap, an instance owned by its
token while alive) — this class *is* one, whose entries are loaded from the database before each decision
and written back after it, in one write transaction, so a balancer may heartbeat to any server (through the
installation's balancer, a different one each time) and every server lists every balancer.

``now`` is wall-clock Unix time here (``time.time()``), not monotonic: the servers' monotonic clocks are
unrelated. A server whose clock is off by more than an interval shows balancers as lost too early or too late;
keep the servers' clocks synchronised (NTP), as any installation of several machines does.

Unlike the single server's registry, the balancer's ``adminToken`` reaches the database here (every server
must give it to the GUI): the database is the installation's secret store already (password and token
hashes); keep it as private as that.
"""

from __future__ import annotations

import json
from typing import Any

from balancedesk.core.fleet import HEARTBEAT_INTERVAL_S, Heartbeat
from balancedesk.core.mgmt.registry import MAX_BALANCERS, Entry, Registry
from balancedesk.core.mgmt.store import Store


class SharedRegistry(Registry):
    def __init__(self, store: Store, *, interval_s: float = HEARTBEAT_INTERVAL_S, cap: int = MAX_BALANCERS) -> None:
        super().__init__(interval_s=interval_s, cap=cap)
        self.store = store

    def _load(self, instance_id: str | None = None) -> None:
        """Every entry into ``_entries`` — or only ``instance_id``'s (a heartbeat of a known balancer, or of a
        new one while the table is below the cap, needs no other)."""
        where, params = ("", ()) if instance_id is None else (" WHERE instance_id=?", (instance_id,))
        rows = self.store.db.execute(
            f"SELECT instance_id, pool, token_id, heartbeat, last_seen, first_seen FROM balancers{where}", params
        ).fetchall()
        self._entries = {
            str(r[0]): Entry(Heartbeat.model_validate(json.loads(r[3])), str(r[1]), str(r[2]), float(r[4]),
                             float(r[4]), float(r[5]))
            for r in rows
        }

    def heartbeat(self, hb: Heartbeat, *, pool: str, token_id: str, now: float, wall: float) -> Entry:
        with self.store.write(bump=False):  # not a config change: the servers' read caches stay
            self._load(hb.instance_id)
            if not self._entries:
                count = int(self.store.db.execute("SELECT COUNT(*) FROM balancers").fetchone()[0])
                if count >= self.cap:
                    self._load()  # full: the cap's rule (forget the longest-lost) needs every entry
            before = set(self._entries)
            entry = super().heartbeat(hb, pool=pool, token_id=token_id, now=now, wall=wall)
            for gone in before - set(self._entries):
                self.store.db.execute("DELETE FROM balancers WHERE instance_id=?", (gone,))
            self.store.db.execute(
                "INSERT INTO balancers (instance_id, pool, token_id, heartbeat, last_seen, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO UPDATE SET pool=excluded.pool, "
                "token_id=excluded.token_id, heartbeat=excluded.heartbeat, last_seen=excluded.last_seen, "
                "first_seen=excluded.first_seen",
                (hb.instance_id, pool, token_id, json.dumps(hb.to_json()), entry.last_seen, entry.first_seen),
            )
        return entry

    def forget(self, instance_id: str) -> bool:
        with self.store.write(bump=False):
            cur = self.store.db.execute("DELETE FROM balancers WHERE instance_id=? RETURNING instance_id",
                                        (instance_id,))
            return cur.fetchone() is not None

    def get(self, instance_id: str) -> Entry | None:
        self._load()
        return super().get(instance_id)

    def listing(self, now: float, *, pool: str | None = None) -> list[dict[str, Any]]:
        self._load()
        return super().listing(now, pool=pool)
