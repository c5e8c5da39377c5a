"""Helpers of the control-plane tests (imported as ``fleet_helpers``): groups with listeners, tokens, heartbeats."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from mgmt_helpers import Server

StartServer = Callable[..., Server]  # the start_server fixture (tests/mgmt/conftest.py)


def owner(server: Server) -> tuple[httpx.Client, str]:
    name = f"u{uuid.uuid4().hex[:8]}"
    return server.add_user(name), name


def group_body(members: list[str], *, listener: dict[str, Any] | None = None, label: str = "g") -> dict[str, Any]:
    body: dict[str, Any] = {
        "label": label,
        "connectorGroup": {"loadBalancing": "Round Robin",
                           "members": [{"memberID": m, "sequence": i + 1, "weight": 1} for i, m in enumerate(members)]},
    }
    if listener is not None:
        body["listener"] = listener
    return body


def make_group(server: Server, client: httpx.Client, name: str, *, listener: dict[str, Any] | None = None,
               members: int = 2, base_port: int = 9200) -> tuple[str, list[str]]:
    ids = [server.register(f"m{i}", name, port=base_port + i) for i in range(members)]
    r = client.post("/api/mgmt/connectors", json=group_body(ids, listener=listener))
    assert r.status_code == 201, r.text
    return str(r.json()["connectorID"]), ids


def new_pool() -> str:
    return f"pool-{uuid.uuid4().hex[:8]}"


def make_token(server: Server, pool: str) -> str:
    r = server.admin.post("/api/admin/tokens", json={"pool": pool, "label": "test"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def as_token(server: Server, token: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0)
    server.clients.append(client)
    return client


def cursor_of(client: httpx.Client, pool: str) -> int:
    r = client.get(f"/api/admin/pools/{pool}/groups")
    assert r.status_code == 200, r.text
    return int(r.json()["cursor"])


def heartbeat_body(instance: str, **extra: Any) -> dict[str, Any]:
    return {"instanceID": instance, "host": "bal-1.example", "adminURL": "http://127.0.0.1:9999",
            "adminToken": "admin-secret-of-" + instance, "dataPlane": "native", "workers": 2,
            "startedAt": time.time(), "groups": [], "overrides": [], **extra}
