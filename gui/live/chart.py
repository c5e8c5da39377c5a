"""The rolling chart of rate per member (pyqtgraph): the last 60 s, x = seconds ago."""

from __future__ import annotations

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
        self.showGrid(x=True, y=True, alpha=0.25)
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
        for mid in list(self._curves):
            if mid not in history:
                self.removeItem(self._curves.pop(mid))
                self._legend.removeItem(mid)
        for i, (mid, points) in enumerate(history.items()):
            curve = self._curves.get(mid)
            if curve is None:
                pen = pg.mkPen(PALETTE[i % len(PALETTE)], width=2)
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
