"""A fleet on 127.0.0.1: one management server, three balancer processes (one with ``--workers 2``) following
its pool with a balancer token alone, three groups each (L4 and L7 side by side).

Everything is a real process: ``balancedesk serve``, ``balancedesk balance --api``, ``tcp_name`` and
``http_backend`` members. Waits are conditions with deadlines. The quiet check watches a bounded 6 s (the 30 s
one is ``bench/bench_fleet.py --quiet 30``). The ``--workers 2`` balancer (``balancers[1]``) shows one state
per process: a member one worker found dead is dead for both, a drain and a live weight sent once to its admin
endpoint are obeyed by both workers through ten config updates, and a sticky key stays where it moved
whichever worker takes its requests (its snapshot's counters are summed over the workers).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from balancedesk.core.balance import rendezvous_rank
from fleetkit import FleetBalancer, Mgmt, free_port, start_fleet_balancer, wait_applied
from lbkit import Held, Spawn, StartUpstream, ask, wait_until

QUIET_S = 6.0
FRESH = 24  # requests of one key on fresh connections (spread over the workers by SO_REUSEPORT)


def _addr(b: FleetBalancer, gid: str) -> tuple[str, int]:
    listen = b.groups()[gid]["listen"]
    host, port = str(listen).rsplit(":", 1)
    return host, int(port)


def _http_get(addr: tuple[str, int]) -> str:
    r = httpx.get(f"http://{addr[0]}:{addr[1]}/", timeout=10)
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture
def fleet(spawn: Spawn, upstream: StartUpstream, tmp_path: Path) -> Iterator[dict[str, Any]]:
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
    yield {"mgmt": mgmt, "pool": pool, "ids": ids, "gids": gids, "balancers": balancers,
           "token_file": token_file, "upstream": upstream, "ups": {"a": a, "b": b, "h1": h1}}
    for lb in balancers:  # SIGTERM: the --workers parent forwards it to its workers (SIGKILL would orphan them)
        lb.child.kill(signal.SIGTERM)


def test_three_balancers_serve_three_groups_l4_and_l7(fleet: dict[str, Any]) -> None:
    gids = fleet["gids"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    for b in lbs:
        groups = b.groups()
        assert sorted(groups) == sorted(gids)
        assert all(g["error"] is None for g in groups.values()), groups
        assert asyncio.run(ask(_addr(b, gids[0]))) in ("a", "b")
        assert asyncio.run(ask(_addr(b, gids[1]))) == "a"
        assert _http_get(_addr(b, gids[2])) == "h1"
        # the members' labels come with the pool's documents: the snapshot shows them beside the memberIDs
        labels = {m["memberID"]: m["label"] for m in b.snapshot(gids[0])["members"]}
        assert labels == {fleet["ids"]["a1"]: "fleet-a1", fleet["ids"]["b1"]: "fleet-b1"}


def _relabel(n: int) -> Any:
    def change(body: dict[str, Any]) -> None:
        body["label"] = f"relabelled {n}"
    return change


def test_a_save_reaches_all_three_and_nothing_else_happens_while_nothing_changes(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids, ids = fleet["pool"], fleet["gids"], fleet["ids"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    g = gids[0]
    before = {id(b): b.snapshot(g)["version"] for b in lbs}

    def drop_b(body: dict[str, Any]) -> None:
        body["connectorGroup"]["members"] = [m for m in body["connectorGroup"]["members"]
                                             if m["memberID"] == ids["a1"]]

    mgmt.edit(g, drop_b)
    version = mgmt.version(pool, g)
    wait_applied(lbs, g, version, what="the save applied by all three balancers")
    for b in lbs:
        snap = b.snapshot(g)
        assert [m["memberID"] for m in snap["members"]] == [ids["a1"]]
        assert snap["version"] == before[id(b)] + 1, "one save, one new local version"
        assert snap["serverVersion"] == version and snap["controlPlane"]["state"] == "connected"
        assert {asyncio.run(ask(_addr(b, g))) for _ in range(4)} == {"a"}
    # nothing changes: no config event and no new local version anywhere for QUIET_S
    marks = {(id(b), gid): (b.snapshot(gid)["version"], len(b.config_events(gid))) for b in lbs for gid in gids}
    end = time.monotonic() + QUIET_S
    while time.monotonic() < end:  # watching for something that must not happen, over a bounded period
        for b in lbs:
            for gid in gids:
                assert (b.snapshot(gid)["version"], len(b.config_events(gid))) == marks[(id(b), gid)]
        time.sleep(0.5)


def test_the_server_goes_away_and_comes_back(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids = fleet["pool"], fleet["gids"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    port = mgmt.port
    mgmt.child.kill()
    for b in lbs:
        state = wait_until(lambda b=b: (cp := b.snapshot(gids[1])["controlPlane"])["state"] == "unreachable" and cp,
                           what="the balancer to say the server is unreachable", timeout=30)
        assert state["lastError"] and state["since"] > 0
        assert asyncio.run(ask(_addr(b, gids[1]))) == "a", "the last good config keeps serving"
    mgmt.start(port)
    mgmt.edit(gids[1], _relabel(1))
    version = mgmt.version(pool, gids[1])
    wait_applied(lbs, gids[1], version, what="the balancers to catch up after the server's restart")
    for b in lbs:
        wait_until(lambda b=b: b.snapshot(gids[1])["controlPlane"]["state"] == "connected",
                   what="connected again", timeout=15)
        assert b.snapshot(gids[1])["group"]["label"] == "relabelled 1"


def test_a_killed_balancer_is_shown_as_lost(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    listed = wait_until(lambda: len(got := mgmt.balancers()) == 3 and all(x["state"] == "alive" for x in got) and got,
                        what="three alive balancers listed")
    assert sorted(x["workers"] for x in listed) == [1, 1, 2]
    assert all(len(x["groups"]) == 3 and all(g["listen"] for g in x["groups"]) for x in listed)
    lbs[2].child.kill()
    wait_until(lambda: sorted(x["state"] for x in mgmt.balancers()) == ["alive", "alive", "lost"],
               what="the killed balancer shown as lost", timeout=15)


def test_a_group_added_opens_everywhere_and_one_deleted_closes_after_its_connection(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, ids = fleet["pool"], fleet["ids"]
    lbs: list[FleetBalancer] = fleet["balancers"]
    others = {gid: [b.snapshot(gid)["version"] for b in lbs] for gid in fleet["gids"]}
    gid = mgmt.create_group("g-new", [ids["b2"]], pool=pool, port=free_port())
    wait_applied(lbs, gid, mgmt.version(pool, gid), what="the new group's listener on all three")
    for b in lbs:
        assert asyncio.run(ask(_addr(b, gid))) == "b"

    async def delete_while_held() -> None:
        addr = _addr(lbs[0], gid)
        held = await Held.open(addr)
        assert held.member == "b"
        await asyncio.to_thread(mgmt.delete, gid)
        for b in lbs:
            await asyncio.to_thread(wait_until, lambda b=b: gid not in b.groups(), what="the group closed")
        assert await ask(addr, deadline_s=5) is None, "its listener is closed"
        assert await held.ask(b"still there\n") == "b", "the connection in flight goes on"
        await held.close()

    asyncio.run(delete_while_held())
    for gid_other, versions in others.items():  # the other groups were not touched
        assert [b.snapshot(gid_other)["version"] for b in lbs] == versions


def test_the_token_reads_its_pool_only(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    token = fleet["token_file"].read_text().strip()
    gid = fleet["gids"][0]
    with httpx.Client(base_url=mgmt.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as bal:
        body, etag = mgmt.get(gid)
        assert bal.put(f"/api/mgmt/connectors/{gid}", json=body, headers={"If-Match": etag}).status_code == 403
        assert bal.get("/api/admin/pools/other-pool/groups").status_code == 403
        assert bal.get("/api/admin/balancers").status_code == 403
        assert bal.get("/api/admin/users").status_code == 403
        assert bal.get(f"/api/admin/pools/{fleet['pool']}/groups").status_code == 200


def test_a_live_weight_and_a_drain_survive_ten_updates_and_revert(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids, ids = fleet["pool"], fleet["gids"], fleet["ids"]
    lb: FleetBalancer = fleet["balancers"][0]
    g, a1, b1 = gids[0], ids["a1"], ids["b1"]
    lb.json("POST", f"/groups/{g}/members/{a1}/weight", json={"weight": 5})
    lb.json("POST", f"/groups/{g}/members/{b1}/state", json={"state": "drain"})
    want = [{"connectorID": g, "memberID": a1, "weight": 5}, {"connectorID": g, "memberID": b1, "state": "drain"}]
    want.sort(key=lambda o: o["memberID"])
    for n in range(10):
        mgmt.edit(g, _relabel(n))
        wait_applied([lb], g, mgmt.version(pool, g), what=f"update {n + 1} applied")
        snap = lb.snapshot(g)
        assert snap["group"]["label"] == f"relabelled {n}"
        members = {m["memberID"]: m for m in snap["members"]}
        assert members[a1]["weight"] == 5 and members[b1]["admin"] == "drain", f"after update {n + 1}"
        assert snap["overrides"] == want
    assert lb.json("GET", "/admin/groups")["overrides"] == want
    beat = wait_until(lambda: next((x for x in mgmt.balancers() if x["adminURL"] == lb.admin_url
                                    and x["overrides"]), None), what="the overrides in the heartbeat")
    beaten = [{k: v for k, v in o.items() if v is not None} for o in beat["overrides"]]  # the server fills in None
    assert sorted(beaten, key=lambda o: o["memberID"]) == want
    assert lb.json("DELETE", f"/groups/{g}/overrides/{a1}")["overrides"] == [want[1] if want[1]["memberID"] == b1
                                                                              else want[0]]
    members = {m["memberID"]: m for m in lb.snapshot(g)["members"]}
    assert members[a1]["weight"] == 1 and members[b1]["admin"] == "drain"
    assert lb.admin("DELETE", f"/groups/{g}/overrides/{a1}").status_code == 404
    lb.json("DELETE", f"/groups/{g}/overrides/{b1}")
    assert lb.snapshot(g)["overrides"] == [] and lb.snapshot(g)["members"][1]["admin"] == "enabled"
    lb.json("POST", f"/groups/{g}/members/{a1}/weight", json={"weight": 4})
    assert lb.snapshot(g)["overrides"] == [{"connectorID": g, "memberID": a1, "weight": 4}]
    lb.json("POST", f"/groups/{g}/members/{a1}/weight", json={"weight": 1})  # the config's weight: no override
    assert lb.snapshot(g)["overrides"] == []


# one state per balancer process: the --workers 2 balancer ------------------------------------------------
N_CONNS = 200


def _asks(addr: tuple[str, int], n: int) -> list[str | None]:
    """``n`` L4 connections one after another (each a new one: SO_REUSEPORT spreads them over the workers)."""
    async def go() -> list[str | None]:
        return [await ask(addr) for _ in range(n)]
    return asyncio.run(go())


def _members(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["memberID"]: m for m in snap["members"]}


def _both_took_some(lb: FleetBalancer, gid: str, at_least: int) -> list[int]:
    per: list[int] = wait_until(lambda: (p := lb.snapshot(gid)["shared"]["acceptedPerWorker"]) and
                                sum(p) >= at_least and p, what="both workers' counters in the snapshot")
    assert len(per) == 2 and all(n > 0 for n in per), f"both workers took connections: {per}"
    return per


def test_a_member_killed_is_dead_for_both_workers(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids, ids = fleet["pool"], fleet["gids"], fleet["ids"]
    lb: FleetBalancer = fleet["balancers"][1]
    g, a1 = gids[0], ids["a1"]

    def long_retry(body: dict[str, Any]) -> None:  # the mark outlasts the test's connections on a slow box
        body["connectorGroup"]["retryDelay"] = 60

    mgmt.edit(g, long_retry)
    version = mgmt.version(pool, g)
    wait_until(lambda: lb.all_workers_applied(g, version), what="retryDelay 60 applied by both workers")
    snap = lb.snapshot(g)
    assert snap["shared"]["workers"] == 2 and snap["shared"]["healthMarks"] and snap["shared"]["overrides"]
    base = snap["totals"]["accepted"]
    fleet["ups"]["a"].child.kill()
    answers = _asks(_addr(lb, g), 40)
    assert answers == ["b"] * 40, answers
    _both_took_some(lb, g, base + 40)
    a = _members(lb.snapshot(g))[a1]
    assert a["health"] == "disabled", a
    assert a["failuresAllWorkers"] == 1, f"one worker tried a1 once; no worker tried it again while disabled: {a}"


def test_a_drain_and_a_weight_sent_once_reach_both_workers_and_survive_ten_updates(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool, gids, ids = fleet["pool"], fleet["gids"], fleet["ids"]
    lb: FleetBalancer = fleet["balancers"][1]
    g, a1, b1 = gids[0], ids["a1"], ids["b1"]
    addr = _addr(lb, g)
    lb.json("POST", f"/groups/{g}/members/{a1}/weight", json={"weight": 3})
    lb.json("POST", f"/groups/{g}/members/{b1}/state", json={"state": "drain"})
    for n in range(10):
        mgmt.edit(g, _relabel(n))
        version = mgmt.version(pool, g)
        wait_until(lambda v=version: lb.all_workers_applied(g, v), what=f"update {n + 1} applied by both workers")
    snap = lb.snapshot(g)
    assert snap["group"]["label"] == "relabelled 9"
    assert sorted(snap["overrides"], key=lambda o: o["memberID"]) == sorted(
        [{"connectorID": g, "memberID": a1, "weight": 3}, {"connectorID": g, "memberID": b1, "state": "drain"}],
        key=lambda o: o["memberID"])
    base = snap["totals"]["accepted"]
    assert _asks(addr, N_CONNS) == ["a"] * N_CONNS, "no connection to the drained member, on either worker"
    _both_took_some(lb, g, base + N_CONNS)
    # the drain reverted (once, to worker 0's endpoint): the live weight 3:1 rules on both workers
    lb.json("DELETE", f"/groups/{g}/overrides/{b1}")
    before = _members(wait_until(lambda: lb.counted(g, base + N_CONNS), what="the counters summed"))
    answers = _asks(addr, N_CONNS)
    after = _members(wait_until(lambda: lb.counted(g, base + 2 * N_CONNS), what="the counters summed"))
    got = {m: after[m]["total"] - before[m]["total"] for m in (a1, b1)}
    assert answers.count("a") == got[a1] and answers.count("b") == got[b1], (answers, got)
    # 3:1 on each worker (smooth WRR: within a few of its exact share); a worker still at 1:1 would give ~125
    assert 140 <= got[a1] <= 160 and got[a1] + got[b1] == N_CONNS, got
    lb.json("DELETE", f"/groups/{g}/overrides/{a1}")
    assert lb.snapshot(g)["overrides"] == []


def test_a_key_that_moved_during_an_outage_stays_in_pool_mode_on_two_workers(fleet: dict[str, Any]) -> None:
    mgmt: Mgmt = fleet["mgmt"]
    pool = fleet["pool"]
    upstream: StartUpstream = fleet["upstream"]
    lb: FleetBalancer = fleet["balancers"][1]
    ups = [upstream("http_backend", f"be{i}") for i in (1, 2, 3)]
    mids = {u.name: mgmt.register(f"sticky-{u.name}", u.endpoint) for u in ups}
    header = "sender-transfer-id"
    gid = mgmt.create_group("g-sticky", list(mids.values()), pool=pool, port=free_port(), mode="http",
                            affinity=header, retry_delay=2)
    version = mgmt.version(pool, gid)
    wait_until(lambda: lb.all_workers_applied(gid, version), what="the sticky group on both workers")
    host, port = _addr(lb, gid)
    ranked = [(mid, 1) for mid in mids.values()]
    name = {mid: n for n, mid in mids.items()}

    def keys_on(member: str, n: int, prefix: str) -> list[str]:
        return [k for k in (f"{prefix}-{i}" for i in range(10_000))
                if name[rendezvous_rank(k, ranked)[0]] == member][:n]

    def which(key: str) -> str:
        r = httpx.get(f"http://{host}:{port}/which", headers={header: key, "Connection": "close"}, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.headers["x-upstream"])

    key = keys_on("be3", 1, "k")[0]
    fresh_key = keys_on("be3", 1, "fresh")[0]  # never asked before C is back
    assert {which(key) for _ in range(FRESH)} == {"be3"}
    c = ups[2]
    c.child.kill()
    moved = {which(key) for _ in range(FRESH)}
    second = name[rendezvous_rank(key, ranked)[1]]
    assert moved == {second}, f"the key moved to its next member on both workers: {moved}"
    upstream("http_backend", c.name, port=c.port)
    wait_until(lambda: _members(lb.snapshot(gid))[mids["be3"]]["health"] == "up",
               what="be3 up again after its retryDelay", timeout=15)
    assert which(fresh_key) == "be3", "C takes new keys again"
    assert {which(key) for _ in range(FRESH)} == moved, "the moved key stays where it went, on both workers"
    snap = lb.snapshot(gid)
    assert snap["sticky"]["entries"] >= 1 and snap["sticky"]["shared"] is True
    _both_took_some(lb, gid, 3 * FRESH + 1)
