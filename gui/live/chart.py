"""The rolling chart of rate per member (pyqtgraph): the last 60 s, x = seconds ago.

Cheap to keep open under load: redrawn at most ``max_hz`` times a second, no grid, and a sticky y range
that only changes when the data outgrows it (or shrinks below a quarter), so the axes are not re-laid
out on every update — a pyqtgraph axis repaint costs tens of milliseconds.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

PALETTE = ("#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#e53935", "#00897b", "#6d4c41", "#3949ab")


class RateChart(pg.PlotWidget):  # type: ignore[misc]
    """Connections (L4) or requests (L7) per second per member. No signals."""

    def __init__(self, parent: QWidget | None = None, *, history_s: float = 60.0) -> None:
        super().__init__(parent=parent, background="w")
        self.history_s = history_s
        self.setMinimumHeight(160)
        self.max_hz = 2.0
        self._drawn_at = 0.0
        self._y_top = 10.0
        self.setYRange(0, self._y_top, padding=0)
        self.enableAutoRange(x=False, y=False)
        self.setLabel("left", "per second")
        self.setLabel("bottom", "seconds ago")
        self.setXRange(-history_s, 0, padding=0)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.getPlotItem().setMenuEnabled(False)
        self._legend = self.addLegend(offset=(10, 5))
        self._curves: dict[str, pg.PlotDataItem] = {}

    def set_unit(self, mode: str) -> None:
        self.setLabel("left", "requests/s" if mode == "http" else "connections/s")

    def show_history(self, history: Mapping[str, deque[tuple[float, float]]], now: float) -> None:
        t = time.monotonic()
        if t - self._drawn_at < 1.0 / self.max_hz and set(history) == set(self._curves):
            return
        self._drawn_at = t
        top = max((v for points in history.values() for _, v in points), default=0.0)
        if top > self._y_top or (top < self._y_top / 4 and self._y_top > 10):
            self._y_top = _nice(max(10.0, top * 1.3))
            self.setYRange(0, self._y_top, padding=0)
        for mid in list(self._curves):
            if mid not in history:
                self.removeItem(self._curves.pop(mid))
                self._legend.removeItem(mid)
        for i, (mid, points) in enumerate(history.items()):
            curve = self._curves.get(mid)
            if curve is None:
                pen = pg.mkPen(PALETTE[i % len(PALETTE)], width=2)
                pen.setCosmetic(True)
                curve = self._curves[mid] = self.plot([], [], pen=pen, name=mid)
            if points:
                arr = np.fromiter((v for p in points for v in p), dtype=float, count=2 * len(points))
                arr = arr.reshape(-1, 2)
                curve.setData(arr[:, 0] - now, arr[:, 1])

    def clear_curves(self) -> None:
        for mid in list(self._curves):
            self.removeItem(self._curves.pop(mid))
            self._legend.removeItem(mid)

    def curve_ids(self) -> list[str]:
        return list(self._curves)


def _nice(value: float) -> float:
    """The next 1, 2 or 5 × 10^n at or above ``value``."""
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exp >= value:
            return float(step * exp)
    return float(10 * exp)
