"""share_texts: percentages that sum to exactly 100, and never "0%" for a share that is not 0."""

from __future__ import annotations

from balancedesk.core.model import WEIGHT_MAX, share_texts
from hypothesis import given
from hypothesis import strategies as st


def test_the_examples() -> None:
    assert share_texts([1000 / 1002, 1 / 1002, 1 / 1002]) == ["99.8%", "0.1%", "0.1%"]
    assert share_texts([3 / 6, 2 / 6, 1 / 6]) == ["50%", "33%", "17%"]
    assert share_texts([1.0, 0.0]) == ["100%", "0%"]
    assert share_texts([]) == []


@given(st.lists(st.integers(min_value=0, max_value=WEIGHT_MAX), min_size=1, max_size=40).filter(any))
def test_they_sum_to_100_and_no_live_share_reads_zero(weights: list[int]) -> None:
    total = sum(weights)
    texts = share_texts([w / total for w in weights])
    values = [float(t.rstrip("%")) for t in texts]
    assert abs(sum(values) - 100) < 1e-6
    for w, v in zip(weights, values, strict=True):
        assert (v > 0) == (w > 0) or (w > 0 and total / w > 10_000)
