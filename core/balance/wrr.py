"""nginx's smooth weighted round robin (ngx_http_upstream_get_peer), as a small state object.

Each pick adds every candidate's weight to its ``current``, takes the largest ``current`` (ties go to the
candidate listed first, i.e. the lower ``sequence``) and subtracts the candidates' total weight from the
winner. With every member a candidate, any window of ``sum(weights)`` consecutive picks gives each member
exactly its weight, interleaved smoothly: weights 5,1,1 → a a b a c a a.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class SmoothWRR:
    """Smooth WRR over keys in a fixed order; ``pick`` may be limited to a subset of candidates."""

    __slots__ = ("_current", "_order", "_weights")

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        self._order = [k for k, _ in weights]
        self._weights = dict(weights)
        self._current = dict.fromkeys(self._order, 0)

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def reweight(self, weights: Sequence[tuple[str, int]]) -> None:
        """Apply new members/weights.

        The same members with the same weights (a reload that changed something else) keep their rhythm.
        Any other change starts a fresh rhythm, as nginx does on reload: the leftover ``current`` values
        of the old weights would skew the next windows (their sum is no longer 0 once a member with a
        non-zero ``current`` leaves), so the first ``sum(weights)`` picks after a change would not match
        the new weights exactly.
        """
        order = [k for k, _ in weights]
        new = dict(weights)
        if order == self._order and new == self._weights:
            return
        self._order = order
        self._weights = new
        self._current = dict.fromkeys(order, 0)

    def pick(self, candidates: Iterable[str] | None = None) -> str | None:
        """Pick among ``candidates`` (default: all), updating state; None if there is no candidate."""
        allowed = None if candidates is None else set(candidates)
        current = self._current
        weights = self._weights
        best: str | None = None
        best_cur = 0
        total = 0
        for key in self._order:
            if allowed is not None and key not in allowed:
                continue
            w = weights[key]
            cur = current[key] + w
            current[key] = cur
            total += w
            if best is None or cur > best_cur:
                best = key
                best_cur = cur
        if best is not None:
            current[best] = best_cur - total
        return best

    def state(self) -> dict[str, int]:
        return dict(self._current)
