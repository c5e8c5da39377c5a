"""Helpers of the Balancers-view tests: a real management server with a short heartbeat interval, groups
with listeners in a pool, and balancer imitations that heartbeat with a real balancer token (as
``balancedesk balance --api URL --token-file F --pool P`` does), from a thread, until told to stop."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

HEARTBEAT_S = 0.5  # the server's interval: an instance is lost after 3 missed (1.5 s)


@dataclass
class Fleet:
    url: str
    admin: httpx.Client
    clients: list[httpx.Client] = field(default_factory=list)

    def make_token(self, pool: str) -> str:
        r = self.admin.post("/api/admin/tokens", json={"pool": pool, "label": "test"})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def make_group(self, pool: str, *, port: int, members: int = 2, label: str = "g") -> str:
        owner = "admin"
        ids = []
        for i in range(members):
            r = self.admin.post("/api/admin/connectors", json={
                "label": f"{label}-m{i}", "owner": owner, "endpoint": f"127.0.0.1:{port + 100 + i}"})
            assert r.status_code == 201, r.text
            ids.append(str(r.json()["connectorID"]))
        body = {"label": label, "owner": owner, "listener": {"port": port, "pool": pool, "mode": "tcp"},
                "connectorGroup": {"loadBalancing": "Round Robin", "connectionTimeout": 2, "retryDelay": 2,
                                   "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                               for i, m in enumerate(ids)]}}
        r = self.admin.post("/api/mgmt/connectors", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["connectorID"])

    def versions(self, pool: str) -> dict[str, int]:
        r = self.admin.get(f"/api/admin/pools/{pool}/groups")
        assert r.status_code == 200, r.text
        return {g["connectorID"]: int(g["version"]) for g in r.json()["groups"]}

    def pool_config(self, pool: str, cid: str) -> dict[str, Any]:
        r = self.admin.get(f"/api/admin/pools/{pool}/groups/{cid}")
        assert r.status_code == 200, r.text
        return dict(r.json()["config"])

    def set_weight(self, cid: str, member_index: int, weight: int) -> None:
        """Save the group with one member's weight changed (a save made elsewhere: the editor, the API)."""
        r = self.admin.get(f"/api/mgmt/connectors/{cid}")
        assert r.status_code == 200, r.text
        body = r.json()
        body["connectorGroup"]["members"][member_index]["weight"] = weight
        r = self.admin.put(f"/api/mgmt/connectors/{cid}", json=body, headers={"If-Match": r.headers["ETag"]})
        assert r.status_code == 200, r.text


class Heartbeats:
    """Balancer imitations: each instance heartbeats every HEARTBEAT_S / 2 with its own token until stopped.

    ``applied[instance][connectorID]`` is the version it reports; change it to make it catch up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bodies: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.applied: dict[str, dict[str, int]] = {}
        self.answers: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._http = httpx.Client(base_url=url, timeout=10.0)

    def add(self, instance: str, token: str, applied: dict[str, int], **extra: Any) -> None:
        body = {"instanceID": instance, "host": f"{instance}.example", "adminURL": None, "adminToken": None,
                "dataPlane": "native", "workers": 2, "startedAt": time.time() - 60, "overrides": [], **extra}
        with self._lock:
            self.bodies[instance], self.tokens[instance], self.applied[instance] = body, token, dict(applied)
        self.beat(instance)

    def stop_instance(self, instance: str) -> None:
        with self._lock:
            self.bodies.pop(instance, None)

    def set_applied(self, instance: str, cid: str, version: int) -> None:
        with self._lock:
            self.applied[instance][cid] = version
        self.beat(instance)

    def beat(self, instance: str) -> int:
        with self._lock:
            body = self.bodies.get(instance)
            if body is None:
                return 0
            sent = {**body, "groups": [{"connectorID": c, "version": v, "listen": f"0.0.0.0:{9000 + i}"}
                                       for i, (c, v) in enumerate(sorted(self.applied[instance].items()))]}
            token = self.tokens[instance]
        r = self._http.post("/api/admin/balancers/heartbeat", json=sent, headers={"Authorization": f"Bearer {token}"})
        self.answers[instance] = r.status_code
        return r.status_code

    def start(self) -> Heartbeats:
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # bounded: a test never runs this long
        while not self._stop.wait(HEARTBEAT_S / 2) and time.monotonic() < deadline:
            for instance in list(self.bodies):
                with contextlib.suppress(httpx.HTTPError):  # the server is being stopped; the test sees it
                    self.beat(instance)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._http.close()


def new_pool() -> str:
    return f"pool-{uuid.uuid4().hex[:6]}"
