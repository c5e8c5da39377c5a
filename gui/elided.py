"""A one-line label that never widens its window: a long text is cut with "…" and shown whole on hover.

Status lines change with what happens (an error, a URL, a PID); a plain :class:`QLabel` asks for the width
of its whole text, so the window's minimum width grew with every message. :class:`ElidedLabel` asks for a
few characters at least and for its whole text at best (its ``sizeHint``), and :meth:`text` returns the
whole text, so code and tests read what was said, not what fitted.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MIN_CHARS = 12  # the narrowest an elided label gets, in average character widths


class ElidedLabel(QLabel):
    """A plain-text, single-line label cut to its width. No signals."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._tip = ""  # a hover text of its own; the whole text is added when it is cut
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def text(self) -> str:  # the whole text, not the cut one on screen
        return self._full

    def setText(self, text: str) -> None:
        self._full = text
        self._elide()
        self.updateGeometry()

    def _elide(self) -> None:
        fm = self.fontMetrics()
        width = self.contentsRect().width()
        shown = fm.elidedText(self._full, Qt.TextElideMode.ElideRight, max(0, width)) if width > 0 else self._full
        super().setText(shown)
        cut = self._full if shown != self._full else ""
        super().setToolTip("\n".join(t for t in (cut, self._tip) if t))

    def setToolTip(self, tip: str) -> None:
        self._tip = tip
        self._elide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QSize(fm.averageCharWidth() * MIN_CHARS + m.left() + m.right(), fm.height() + m.top() + m.bottom())

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QSize(fm.horizontalAdvance(self._full) + m.left() + m.right() + 2, fm.height() + m.top() + m.bottom())
