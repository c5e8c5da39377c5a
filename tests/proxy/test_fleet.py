"""A fleet on 127.0.0.1: one management server, three balancer processes (one with ``--workers 2``) following
its pool with a balancer token alone, three groups each (L4 and L7 side by side).

Everything is a real process: ``balancedesk serve``, ``balancedesk balance --api``, ``tcp_name`` and
``http_backend`` members. Waits are conditions with deadlines. The quiet check watches a bounded 6 s (the 30 s
one is ``bench/bench_fleet.py --quiet 30``).
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleetkit import FleetBalancer, Mgmt, free_port, start_fleet_balancer, wait_applied
from lbkit import Held, Spawn, StartUpstream, ask, wait_until

QUIET_S = 6.0


def _addr(b: FleetBalancer, gid: str) -> tuple[str, int]:
    listen = b.groups()[gid]["listen"]
    host, port = str(listen).rsplit(":", 1)
    return host, int(port)


def _http_get(addr: tuple[str, int]) -> str:
    r = httpx.get(f"http://{addr[0]}:{addr[1]}/", timeout=10)
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture
def fleet(spawn: Spawn, upstream: StartUpstream, tmp_path: Path) -> dict[str, Any]:
    mgmt = Mgmt(spawn, tmp_path / "mgmt", heartbeat_interval=0.5)
    pool = "edge"
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    h1 = upstream("http_backend", "h1")
    # a connector belongs to one group: each group gets its own members (on the same upstream processes)
    ids = {f"{u.name}{g}": mgmt.register(f"fleet-{u.name}{g}", u.endpoint) for u in (a, b, h1) for g in (1, 2, 3)}
    gids = [mgmt.create_group("g-tcp-1", [ids["a1"], ids["b1"]], pool=pool, port=free_port()),
            mgmt.create_group("g-tcp-2", [ids["a2"]], pool=pool, port=free_port()),
            mgmt.create_group("g-http", [ids["h13"]], pool=pool, port=free_port(), mode="http")]
    token_file = mgmt.token(pool, tmp_path)
    balancers = [start_fleet_balancer(spawn, tmp_path / f"lb{i}", mgmt.url, token_file, pool=pool,
                                      bind=f"127.0.0.{i + 1}", args=args)
                 for i, args in enumerate([(), ("--workers", "2"), ()])]
    return {"mgmt": mgmt, "pool": pool, "ids": ids, "gids": gids, "balancers": balancers,
            "token_file": token_file, "upstream": upstream}


def test_three_balancers_serve_three_groups_and_follow_saves(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids, ids = fleet["pool"], fleet["gids"], fleet["ids"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    for b in lbs:
        groups = b.groups()
        assert sorted(groups) == sorted(gids)
        assert all(g["error"] is None for g in groups.values()), groups
        assert asyncio.run(ask(_addr(b, gids[0]))) in ("a", "b")
        assert asyncio.run(ask(_addr(b, gids[1]))) == "a"
        assert _http_get(_addr(b, gids[2])) == "h1"
