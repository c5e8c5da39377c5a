"""Messages under form fields: the form's own checks and the management API's field-level refusals, shown
in the same place (``QLabel#fieldError``, the theme's error colour), hidden while there is nothing to say."""

from __future__ import annotations

from collections.abc import Iterable

from balancedesk.core.model import Problem
from balancedesk.gui.manage.forms import sentence
from PySide6.QtWidgets import QLabel, QWidget


class FieldErrors:
    """One message label per field name (an API field such as ``endpoint``). No signals."""

    def __init__(self, fields: Iterable[str], parent: QWidget | None = None) -> None:
        self.labels: dict[str, QLabel] = {}
        for name in fields:
            label = QLabel(parent)
            label.setObjectName("fieldError")
            label.setWordWrap(True)
            label.setAccessibleName(f"{name} problem")
            label.hide()
            self.labels[name] = label

    def __getitem__(self, name: str) -> QLabel:
        return self.labels[name]

    def text(self, name: str) -> str:
        return self.labels[name].text()

    def clear(self) -> None:
        for label in self.labels.values():
            label.clear()
            label.hide()

    def show(self, problems: Iterable[Problem]) -> list[Problem]:
        """Show each problem under its field (replacing what was shown); returns those with no field here."""
        self.clear()
        texts: dict[str, list[str]] = {}
        rest = []
        for p in problems:
            if p.field in self.labels:
                texts.setdefault(p.field, []).append(sentence(p))
            else:
                rest.append(p)
        for name, lines in texts.items():
            self.labels[name].setText("\n".join(lines))
            self.labels[name].show()
        return rest
