"""The live view follows the app's theme where it draws colours itself: the timeline, the chart, the
labels on the topology canvas (dark text on a dark base was unreadable)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from balancedesk.gui.live.chart import RateChart
from balancedesk.gui.live.models import TIMELINE_COLORS, TIMELINE_COLORS_DARK, TimelineEntry, TimelineModel
from balancedesk.gui.live.topology import TopologyView
from balancedesk.gui.theme import apply_theme
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication


@pytest.fixture
def themed(qapp: QApplication) -> Iterator[QApplication]:
    palette, sheet, style = qapp.palette(), qapp.styleSheet(), qapp.style().name()
    yield qapp
    qapp.setStyle(style)
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_live_colours_follow_the_theme(themed: QApplication, theme: str) -> None:
    apply_theme(themed, theme)
    pal = themed.palette()
    base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
    assert (base.lightness() < 128) == (theme == "dark")

    timeline = TimelineModel()
    timeline.add([TimelineEntry(0, 1.0, "config", None, "config version 1")])
    fg = timeline.data(timeline.index(0), Qt.ItemDataRole.ForegroundRole).color().name()
    assert fg == (TIMELINE_COLORS_DARK if theme == "dark" else TIMELINE_COLORS)["config"]

    chart = RateChart()
    assert chart.backgroundBrush().color() == base
    assert chart.getAxis("left").textPen().color() == text

    view = TopologyView()
    view._layout(["a"])
    assert view._edge_labels["a"].brush().color() == text
    # the label stands out from what it is drawn on
    assert abs(view._edge_labels["a"].brush().color().lightness() - base.lightness()) > 100
