"""Sticky affinity and one state per balancer process, with real balancers and upstream processes.

A key on C; C killed → it moves to B; C back after retryDelay → it stays on B. The same with ``--workers 2``
(requests of one key reach both workers, on fresh connections, and every one reaches the same member), where a
member one worker found dead is dead for the other too. And the push transfers of
``test_failover_affinity.py`` survive a member's death and return without a transfer split. Every case runs
on both L7 planes (the ``http_plane`` fixture).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import httpx
import pytest
from balancedesk.core.balance import rendezvous_rank
from lbkit import Balancer, StartBalancer, StartUpstream, Upstream, group_config, wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("http_plane")]

HEADER = "sender-transfer-id"
AFFINITY = ["--affinity-header", HEADER]
RETRY = 2  # retryDelay, seconds
WEIGHTS = {"be1": 1, "be2": 1, "be3": 1}
FRESH = 24  # requests on fresh connections (spread over the workers by SO_REUSEPORT)


def keys_on(member: str, n: int, prefix: str = "k") -> list[str]:
    """``n`` keys whose rendezvous choice is ``member``."""
    weights = list(WEIGHTS.items())
    return [k for k in (f"{prefix}-{i}" for i in range(10_000)) if rendezvous_rank(k, weights)[0] == member][:n]


def start(upstream: StartUpstream, balancer: StartBalancer, *, workers: int) -> tuple[list[Upstream], Balancer]:
    ups = [upstream("http_backend", name) for name in WEIGHTS]
    cfg = group_config([(u.name, u.endpoint, WEIGHTS[u.name]) for u in ups], retry_delay=RETRY)
    args = [*AFFINITY, *(["--workers", str(workers)] if workers > 1 else [])]
    return ups, balancer(cfg, mode="http", args=args)


def which(lb: Balancer, key: str) -> str:
    """The member that answers a GET with ``key``, on a connection of its own (so any worker may take it)."""
    r = httpx.get(lb.url + "/which", headers={HEADER: key, "Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-upstream"]


def health(lb: Balancer, member: str) -> str:
    h: str = lb.member(member)["health"]
    return h


def restart(upstream: StartUpstream, up: Upstream) -> Upstream:
    return upstream("http_backend", up.name, port=up.port)


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_key_that_moved_to_b_while_c_was_down_stays_on_b_when_c_is_back(
    upstream: StartUpstream, balancer: StartBalancer, workers: int
) -> None:
    ups, lb = start(upstream, balancer, workers=workers)
    c = ups[2]
    key = keys_on("be3", 1)[0]
    fresh_key = keys_on("be3", 2, prefix="fresh")[1]  # never asked before C is back
    assert {which(lb, key) for _ in range(FRESH)} == {"be3"}
    c.child.kill()
    moved = {which(lb, key) for _ in range(FRESH)}
    assert len(moved) == 1 and moved != {"be3"}, moved
    c = restart(upstream, c)
    wait_until(lambda: health(lb, "be3") == "up", what="be3 up again after its retryDelay", timeout=RETRY + 10)
    assert which(lb, fresh_key) == "be3"  # C is back in use: a new key goes where rendezvous says
    assert {which(lb, key) for _ in range(FRESH)} == moved  # … and the moved key stays where it went
    snap = lb.snapshot()
    assert snap["sticky"]["entries"] >= 1 and snap["sticky"]["shared"] is (workers > 1)
    assert snap["sticky"]["workers"] == workers
    if workers > 1:  # the requests were spread over both workers; the snapshot's totals are the process's
        per = wait_until(lambda: (p := lb.snapshot()["shared"]["acceptedPerWorker"]) and sum(p) >= 3 * FRESH + 1
                         and p, what="every worker's counters in the snapshot")
        assert all(n > 0 for n in per), per
        assert lb.snapshot()["totals"]["accepted"] == sum(per)


async def test_a_member_one_worker_found_dead_is_dead_for_the_other_worker_too(
    upstream: StartUpstream, balancer: StartBalancer
) -> None:
    ups, lb = start(upstream, balancer, workers=2)
    keys = keys_on("be3", 4)
    for k in keys:  # every key on be3 first
        assert which(lb, k) == "be3"
    ups[2].child.kill()
    assert lb.member("be3")["failuresAllWorkers"] == 0
    # one failed connect, on whichever worker took the first request, marks be3 for both
    first = which(lb, keys[0])
    assert first != "be3"
    snap = lb.snapshot()
    c = next(m for m in snap["members"] if m["memberID"] == "be3")
    assert c["health"] == "disabled" and c["failuresAllWorkers"] == 1, c
    # more requests of every key, on fresh connections that reach both workers: nobody tries be3 again
    answered = [which(lb, k) for _ in range(FRESH // len(keys)) for k in keys]
    assert "be3" not in answered
    after = lb.snapshot()
    c = next(m for m in after["members"] if m["memberID"] == "be3")
    assert c["failuresAllWorkers"] == 1, c
    per = wait_until(lambda: (p := lb.snapshot()["shared"]["acceptedPerWorker"]) and
                     sum(p) >= len(keys) + 1 + len(answered) and p, what="both workers' counters summed")
    assert all(n > 0 for n in per), f"both workers took some: {per}"
    # each key went to one member on both workers
    for k in keys:
        assert len({which(lb, k) for _ in range(6)}) == 1


async def put_transfer_part(client: httpx.AsyncClient, base: str, tid: str, parts: dict[int, bytes]) -> list[str]:
    headers = {HEADER: tid}
    answers = await asyncio.gather(*(client.put(f"{base}/transfers/push/{tid}/{k}", content=data, headers=headers)
                                     for k, data in parts.items()))
    return [f"PUT {k}: {a.status_code} {a.text}" for k, a in zip(parts, answers, strict=True) if a.status_code != 200]


@pytest.mark.parametrize("workers", [1, 2])
async def test_push_transfers_started_while_a_member_is_down_are_not_split_when_it_returns(
    upstream: StartUpstream, balancer: StartBalancer, workers: int
) -> None:
    """Transfers (POST, parallel 8 MB PUTs, commit; state in the receiver's memory) created while be3 is down
    go elsewhere; be3 comes back before their last PUTs and commit, which must still reach the same receiver."""
    ups, lb = start(upstream, balancer, workers=workers)
    c = ups[2]
    c.child.kill()
    buckets = [os.urandom(8 * 1024 * 1024), os.urandom(8 * 1024 * 1024), os.urandom(1024 * 1024)]
    tids = [*keys_on("be3", 6, prefix="transfer"), *keys_on("be1", 2, prefix="transfer")]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)  # fresh connections: any worker
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async with asyncio.timeout(120):
            created: dict[str, str] = {}
            for tid in tids:
                r = await client.post(lb.url + "/transfers/push", json={"Buckets": len(buckets)},
                                      headers={HEADER: tid})
                assert r.status_code == 200, r.text
                created[tid] = r.json()["Backend"]
            assert "be3" not in created.values()
            bad = [b for part in await asyncio.gather(*(
                put_transfer_part(client, lb.url, t, {0: buckets[0], 1: buckets[1]}) for t in tids)) for b in part]
            assert not bad, bad
            c = restart(upstream, c)
            wait_until(lambda: health(lb, "be3") == "up", what="be3 up again", timeout=RETRY + 10)
            assert which(lb, keys_on("be3", 1, prefix="new")[0]) == "be3"  # be3 takes new keys again
            bad = [b for part in await asyncio.gather(*(
                put_transfer_part(client, lb.url, t, {2: buckets[2]}) for t in tids)) for b in part]
            assert not bad, bad
            want = [hashlib.sha256(b).hexdigest() for b in buckets]
            for tid in tids:
                r = await client.post(f"{lb.url}/transfers/push/{tid}/commit", headers={HEADER: tid})
                assert r.status_code == 200, (tid, r.status_code, r.text)
                body: dict[str, Any] = r.json()
                assert body["Sha256"] == want and body["Backend"] == created[tid], body
