"""A live config change (the config file edited while traffic flows) drops nothing in flight."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from lbkit import Held, StartBalancer, StartUpstream, ask, group_config, wait_until

pytestmark = pytest.mark.asyncio


def windows_exact(seq: list[str | None], weights: dict[str, int]) -> bool:
    """Every window of sum(weights) consecutive picks gives each member exactly its weight."""
    w = sum(weights.values())
    return all(Counter(seq[i : i + w]) == weights for i in range(len(seq) - w + 1))


async def test_editing_the_config_keeps_connections_relaying_and_new_picks_follow_new_weights(
    upstream: StartUpstream, balancer: StartBalancer
) -> None:
    a, b, c = (upstream("tcp_name", n) for n in ("a", "b", "c"))
    lb = balancer(group_config([("a", a.endpoint, 3), ("b", b.endpoint, 3)]))
    # 7 picks of 3:3 leave the round-robin state mid-window (a ahead of b)
    held = [await Held.open(lb.addr) for _ in range(7)]
    assert Counter(h.member for h in held) == {"a": 4, "b": 3}

    # a is removed from the group, b drops to weight 1, c joins with weight 2
    v1 = await asyncio.to_thread(lb.write_config, group_config([("b", b.endpoint, 1), ("c", c.endpoint, 2)]))
    for round_ in range(3):
        for h in held:  # every long-lived connection still relays, those through the removed a included
            assert await h.ask(f"after reload {round_}\n".encode()) == h.member
    got = [await ask(lb.addr) for _ in range(30)]
    assert Counter(got) == {"b": 10, "c": 20}
    assert windows_exact(got, {"b": 1, "c": 2}), "".join(map(str, got))

    # a is added back
    v2 = await asyncio.to_thread(
        lb.write_config, group_config([("a", a.endpoint, 3), ("b", b.endpoint, 1), ("c", c.endpoint, 2)]))
    assert v2 != v1
    got = [await ask(lb.addr) for _ in range(60)]
    assert windows_exact(got, {"a": 3, "b": 1, "c": 2}), "".join(map(str, got))
    for h in held:
        assert await h.ask(b"after the second reload\n") == h.member

    snap = await asyncio.to_thread(lb.snapshot)
    assert [(m["memberID"], m["weight"]) for m in snap["members"]] == [("a", 3), ("b", 1), ("c", 2)]
    assert snap["totals"]["failed"] == 0


async def test_a_broken_config_edit_is_refused_and_the_old_config_keeps_serving(
    upstream: StartUpstream, balancer: StartBalancer
) -> None:
    a = upstream("tcp_name", "a")
    lb = balancer(group_config([("a", a.endpoint, 1)]))
    version = (await asyncio.to_thread(lb.snapshot))["version"]
    lb.config_path.write_text('{"connectorGroup": {"members": [{"memberID": "a", "sequence": 1}]}}')
    # no endpoint for a: refused. Wait for the balancer to notice (a config event) with a deadline.
    wait_until(lambda: [e for e in lb.events() if e["kind"] == "config" and e.get("error")], timeout=15,
               what="a config event for the broken edit")
    assert (await asyncio.to_thread(lb.snapshot))["version"] == version
    assert await ask(lb.addr) == "a"
