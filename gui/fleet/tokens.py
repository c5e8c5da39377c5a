"""Balancer tokens in the GUI: the panel (create, list, revoke) and the dialog that shows a new token once.

Same rules as the API (``POST/GET/DELETE /api/admin/tokens``): a token is shown this once — the server keeps
only its hash — so the dialog (a :class:`~balancedesk.gui.shown_once.ShownOnceDialog`) offers a copy button and
the exact command a balancer host runs with it. The server's refusals (a bad pool name, too many tokens) are
shown as the server words them, next to the form.
"""

from __future__ import annotations

from balancedesk.gui.fleet.models import tokens_model
from balancedesk.gui.shown_once import Copyable, ShownOnceDialog
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

TOKEN_FILE_HINT = "/etc/balancedesk/balancer.token"


def balance_command(api_url: str, pool: str, token_file: str = TOKEN_FILE_HINT) -> str:
    """The command a balancer host runs with a new token saved in ``token_file``."""
    return f"balancedesk balance --api {api_url} --token-file {token_file} --pool {pool}"


class TokenShownDialog(ShownOnceDialog):
    """Shows a new token once, with copy buttons for it and for the command. No signals of its own."""

    def __init__(self, *, token: str, pool: str, api_url: str, parent: QWidget | None = None) -> None:
        super().__init__(
            title="New balancer token", min_width=720, parent=parent,
            note=f"<b>This is the only time the token for pool “{pool}” is shown.</b> Save it in a file "
                 "readable only by the balancer's user (mode 0600) on the balancer host, then run the "
                 "command below there. Revoke it here when the host is retired.",
            values=[Copyable(token, name="New token", button="Copy token", label="Token"),
                    Copyable(balance_command(api_url, pool), name="Command to run", button="Copy command",
                             label="Command")])
        self.token_edit, self.command_edit = self.edits
        self.copy_token, self.copy_command = self.copy_buttons


class TokenPanel(QWidget):
    """The form to create a token and the list of tokens with Revoke.

    Signals:
        create_requested(str, str): Create was pressed (pool, label).
        revoke_requested(str): Revoke was pressed on a token (its tokenID).
    """

    create_requested = Signal(str, str)
    revoke_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        form = QHBoxLayout()
        self.pool_edit = QLineEdit("default")
        self.pool_edit.setAccessibleName("Pool")
        self.label_edit = QLineEdit()
        self.label_edit.setPlaceholderText("label, e.g. the host it is for")
        self.label_edit.setAccessibleName("Label")
        self.create_button = QPushButton("Create token…")
        form.addWidget(QLabel("Pool:"))
        form.addWidget(self.pool_edit)
        form.addWidget(QLabel("Label:"))
        form.addWidget(self.label_edit, 1)
        form.addWidget(self.create_button)
        lay.addLayout(form)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Token message")
        lay.addWidget(self.message)
        self.model = tokens_model(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.revoke = QPushButton("Revoke")
        self.revoke.setToolTip("the token stops working at once (401); balancers using it stop following")
        row.addWidget(self.revoke)
        lay.addLayout(row)
        self.create_button.clicked.connect(self.on_create_clicked)
        self.revoke.clicked.connect(self.on_revoke_clicked)
        self.label_edit.returnPressed.connect(self.on_create_clicked)

    def on_create_clicked(self) -> None:
        self.create_requested.emit(self.pool_edit.text().strip(), self.label_edit.text().strip())

    def on_revoke_clicked(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        token = self.model.row_at(rows[0].row()) if rows else None
        if token is None:
            self.say("Choose a token to revoke first.", error=True)
            return
        self.revoke_requested.emit(token.token_id)

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(("⚠ " if error else "") + text)
        self.message.setProperty("error", error)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
