"""The rolling chart of rate per member (pyqtgraph): the last 60 s, x = seconds ago.

Cheap to keep open under load: redrawn at most ``max_hz`` times a second, no grid, and a sticky y range
that only changes when the data outgrows it (or shrinks below a quarter), so the axes are not re-laid
out on every update — a pyqtgraph axis repaint costs tens of milliseconds. The axis label is set only
when the unit changes (``setLabel`` re-lays out the plot). Each member's points live in preallocated
numpy arrays (appended as snapshots come, compacted when full); a redraw writes x/y into preallocated
output arrays and hands them to ``setData`` without the finite check.

Each member's curve has its badge colour and its legend entry its letter and label (the window's
:class:`~balancedesk.gui.live.names.MemberNames`), as in the editor's share bar; a long label is cut
(:data:`LEGEND_CHARS`) so the legend never covers the plot.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from balancedesk.gui.live.names import MemberNames
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QWidget

LEGEND_CHARS = 28  # a legend entry's longest text; longer labels end in "…" (the table has them whole)


def legend_text(names: MemberNames, member_id: str) -> str:
    text = names.badged(member_id)
    return text if len(text) <= LEGEND_CHARS else text[: LEGEND_CHARS - 1] + "…"


class _Series:
    """One member's (t, rate) points in preallocated arrays; ``lo:hi`` is the live window."""

    def __init__(self, capacity: int = 2048) -> None:
        self.t = np.empty(capacity)
        self.v = np.empty(capacity)
        self.x_out = np.empty(capacity)
        self.y_out = np.empty(capacity)
        self.lo = self.hi = 0

    def extend(self, points: deque[tuple[float, float]]) -> None:
        """Take the points of ``points`` newer than the last one held (a shorter clock: start over)."""
        if not points:
            return
        if self.hi > self.lo and points[-1][0] < self.t[self.hi - 1]:
            self.lo = self.hi = 0  # another balancer
        last = self.t[self.hi - 1] if self.hi > self.lo else -math.inf
        new: list[tuple[float, float]] = []
        for p in reversed(points):
            if p[0] <= last:
                break
            new.append(p)
        for t, v in reversed(new):
            if self.hi == len(self.t):
                n = self.hi - self.lo
                keep = min(n, len(self.t) // 2)
                self.t[:keep] = self.t[self.hi - keep : self.hi]
                self.v[:keep] = self.v[self.hi - keep : self.hi]
                self.lo, self.hi = 0, keep
            self.t[self.hi] = t
            self.v[self.hi] = v
            self.hi += 1

    def trim(self, oldest: float) -> None:
        self.lo += int(np.searchsorted(self.t[self.lo : self.hi], oldest, side="left"))

    def xy(self, now: float) -> tuple[Any, Any]:
        n = self.hi - self.lo
        np.subtract(self.t[self.lo : self.hi], now, out=self.x_out[:n])
        np.copyto(self.y_out[:n], self.v[self.lo : self.hi])
        return self.x_out[:n], self.y_out[:n]

    def top(self) -> float:
        return float(self.v[self.lo : self.hi].max()) if self.hi > self.lo else 0.0


class RateChart(pg.PlotWidget):  # type: ignore[misc]
    """Connections (L4) or requests (L7) per second per member. No signals."""

    def __init__(self, parent: QWidget | None = None, *, history_s: float = 60.0) -> None:
        pal = QApplication.palette()  # the app's theme (light or dark), as the rest of the window
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        super().__init__(parent=parent, background=base)
        for name in ("left", "bottom"):
            axis = self.getAxis(name)
            axis.setPen(text)
            axis.setTextPen(text)
        self.history_s = history_s
        self.setMinimumHeight(160)
        self.max_hz = 1.0  # a 60 s window moves 1/60 of its width per redraw: smooth enough, half the CPU of 2 Hz
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
        self._legend = self.addLegend(offset=(10, 5), labelTextColor=text)
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._series: dict[str, _Series] = {}
        self._unit = ""
        self.names = MemberNames()

    def set_names(self, names: MemberNames) -> None:
        """Colour and name the curves as ``names`` says (the legend is rebuilt only if that changed)."""
        if names == self.names:
            return
        self.names = names
        for mid, curve in self._curves.items():
            self._legend.removeItem(curve)
            curve.setPen(self._pen(mid))
            curve.opts["name"] = legend_text(names, mid)
            self._legend.addItem(curve, curve.opts["name"])

    def _pen(self, member_id: str) -> Any:
        pen = pg.mkPen(self.names.color(member_id), width=2)
        pen.setCosmetic(True)
        return pen

    def set_unit(self, mode: str) -> None:
        unit = "requests/s" if mode == "http" else "connections/s"
        if unit != self._unit:
            self._unit = unit
            self.setLabel("left", unit)

    def show_history(self, history: Mapping[str, deque[tuple[float, float]]], now: float) -> None:
        for mid, points in history.items():
            series = self._series.get(mid)
            if series is None:
                series = self._series[mid] = _Series()
            series.extend(points)
        t = time.monotonic()
        if t - self._drawn_at < 1.0 / self.max_hz and set(history) == set(self._curves):
            return
        self._drawn_at = t
        for mid in list(self._series):
            if mid not in history:
                del self._series[mid]
        for series in self._series.values():
            series.trim(now - self.history_s)
        top = max((s.top() for s in self._series.values()), default=0.0)
        if top > self._y_top or (top < self._y_top / 4 and self._y_top > 10):
            self._y_top = _nice(max(10.0, top * 1.3))
            self.setYRange(0, self._y_top, padding=0)
        for mid in list(self._curves):
            if mid not in history:
                curve = self._curves.pop(mid)
                self._legend.removeItem(curve)
                self.removeItem(curve)
        for mid in sorted(history, key=self.names.position):  # the legend in sequence order
            curve = self._curves.get(mid)
            if curve is None:
                curve = self._curves[mid] = self.plot([], [], pen=self._pen(mid), name=legend_text(self.names, mid))
            series = self._series[mid]
            if series.hi > series.lo:
                x, y = series.xy(now)
                curve.setData(x, y, skipFiniteCheck=True)

    def clear_curves(self) -> None:
        self._series.clear()
        for mid in list(self._curves):
            curve = self._curves.pop(mid)
            self._legend.removeItem(curve)
            self.removeItem(curve)

    def curve_ids(self) -> list[str]:
        return list(self._curves)

    def legend_texts(self) -> list[str]:
        """The legend's entries as drawn, top to bottom."""
        return [label.text for _sample, label in self._legend.items]


def _nice(value: float) -> float:
    """The next 1, 2 or 5 × 10^n at or above ``value``."""
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * exp >= value:
            return float(step * exp)
    return float(10 * exp)
