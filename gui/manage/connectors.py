"""The Connectors view: every plain connector with the group it belongs to; register, edit, delete.

Same rules and words as the management API. The form checks label and endpoint with the API's own rules
(:mod:`.forms`) before anything is sent; what the server still refuses is shown under its field (the API's
``problems``), or above the form when it names none. Editing reads the connector and its ETag when it is
chosen and saves with ``If-Match``: a change made elsewhere in between is answered 412 and shown as
"changed on the server" with a Reload button (the user's edits are then replaced by the server's version).
Registering and deleting are the Administrator's (``/api/admin/connectors``); a connector's owner may edit
its label and endpoint. Deleting asks first, and a member of a group is not deleted (the API refuses it
too): it is removed from its group in the editor first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from balancedesk.gui.manage.fields import FieldErrors
from balancedesk.gui.manage.forms import ConnectorRow, connector_form_problems, connector_rows
from balancedesk.gui.manage.models import CONNECTOR_COL_GROUP, CONNECTOR_COL_ID, connectors_model
from balancedesk.gui.manage.view import ManageView
from PySide6.QtCore import QItemSelection, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient
    from balancedesk.core.model import Connector

Confirm = Callable[[str, str], Awaitable[bool]]


class ConnectorsView(ManageView[ConnectorRow]):
    """List, register, edit and delete plain connectors on one server.

    Signals:
        refreshed(int): the list shows a fresh read (the number of connectors).
        registered(str): a connector was registered (its connectorID).
        saved(str): a connector's changes were saved (its connectorID).
        deleted(str): a connector was deleted (its connectorID).
        failed(str): something was refused or failed; the sentence shown (:class:`.view.ManageView`).
    """

    refreshed = Signal(int)
    registered = Signal(str)
    saved = Signal(str)
    deleted = Signal(str)

    def __init__(self, *, client: MgmtClient, user: str, is_admin: bool, confirm: Confirm,
                 parent: QWidget | None = None) -> None:
        super().__init__(message_name="Connectors message", refusal_name="Connector refusal", parent=parent)
        self.client, self.user, self.is_admin, self.confirm = client, user, is_admin, confirm
        self.rows: list[ConnectorRow] = []
        self.editing: tuple[Connector, str] | None = None  # the chosen connector as read, and its ETag
        self._build()
        self.start_new()

    # construction --------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.summary = QLabel("Reading the connectors…")
        self.summary.setAccessibleName("Connectors summary")
        self.reload_button = QPushButton("Reload")
        self.reload_button.clicked.connect(self.on_reload_button_clicked)
        top.addWidget(self.summary, 1)
        top.addWidget(self.reload_button)
        lay.addLayout(top)
        self._list(connectors_model(self), name="Connectors", stretch=CONNECTOR_COL_GROUP)  # the Group column
        self.table.setColumnHidden(CONNECTOR_COL_ID, True)  # the ID is on hover and in the form
        self.table.selectionModel().selectionChanged.connect(self.on_table_selectionChanged)

        self.form_box = QGroupBox()
        form_lay = QVBoxLayout(self.form_box)
        self.reload_connector = QPushButton("Reload it")
        self.reload_connector.setToolTip("read the server's version of this connector (your edits are dropped)")
        self.reload_connector.clicked.connect(self.on_reload_connector_clicked)
        self.reload_connector.hide()
        form_lay.addWidget(self.refusal)
        form_lay.addWidget(self.reload_connector, 0, Qt.AlignmentFlag.AlignLeft)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.label_edit = QLineEdit()
        self.label_edit.setAccessibleName("Label")
        self.label_edit.setPlaceholderText("e.g. PACS archive 1")
        self.endpoint_edit = QLineEdit()
        self.endpoint_edit.setAccessibleName("Endpoint")
        self.endpoint_edit.setPlaceholderText("host:port, e.g. 10.0.0.5:4242 or [2001:db8::5]:4242")
        self.owner_combo = QComboBox()
        self.owner_combo.setAccessibleName("Owner")
        self.errors = FieldErrors(("label", "endpoint", "owner"), self.form_box)
        for title, edit, name in (("Label", self.label_edit, "label"), ("Endpoint", self.endpoint_edit, "endpoint"),
                                  ("Owner", self.owner_combo, "owner")):
            form.addRow(title, edit)
            form.addRow("", self.errors[name])
        form_lay.addLayout(form)
        self.id_caption = QLabel()
        self.id_caption.setObjectName("caption")
        self.id_caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form_lay.addWidget(self.id_caption)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("clear the form to register another connector")
        self.submit_button = QPushButton()
        self.submit_button.setDefault(True)
        self.delete_button = QPushButton("Delete…")
        for b in (self.new_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.submit_button)
        form_lay.addLayout(buttons)
        self.role_note = QLabel()
        self.role_note.setObjectName("caption")
        self.role_note.setWordWrap(True)
        form_lay.addWidget(self.role_note)
        form_lay.addWidget(self.message)
        form_lay.addStretch(1)
        self.new_button.clicked.connect(self.on_new_button_clicked)
        self.submit_button.clicked.connect(self.on_submit_button_clicked)
        self.delete_button.clicked.connect(self.on_delete_button_clicked)
        self.label_edit.returnPressed.connect(self.on_submit_button_clicked)
        self.endpoint_edit.returnPressed.connect(self.on_submit_button_clicked)

        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(self.form_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([760, 480])
        lay.addWidget(split, 1)
        if not self.is_admin:
            self.role_note.setText("Registering and deleting connectors needs the Administrator role; you can "
                                   "change the label and endpoint of your own connectors.")

    # messages ------------------------------------------------------------------------------------
    def refuse(self, text: str, *, reload: bool = False) -> None:
        """A refusal above the form (:meth:`.view.ManageView.refuse`), with "Reload it" when ``reload``."""
        self.reload_connector.setVisible(reload)
        super().refuse(text)

    def clear_refusal(self) -> None:
        super().clear_refusal()
        self.reload_connector.hide()

    def _failure(self, exc: BaseException, what: str) -> None:
        """A refused or failed call: field problems under their fields, the rest above the form."""
        from balancedesk.core.client import ApiError

        if isinstance(exc, ApiError) and exc.status == 412:
            self.refuse(f"{what} was changed on the server since you opened it. Reload it to see that version "
                        "(your edits here are dropped), then make them again.", reload=True)
            return
        self.show_failure(exc, self.errors)

    # the list ------------------------------------------------------------------------------------
    def on_reload_button_clicked(self) -> None:
        self.spawn(self.refresh())

    async def refresh(self) -> bool:
        """Read the connectors (and, for an Administrator, the users who may own one)."""
        from balancedesk.core.client import ClientError

        try:
            listed = await self.client.list_connectors(details=True)
            owners = [u.name for u in await self.client.list_users()] if self.is_admin else [self.user]
        except ClientError as exc:
            self._failure(exc, "The list")
            return False
        chosen = self.chosen()
        self.rows = connector_rows(listed)
        self.model.set_rows(self.rows)
        current = self.owner_combo.currentText()
        self.owner_combo.clear()
        self.owner_combo.addItems(owners)
        self.owner_combo.setCurrentText(current or self.user)
        in_groups = sum(r.group_id is not None for r in self.rows)
        n = len(self.rows)
        self.summary.setText(f"{n} connector{'' if n == 1 else 's'} on {self.client.base_url} · "
                             f"{in_groups} in a group · {n - in_groups} free")
        if chosen is not None:
            self.select(chosen.connector_id)
        self.refreshed.emit(n)
        return True

    def select(self, connector_id: str) -> None:
        row = next((i for i, r in enumerate(self.model.rows) if r.connector_id == connector_id), -1)
        if row >= 0 and self.table.currentIndex().row() != row:
            self.table.selectRow(row)

    def on_table_selectionChanged(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        row = self.chosen()
        if row is None:
            self.start_new()
        elif self.editing is None or self.editing[0].connector_id != row.connector_id:
            self.spawn(self.open(row.connector_id))

    # the form ------------------------------------------------------------------------------------
    def on_new_button_clicked(self) -> None:
        self.table.clearSelection()
        self.start_new()

    def start_new(self) -> None:
        self.editing = None
        self.form_box.setTitle("Register a connector")
        self.submit_button.setText("Register")
        self._fill("", "", self.user)
        self.id_caption.setText("The server assigns its connectorID.")
        self._update_buttons()
        self.label_edit.setFocus()

    async def open(self, connector_id: str) -> bool:
        """Read the connector and its ETag into the form (what a save will send If-Match)."""
        from balancedesk.core.client import ClientError

        self.submit_button.setEnabled(False)
        try:
            connector, etag = await self.client.get_connector(connector_id)
        except ClientError as exc:
            self._failure(exc, "The connector")
            return False
        chosen = self.chosen()
        if chosen is not None and chosen.connector_id != connector_id:  # another was chosen meanwhile
            return False
        self.editing = (connector, etag)
        self.form_box.setTitle(f"Edit “{connector.label}”")
        self.submit_button.setText("Save changes")
        self._fill(connector.label, connector.endpoint or "", connector.owner)
        self.id_caption.setText(f"connectorID {connector.connector_id}")
        self._update_buttons()
        return True

    def _fill(self, label: str, endpoint: str, owner: str) -> None:
        self.errors.clear()
        self.clear_refusal()
        self.label_edit.setText(label)
        self.endpoint_edit.setText(endpoint)
        if self.owner_combo.findText(owner) < 0:
            self.owner_combo.addItem(owner)
        self.owner_combo.setCurrentText(owner)

    def _update_buttons(self) -> None:
        editing = self.editing is not None
        self.submit_button.setEnabled(editing or self.is_admin)
        self.delete_button.setEnabled(editing and self.is_admin)
        self.owner_combo.setEnabled(self.is_admin)
        for w in (self.label_edit, self.endpoint_edit):
            w.setEnabled(editing or self.is_admin)

    def on_reload_connector_clicked(self) -> None:
        if self.editing is not None:
            self.spawn(self.open(self.editing[0].connector_id or ""))

    def on_submit_button_clicked(self) -> None:
        self.spawn(self.submit())

    async def submit(self) -> str | None:
        """Register the form's connector, or save the chosen one's changes; its connectorID, or None when
        the form or the server refused (the reasons are shown)."""
        from balancedesk.core.client import ClientError

        label, endpoint = self.label_edit.text().strip(), self.endpoint_edit.text().strip()
        owner = self.owner_combo.currentText()
        current = self.editing
        problems = connector_form_problems(label=label, endpoint=endpoint,
                                           registered_endpoint=current[0].endpoint if current else None)
        self.clear_refusal()
        if self.form_refused(problems, self.errors):
            return None
        try:
            if current is None:
                made = await self.client.register_connector(label=label, owner=owner, endpoint=endpoint or None)
                cid = made.connector_id
            else:
                base, etag = current
                update: dict[str, Any] = {"label": label, "owner": owner, "endpoint": endpoint or None}
                changed, etag = await self.client.put_connector(base.model_copy(update=update), if_match=etag)
                cid = changed.connector_id or ""
                self.editing = (changed, etag)
        except ClientError as exc:
            self._failure(exc, f"“{current[0].label}”" if current else "The connector")
            return None
        await self.refresh()
        if current is None:
            self.select(cid)
            self.say(f"Registered “{label}” ({endpoint or 'no endpoint'}) for {owner}.")
            self.registered.emit(cid)
        else:
            self.say(f"Saved “{label}”.")
            self.saved.emit(cid)
        return cid

    def on_delete_button_clicked(self) -> None:
        self.spawn(self.delete())

    async def delete(self) -> bool:
        """Delete the chosen connector after asking (``DELETE /api/admin/connectors/{id}``)."""
        from balancedesk.core.client import ClientError

        row = self.chosen()
        if row is None or self.editing is None:
            return False
        if row.group_id is not None:
            self.refuse(f"“{row.label}” is a member of the group “{row.group_label}”; remove it from that group "
                        "in the editor first.")
            return False
        if not await self.confirm(row.label, row.endpoint or "no endpoint"):
            return False
        try:
            await self.client.unregister_connector(row.connector_id)
        except ClientError as exc:
            self._failure(exc, f"“{row.label}”")
            return False
        self.table.clearSelection()
        self.start_new()
        await self.refresh()
        self.say(f"Deleted “{row.label}”.")
        self.deleted.emit(row.connector_id)
        return True
