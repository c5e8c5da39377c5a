"""The group editor: fields, members (drag, weights, shares), the preview strip and inline problems.

It shows a :class:`GroupDocument` and turns every user edit into a call on the document or its members
model, which push undo commands; it redraws from the document's signals, so undo and redo look the same
as the edits themselves.
"""

from __future__ import annotations

from balancedesk.core.model import LABEL_MAX, Problem
from balancedesk.gui.badges import letter, member_color
from balancedesk.gui.document import ZERO_SECONDS, GroupDocument
from balancedesk.gui.members_model import MembersModel
from balancedesk.gui.members_view import MembersView
from balancedesk.gui.weights import PreviewStrip, ShareBar, WeightEditor
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

PREVIEW_PICKS = 24
_FIELD_KEYS = {
    "label": "label",
    "owner": "owner",
    "authUser": "auth_user",
    "connectorGroup.connectionTimeout": "connection_timeout",
    "connectorGroup.retryDelay": "retry_delay",
    "connectorGroup.loadBalancing": "round_robin",
}


def field_key(problem: Problem) -> str:
    """Which editor field a problem names ("members" for the members table, "" for the group as a whole)."""
    f = problem.field
    for prefix, key in _FIELD_KEYS.items():
        if f == prefix or f.startswith(prefix + "[") or f.startswith(prefix + "."):
            return key
    if problem.member_id or f.startswith("connectorGroup.members") or f.startswith("members"):
        return "members"
    return ""


def _seconds_spin(name: str, zero: str) -> QSpinBox:
    """Seconds, 0 to a year; ``zero`` says what 0 means for this field."""
    spin = QSpinBox()
    spin.setRange(0, 86_400 * 365)
    spin.setSuffix(" s")
    spin.setSpecialValueText(zero)
    spin.setAccessibleName(name)
    spin.setKeyboardTracking(False)
    return spin


class GroupEditor(QWidget):
    """Edits one :class:`GroupDocument`.

    Signals:
        add_member_requested(): the "Add member…" button was clicked.
    """

    add_member_requested = Signal()

    def __init__(self, doc: GroupDocument, *, can_change_owner: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.doc = doc
        self.model: MembersModel = doc.members_model
        self._server_problems: list[Problem] = []

        self.title = QLabel()
        self.title.setObjectName("editorTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.label_edit = QLineEdit()
        self.label_edit.setMaxLength(LABEL_MAX)
        self.label_edit.setAccessibleName("Group label")
        self.label_edit.setPlaceholderText("e.g. Payroll OPCs")
        self.owner_edit = QLineEdit()
        self.owner_edit.setAccessibleName("Owner")
        self.owner_edit.setEnabled(can_change_owner)
        if not can_change_owner:
            self.owner_edit.setToolTip("Only an Administrator can change a group's owner.")
        self.auth_edit = QLineEdit()
        self.auth_edit.setAccessibleName("Authorised users")
        self.auth_edit.setPlaceholderText("user names, separated by commas")
        self.timeout_spin = _seconds_spin("Connection timeout", ZERO_SECONDS["connection_timeout"])
        self.timeout_spin.setToolTip("Seconds to wait for one member before trying the next; 0 means never.")
        self.retry_spin = _seconds_spin("Retry delay", ZERO_SECONDS["retry_delay"])
        self.retry_spin.setToolTip("Seconds a failed member is left out; 0 means it is never left out.")
        self.rr_check = QCheckBox("Round Robin — share new connections by weight")
        self.rr_check.setAccessibleName("Round Robin")
        self.rr_check.setToolTip("Off: members are tried in sequence order (failover); weights do not count.")

        self.errors: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        for key, text, widget in (
            ("label", "&Label:", self.label_edit),
            ("owner", "&Owner:", self.owner_edit),
            ("auth_user", "&Authorised users:", self.auth_edit),
            ("connection_timeout", "Connection &timeout:", self.timeout_spin),
            ("retry_delay", "Retry &delay:", self.retry_spin),
            ("round_robin", "Load balancing:", self.rr_check),
        ):
            box = QVBoxLayout()
            box.setSpacing(2)
            box.addWidget(widget)
            err = self._error_label()
            box.addWidget(err)
            self.errors[key] = err
            lbl = QLabel(text)
            lbl.setBuddy(widget)
            form.addRow(lbl, box)

        self.view = MembersView()
        self.view.setModel(self.model)
        self.add_button = QPushButton("&Add member…")
        self.add_button.setAccessibleName("Add member")
        self.remove_button = QPushButton("&Remove")
        self.remove_button.setAccessibleName("Remove member")
        self.up_button = QPushButton("Move &up")
        self.up_button.setToolTip("Alt+Up")
        self.down_button = QPushButton("Move do&wn")
        self.down_button.setToolTip("Alt+Down")
        buttons = QHBoxLayout()
        for b in (self.add_button, self.remove_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.members_error = self._error_label()
        self.errors["members"] = self.members_error
        self.refusal = QLabel()
        self.refusal.setObjectName("refusal")
        self.refusal.setWordWrap(True)
        self.refusal.hide()
        self.share_bar = ShareBar()
        self.preview = PreviewStrip()
        self.share_caption = QLabel("Share of new connections")
        self.preview_caption = QLabel(f"Next {PREVIEW_PICKS} picks (computed by the balancer's own scheduler)")
        for cap in (self.share_caption, self.preview_caption):
            cap.setObjectName("caption")

        members_box = QGroupBox("Members")
        mlay = QVBoxLayout(members_box)
        mlay.addLayout(buttons)
        mlay.addWidget(self.refusal)
        mlay.addWidget(self.view, 1)
        mlay.addWidget(self.members_error)
        mlay.addWidget(self.share_caption)
        mlay.addWidget(self.share_bar)
        mlay.addWidget(self.preview_caption)
        mlay.addWidget(self.preview)

        self.general_error = self._error_label()
        self.errors[""] = self.general_error
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.general_error)
        lay.addLayout(form)
        lay.addWidget(members_box, 1)

        # widget → document
        self.label_edit.textEdited.connect(self.on_label_edit_text_edited)
        self.owner_edit.textEdited.connect(self.on_owner_edit_text_edited)
        self.auth_edit.editingFinished.connect(self.on_auth_edit_editing_finished)
        self.timeout_spin.valueChanged.connect(self.on_timeout_spin_value_changed)
        self.retry_spin.valueChanged.connect(self.on_retry_spin_value_changed)
        self.rr_check.toggled.connect(self.on_rr_check_toggled)
        self.add_button.clicked.connect(self.add_member_requested)
        self.remove_button.clicked.connect(self.on_remove_button_clicked)
        self.up_button.clicked.connect(self.on_up_button_clicked)
        self.down_button.clicked.connect(self.on_down_button_clicked)
        self.view.drag_refused.connect(self.on_view_drag_refused)
        self.view.delete_requested.connect(self.on_view_delete_requested)
        # document → widgets
        doc.field_changed.connect(self.on_doc_field_changed)
        doc.members_changed.connect(self.on_doc_members_changed)
        doc.refused.connect(self.on_doc_refused)
        doc.undo_stack.indexChanged.connect(self.on_undo_stack_index_changed)
        self.model.rowsInserted.connect(self.on_model_rows_inserted)
        self.model.modelReset.connect(self._sync_weight_editors)
        self.view.selectionModel().currentChanged.connect(self.on_selection_current_changed)

        for name in doc.fields:
            self.on_doc_field_changed(name)
        self._sync_weight_editors()
        self.on_doc_members_changed()
        self._update_buttons()

    @staticmethod
    def _error_label() -> QLabel:
        err = QLabel()
        err.setObjectName("fieldError")
        err.setWordWrap(True)
        err.hide()
        return err

    # widget → document ----------------------------------------------------------------------------
    def on_label_edit_text_edited(self, text: str) -> None:
        self.doc.set_field("label", text)

    def on_owner_edit_text_edited(self, text: str) -> None:
        self.doc.set_field("owner", text.strip())

    def on_auth_edit_editing_finished(self) -> None:
        users = tuple(u.strip() for u in self.auth_edit.text().split(",") if u.strip())
        self.doc.set_field("auth_user", users)

    def on_timeout_spin_value_changed(self, value: int) -> None:
        self.doc.set_field("connection_timeout", value)

    def on_retry_spin_value_changed(self, value: int) -> None:
        self.doc.set_field("retry_delay", value)

    def on_rr_check_toggled(self, checked: bool) -> None:
        self.doc.set_field("round_robin", checked)

    def on_remove_button_clicked(self) -> None:
        self.on_view_delete_requested(self.view.current_row())

    def on_view_delete_requested(self, row: int) -> None:
        if self.model.remove_member(row):
            self.view.select_row(min(row, self.model.rowCount() - 1))

    def on_up_button_clicked(self) -> None:
        row = self.view.current_row()
        if row > 0 and self.model.move_member(row, -1):
            self.view.select_row(row - 1)

    def on_down_button_clicked(self) -> None:
        row = self.view.current_row()
        if 0 <= row < self.model.rowCount() - 1 and self.model.move_member(row, 1):
            self.view.select_row(row + 1)

    def on_weight_editor_weight_edited(self, member_id: str, weight: int) -> None:
        self.model.set_weight(member_id, weight)
        self._sync_weight_editors()  # a refused weight shows the member's weight again, beside the message

    def on_view_drag_refused(self, reason: str) -> None:
        self.show_refusal(reason)

    def on_doc_refused(self, reason: str) -> None:
        self.show_refusal(reason)

    def show_refusal(self, reason: str) -> None:
        self.refusal.setText(f"Refused — {reason}")
        self.refusal.setAccessibleName(reason)
        self.refusal.show()

    # document → widgets ----------------------------------------------------------------------------
    def on_doc_field_changed(self, name: str) -> None:
        value = self.doc.fields[name]
        if name == "label":
            if self.label_edit.text() != value:
                self.label_edit.setText(value)
            self._update_title()
        elif name == "owner":
            if self.owner_edit.text() != value:
                self.owner_edit.setText(value)
        elif name == "auth_user":
            self.auth_edit.setText(", ".join(value))
        elif name == "connection_timeout":
            self._set_quiet(self.timeout_spin, value)
        elif name == "retry_delay":
            self._set_quiet(self.retry_spin, value)
        elif name == "round_robin":
            self.rr_check.blockSignals(True)
            self.rr_check.setChecked(bool(value))
            self.rr_check.blockSignals(False)
            self._update_weight_enabled()
            self.on_doc_members_changed()

    @staticmethod
    def _set_quiet(spin: QSpinBox, value: int) -> None:
        spin.blockSignals(True)
        spin.setValue(value)
        spin.blockSignals(False)

    def _update_title(self) -> None:
        label = self.doc.fields["label"] or "(no label)"
        gid = self.doc.group_id
        sub = gid if gid else "new group"
        self.title.setText(f"<b>{_escape(label)}</b>  <small>{sub}</small>")

    def on_doc_members_changed(self) -> None:
        shares = self.model.shares()
        parts = [(letter(i), s, member_color(i)) for i, s in enumerate(shares)]
        self.share_bar.set_parts(parts, greyed=not self.doc.round_robin)
        picks = self.doc.preview(PREVIEW_PICKS)
        rows = {m.member_id: i for i, m in enumerate(self.doc.members)}
        self.preview.set_picks([(letter(rows[p]), member_color(rows[p])) for p in picks])
        self.share_caption.setText(
            "Share of new connections" if self.doc.round_robin else
            "Round Robin is off: the first member takes every connection; the others are standbys in order"
        )
        self._sync_weight_editors()
        self._update_buttons()

    def on_model_rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        self._sync_weight_editors()

    def on_selection_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        self._update_buttons()

    def on_undo_stack_index_changed(self, index: int) -> None:
        self._server_problems = []
        self.refusal.hide()
        self.show_problems()

    def _weight_editor(self, row: int) -> WeightEditor | None:
        w = self.view.indexWidget(self.model.index(row, MembersModel.COL_WEIGHT))
        return w if isinstance(w, WeightEditor) else None

    def _sync_weight_editors(self) -> None:
        for row, m in enumerate(self.doc.members):
            editor = self._weight_editor(row)
            if editor is None or editor.member_id != m.member_id:
                editor = WeightEditor(m.member_id, self.model.display_name(m.member_id), m.weight)
                editor.weight_edited.connect(self.on_weight_editor_weight_edited)
                self.view.setIndexWidget(self.model.index(row, MembersModel.COL_WEIGHT), editor)
            editor.show_weight(m.weight)
        self._update_weight_enabled()

    def _update_weight_enabled(self) -> None:
        rr = self.doc.round_robin
        for row in range(self.model.rowCount()):
            editor = self._weight_editor(row)
            if editor is not None:
                editor.setEnabled(rr)
                editor.setToolTip("" if rr else "Weights count only with Round Robin on; the order decides.")

    def _update_buttons(self) -> None:
        row = self.view.current_row()
        n = self.model.rowCount()
        self.remove_button.setEnabled(0 <= row < n)
        self.up_button.setEnabled(0 < row < n)
        self.down_button.setEnabled(0 <= row < n - 1)

    # problems ---------------------------------------------------------------------------------------
    def set_server_problems(self, problems: list[Problem], message: str = "") -> None:
        """Show a failed save's problems next to what they name (kept until the next edit)."""
        self._server_problems = list(problems)
        if message and not problems:
            self._server_problems = [Problem("", message)]
        self.show_problems()

    def show_problems(self, *, display: bool = True) -> list[Problem]:
        """Show local and server problems next to their fields; returns them all. ``display=False`` finds
        them without showing any (a new, untouched group: nothing is wrong until the user acts)."""
        problems = self.doc.problems() + self._server_problems
        if not display:
            return list(problems)
        texts: dict[str, list[str]] = {}
        member_texts: dict[str, str] = {}
        for p in problems:
            key = field_key(p)
            if p.member_id:
                member_texts.setdefault(p.member_id, p.message)
                name = self.model.display_name(p.member_id)
                texts.setdefault("members", []).append(f"{name}: {p.message}")
            else:
                texts.setdefault(key, []).append(p.message)
        for key, label in self.errors.items():
            msgs = list(dict.fromkeys(texts.get(key, [])))
            label.setText("\n".join(f"⚠ {m}" for m in msgs))
            label.setVisible(bool(msgs))
        self.model.set_problems(member_texts)
        return list(problems)

    def field_error(self, key: str) -> str:
        label = self.errors[key]
        return label.text() if label.isVisible() or label.text() else ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

