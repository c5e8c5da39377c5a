"""Small painted widgets of the group editor: a member's weight editor, the share bar and the preview strip."""

from __future__ import annotations

from balancedesk.core.model import WEIGHT_MAX, share_texts
from PySide6.QtCore import QEvent, QObject, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QHBoxLayout, QSizePolicy, QSlider, QSpinBox, QWidget

SLIDER_MAX = 20
ENTRY_MAX = 99_999_999  # what the box lets one type: an out-of-range weight is refused with a message, not clamped


class WeightEditor(QWidget):
    """A slider (coarse, 1–20) and a spin box (exact, 1 to WEIGHT_MAX) for one member's weight. The box takes
    any number typed (it never clamps or reverts silently); the model refuses one out of range with a message.

    Signals:
        weight_edited(str, int): the user set ``memberID``'s weight.
    """

    weight_edited = Signal(str, int)

    def __init__(self, member_id: str, name: str, weight: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.member_id = member_id
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(1, SLIDER_MAX)
        self.slider.setPageStep(1)
        self.slider.setAccessibleName(f"Weight of {name}")
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.spin = QSpinBox(self)
        self.spin.setRange(0, ENTRY_MAX)
        self.spin.setAccessibleName(f"Exact weight of {name}")
        self.spin.setAccessibleDescription(f"a whole number from 1 to {WEIGHT_MAX}")
        self.spin.setToolTip(f"Weight: a whole number from 1 to {WEIGHT_MAX}")
        self.spin.setKeyboardTracking(False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        self.show_weight(weight)
        self.slider.valueChanged.connect(self.on_slider_value_changed)
        self.spin.valueChanged.connect(self.on_spin_value_changed)
        self.spin.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Inside an item view, Tab moves the view's current cell and the box keeps its focus, so it never
        # commits on focus-out: commit the typed text first, then let Tab go on.
        if (watched is self.spin and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent)
                and event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)):
            self.spin.interpretText()
        return False

    def show_weight(self, weight: int) -> None:
        """Show ``weight`` without emitting anything."""
        for w in (self.slider, self.spin):
            w.blockSignals(True)
        self.slider.setValue(min(weight, SLIDER_MAX))
        self.spin.setValue(weight)
        for w in (self.slider, self.spin):
            w.blockSignals(False)

    def on_slider_value_changed(self, value: int) -> None:
        if value == min(self.spin.value(), SLIDER_MAX):
            return
        self.weight_edited.emit(self.member_id, value)

    def on_spin_value_changed(self, value: int) -> None:
        self.weight_edited.emit(self.member_id, value)


class ShareBar(QWidget):
    """One horizontal bar split into each member's share of traffic, labelled "A 50%"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parts: list[tuple[str, float, QColor]] = []
        self._texts: list[str] = []
        self._greyed = False
        self.setMinimumHeight(28)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Share of traffic")

    def set_parts(self, parts: list[tuple[str, float, QColor]], *, greyed: bool = False) -> None:
        self._parts = parts
        self._texts = share_texts([s for _, s, _ in parts])
        self._greyed = greyed
        self.setAccessibleDescription(", ".join(f"{n} {t}" for (n, _, _), t in zip(parts, self._texts, strict=True)))
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(400, 28)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(self.palette().color(QPalette.ColorRole.Mid))
        p.setBrush(self.palette().color(QPalette.ColorRole.Base))
        p.drawRoundedRect(rect, 4, 4)
        x = rect.left()
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        for (name, share, color), share_text in zip(self._parts, self._texts, strict=True):
            if share <= 0:
                continue
            w = rect.width() * share
            seg = QRectF(x, rect.top(), w, rect.height())
            c = QColor(color)
            if self._greyed:
                c.setAlpha(110)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(c)
            p.drawRoundedRect(seg.adjusted(1, 1, -1, -1), 3, 3)
            text = f"{name} {share_text}"
            if p.fontMetrics().horizontalAdvance(text) + 6 > w:
                text = name if p.fontMetrics().horizontalAdvance(name) + 4 <= w else ""
            p.setPen(QColor("white"))
            p.drawText(seg, int(Qt.AlignmentFlag.AlignCenter), text)
            x += w
        p.end()


class PreviewStrip(QWidget):
    """The next picks the core scheduler would make, as letter chips: A B A C B A …"""

    CHIP = 24

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._picks: list[tuple[str, QColor]] = []
        self.setMinimumHeight(self.CHIP + 4)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Preview of the next picks")

    def set_picks(self, picks: list[tuple[str, QColor]]) -> None:
        self._picks = picks
        self.setAccessibleDescription(" ".join(n for n, _ in picks))
        self.update()

    @property
    def text(self) -> str:
        return " ".join(n for n, _ in self._picks)

    def sizeHint(self) -> QSize:
        return QSize(24 * (self.CHIP + 4), self.CHIP + 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        x = 0.0
        for name, color in self._picks:
            chip = QRectF(x + 1, 2, self.CHIP + max(0, len(name) - 1) * 8, self.CHIP)
            if chip.right() > self.width():
                break
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(color)
            p.drawRoundedRect(chip, 5, 5)
            p.setPen(QColor("white"))
            p.drawText(chip, int(Qt.AlignmentFlag.AlignCenter), name)
            x = chip.right() + 3
        p.end()
