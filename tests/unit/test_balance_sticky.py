"""Sticky affinity (core/balance/sticky.py): a key stays on the member that last served it while it is up.

Time is an explicit ``now`` everywhere. The same store contract is checked on the one-process
:class:`StickyTable` and on the shared-memory table of ``--workers`` (core/proxy/shared.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import pytest
from balancedesk.core.balance import GroupBalancer, StickyStore, StickyTable
from balancedesk.core.model import ConnectorGroup
from balancedesk.core.proxy.shared import SharedState
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1000.0
IDLE = 60.0
IDS = ["a", "b", "c", "d"]
WEIGHTS = {"a": 3, "b": 1, "c": 2, "d": 1}


def group(weights: dict[str, int] = WEIGHTS, *, retry_delay: int = 10) -> ConnectorGroup:
    return ConnectorGroup.model_validate({
        "connectionTimeout": 5, "retryDelay": retry_delay, "loadBalancing": "Round Robin",
        "members": [{"memberID": m, "sequence": i + 1, "weight": w} for i, (m, w) in enumerate(weights.items())],
    })


def reference_choice(key: str, weights: dict[str, int], allowed: set[str]) -> str | None:
    """Weighted rendezvous hashing written out again, independently of core/balance/affinity.py."""
    best: tuple[float, str] | None = None
    for mid, w in weights.items():
        if mid not in allowed:
            continue
        n = int.from_bytes(hashlib.blake2b(f"{mid}\x00{key}".encode(), digest_size=8).digest(), "big")
        u = min((n + 0.5) / 2.0**64, math.nextafter(1.0, 0.0))
        s = -w / math.log(u)
        if best is None or s > best[0] or (s == best[0] and mid < best[1]):
            best = (s, mid)
    return best[1] if best else None


def route(b: GroupBalancer, key: str, now: float, down: set[str]) -> str | None:
    """One keyed request the way the shells make it: the hot path, else the walk; members in ``down`` refuse.
    Marks whose retryDelay ended are lifted first (the Runtime's expiry timer does it)."""
    b.expire(now=now)
    first = b.first_pick(key, now=now)
    sel = b.begin(now=now, affinity_key=key)
    if first is not None:
        if first not in down:
            b.mark_succeeded(first, now=now)
            return first
        sel.tried.append(first)
        sel.failed(first, now=now)
    while (m := sel.next(now=now)) is not None:
        if m in down:
            sel.failed(m, now=now)
            continue
        sel.succeeded(m, now=now)
        return m
    return None


def shared_store(capacity: int = 64) -> StickyStore:
    view = SharedState(workers=1, member_slots=16, sticky_entries=capacity, ways=8, idle_s=IDLE).group("g")
    view.bind(IDS)  # the members of the group's config (the Runtime binds them)
    return view


STORES: dict[str, Callable[[int], Any]] = {
    "local": lambda cap: StickyTable(capacity=cap, idle_s=IDLE),
    "shared": shared_store,
}


def balancer(store: StickyStore | None) -> GroupBalancer:
    return GroupBalancer(group(), sticky=store)


def key_ranked_first_by(member: str, weights: dict[str, int] = WEIGHTS) -> str:
    return next(k for k in (f"k-{i}" for i in range(10_000)) if reference_choice(k, weights, set(weights)) == member)


# the story of the issue: a key on C; C down → B; C back → still B -------------------------------------
@pytest.mark.parametrize("kind", STORES)
def test_a_key_that_moved_during_an_outage_stays_where_it_went(kind: str) -> None:
    b = balancer(STORES[kind](64))
    key = key_ranked_first_by("c")
    assert route(b, key, T0, set()) == "c"
    moved = route(b, key, T0 + 1, {"c"})  # c refused: disabled for retryDelay, the key goes on
    assert moved is not None and moved != "c"
    assert b.sticky is not None and b.sticky.counts().entries == 1
    for dt in (2, 5, 11, 12, 30):  # the retryDelay (10 s) ends at T0 + 11
        assert route(b, key, T0 + dt, set()) == moved
    assert b.first_pick(key, now=T0 + 31) == moved  # on the hot path too, every member up


def test_without_a_sticky_store_the_key_returns_to_its_first_ranked_member() -> None:
    """What the issue reported (the old rule, kept when no store is given)."""
    b = balancer(None)
    key = key_ranked_first_by("c")
    assert route(b, key, T0 + 1, {"c"}) != "c"
    assert route(b, key, T0 + 12, set()) == "c"


@pytest.mark.parametrize("kind", STORES)
def test_a_key_back_on_its_rendezvous_choice_needs_no_entry(kind: str) -> None:
    b = balancer(STORES[kind](64))
    key = key_ranked_first_by("c")
    moved = route(b, key, T0, {"c"})
    assert moved != "c"
    # its member fails too, while c is back: the walk gives the key its rendezvous choice again
    assert route(b, key, T0 + 11, {moved}) == "c"  # type: ignore[arg-type]
    assert b.sticky is not None and b.sticky.counts().entries == 0


@pytest.mark.parametrize("kind", STORES)
def test_a_drained_rendezvous_choice_does_not_take_its_keys_back_when_enabled(kind: str) -> None:
    from balancedesk.core.balance import AdminState

    b = balancer(STORES[kind](64))
    key = key_ranked_first_by("a")
    b.set_admin("a", AdminState.DRAIN)
    moved = route(b, key, T0, set())
    assert moved not in (None, "a")
    b.set_admin("a", AdminState.ENABLED)
    assert route(b, key, T0 + 1, set()) == moved


# the store contract -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", STORES)
def test_an_entry_idle_past_idle_s_is_forgotten_and_counted(kind: str) -> None:
    s: StickyStore = STORES[kind](64)
    s.put("k", "b", now=T0)
    assert s.get("k", now=T0 + IDLE - 1) == "b"  # a use restarts the idle clock
    assert s.get("k", now=T0 + 2 * IDLE - 2) == "b"
    assert s.get("k", now=T0 + 3 * IDLE) is None
    assert s.counts().expiries == 1 and s.counts().entries == 0


@pytest.mark.parametrize("kind", STORES)
def test_sweep_forgets_idle_entries(kind: str) -> None:
    s: StickyStore = STORES[kind](64)
    s.put("old", "a", now=T0)
    s.put("new", "b", now=T0 + IDLE / 2)
    assert s.sweep(now=T0 + IDLE) == 1
    assert s.counts().entries == 1 and s.get("new", now=T0 + IDLE) == "b"


def test_the_local_table_evicts_the_entry_idle_longest() -> None:
    s = StickyTable(capacity=3, idle_s=IDLE)
    for i, k in enumerate(["k1", "k2", "k3"]):
        s.put(k, "a", now=T0 + i)
    assert s.get("k1", now=T0 + 5) == "a"  # k1 used: k2 is now idle longest
    s.put("k4", "b", now=T0 + 6)
    assert s.get("k2", now=T0 + 7) is None and s.get("k1", now=T0 + 7) == "a"
    assert s.counts().evictions == 1 and s.counts().entries == 3


def test_the_shared_table_evicts_within_a_set_and_never_holds_more_than_its_capacity() -> None:
    s = shared_store(8)  # one set of 8
    for i in range(20):
        s.put(f"k{i}", "a", now=T0 + i)
    c = s.counts()
    assert c.entries == 8 and c.evictions == 12
    assert all(s.get(f"k{i}", now=T0 + 30) == "a" for i in range(12, 20))


def test_two_groups_share_the_table_without_seeing_each_others_keys() -> None:
    state = SharedState(workers=2, member_slots=16, sticky_entries=64, ways=8, idle_s=IDLE)
    one, two = state.group("g1"), state.group("g2")
    one.bind(IDS)
    two.bind(IDS)
    one.put("k", "b", now=T0)
    assert two.get("k", now=T0) is None and one.get("k", now=T0) == "b"


def test_a_mark_published_by_one_view_is_read_by_another_of_the_same_state() -> None:
    state = SharedState(workers=2, member_slots=16, sticky_entries=64, ways=8, idle_s=IDLE)
    w1, w2 = state.group("g"), state.group("g")
    w1.bind(IDS)
    w2.bind(["d", "c", "b", "a"])  # another order: the same slots
    gen = state.generation()
    w1.publish("c", T0 + 10)
    assert state.generation() != gen
    assert dict(w2.marks())["c"] == T0 + 10
    b2 = GroupBalancer(group(), sticky=w2)
    assert b2.adopt_mark("c", T0 + 10, now=T0)  # c's health changed
    assert b2.first_pick("x", now=T0) is None  # not all clear: the walk, which skips c
    assert not b2.adopt_mark("c", T0 + 10, now=T0)
    assert b2.adopt_mark("c", None, now=T0 + 1)


# properties -------------------------------------------------------------------------------------------
KEYS = [f"key-{i}" for i in range(12)]
OPS = st.lists(st.one_of(
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=8.0)),
    st.tuples(st.just("down"), st.sampled_from(IDS)),
    st.tuples(st.just("up"), st.sampled_from(IDS)),
    st.tuples(st.just("request"), st.sampled_from(KEYS)),
), max_size=80)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, kind=st.sampled_from(sorted(STORES)))
def test_a_key_never_moves_while_its_member_is_up_and_new_keys_follow_rendezvous(
    ops: list[tuple[Any, ...]], kind: str
) -> None:
    b = balancer(STORES[kind](64))  # larger than the keys used: nothing is evicted
    now = T0
    down: set[str] = set()
    served: dict[str, str] = {}  # key → the member that last served it
    for op in ops:
        if op[0] == "advance":
            now += op[1]
        elif op[0] == "down":
            down.add(op[1])
        elif op[0] == "up":
            down.discard(op[1])
        else:
            key = op[1]
            healthy = {v.member_id for v in b.members() if v.healthy(now)}
            got = route(b, key, now, down)
            last = served.get(key)
            if last is not None and last not in down and last in healthy:
                assert got == last, (key, last, got)  # its member is up: the key stays
            if last is None and got is not None:
                # a new key: the first rendezvous-ranked member among those that are up and answer
                allowed = (healthy - down) or (set(IDS) - down)
                assert got == reference_choice(key, WEIGHTS, allowed)
            if got is not None:
                served[key] = got
        assert b.sticky is not None and b.sticky.counts().entries <= len(KEYS)


@settings(max_examples=100, deadline=None)
@given(puts=st.lists(st.tuples(st.integers(0, 300), st.sampled_from(IDS), st.floats(0.0, 200.0)), max_size=300),
       kind=st.sampled_from(sorted(STORES)))
def test_the_table_never_holds_more_than_its_bound(puts: list[tuple[int, str, float]], kind: str) -> None:
    s: StickyStore = STORES[kind](16)
    for k, mid, dt in puts:
        s.put(f"k{k}", mid, now=T0 + dt)
        assert s.counts().entries <= 16
    assert s.counts().capacity == 16


@given(keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50))
def test_keys_without_entries_match_the_reference_rendezvous_when_all_are_up(keys: list[str]) -> None:
    b = balancer(StickyTable(capacity=8, idle_s=IDLE))
    for k in keys:
        assert b.first_pick(k, now=T0) == reference_choice(k, WEIGHTS, set(IDS))
