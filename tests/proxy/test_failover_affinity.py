"""L7 (HTTP/1.1) balancing: per-request weights, push transfers that need affinity, agreement of balancers.

The upstreams are ``upstreams/http_backend.py`` processes. Like Orthanc's transfers plugin, each keeps a push
transfer in its own memory: a transfer only commits if its create, every bucket PUT and its commit reach
the same backend — which the ``sender-transfer-id`` header affinity guarantees and round robin does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from balancedesk.core.balance import rendezvous_rank
from lbkit import Balancer, StartBalancer, StartUpstream, Upstream, group_config

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("http_plane")]

AFFINITY = ["--affinity-header", "sender-transfer-id"]

BIG = 8 * 1024 * 1024  # one 8 MB bucket per transfer, as Orthanc's default bucket size
SMALL = 1024 * 1024
TRANSFERS = 20


def three_backends(upstream: StartUpstream) -> list[Upstream]:
    return [upstream("http_backend", f"be{i}") for i in (1, 2, 3)]


async def test_l7_requests_on_one_keepalive_connection_follow_weights_3_2_1(
    upstream: StartUpstream, balancer: StartBalancer
) -> None:
    ups = three_backends(upstream)
    lb = balancer(group_config([(u.name, u.endpoint, w) for u, w in zip(ups, (3, 2, 1), strict=True)]),
                  mode="http", args=["--no-affinity"])
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=1)) as client:
        names = [(await client.get(lb.url + f"/r/{i}")).headers["x-upstream"] for i in range(600)]
    assert Counter(names) == {"be1": 300, "be2": 200, "be3": 100}


@dataclass
class Outcome:
    transfer: str
    ok: bool
    detail: str
    backend: str | None = None


async def push_transfer(client: httpx.AsyncClient, base: str, i: int, buckets: list[bytes]) -> Outcome:
    tid = f"transfer-{i}-{uuid.uuid4()}"
    headers = {"sender-transfer-id": tid}
    r = await client.post(base + "/transfers/push", json={"Buckets": len(buckets)}, headers=headers)
    if r.status_code != 200 or r.json()["ID"] != tid:
        return Outcome(tid, False, f"create: {r.status_code} {r.text}")
    puts = await asyncio.gather(*(
        client.put(f"{base}/transfers/push/{tid}/{k}", content=data, headers=headers)
        for k, data in enumerate(buckets)
    ))
    bad = [f"PUT {k}: {p.status_code} {p.text}" for k, p in enumerate(puts) if p.status_code != 200]
    r = await client.post(f"{base}/transfers/push/{tid}/commit", headers=headers)
    if r.status_code != 200:
        return Outcome(tid, False, "; ".join([*bad, f"commit: {r.status_code} {r.text}"]))
    body = r.json()
    want = [hashlib.sha256(b).hexdigest() for b in buckets]
    ok = not bad and body["Sha256"] == want and body["Bytes"] == sum(map(len, buckets))
    return Outcome(tid, ok, str(body) if ok else f"{bad} {body}", body.get("Backend"))


async def run_transfers(lb: Balancer) -> list[Outcome]:
    buckets = [os.urandom(BIG), os.urandom(SMALL), os.urandom(SMALL)]
    limits = httpx.Limits(max_connections=TRANSFERS * 3, max_keepalive_connections=TRANSFERS * 3)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async with asyncio.timeout(120):
            return list(await asyncio.gather(*(push_transfer(client, lb.url, i, buckets)
                                               for i in range(TRANSFERS))))


async def test_20_concurrent_push_transfers_all_commit_with_sender_transfer_id_affinity(
    upstream: StartUpstream, balancer: StartBalancer
) -> None:
    ups = three_backends(upstream)
    lb = balancer(group_config([(u.name, u.endpoint, 1) for u in ups]), mode="http", args=AFFINITY)
    outcomes = await run_transfers(lb)
    failed = [o for o in outcomes if not o.ok]
    assert not failed, failed
    # and they were spread: affinity is not "everything to one backend"
    used = Counter(o.backend for o in outcomes)
    assert len(used) >= 2, used


async def test_the_same_transfers_break_without_affinity(upstream: StartUpstream,
                                                       balancer: StartBalancer) -> None:
    ups = three_backends(upstream)
    lb = balancer(group_config([(u.name, u.endpoint, 1) for u in ups]), mode="http", args=["--no-affinity"])
    outcomes = await run_transfers(lb)
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) >= 1, "round robin without affinity should scatter a transfer's requests"
    assert all("missing buckets" in o.detail or "unknown transfer" in o.detail for o in failed), failed


async def test_two_balancers_agree_on_every_affinity_key(upstream: StartUpstream,
                                                       balancer: StartBalancer) -> None:
    ups = three_backends(upstream)
    members = [(u.name, u.endpoint, w) for u, w in zip(ups, (2, 1, 1), strict=True)]
    one = balancer(group_config(members), mode="http", args=AFFINITY)
    two = balancer(group_config(list(reversed(members))), mode="http", args=AFFINITY)
    keys = [f"study-{i}" for i in range(300)]
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(7):  # different round-robin histories must not matter for keyed requests
            await client.get(two.url + "/warm-up")

        async def route(lb: Balancer) -> dict[str, str]:
            out = {}
            for k in keys:
                r = await client.get(lb.url + "/which", headers={"sender-transfer-id": k})
                assert r.status_code == 200
                out[k] = r.headers["x-upstream"]
            return out

        via_one, via_two = await route(one), await route(two)
    assert via_one == via_two
    assert set(via_one.values()) == {"be1", "be2", "be3"}
    # and both follow the core's weighted rendezvous ranking
    weights = [(m, w) for m, _, w in members]
    assert via_one == {k: rendezvous_rank(k, weights)[0] for k in keys}
