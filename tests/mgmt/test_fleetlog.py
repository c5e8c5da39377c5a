"""The change log's rules on a real store file: compaction, pool moves, paging, tombstone pruning (floor)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from balancedesk.core.mgmt import fleet, fleetlog
from balancedesk.core.mgmt.store import MIGRATIONS, Store
from released_schemas import make_released_store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "db.sqlite3")
    yield s  # type: ignore[misc]
    s.close()


def _record(store: Store, gid: str, old: str | None, new: str | None) -> None:
    with store.write():
        fleetlog.record(store, gid, old_pool=old, new_pool=new)


def test_the_log_is_compacted_per_pool_and_group(store: Store) -> None:
    assert fleetlog.current_seq(store) == 0 and len(fleetlog.store_id(store)) == 32
    for _ in range(3):
        _record(store, "g", "a", "a")
    assert [(c.group_id, c.version, c.gone) for c in fleetlog.since(store, "a", 0, 10)] == [("g", 3, False)]
    _record(store, "g", "a", "b")
    _record(store, "g", "b", "c")
    assert [(c.version, c.gone) for c in fleetlog.since(store, "a", 0, 10)] == [(4, True)]
    assert [(c.version, c.gone) for c in fleetlog.since(store, "b", 0, 10)] == [(6, True)]
    assert [(c.version, c.gone) for c in fleetlog.since(store, "c", 0, 10)] == [(7, False)]
    assert fleetlog.since(store, "a", 4, 10) == [] and fleetlog.current_seq(store) == 7
    _record(store, "x", None, None)
    assert fleetlog.current_seq(store) == 7  # nothing to record, nothing raised


def test_a_long_answer_is_paged_with_more(store: Store) -> None:
    for i in range(5):
        _record(store, f"g{i}", None, "p")
    first = fleet.feed_answer(store, "p", 0, None, 2)
    assert first["more"] is True and [c["connectorID"] for c in first["changes"]] == ["g0", "g1"]
    assert first["cursor"] == 2
    rest = fleet.feed_answer(store, "p", first["cursor"], None, 2)
    rest2 = fleet.feed_answer(store, "p", rest["cursor"], None, 2)
    assert [c["connectorID"] for c in rest["changes"] + rest2["changes"]] == ["g2", "g3", "g4"]
    assert rest2["more"] is False and rest2["cursor"] == 5


def test_pruned_tombstones_raise_the_floor_and_old_cursors_resync(store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleetlog, "MAX_TOMBSTONES", 3)
    _record(store, "keep", None, "p")
    for i in range(5):
        _record(store, f"d{i}", None, "p")
        _record(store, f"d{i}", "p", None)
    gone = [c.group_id for c in fleetlog.since(store, "p", 0, 100) if c.gone]
    assert gone == ["d2", "d3", "d4"] and fleetlog.floor(store) > 1
    assert fleet.feed_answer(store, "p", 0, None, 100)["resync"] is True
    assert fleet.feed_answer(store, "p", fleetlog.floor(store), None, 100)["resync"] is False
    assert fleet.feed_answer(store, "p", fleetlog.current_seq(store) + 1, None, 100)["resync"] is True
    assert [g for g, _ in fleetlog.members_of(store, "p")] == []  # "keep" has no connector row


def test_a_store_of_schema_1_is_migrated_and_its_groups_keep_their_etags(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = make_released_store(path, 1)
    now = time.time()
    db.execute("INSERT INTO connectors (id, owner, label, endpoint, is_group, rev, created, modified) "
               "VALUES ('m', 'u', 'm', '127.0.0.1:1', 0, 1, ?, ?)", (now, now))
    db.execute("INSERT INTO connectors (id, owner, label, is_group, connection_timeout, retry_delay, rev, created, "
               "modified) VALUES ('g', 'u', 'g', 1, 15, 120, 3, ?, ?)", (now, now))
    db.execute("INSERT INTO members (group_id, member_id, sequence, weight, pos) VALUES ('g', 'm', 1, 1, 0)")
    db.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        got = store.get("g")
        assert got is not None and got.connector.listener is None and "listener" not in got.document
        assert got.etag.startswith('"3-') and fleetlog.current_seq(store) == 0
        listed = store.list_details(owner=None, shared_with=None)
        assert [d for d in listed if d["connectorID"] == "g"] == [got.document]
    finally:
        store.close()
