"""The dialog that shows a secret made here this once — a password, a balancer token — because the server
keeps only its hash: a note saying so, each value read-only with its own Copy button, then Close.

Used by :class:`~balancedesk.gui.manage.shown.PasswordShownDialog` and
:class:`~balancedesk.gui.fleet.tokens.TokenShownDialog`, which give the words and the values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Copyable:
    """One value the dialog shows: ``text`` (accessible name ``name``) and its copy button worded ``button``;
    with a ``label`` it stands in a labelled form row (consecutive ones in one form, their labels aligned),
    without one it is a row of its own, the whole width. Once clicked the button
    reads ``copied`` (None: it keeps its words)."""

    text: str
    name: str
    button: str
    label: str = ""
    copied: str | None = None


class ShownOnceDialog(QDialog):
    """A note (rich text), then ``values`` in order, each read-only (selectable) with a button that puts exactly
    its text on the clipboard, then Close. ``edits`` and ``copy_buttons`` hold them in the order given (the
    first value has the focus when the dialog opens). No signals of its own."""

    def __init__(self, *, title: str, note: str, values: Sequence[Copyable], min_width: int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(min_width)
        lay = QVBoxLayout(self)
        self.note = QLabel(note)
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        form: QFormLayout | None = None  # consecutive labelled values share one form
        self.edits: list[QLineEdit] = []
        self.copy_buttons: list[QPushButton] = []
        for value in values:
            edit = QLineEdit(value.text)
            edit.setReadOnly(True)
            edit.setAccessibleName(value.name)
            copy = QPushButton(value.button)
            copy.clicked.connect(lambda _checked=False, e=edit, b=copy, c=value.copied: self.copy(e, b, c))
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(copy)
            if value.label:
                if form is None:
                    form = QFormLayout()
                    lay.addLayout(form)
                form.addRow(value.label, row)
            else:
                form = None
                lay.addLayout(row)
            self.edits.append(edit)
            self.copy_buttons.append(copy)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)  # made last: last in the tab order
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    @staticmethod
    def copy(edit: QLineEdit, button: QPushButton, copied: str | None = None) -> None:
        """Put ``edit``'s text on the clipboard; ``button`` then reads ``copied`` when one is given."""
        QGuiApplication.clipboard().setText(edit.text())
        if copied is not None:
            button.setText(copied)
