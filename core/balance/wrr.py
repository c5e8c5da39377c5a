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

    __slots__ = ("_current", "_cycle", "_cycle_i", "_order", "_weights")

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        self._order = [k for k, _ in weights]
        self._weights = dict(weights)
        self._current = dict.fromkeys(self._order, 0)
        # picks over every member repeat with period sum(weights): the next period, precomputed from
        # ``_current`` (which stays at the period's start while it is used), and the position in it.
        # None: not built; (): not usable (no member, too long, not periodic) until the state changes
        self._cycle: tuple[str, ...] | None = None
        self._cycle_i = 0

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
        self._cycle = None
        self._cycle_i = 0
        self._order = order
        self._weights = new
        self._current = dict.fromkeys(order, 0)

    def pick(self, candidates: Iterable[str] | None = None) -> str | None:
        """Pick among ``candidates`` (default: all), updating state; None if there is no candidate."""
        if candidates is None:
            return self.pick_all()
        self._sync()
        return self._step(set(candidates))

    def pick_all(self) -> str | None:
        """``pick()`` over every member in O(1): the next entry of the precomputed period."""
        cycle = self._cycle
        if cycle is None:
            cycle = self._build()
        if not cycle:
            return self._step(None)
        i = self._cycle_i
        self._cycle_i = i + 1 if i + 1 < len(cycle) else 0
        return cycle[i]

    def _build(self) -> tuple[str, ...]:
        total = sum(self._weights.values())
        cycle: tuple[str, ...] = ()
        if 0 < total <= 4096:
            start = dict(self._current)
            picks = [self._step(None) for _ in range(total)]
            if self._current == start:  # back at the start: the sequence repeats exactly
                cycle = tuple(p for p in picks if p is not None)
            self._current = start
        self._cycle = cycle
        self._cycle_i = 0
        return cycle

    def _sync(self) -> None:
        """Bring ``_current`` to where the picks taken from the period left it; drop the period."""
        if self._cycle:
            for _ in range(self._cycle_i):
                self._step(None)
        self._cycle = None
        self._cycle_i = 0

    def _step(self, allowed: set[str] | None) -> str | None:
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
        self._sync()
        return dict(self._current)
