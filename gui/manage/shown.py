"""The dialog that shows a password made in the GUI, this once (the server keeps only its hash)."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class PasswordShownDialog(QDialog):
    """A new password, selectable, with a Copy button. No signals of its own."""

    def __init__(self, *, name: str, password: str, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Password of {name}")
        self.setMinimumWidth(520)
        lay = QVBoxLayout(self)
        note = QLabel(f"<b>{name} {what}. This is the only time its password is shown.</b> Give it to {name} "
                      "over a safe channel; the server keeps only a hash of it, so a lost password is reset, "
                      "not recovered.")
        note.setWordWrap(True)
        lay.addWidget(note)
        row = QHBoxLayout()
        self.password_edit = QLineEdit(password)
        self.password_edit.setReadOnly(True)
        self.password_edit.setAccessibleName("New password")
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.on_copy_button_clicked)
        row.addWidget(self.password_edit, 1)
        row.addWidget(self.copy_button)
        lay.addLayout(row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.password_edit.text())
        self.copy_button.setText("Copied")
