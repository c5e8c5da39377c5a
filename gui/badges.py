"""How a member is drawn wherever the app shows one: its letter badge and its colour.

The member in sequence position *i* (0-based) is letter :func:`letter` (A, B, … Z, AA) on colour
:func:`member_color` — in the editor's table, share bar and preview strip, and in the live view's table,
topology, chart legend and demo panel. This module is the one place that rule lives; both import it.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPainter, QPixmap

# Colour-blind friendly, distinct in light and dark (Okabe–Ito, plus two extras).
MEMBER_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6BB1", "#7F7F7F")
CHIP_SIZE = 20  # a badge's height in logical pixels


def letter(row: int) -> str:
    """Row 0 → A, 25 → Z, 26 → AA."""
    out = ""
    row += 1
    while row:
        row, rem = divmod(row - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def member_color(row: int) -> QColor:
    return QColor(MEMBER_COLORS[row % len(MEMBER_COLORS)])


def app_dpr() -> float:
    """The device pixel ratio to draw badges at: the application's (2.0 at 200 %), 1.0 without one."""
    app = QGuiApplication.instance()
    return float(app.devicePixelRatio()) if isinstance(app, QGuiApplication) else 1.0


_CHIPS: dict[tuple[str, str, int, float], QPixmap] = {}


def letter_chip(text: str, color: QColor, size: int = CHIP_SIZE, *, dpr: float = 1.0) -> QPixmap:
    """The member's letter on its colour, as in the share bar and the preview strip. ``dpr``: the device
    pixel ratio to draw at (a 200 % screen gets a sharp badge of the same logical size)."""
    key = (text, color.name(), size, dpr)
    if key not in _CHIPS:
        w = size + 6 * (len(text) - 1)
        pm = QPixmap(round(w * dpr), round(size * dpr))
        pm.setDevicePixelRatio(dpr)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        rect = QRectF(0, 0, w, size)
        p.drawRoundedRect(rect, 4, 4)
        font = QFont()
        font.setBold(True)
        font.setPixelSize(max(8, round(size * 0.6)))
        p.setFont(font)
        p.setPen(QColor("white"))
        p.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), text)
        p.end()
        _CHIPS[key] = pm
    return _CHIPS[key]
