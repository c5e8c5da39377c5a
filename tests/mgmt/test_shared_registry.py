"""The balancer registry kept in the database (several servers, one registry): the single server's rules
hold across two :class:`Store` connections — alive/lost by ``now``, an instance owned by its token while
alive, the cap forgetting the longest-lost — with explicit wall-clock ``now`` values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from balancedesk.core.fleet import ALIVE, LOST, parse_heartbeat
from balancedesk.core.mgmt.registry import RegistryFull
from balancedesk.core.mgmt.shared_registry import SharedRegistry
from balancedesk.core.mgmt.store import Store
from fleet_helpers import heartbeat_body
from pg_cluster import Cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def two(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SharedRegistry, SharedRegistry]]:
    if request.param == "sqlite":
        target: str = str(tmp_path / "db.sqlite3")
    else:
        cluster: Cluster = request.getfixturevalue("pg_cluster")
        target = cluster.new_database()
    a, b = Store(target), Store(target)
    try:
        yield SharedRegistry(a, interval_s=1.0, cap=3), SharedRegistry(b, interval_s=1.0, cap=3)
    finally:
        a.close()
        b.close()


def beat(reg: SharedRegistry, iid: str, now: float, token: str = "t1") -> None:
    reg.heartbeat(parse_heartbeat(heartbeat_body(iid)), pool="p", token_id=token, now=now, wall=now)


def test_a_heartbeat_to_one_is_listed_by_the_other(two: tuple[SharedRegistry, SharedRegistry]) -> None:
    a, b = two
    beat(a, "x", 1000.0)
    (listed,) = b.listing(1000.5)
    assert listed["instanceID"] == "x" and listed["state"] == ALIVE and "adminToken" not in listed
    entry = b.get("x")
    assert entry is not None and entry.heartbeat.admin_token == "admin-secret-of-x"
    assert [e["state"] for e in a.listing(1003.5)] == [LOST]  # more than 3 intervals since the heartbeat
    beat(b, "x", 1004.0)
    (again,) = a.listing(1004.0)
    assert again["state"] == ALIVE and again["lastSeenAgo_s"] == 0.0


def test_an_alive_instance_belongs_to_its_token_on_every_server(two: tuple[SharedRegistry, SharedRegistry]) -> None:
    a, b = two
    beat(a, "x", 1000.0, token="t1")
    with pytest.raises(PermissionError):
        beat(b, "x", 1001.0, token="t2")
    beat(b, "x", 1004.0, token="t2")  # lost by then: another token may take it over
    assert [e["tokenID"] for e in a.listing(1004.0)] == ["t2"]


def test_the_cap_forgets_the_longest_lost_and_refuses_when_all_are_alive(
    two: tuple[SharedRegistry, SharedRegistry]
) -> None:
    a, b = two
    beat(a, "x", 1000.0)
    beat(b, "y", 1001.0)
    beat(a, "z", 1010.0)  # the table is full (cap 3)
    beat(b, "w", 1010.5)  # x and y are lost: x, lost the longest, is forgotten
    assert [e["instanceID"] for e in a.listing(1010.5)] == ["w", "y", "z"]
    beat(a, "y", 1011.0)  # now all three are alive
    with pytest.raises(RegistryFull):
        beat(b, "v", 1011.5)
    assert b.forget("z") and not a.forget("z")
    beat(a, "v", 1011.5)
    assert [e["instanceID"] for e in b.listing(1011.5)] == ["v", "w", "y"]
