"""``serve --demo``'s data: demo connectors on 127.0.0.1, each on a port that was free when it was made (no port
is fixed, so two users' demos on one machine do not share them), kept as they are when loaded again."""

from __future__ import annotations

import socket
from pathlib import Path

from balancedesk.core.mgmt.server import DEMO_CONNECTORS, DEMO_GROUP_ID, demo_id, load_demo, open_store
from balancedesk.core.model import parse_endpoint


def _endpoints(data: Path) -> list[str]:
    store = open_store(data)
    try:
        load_demo(store)
        out = []
        for i in range(1, DEMO_CONNECTORS + 1):
            got = store.get(demo_id(i))
            assert got is not None and got.connector.endpoint is not None
            out.append(got.connector.endpoint)
        assert store.get(DEMO_GROUP_ID) is not None
        return out
    finally:
        store.close()


def test_demo_connectors_are_on_ports_free_when_made_and_stay(tmp_path: Path) -> None:
    first = _endpoints(tmp_path / "one")
    hosts_ports = [parse_endpoint(ep) for ep in first]
    assert {h for h, _ in hosts_ports} == {"127.0.0.1"} and len({p for _, p in hosts_ports}) == DEMO_CONNECTORS
    for _, port in hosts_ports:  # nothing listens there (the ports were free and no demo member runs yet)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    assert _endpoints(tmp_path / "one") == first  # loaded again: idempotent, the same endpoints
