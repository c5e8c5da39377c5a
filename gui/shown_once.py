"""The dialog that shows a secret made here this once — a password, a balancer token — because the server
keeps only its hash: a note saying so, each value read-only with its own Copy button, then Close.

Used by :class:`~balancedesk.gui.manage.shown.PasswordShownDialog` and
:class:`~balancedesk.gui.fleet.tokens.TokenShownDialog`, which give the words and the values.
"""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ShownOnceDialog(QDialog):
    """A note (rich text), then the values added with :meth:`add_copyable`, then Close. No signals of its own.

    Rules: a value is read-only (selectable) and its button puts exactly that text on the clipboard; a value
    with a ``label`` stands in a labelled form row, one without takes the whole width.
    """

    def __init__(self, *, title: str, note: str, min_width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(min_width)
        lay = QVBoxLayout(self)
        self.note = QLabel(note)
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        self.values = QFormLayout()
        lay.addLayout(self.values)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def add_copyable(self, text: str, *, name: str, button: str, label: str = "",
                     copied: str | None = None) -> tuple[QLineEdit, QPushButton]:
        """Add ``text`` (accessible name ``name``) with a copy button worded ``button``; once clicked the
        button reads ``copied`` (None: it keeps its words). Returns the line and the button."""
        edit = QLineEdit(text)
        edit.setReadOnly(True)
        edit.setAccessibleName(name)
        copy = QPushButton(button)
        copy.clicked.connect(lambda: self.copy(edit, copy, copied))
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(copy)
        if label:
            self.values.addRow(label, row)
        else:
            self.values.addRow(row)
        return edit, copy

    @staticmethod
    def copy(edit: QLineEdit, button: QPushButton, copied: str | None = None) -> None:
        """Put ``edit``'s text on the clipboard; ``button`` then reads ``copied`` when one is given."""
        QGuiApplication.clipboard().setText(edit.text())
        if copied is not None:
            button.setText(copied)
