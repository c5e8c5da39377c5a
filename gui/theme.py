"""Light and dark looks: Fusion with a palette that follows the system (or ``--theme light|dark``)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

_LIGHT = {
    "window": "#f3f4f6", "base": "#ffffff", "alt": "#f7f8fa", "text": "#1f2328", "button": "#e9ebef",
    "highlight": "#2f6fde", "mid": "#c3c8d0", "disabled": "#8c929b", "link": "#1f5fbf", "tip": "#ffffe6",
}
_DARK = {
    "window": "#1f2226", "base": "#16181b", "alt": "#22262b", "text": "#e6e8eb", "button": "#2c3036",
    "highlight": "#3d7fe8", "mid": "#4a5058", "disabled": "#7b828c", "link": "#7fb0ff", "tip": "#2c3036",
}

_STYLE = """
QLabel#editorTitle {{ font-size: 15pt; padding: 2px 0 6px 0; }}
QLabel#fieldError {{ color: {error}; }}
QLabel#caption {{ color: {muted}; font-size: 9pt; }}
QLabel#refusal {{ color: {error}; background: {error_bg}; border: 1px solid {error}; border-radius: 4px;
                  padding: 4px 8px; }}
QLabel#placeholder {{ color: {muted}; font-size: 12pt; }}
"""


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return bool(hints.colorScheme() == Qt.ColorScheme.Dark)


def apply_theme(app: QApplication, mode: str = "system") -> str:
    """Apply "light", "dark" or "system"; returns the theme applied ("light" or "dark")."""
    dark = system_is_dark() if mode == "system" else mode == "dark"
    c = _DARK if dark else _LIGHT
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: c["window"], QPalette.ColorRole.WindowText: c["text"],
        QPalette.ColorRole.Base: c["base"], QPalette.ColorRole.AlternateBase: c["alt"],
        QPalette.ColorRole.Text: c["text"], QPalette.ColorRole.Button: c["button"],
        QPalette.ColorRole.ButtonText: c["text"], QPalette.ColorRole.Highlight: c["highlight"],
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Mid: c["mid"],
        QPalette.ColorRole.Link: c["link"], QPalette.ColorRole.ToolTipBase: c["tip"],
        QPalette.ColorRole.ToolTipText: c["text"], QPalette.ColorRole.PlaceholderText: c["disabled"],
    }
    for role, color in roles.items():
        pal.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(c["disabled"]))
    app.setPalette(pal)
    app.setStyleSheet(
        _STYLE.format(
            error="#ff6b6b" if dark else "#c62828",
            error_bg="#3a1f22" if dark else "#fdecea",
            muted=c["disabled"],
        )
    )
    app.setProperty("balancedesk_theme", "dark" if dark else "light")
    return "dark" if dark else "light"
