"""Smooth weighted round robin: nginx's vectors, nginx's algorithm, and the window rule."""

from __future__ import annotations

from collections import Counter

import pytest
from balancedesk.core.balance import SmoothWRR
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = "abcdefgh"


def nginx_reference(weights: list[int], picks: int) -> list[str]:
    """A literal transcription of ngx_http_upstream_get_peer (no failures, every peer up)."""
    current = [0] * len(weights)
    out = []
    for _ in range(picks):
        best = -1
        total = 0
        for i, w in enumerate(weights):
            current[i] += w
            total += w
            if best == -1 or current[i] > current[best]:
                best = i
        current[best] -= total
        out.append(NAMES[best])
    return out


def wrr(*weights: int) -> SmoothWRR:
    return SmoothWRR([(NAMES[i], w) for i, w in enumerate(weights)])


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # ngx_http_upstream_round_robin.c: "{ 5, 1, 1 } weights gives us { a, a, b, a, c, a, a }"
        ((5, 1, 1), "aabacaa"),
        # the HDP sample group: 3, 2, 1 → for every six connections three to a, two to b, one to c
        ((3, 2, 1), "abacba"),
        ((1, 1, 1), "abc"),
        ((2, 1), "aba"),
        ((1, 2), "bab"),
        ((1,), "a"),
        ((4, 2, 1), "abacaba"),
    ],
)
def test_nginx_vectors(weights: tuple[int, ...], expected: str) -> None:
    w = wrr(*weights)
    got = "".join(str(w.pick()) for _ in range(3 * len(expected)))
    assert got == expected * 3  # and the pattern repeats: the state returns to zero after each period
    assert set(w.state().values()) == {0}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=6))
def test_same_sequence_as_nginx(weights: list[int]) -> None:
    w = wrr(*weights)
    n = 2 * sum(weights) + 3
    assert [w.pick() for _ in range(n)] == nginx_reference(weights, n)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=200),
)
def test_every_window_of_sum_weights_picks_gives_exact_shares(weights: list[int], skip: int) -> None:
    """With every member up, ANY window of sum(weights) consecutive picks has each member exactly its weight."""
    w = wrr(*weights)
    for _ in range(skip):
        w.pick()
    total = sum(weights)
    seq = [w.pick() for _ in range(3 * total)]
    expected = {NAMES[i]: wt for i, wt in enumerate(weights)}
    for start in range(2 * total + 1):
        assert Counter(seq[start : start + total]) == expected, (start, seq)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=6),
    st.lists(st.integers(min_value=1, max_value=10), min_size=1, max_size=6),
    st.integers(min_value=0, max_value=50),
)
def test_after_a_weight_change_every_window_follows_the_new_weights(
    before: list[int], after: list[int], picks_before: int
) -> None:
    """A live reweight (weights changed, members added or removed): the very next window is exact."""
    w = wrr(*before)
    for _ in range(picks_before):
        w.pick()
    new = [(NAMES[i], wt) for i, wt in enumerate(after)]
    w.reweight(new)
    total = sum(after)
    seq = [w.pick() for _ in range(2 * total)]
    for start in range(total + 1):
        assert Counter(seq[start : start + total]) == dict(new)


def test_reweight_with_identical_weights_keeps_the_rhythm() -> None:
    w = wrr(5, 1, 1)
    first = [w.pick() for _ in range(3)]
    w.reweight([("a", 5), ("b", 1), ("c", 1)])
    rest = [w.pick() for _ in range(4)]
    assert "".join(map(str, first + rest)) == "aabacaa"


def test_pick_among_candidates_skips_the_others_and_keeps_their_state() -> None:
    w = wrr(3, 2, 1)
    seq = [w.pick(["a", "c"]) for _ in range(8)]
    assert set(seq) == {"a", "c"}
    assert Counter(seq) == {"a": 6, "c": 2}  # 3:1 among the candidates
    assert w.state()["b"] == 0  # a non-candidate is not charged
    assert w.pick([]) is None
    assert w.pick(["zzz"]) is None  # unknown names are not candidates


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10), min_size=2, max_size=6),
    st.data(),
)
def test_subset_windows_are_exact_for_the_subset(weights: list[int], data: st.DataObject) -> None:
    """While some members are out (disabled), the rest share by their own weights, window by window."""
    w = wrr(*weights)
    names = [NAMES[i] for i in range(len(weights))]
    subset = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    total = sum(weights[names.index(n)] for n in subset)
    seq = [w.pick(subset) for _ in range(2 * total)]
    expected = {n: weights[names.index(n)] for n in subset}
    # from a fresh state the first window is exact too
    for start in range(total + 1):
        assert Counter(seq[start : start + total]) == expected


def test_ties_go_to_the_first_listed() -> None:
    w = wrr(1, 1, 1, 1)
    assert [w.pick() for _ in range(8)] == list("abcdabcd")
    assert w.order == ["a", "b", "c", "d"]
