"""Persistence across a restart, and kill -9 during a burst of writes: every acknowledged write survives."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
from collections.abc import Callable

import httpx
from mgmt_helpers import ADMIN_PASSWORD, Server

StartServer = Callable[..., Server]


def test_data_survives_a_restart(start_server: StartServer) -> None:
    first = start_server()
    first.add_user("alice")
    cid = first.register("a1", "alice", port=9101)
    alice = first.as_user("alice")
    group = alice.post(
        "/api/mgmt/connectors", json={"label": "g", "connectorGroup": {"members": [{"memberID": cid, "sequence": 1}]}}
    )
    assert group.status_code == 201
    first.close()  # no idle keep-alive connections to wait for
    first.child.kill(signal.SIGTERM)
    assert first.child.proc.returncode is not None

    second = start_server(data=first.data)
    assert not any("created user admin" in line for line in second.child.lines)  # the store was not recreated
    again = second.as_user("alice").get(f"/api/mgmt/connectors/{group.json()['connectorID']}")
    assert again.status_code == 200
    assert again.json() == group.json() and again.headers["ETag"] == group.headers["ETag"]


def test_kill_9_during_a_burst_of_writes_loses_no_acknowledged_write(start_server: StartServer) -> None:
    server = start_server()
    acked: list[str] = []
    enough = threading.Event()

    async def writer(worker: int, client: httpx.AsyncClient) -> None:
        for n in range(10_000):
            label = f"w{worker}-{n}"
            try:
                r = await client.post(
                    "/api/admin/connectors", json={"label": label, "owner": "admin", "endpoint": "127.0.0.1:9"}
                )
            except httpx.TransportError:
                return  # the server is gone
            if r.status_code == 201:
                acked.append(r.json()["connectorID"])
                if len(acked) >= 150:
                    enough.set()

    async def burst() -> None:
        async with httpx.AsyncClient(base_url=server.url, auth=("admin", ADMIN_PASSWORD), timeout=15) as client:
            await asyncio.gather(*(writer(w, client) for w in range(6)))

    thread = threading.Thread(target=asyncio.run, args=(burst(),))
    thread.start()
    assert enough.wait(60), f"only {len(acked)} writes acknowledged"
    server.child.kill(signal.SIGKILL)  # mid-burst: writers are still sending
    thread.join(30)
    assert not thread.is_alive()
    survived = list(acked)

    if server.database is None:
        db = sqlite3.connect(server.data / "balancedesk.sqlite3")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    restarted = start_server(data=server.data)
    listed = set(restarted.admin.get("/api/mgmt/connectors").json()["connectorIDs"])
    missing = [cid for cid in survived if cid not in listed]
    assert not missing, f"{len(missing)} of {len(survived)} acknowledged writes lost"
