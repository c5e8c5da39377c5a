"""The Users view (Administrators only): users with their role and state; add one, disable or enable,
reset a password, change a role — ``/api/admin/users``, with its rules and words.

Anyone else sees a sentence saying so, and nothing is read (the routes answer 403; a 403 met later switches
to the same sentence). A password left empty when adding, and every reset password, is generated here
(:func:`balancedesk.core.mgmt.auth.generate_password`, as the first start does) and shown once, with a Copy
button: the server keeps only its hash. Refusals name their field — the form's own checks before sending,
the API's after (the last active Administrator cannot be disabled or lose the role) — and are shown under it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from balancedesk.core.client import User
from balancedesk.gui.manage.fields import FieldErrors
from balancedesk.gui.manage.forms import PASSWORD_MIN, ROLES, generate_password, user_form_problems
from balancedesk.gui.manage.models import USER_COL_STATE, users_model
from balancedesk.gui.manage.shown import PasswordShownDialog
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
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient


class UsersView(ManageView[User]):
    """Users and roles of one server.

    Signals:
        refreshed(int): the list shows a fresh read (the number of users).
        added(str): a user was added (the name).
        changed(str): a user's role, state or password was changed (the name).
        failed(str): something was refused or failed; the sentence shown (:class:`.view.ManageView`).
    """

    refreshed = Signal(int)
    added = Signal(str)
    changed = Signal(str)

    def __init__(self, *, client: MgmtClient, user: str, is_admin: bool, parent: QWidget | None = None) -> None:
        super().__init__(message_name="Users message", parent=parent)
        self.client, self.user, self.is_admin = client, user, is_admin
        self.users: list[User] = []
        self.password_dialog: PasswordShownDialog | None = None
        self._build()

    # construction --------------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        outer.addWidget(self.stack)
        self.not_admin = QLabel(f"Users and roles are managed by Administrators: “{self.user}” is not one. Ask an "
                                "Administrator to add a user, reset a password or change a role.")
        self.not_admin.setWordWrap(True)
        self.not_admin.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.not_admin.setAccessibleName("Not allowed")
        self.stack.addWidget(self.not_admin)

        page = QWidget()
        lay = QVBoxLayout(page)
        top = QHBoxLayout()
        self.summary = QLabel("Reading the users…")
        self.reload_button = QPushButton("Reload")
        self.reload_button.clicked.connect(lambda: self.spawn(self.refresh()))
        top.addWidget(self.summary, 1)
        top.addWidget(self.reload_button)
        lay.addLayout(top)
        self._list(users_model(self), name="Users", stretch=USER_COL_STATE)  # the State column
        self.table.selectionModel().selectionChanged.connect(self.on_table_selectionChanged)

        side = QWidget()
        slay = QVBoxLayout(side)
        slay.setContentsMargins(0, 0, 0, 0)
        slay.addWidget(self._add_box())
        slay.addWidget(self._selected_box())
        slay.addWidget(self.message)
        roles = QLabel("An Administrator manages every owner's connectors and groups, the users and the fleet; "
                       "a User manages the connectors and groups it owns. A disabled user cannot log in; what it "
                       "owns stays as it is.")
        roles.setObjectName("caption")
        roles.setWordWrap(True)
        slay.addWidget(roles)
        slay.addStretch(1)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([700, 540])
        lay.addWidget(split, 1)
        self.stack.addWidget(page)
        self.page = page
        self.stack.setCurrentWidget(page if self.is_admin else self.not_admin)
        self._show_selected()

    def _add_box(self) -> QGroupBox:
        box = QGroupBox("Add a user")
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.name_edit = QLineEdit()
        self.name_edit.setAccessibleName("New user's name")
        self.name_edit.setPlaceholderText("letters, digits and _ . @ -")
        self.role_combo = QComboBox()
        self.role_combo.addItems(ROLES)
        self.role_combo.setCurrentText(ROLES[-1])
        self.role_combo.setAccessibleName("New user's role")
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName("Initial password")
        self.password_edit.setPlaceholderText(f"at least {PASSWORD_MIN} characters; empty: one is generated")
        self.add_errors = FieldErrors(("name", "role", "password"), box)
        for title, edit, name in (("Name", self.name_edit, "name"), ("Role", self.role_combo, "role"),
                                  ("Password", self.password_edit, "password")):
            form.addRow(title, edit)
            form.addRow("", self.add_errors[name])
        self.add_button = QPushButton("Add user")
        self.add_button.clicked.connect(lambda: self.spawn(self.add()))
        self.name_edit.returnPressed.connect(lambda: self.spawn(self.add()))
        self.password_edit.returnPressed.connect(lambda: self.spawn(self.add()))
        form.addRow("", self.add_button)
        return box

    def _selected_box(self) -> QGroupBox:
        self.selected_box = QGroupBox()
        lay = QVBoxLayout(self.selected_box)
        lay.addWidget(self.refusal)
        row = QHBoxLayout()
        self.active_button = QPushButton("Disable")
        self.active_button.clicked.connect(lambda: self.spawn(self.toggle_active()))
        self.reset_button = QPushButton("Reset password…")
        self.reset_button.setToolTip("a new password is generated and shown once; the old one stops working")
        self.reset_button.clicked.connect(lambda: self.spawn(self.reset_password()))
        row.addWidget(self.active_button)
        row.addWidget(self.reset_button)
        row.addStretch(1)
        lay.addLayout(row)
        role_row = QHBoxLayout()
        self.change_role_combo = QComboBox()
        self.change_role_combo.addItems(ROLES)
        self.change_role_combo.setAccessibleName("Role")
        self.change_role_button = QPushButton("Change role")
        self.change_role_button.clicked.connect(
            lambda: self.spawn(self.change_role(self.change_role_combo.currentText())))
        role_row.addWidget(QLabel("Role:"))
        role_row.addWidget(self.change_role_combo, 1)
        role_row.addWidget(self.change_role_button)
        lay.addLayout(role_row)
        self.user_errors = FieldErrors(("active", "role", "password"), self.selected_box)
        for label in self.user_errors.labels.values():
            lay.addWidget(label)
        return self.selected_box

    # messages ------------------------------------------------------------------------------------
    def _failure(self, exc: BaseException, errors: FieldErrors) -> None:
        """A refused or failed call (:meth:`.view.ManageView.show_failure`); a 403 shows the not-allowed sentence."""
        from balancedesk.core.client import ApiError

        if isinstance(exc, ApiError) and exc.status == 403:
            self.stack.setCurrentWidget(self.not_admin)
        self.show_failure(exc, errors)

    def _clear(self) -> None:
        self.add_errors.clear()
        self.user_errors.clear()
        self.clear_refusal()

    # the list ------------------------------------------------------------------------------------
    async def refresh(self) -> bool:
        from balancedesk.core.client import ClientError

        if not self.is_admin:
            return False
        try:
            users = await self.client.list_users()
        except ClientError as exc:
            self._failure(exc, self.user_errors)
            return False
        chosen = self.chosen()
        self.users = sorted(users, key=lambda u: u.name.casefold())
        self.model.set_rows(self.users)
        admins = sum(u.role == ROLES[0] and u.active for u in self.users)
        n = len(self.users)
        self.summary.setText(f"{n} user{'' if n == 1 else 's'} · {sum(u.active for u in self.users)} active · "
                             f"{admins} active Administrator{'' if admins == 1 else 's'}")
        if chosen is not None:
            self.select(chosen.name)
        self._show_selected()
        self.refreshed.emit(n)
        return True

    def select(self, name: str) -> None:
        row = next((i for i, u in enumerate(self.model.rows) if u.name == name), -1)
        if row >= 0:
            self.table.selectRow(row)

    def on_table_selectionChanged(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        self.user_errors.clear()
        self.refusal.hide()
        self._show_selected()

    def _show_selected(self) -> None:
        user = self.chosen()
        for w in (self.active_button, self.reset_button, self.change_role_combo, self.change_role_button):
            w.setEnabled(user is not None)
        if user is None:
            self.selected_box.setTitle("Choose a user")
            return
        you = " (you)" if user.name == self.user else ""
        self.selected_box.setTitle(f"“{user.name}”{you} — {user.role}, {'active' if user.active else 'disabled'}")
        self.active_button.setText("Disable" if user.active else "Enable")
        self.change_role_combo.setCurrentText(user.role)

    # actions -------------------------------------------------------------------------------------
    async def add(self) -> str | None:
        """Add the form's user; a password left empty is generated and shown once. The name, or None."""
        from balancedesk.core.client import ClientError

        name, role, typed = self.name_edit.text().strip(), self.role_combo.currentText(), self.password_edit.text()
        password = typed or generate_password()
        self._clear()
        problems = user_form_problems(name=name, password=password, role=role)
        if self.form_refused(problems, self.add_errors):
            return None
        try:
            made = await self.client.add_user(name, password, role=role)
        except ClientError as exc:
            self._failure(exc, self.add_errors)
            return None
        self.name_edit.clear()
        self.password_edit.clear()
        await self.refresh()
        self.select(made.name)
        self.say(f"Added {made.name} ({made.role}).")
        if not typed:
            self._show_password(made.name, password, "was added")
        self.added.emit(made.name)
        return made.name

    async def _update(self, what: str, **change: Any) -> User | None:
        from balancedesk.core.client import ClientError

        user = self.chosen()
        if user is None:
            return None
        self._clear()
        try:
            done = await self.client.update_user(user.name, **change)
        except ClientError as exc:
            self._failure(exc, self.user_errors)
            return None
        await self.refresh()
        self.say(f"{done.name} {what}.")
        self.changed.emit(done.name)
        return done

    async def toggle_active(self) -> User | None:
        """Disable the chosen user (it cannot log in from now on), or enable it again."""
        user = self.chosen()
        if user is None:
            return None
        return await self._update("is disabled: it cannot log in" if user.active else "is enabled: it can log in",
                                  active=not user.active)

    async def change_role(self, role: str) -> User | None:
        return await self._update(f"has the role {role} now", role=role)

    async def reset_password(self) -> str | None:
        """Give the chosen user a new generated password, shown once; the old one stops working."""
        password = generate_password()
        done = await self._update("has a new password; the old one no longer works", password=password)
        if done is None:
            return None
        self._show_password(done.name, password, "has a new password")
        if done.name == self.user:  # this session logged in with the old one
            self.say(f"{done.name} has a new password — you are logged in as {done.name}: reconnect with it "
                     "(Connect in the main window) before anything else here.")
        return password

    def _show_password(self, name: str, password: str, what: str) -> None:
        self.password_dialog = PasswordShownDialog(name=name, password=password, what=what, parent=self)
        self.password_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.password_dialog.destroyed.connect(lambda _o=None: setattr(self, "password_dialog", None))
        self.password_dialog.open()
