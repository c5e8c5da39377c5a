"""Helpers of the fleet tests: a real management server (``balancedesk serve``), groups with listeners, balancer
tokens, and balancer processes following a pool (``balancedesk balance --api URL --token-file F``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lbkit import BALANCEDESK, DEADLINE, Child, Spawn, wait_until

ADMIN_PASSWORD = "fleet-admin-pw-1"
FLEET_RX = r"balancedesk: balancing (\d+) groups(?: pool (\S+))?(?: admin (http://127\.0\.0\.1:\d+))?"


def free_port() -> int:
    """A port no one listens on right now (a group's listener needs a real port: the server refuses 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mgmt:
    """A ``balancedesk serve`` child and an Administrator's HTTP client for it."""

    def __init__(self, spawn: Spawn, data: Path, *, port: int = 0, heartbeat_interval: float = 0.5) -> None:
        self.spawn = spawn
        self.data = data
        self.heartbeat_interval = heartbeat_interval
        self.child: Child = None
        self.url = ""
        self.start(port)
        self.http = httpx.Client(base_url=self.url, auth=("admin", ADMIN_PASSWORD), timeout=DEADLINE)

    def start(self, port: int = 0) -> None:
        self.child = self.spawn([*BALANCEDESK, "serve", "--port", str(port), "--data", str(self.data),
                                 "--heartbeat-interval", str(self.heartbeat_interval)],
                                env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
        self.url = self.child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30)[1]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def register(self, label: str, endpoint: str) -> str:
        r = self.http.post("/api/admin/connectors", json={"label": label, "owner": "admin", "endpoint": endpoint})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["connectorID"])

    def create_group(self, label: str, members: list[str], *, pool: str, port: int, mode: str = "tcp",
                     bind: str | None = None, affinity: str | None = None, retry_delay: int = 2) -> str:
        listener: dict[str, Any] = {"port": port, "mode": mode, "pool": pool, **({"bind": bind} if bind else {})}
        if affinity is not None:
            listener["affinityHeader"] = affinity
        body = {"owner": "admin", "label": label,
                "connectorGroup": {"connectionTimeout": 2, "retryDelay": retry_delay, "loadBalancing": "Round Robin",
                                   "members": [{"memberID": m, "sequence": i + 1, "weight": 1}
                                               for i, m in enumerate(members)]},
                "listener": listener}
        r = self.http.post("/api/mgmt/connectors", json=body)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["connectorID"])

    def get(self, gid: str) -> tuple[dict[str, Any], str]:
        r = self.http.get(f"/api/mgmt/connectors/{gid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body, r.headers["ETag"]

    def edit(self, gid: str, change: Any) -> None:
        """GET the group, let ``change(body)`` edit it, PUT it back with If-Match."""
        body, etag = self.get(gid)
        change(body)
        r = self.http.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": etag})
        assert r.status_code == 200, r.text

    def delete(self, gid: str) -> None:
        r = self.http.delete(f"/api/mgmt/connectors/{gid}")
        assert r.status_code in (200, 204), r.text

    def version(self, pool: str, gid: str) -> int:
        r = self.http.get(f"/api/admin/pools/{pool}/groups/{gid}")
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    def token(self, pool: str, folder: Path) -> Path:
        r = self.http.post("/api/admin/tokens", json={"pool": pool, "label": "test"})
        assert r.status_code == 201, r.text
        path = folder / f"{pool}.token"
        path.write_text(r.json()["token"] + "\n")
        return path

    def balancers(self) -> list[dict[str, Any]]:
        r = self.http.get("/api/admin/balancers")
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = r.json()["balancers"]
        return out


@dataclass
class FleetBalancer:
    """A ``balancedesk balance --api`` child and its admin endpoint."""

    child: Child
    admin_url: str
    token: str

    def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.admin_url + path, headers={"Authorization": f"Bearer {self.token}"},
                             timeout=DEADLINE, **kw)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.admin(method, path, **kw)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return r.json()

    def groups(self) -> dict[str, dict[str, Any]]:
        return {g["connectorID"]: g for g in self.json("GET", "/admin/groups")["groups"]}

    def applied(self, gid: str) -> int | None:
        g = self.groups().get(gid)
        return int(g["version"]) if g is not None else None

    def snapshot(self, gid: str) -> dict[str, Any]:
        out: dict[str, Any] = self.json("GET", f"/groups/{gid}/snapshot")
        return out

    def all_workers_applied(self, gid: str, version: int) -> bool:
        """Whether every worker (``--workers N``: each follows on its own) applies ``version`` of ``gid``."""
        g = self.groups().get(gid)
        if g is None:
            return False
        per = g.get("versionPerWorker") or [g["version"]]
        return all(v >= version for v in per)

    def counted(self, gid: str, accepted: int) -> dict[str, Any] | None:
        """The snapshot once the process's summed counters reach ``accepted`` (others' rows lag a little)."""
        snap = self.snapshot(gid)
        return snap if snap["totals"]["accepted"] >= accepted else None

    def config_events(self, gid: str, after: int = 0) -> list[dict[str, Any]]:
        page = self.json("GET", f"/groups/{gid}/events", params={"after": after, "limit": 10000})
        return [e for e in page["events"] if e["kind"] == "config"]


def start_fleet_balancer(spawn: Spawn, folder: Path, url: str, token_file: Path, *, pool: str,
                         bind: str = "127.0.0.1", args: tuple[str, ...] = ()) -> FleetBalancer:
    """A balancer following ``pool``; groups without a ``bind`` listen on ``bind`` (127.0.0.2, .3 … stand for
    other hosts: every 127.x address is loopback, so three balancers on one machine can serve one port)."""
    folder.mkdir(parents=True, exist_ok=True)
    admin_token = folder / "admin.token"
    child = spawn([*BALANCEDESK, "balance", "--api", url, "--token-file", str(token_file), "--pool", pool,
                   "--bind", bind, "--admin", "127.0.0.1:0", "--admin-token-file", str(admin_token), *args])
    m = child.wait_for(FLEET_RX, timeout=30)
    return FleetBalancer(child, m[3], admin_token.read_text().strip())


def wait_applied(balancers: list[FleetBalancer], gid: str, version: int, *, what: str) -> None:
    for b in balancers:
        wait_until(lambda b=b: (b.applied(gid) or 0) >= version, what=what, timeout=15)
