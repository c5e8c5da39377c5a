"""Per-member rates from successive snapshots, and the rolling history the chart draws (no Qt)."""

from __future__ import annotations

from collections import deque

from balancedesk.gui.live.admin import Snapshot


class RateTracker:
    """Connections (or requests) per second per member: delta of ``total`` over delta of ``now``,
    smoothed over the last ``window_s`` seconds; keeps ``history_s`` seconds for the chart."""

    def __init__(self, *, window_s: float = 1.0, history_s: float = 60.0) -> None:
        self.window_s = window_s
        self.history_s = history_s
        self._samples: deque[tuple[float, dict[str, int], int]] = deque()
        self.rates: dict[str, float] = {}
        self.total_rate = 0.0
        self.history: dict[str, deque[tuple[float, float]]] = {}

    def update(self, snap: Snapshot) -> dict[str, float]:
        now = snap.now
        totals = {m.member_id: m.total for m in snap.members}
        accepted = int(snap.totals.get("accepted", sum(totals.values())))
        if self._samples and now < self._samples[-1][0]:  # another balancer (restart): start over
            self._samples.clear()
            self.history.clear()
        self._samples.append((now, totals, accepted))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        t0, old, acc0 = self._samples[0]
        dt = now - t0
        if dt <= 0:
            self.rates = dict.fromkeys(totals, 0.0)
            self.total_rate = 0.0
        else:
            self.rates = {mid: max(0.0, (tot - old.get(mid, tot)) / dt) for mid, tot in totals.items()}
            self.total_rate = max(0.0, (accepted - acc0) / dt)
        for mid, rate in self.rates.items():
            hist = self.history.setdefault(mid, deque())
            hist.append((now, rate))
            while hist and now - hist[0][0] > self.history_s:
                hist.popleft()
        for mid in list(self.history):
            if mid not in totals:
                del self.history[mid]
        return self.rates
