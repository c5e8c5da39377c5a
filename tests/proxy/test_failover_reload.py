"""A live config change (the config file edited while traffic flows) drops nothing in flight."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest
from lbkit import Balancer, Held, Upstream, ask, group_config, wait_until

pytestmark = pytest.mark.asyncio


async def test_editing_the_config_keeps_connections_relaying_and_new_picks_follow_new_weights(
    upstream: Callable[..., Upstream], balancer: Callable[..., Balancer]
) -> None:
    a, b, c = (upstream("tcp_name", n) for n in ("a", "b", "c"))
    lb = balancer(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)]))
    held = [await Held.open(lb.addr) for _ in range(10)]
    assert Counter(h.member for h in held) == {"a": 5, "b": 5}

    # a keeps going, b is removed from the group, c joins; weights a:c = 3:2
    v1 = await asyncio.to_thread(lb.write_config, group_config([("a", a.endpoint, 3), ("c", c.endpoint, 2)]))
    for round_ in range(3):
        for h in held:  # every long-lived connection still relays, b's included
            assert await h.ask(f"after reload {round_}\n".encode()) == h.member
    got = [await ask(lb.addr) for _ in range(50)]
    assert Counter(got) == {"a": 30, "c": 20}

    # b is added back with weight 1
    v2 = await asyncio.to_thread(
        lb.write_config, group_config([("a", a.endpoint, 3), ("b", b.endpoint, 1), ("c", c.endpoint, 2)]))
    assert v2 != v1
    got = [await ask(lb.addr) for _ in range(60)]
    assert Counter(got) == {"a": 30, "b": 10, "c": 20}
    for h in held:
        assert await h.ask(b"after the second reload\n") == h.member

    snap = await asyncio.to_thread(lb.snapshot)
    assert [(m["memberID"], m["weight"]) for m in snap["members"]] == [("a", 3), ("b", 1), ("c", 2)]
    assert snap["totals"]["failed"] == 0


async def test_a_broken_config_edit_is_refused_and_the_old_config_keeps_serving(
    upstream: Callable[..., Upstream], balancer: Callable[..., Balancer]
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
