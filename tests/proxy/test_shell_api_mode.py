"""``balancedesk balance --api URL --group ID``: the balancer pulls its group from a real management server.

A real ``balancedesk serve --demo --port 0`` process, real ``tcp_name`` members and a real balancer child,
all on 127.0.0.1. The group is edited through the management API (``PUT`` with ``If-Match``); the running
balancer notices through its ``If-None-Match`` polling, applies the new group, and a connection held open
through a member that left the group keeps relaying.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from lbkit import BALANCEDESK, Held, Spawn, StartBalancer, StartUpstream, ask, balance_cmd, wait_until

ADMIN_PASSWORD = "api-mode-admin-pw-1"
PW_ENV = "BD_TEST_API_PASSWORD"


class Mgmt:
    """The management server's HTTP API as an admin, with bounded requests."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, auth=("admin", ADMIN_PASSWORD), timeout=10)

    def register(self, label: str, endpoint: str) -> str:
        r = self.http.post("/api/admin/connectors", json={"label": label, "owner": "admin", "endpoint": endpoint})
        assert r.status_code in (200, 201), r.text
        return str(r.json()["connectorID"])

    def create_group(self, label: str, members: list[tuple[str, int]]) -> tuple[str, str]:
        body = {"owner": "admin", "label": label, "connectorGroup": group_body(members)}
        r = self.http.post("/api/mgmt/connectors", json=body)
        assert r.status_code in (200, 201), r.text
        return str(r.json()["connectorID"]), r.headers["ETag"]

    def get(self, gid: str) -> tuple[dict[str, Any], str]:
        r = self.http.get(f"/api/mgmt/connectors/{gid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body, r.headers["ETag"]

    def put(self, gid: str, body: dict[str, Any], if_match: str) -> httpx.Response:
        return self.http.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": if_match})


def group_body(members: list[tuple[str, int]]) -> dict[str, Any]:
    return {"connectionTimeout": 2, "retryDelay": 2, "loadBalancing": "Round Robin",
            "members": [{"memberID": m, "sequence": i + 1, "weight": w} for i, (m, w) in enumerate(members)]}


def api_source(url: str, gid: str) -> list[str]:
    """``balance`` arguments that pull group ``gid`` from the management server at ``url`` as admin."""
    return ["--api", url, "--group", gid, "--user", "admin", "--password-env", PW_ENV]


@pytest.mark.asyncio
async def test_api_mode_follows_a_group_edit_without_dropping_a_held_connection(
    spawn: Spawn, upstream: StartUpstream, balancer: StartBalancer, tmp_path: Path
) -> None:
    server = spawn([*BALANCEDESK, "serve", "--port", "0", "--data", str(tmp_path / "mgmt"), "--demo"],
                   env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    url = server.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30)[1]
    api = Mgmt(url)
    try:
        a, b, c = (upstream("tcp_name", n) for n in ("a", "b", "c"))
        ids = {u.name: api.register(f"api-mode-{u.name}", u.endpoint) for u in (a, b, c)}
        name_of = {v: k for k, v in ids.items()}
        gid, _ = api.create_group("api mode group", [(ids["a"], 1), (ids["b"], 1)])

        lb = balancer(api_source(url, gid), mode="tcp", env={PW_ENV: ADMIN_PASSWORD}, timeout=30)
        snap = await asyncio.to_thread(lb.snapshot)
        assert [m["memberID"] for m in snap["members"]] == [ids["a"], ids["b"]]
        assert [m["endpoint"] for m in snap["members"]] == [a.endpoint, b.endpoint]
        version = snap["version"]

        # one connection held open through each member; new connections share 1:1
        held = [await Held.open(lb.addr) for _ in range(2)]
        assert sorted(h.member or "" for h in held) == ["a", "b"]
        assert Counter([await ask(lb.addr) for _ in range(8)]) == {"a": 4, "b": 4}

        # an edit with a stale ETag is refused (412) and changes nothing
        body, etag = api.get(gid)
        stale = api.put(gid, {**body, "connectorGroup": group_body([(ids["c"], 1)])}, '"not-the-etag"')
        assert stale.status_code == 412, stale.text

        # a leaves, b stays with weight 1, c joins with weight 3: PUT with the current ETag
        new_group = group_body([(ids["b"], 1), (ids["c"], 3)])
        r = api.put(gid, {**body, "connectorGroup": new_group}, etag)
        assert r.status_code == 200, r.text
        assert r.headers["ETag"] != etag

        def applied() -> dict[str, Any] | None:
            s = lb.snapshot()
            return s if s["version"] != version else None

        snap = await asyncio.to_thread(wait_until, applied, timeout=20, what="the balancer to pull the edited group")
        assert [(m["memberID"], m["weight"]) for m in snap["members"]] == [(ids["b"], 1), (ids["c"], 3)]
        assert [m["endpoint"] for m in snap["members"]] == [b.endpoint, c.endpoint]
        assert name_of[snap["members"][1]["memberID"]] == "c"

        # both held connections still relay, the one through the removed member a included
        for round_ in range(3):
            for h in held:
                assert await h.ask(f"after the edit {round_}\n".encode()) == h.member
        # new connections follow the new group: b:c = 1:3, a gets none
        assert Counter([await ask(lb.addr) for _ in range(8)]) == {"b": 2, "c": 6}

        # nothing was refused or failed on the way, and the config event names the new version
        snap = await asyncio.to_thread(lb.snapshot)
        assert snap["totals"]["failed"] == 0 and snap["totals"]["refused"] == 0
        events = await asyncio.to_thread(lb.events)
        assert any(e["kind"] == "config" and e["version"] == snap["version"] for e in events)
        for h in held:
            await h.close()
    finally:
        api.http.close()


def test_api_mode_refuses_to_start_without_a_reachable_group(spawn: Spawn, tmp_path: Path) -> None:
    server = spawn([*BALANCEDESK, "serve", "--port", "0", "--data", str(tmp_path / "mgmt"), "--demo"],
                   env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    url = server.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30)[1]
    child = spawn(balance_cmd(api_source(url, "no-such-group"), mode="tcp"), env={PW_ENV: ADMIN_PASSWORD})
    child.wait_for(r"balancedesk balance: cannot load group no-such-group", timeout=30)
    assert child.proc.wait(15) == 2
