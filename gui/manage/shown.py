"""The dialog that shows a password made in the GUI, this once (the server keeps only its hash)."""

from __future__ import annotations

from balancedesk.gui.shown_once import Copyable, ShownOnceDialog
from PySide6.QtWidgets import QWidget


class PasswordShownDialog(ShownOnceDialog):
    """A new password, selectable, with a Copy button (it then reads "Copied"). No signals of its own."""

    def __init__(self, *, name: str, password: str, what: str, parent: QWidget | None = None) -> None:
        super().__init__(
            title=f"Password of {name}", min_width=520, parent=parent,
            note=f"<b>{name} {what}. This is the only time its password is shown.</b> Give it to {name} "
                 "over a safe channel; the server keeps only a hash of it, so a lost password is reset, "
                 "not recovered.",
            values=[Copyable(password, name="New password", button="Copy", copied="Copied")])
        self.password_edit, self.copy_button = self.edits[0], self.copy_buttons[0]
