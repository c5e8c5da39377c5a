"""Every question the app asks the user, as awaitable dialogs (``open()`` + a future, never ``exec()``,
so the qasync loop keeps running and no coroutine nests an event loop).

:class:`Prompter` is the one place the main window asks; tests give it answers by replacing it. Another window
asking a :class:`QMessageBox` of its own awaits it with :func:`ask_message_box` (the Manage window's delete).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.gui.document import Change


class Conflict(enum.Enum):
    RELOAD = "reload"
    OVERWRITE = "overwrite"
    CANCEL = "cancel"


class Unsaved(enum.Enum):
    SAVE = "save"
    DISCARD = "discard"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Candidate:
    connector_id: str
    label: str
    detail: str
    refusal: str | None


async def _ask(dialog: QDialog) -> int:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def done(result: int) -> None:
        if not fut.done():
            fut.set_result(result)

    dialog.finished.connect(done)
    dialog.open()
    try:
        return await fut
    finally:
        dialog.deleteLater()


class ReviewDialog(QDialog):
    """The changes a save will make, old → new; Save or Cancel. Signals: Qt's only."""

    def __init__(self, label: str, changes: list[Change], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Review changes to {label}")
        self.table = QTableWidget(len(changes), 3, self)
        self.table.setHorizontalHeaderLabels(["What", "Old", "New"])
        self.table.setAccessibleName("Changes to save")
        for row, c in enumerate(changes):
            for col, text in enumerate((c.what, c.old or "—", c.new or "—")):
                item = QTableWidgetItem(text)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                self.table.setItem(row, col, item)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Saving sends these {len(changes)} change(s) to the server:"))
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(640, 360)


class PickConnectorDialog(QDialog):
    """Choose a connector to add; ones the rules refuse are listed greyed with the reason."""

    def __init__(self, candidates: list[Candidate], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a member")
        self.list = QListWidget(self)
        self.list.setAccessibleName("Connectors")
        for c in candidates:
            text = f"{c.label}    {c.detail}" + (f"\n    refused: {c.refusal}" if c.refusal else "")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, c.connector_id)
            if c.refusal:
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                item.setToolTip(c.refusal)
            self.list.addItem(item)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(self.accept)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list)
        lay.addWidget(buttons)
        self.resize(520, 420)

    def chosen(self) -> str | None:
        item = self.list.currentItem()
        if item is None or not item.flags() & Qt.ItemFlag.ItemIsEnabled:
            return None
        return str(item.data(Qt.ItemDataRole.UserRole))


class LoginDialog(QDialog):
    """Server URL, user and password for a profile."""

    def __init__(self, *, url: str, user: str, message: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a management server")
        self.url = QLineEdit(url)
        self.url.setAccessibleName("Server URL")
        self.user = QLineEdit(user)
        self.user.setAccessibleName("User")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        form = QFormLayout()
        form.addRow("Server &URL:", self.url)
        form.addRow("&User:", self.user)
        form.addRow("&Password:", self.password)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        if message:
            note = QLabel(message)
            note.setWordWrap(True)
            lay.addWidget(note)
        lay.addLayout(form)
        lay.addWidget(buttons)


class Prompter:
    """Asks the user; every method is a coroutine answering with the user's choice."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent

    async def review(self, label: str, changes: list[Change]) -> bool:
        return await _ask(ReviewDialog(label, changes, self.parent)) == QDialog.DialogCode.Accepted

    async def conflict(self, label: str) -> Conflict:
        box = QMessageBox(QMessageBox.Icon.Warning, "Changed on the server",
                          f"Someone else changed “{label}” since you opened it.", parent=self.parent)
        box.setInformativeText("Reload their version (your edits are dropped), or overwrite it with yours?")
        reload_b = box.addButton("Reload theirs", QMessageBox.ButtonRole.DestructiveRole)
        over_b = box.addButton("Overwrite with mine", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        await ask_message_box(box)
        clicked = box.clickedButton()
        if clicked is reload_b:
            return Conflict.RELOAD
        if clicked is over_b:
            return Conflict.OVERWRITE
        return Conflict.CANCEL

    async def unsaved(self, label: str) -> Unsaved:
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved changes",
                          f"“{label}” has unsaved changes.", parent=self.parent)
        box.setInformativeText("Save them first?")
        box.setStandardButtons(
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
        )
        result = await ask_message_box(box)
        if result == QMessageBox.StandardButton.Save:
            return Unsaved.SAVE
        if result == QMessageBox.StandardButton.Discard:
            return Unsaved.DISCARD
        return Unsaved.CANCEL

    async def first_password(self, password: str, where: str) -> None:
        """The first start made the local server's ``admin``: show the generated password once."""
        box = QMessageBox(QMessageBox.Icon.Information, "Welcome to Balance Desk",
                          "The local management server was set up with the user admin.", parent=self.parent)
        box.setInformativeText(
            f"Its password is:\n\n{password}\n\nIt is kept in {where}, readable only by you. Balance Desk "
            "uses it to connect; other tools (the API, balancedesk balance --api) need it too. "
            "`balancedesk users` can add users or disable this one."
        )
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        await ask_message_box(box)

    async def confirm_delete(self, label: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete group",
                          f"Delete the group “{label}”?", parent=self.parent)
        box.setInformativeText("Data sources that use this group will stop connecting. This cannot be undone.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return await ask_message_box(box) == QMessageBox.StandardButton.Yes

    async def pick_connector(self, candidates: list[Candidate]) -> str | None:
        dialog = PickConnectorDialog(candidates, self.parent)
        if await _ask(dialog) != QDialog.DialogCode.Accepted:
            return None
        return dialog.chosen()

    async def login(self, *, url: str, user: str, message: str = "") -> tuple[str, str, str] | None:
        dialog = LoginDialog(url=url, user=user, message=message, parent=self.parent)
        if await _ask(dialog) != QDialog.DialogCode.Accepted:
            return None
        return dialog.url.text().strip(), dialog.user.text().strip(), dialog.password.text()

    async def accept_certificate(self, url: str, fingerprint: str, subject: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, "Unverified certificate",
                          f"The server at {url} presents a certificate no trusted authority signed.",
                          parent=self.parent)
        box.setInformativeText(
            f"Subject: {subject}\nSHA-256 fingerprint:\n{fingerprint}\n\n"
            "Accept it only if this fingerprint matches the server's. Trust this certificate for this profile?"
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return await ask_message_box(box) == QMessageBox.StandardButton.Yes

    async def inform(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, text, parent=self.parent)
        await ask_message_box(box)


async def ask_message_box(box: QMessageBox) -> int:
    """Open ``box`` (``open()``, never ``exec()``) and wait for its answer: the standard button clicked (its
    int value), else the dialog's result code (a button added with a role). The box is deleted after."""
    result = await _ask(box)  # its deleteLater() waits for the event loop: the clicked button is still there
    std = box.standardButton(box.clickedButton()) if box.clickedButton() is not None else None
    return int(std.value) if std is not None and std != QMessageBox.StandardButton.NoButton else result
