"""Weighted rendezvous hashing of the affinity key: stability, weights, agreement between balancers."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from balancedesk.core.balance import GroupBalancer, rendezvous_rank
from balancedesk.core.balance.affinity import score, unit_of
from balancedesk.core.model import ConnectorGroup
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 50.0
KEYS = [f"transfer-{i:06d}" for i in range(12_000)]


def top(key: str, members: list[tuple[str, int]]) -> str:
    return rendezvous_rank(key, members)[0]


def assignment(members: list[tuple[str, int]]) -> dict[str, str]:
    return {k: top(k, members) for k in KEYS}


def rr_group(members: list[tuple[str, int]], *, retry_delay: int = 30) -> ConnectorGroup:
    body: dict[str, Any] = {
        "loadBalancing": "Round Robin",
        "retryDelay": retry_delay,
        "members": [{"memberID": m, "sequence": i, "weight": w} for i, (m, w) in enumerate(members)],
    }
    return ConnectorGroup.model_validate(body)


FIVE = [(f"orthanc-{i}", 1) for i in range(5)]


def test_removing_one_of_n_members_moves_only_its_keys_about_one_nth() -> None:
    before = assignment(FIVE)
    gone = "orthanc-2"
    after = assignment([m for m in FIVE if m[0] != gone])
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == gone for k in moved), "a key of a surviving member moved"
    assert {k for k in KEYS if before[k] == gone} == set(moved)  # every key of the removed member moved
    assert abs(len(moved) / len(KEYS) - 1 / 5) < 0.02
    # the removed member's keys spread over the survivors, not onto one of them
    spread = Counter(after[k] for k in moved)
    assert len(spread) == 4 and min(spread.values()) > len(moved) / 4 * 0.8


def test_adding_a_member_moves_only_keys_to_the_new_member() -> None:
    before = assignment(FIVE)
    after = assignment([*FIVE, ("orthanc-new", 1)])
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(after[k] == "orthanc-new" for k in moved)
    assert abs(len(moved) / len(KEYS) - 1 / 6) < 0.02


def test_weights_are_respected_statistically() -> None:
    members = [("a", 3), ("b", 2), ("c", 1)]
    shares = Counter(assignment(members).values())
    for m, w in members:
        assert abs(shares[m] / len(KEYS) - w / 6) < 0.02, shares


def test_raising_one_weight_moves_keys_only_to_that_member() -> None:
    before = assignment(FIVE)
    after = assignment([(m, 3 if m == "orthanc-0" else w) for m, w in FIVE])
    moved = [k for k in KEYS if before[k] != after[k]]
    assert moved and all(after[k] == "orthanc-0" for k in moved)
    assert abs(Counter(after.values())["orthanc-0"] / len(KEYS) - 3 / 7) < 0.02


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=12), st.integers(1, 50)), min_size=2, max_size=8,
             unique_by=lambda mw: mw[0]),
    st.text(max_size=40),
    st.data(),
)
def test_removing_a_member_keeps_the_order_of_the_others(
    members: list[tuple[str, int]], key: str, data: st.DataObject
) -> None:
    """The rank is a permutation, and each member's place depends only on its own score."""
    rank = rendezvous_rank(key, members)
    assert sorted(rank) == sorted(m for m, _ in members)
    gone = data.draw(st.sampled_from([m for m, _ in members]))
    rest = [mw for mw in members if mw[0] != gone]
    assert rendezvous_rank(key, rest) == tuple(m for m in rank if m != gone)
    # listing order does not matter
    assert rendezvous_rank(key, list(reversed(members))) == rank


def test_unit_values_stay_strictly_inside_zero_and_one() -> None:
    """Regression: the largest 64-bit digests used to round to 1.0, and log(1.0) == 0 divided by zero."""
    for n in (0, 1, 2**63, 2**64 - 2**11, 2**64 - 1024, 2**64 - 1):
        u = unit_of(n)
        assert 0.0 < u < 1.0
        assert math.isfinite(-1 / math.log(u))
    assert unit_of(2**64 - 1) >= unit_of(2**63)
    assert score("k", "m", 2) == 2 * score("k", "m", 1)


def walk(b: GroupBalancer, key: str, now: float, failing: set[str]) -> tuple[str | None, list[str]]:
    sel = b.begin(now=now, affinity_key=key)
    while (m := sel.next(now=now)) is not None:
        if m in failing:
            sel.failed(m, now=now)
            continue
        sel.succeeded(m, now=now)
        return m, list(sel.tried)
    return None, list(sel.tried)


def test_two_balancers_agree_on_every_key_even_with_different_histories() -> None:
    members = [("a", 3), ("b", 2), ("c", 1), ("d", 1)]
    one = GroupBalancer(rr_group(members))
    two = GroupBalancer(rr_group(list(reversed(members))))
    # different round-robin histories must not matter for keyed traffic
    for _ in range(7):
        walk(one, "warm", T0, set())
        one.begin(now=T0).next(now=T0)
    for key in KEYS[:3000]:
        assert walk(one, key, T0, set()) == walk(two, key, T0, set())
        assert walk(one, key, T0, set())[0] == rendezvous_rank(key, members)[0]


def test_affinity_follows_the_rank_when_the_top_member_fails_and_returns_after_retry_delay() -> None:
    members = [("a", 1), ("b", 1), ("c", 1)]
    b = GroupBalancer(rr_group(members, retry_delay=30))
    key = "sender-1"
    rank = rendezvous_rank(key, members)
    assert walk(b, key, T0, {rank[0]}) == (rank[1], [rank[0], rank[1]])
    # while rank[0] is disabled the key sticks to rank[1] without trying rank[0]
    assert walk(b, key, T0 + 29, set()) == (rank[1], [rank[1]])
    assert walk(b, key, T0 + 30, set()) == (rank[0], [rank[0]])


def test_keyed_picks_do_not_disturb_the_round_robin_rhythm() -> None:
    b = GroupBalancer(rr_group([("a", 5), ("b", 1), ("c", 1)]))
    seq = []
    for i in range(14):
        walk(b, f"k{i}", T0, set())
        seq.append(b.begin(now=T0).next(now=T0))
    assert "".join(map(str, seq)) == "aabacaa" * 2
