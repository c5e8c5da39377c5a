"""The group editor: fields, the listener, members (drag, weights, shares), the preview strip and inline problems.

It shows a :class:`GroupDocument` and turns every user edit into a call on the document or its members
model, which push undo commands; it redraws from the document's signals, so undo and redo look the same
as the edits themselves. The listener box (issue 11) edits where a pool's balancers serve the group —
port, bind address, mode, affinity header, pool — with a line saying how it will be served and, when that
differs from the saved group, how it is served now. Limits and names come from :mod:`balancedesk.core.model`.
"""

from __future__ import annotations

from balancedesk.core.model import HEADER_NAME_MAX, LABEL_MAX, MODES, POOL_MAX, PORT_MAX, Problem
from balancedesk.gui.badges import letter, member_color
from balancedesk.gui.document import MODE_TEXT, ZERO_SECONDS, GroupDocument
from balancedesk.gui.members_model import MembersModel
from balancedesk.gui.members_view import MembersView
from balancedesk.gui.weights import PreviewStrip, ShareBar, WeightEditor
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
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
    "listener.port": "listener_port",
    "listener.bind": "listener_bind",
    "listener.mode": "listener_mode",
    "listener.affinityHeader": "listener_affinity",
    "listener.pool": "listener_pool",
    "listener": "listener",  # after its fields: the listener as a whole
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
        listener_box = self._build_listener()
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
        lay.addWidget(listener_box)
        lay.addWidget(members_box, 1)

        # widget → document
        self.label_edit.textEdited.connect(self.on_label_edit_text_edited)
        self.owner_edit.textEdited.connect(self.on_owner_edit_text_edited)
        self.auth_edit.editingFinished.connect(self.on_auth_edit_editing_finished)
        self.timeout_spin.valueChanged.connect(self.on_timeout_spin_value_changed)
        self.retry_spin.valueChanged.connect(self.on_retry_spin_value_changed)
        self.rr_check.toggled.connect(self.on_rr_check_toggled)
        self.listener_box.toggled.connect(self.on_listener_box_toggled)
        self.port_spin.valueChanged.connect(self.on_port_spin_value_changed)
        self.bind_edit.textEdited.connect(self.on_bind_edit_text_edited)
        self.mode_combo.activated.connect(self.on_mode_combo_activated)
        self.affinity_edit.textEdited.connect(self.on_affinity_edit_text_edited)
        self.pool_edit.textEdited.connect(self.on_pool_edit_text_edited)
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
        doc.undo_stack.cleanChanged.connect(self.on_undo_stack_clean_changed)
        self.model.rowsInserted.connect(self.on_model_rows_inserted)
        self.model.modelReset.connect(self._sync_weight_editors)
        self.view.selectionModel().currentChanged.connect(self.on_selection_current_changed)

        for name in doc.fields:
            self.on_doc_field_changed(name)
        self._sync_weight_editors()
        self.on_doc_members_changed()
        self._update_buttons()

    def _build_listener(self) -> QGroupBox:
        """The listener box: checkable (served by a pool's balancers or not), its fields in two columns (shown
        while ticked), then how the group will be served and, while that differs, how it is served now."""
        box = QGroupBox("Served by a balancer pool")
        box.setObjectName("listenerBox")
        box.setCheckable(True)
        box.setAccessibleName("Served by a balancer pool")
        box.setToolTip("On: every balancer of the pool opens a listener for this group (balancedesk balance "
                       "--api URL --pool NAME).")
        self.listener_box = box
        self.port_spin = QSpinBox()
        self.port_spin.setRange(0, PORT_MAX)
        self.port_spin.setSpecialValueText("choose a port")
        self.port_spin.setAccessibleName("Listener port")
        self.port_spin.setKeyboardTracking(False)
        self.port_spin.setToolTip(f"The port the pool's balancers listen on for this group (1-{PORT_MAX}); "
                                  "two groups of one pool cannot share one.")
        self.bind_edit = QLineEdit()
        self.bind_edit.setAccessibleName("Bind address")
        self.bind_edit.setPlaceholderText("the balancer's default address")
        self.bind_edit.setToolTip("An IPv4 or IPv6 address (no host names); empty: the balancer's default. "
                                  "0.0.0.0 and :: listen on every address.")
        self.mode_combo = QComboBox()
        self.mode_combo.setAccessibleName("Mode")
        for mode in MODES:
            self.mode_combo.addItem(MODE_TEXT[mode], mode)
        self.mode_combo.setToolTip("TCP (L4): connections are shared as they come. HTTP (L7): requests are, "
                                   "and a header can keep a transfer on one member.")
        self.affinity_edit = QLineEdit()
        self.affinity_edit.setMaxLength(HEADER_NAME_MAX)
        self.affinity_edit.setAccessibleName("Affinity header")
        self.affinity_edit.setPlaceholderText("none")
        self.affinity_edit.setToolTip("HTTP only: requests with the same value of this header go to the same "
                                      "member. Empty: no affinity.")
        self.pool_edit = QLineEdit()
        self.pool_edit.setMaxLength(POOL_MAX)
        self.pool_edit.setAccessibleName("Pool")
        self.pool_edit.setToolTip("The balancer pool that serves the group (letters, digits, _ . -).")
        self.listener_text = QLabel()
        self.listener_text.setObjectName("listenerSummary")
        self.listener_text.setWordWrap(True)
        self.listener_was = QLabel()
        self.listener_was.setObjectName("caption")
        self.listener_was.setWordWrap(True)
        self.listener_fields = QWidget()  # shown only while the box is ticked: unticked, one line says so
        grid = QGridLayout(self.listener_fields)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        cells = (
            ("listener_port", "&Port:", self.port_spin, 0, 0),
            ("listener_bind", "&Bind address:", self.bind_edit, 0, 2),
            ("listener_mode", "&Mode:", self.mode_combo, 1, 0),
            ("listener_affinity", "Affinit&y header:", self.affinity_edit, 1, 2),
            ("listener_pool", "Poo&l:", self.pool_edit, 2, 0),
        )
        for key, text, widget, row, col in cells:
            cell = QVBoxLayout()
            cell.setSpacing(2)
            cell.addWidget(widget)
            err = self._error_label()
            cell.addWidget(err)
            self.errors[key] = err
            lbl = QLabel(text)
            lbl.setBuddy(widget)
            grid.addWidget(lbl, row, col, Qt.AlignmentFlag.AlignTop)
            grid.addLayout(cell, row, col + 1, Qt.AlignmentFlag.AlignTop)
        self.errors["listener"] = self._error_label()
        lay = QVBoxLayout(box)
        lay.setSpacing(4)
        lay.addWidget(self.listener_fields)
        lay.addWidget(self.listener_text)
        lay.addWidget(self.listener_was)
        lay.addWidget(self.errors["listener"])
        return box

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

    def on_listener_box_toggled(self, checked: bool) -> None:
        self.doc.set_field("listener", checked)

    def on_port_spin_value_changed(self, value: int) -> None:
        self.doc.set_field("listener_port", value or None)

    # typed text goes to the document at each keystroke (one merged undo step), so a save made without
    # leaving the box (Ctrl+S) sends what the box shows; the model's rules judge it as typed
    def on_bind_edit_text_edited(self, text: str) -> None:
        self.doc.set_field("listener_bind", text)

    def on_mode_combo_activated(self, index: int) -> None:
        self.doc.set_field("listener_mode", self.mode_combo.itemData(index))

    def on_affinity_edit_text_edited(self, text: str) -> None:
        self.doc.set_field("listener_affinity", text)

    def on_pool_edit_text_edited(self, text: str) -> None:
        self.doc.set_field("listener_pool", text)

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
        elif name.startswith("listener"):
            self._show_listener(name, value)
        elif name == "round_robin":
            self.rr_check.blockSignals(True)
            self.rr_check.setChecked(bool(value))
            self.rr_check.blockSignals(False)
            self._update_weight_enabled()
            self.on_doc_members_changed()

    def _show_listener(self, name: str, value: object) -> None:
        if name == "listener":
            self.listener_box.blockSignals(True)
            self.listener_box.setChecked(bool(value))
            self.listener_box.blockSignals(False)
            self.listener_fields.setVisible(bool(value))
        elif name == "listener_port":
            self._set_quiet(self.port_spin, value if isinstance(value, int) else 0)
        elif name == "listener_mode":
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(value)))
        else:
            edit = {"listener_bind": self.bind_edit, "listener_affinity": self.affinity_edit,
                    "listener_pool": self.pool_edit}[name]
            if edit.text() != value:
                edit.setText(str(value))
        http = self.doc.fields["listener_mode"] == "http"
        self.affinity_edit.setEnabled(http)
        self.affinity_edit.setPlaceholderText("none" if http else "HTTP mode only")
        self._update_listener_preview()

    def _update_listener_preview(self) -> None:
        """How the group will be served, and — when that differs from the saved group — how it is now."""
        now = self.doc.listener_summary()
        was = self.doc.listener_summary(saved=True)
        self.listener_text.setText(now)
        changed = self.doc.base is not None and was != now
        self.listener_was.setText(f"Saved: {was}" if changed else "")
        self.listener_was.setVisible(changed)

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

    def on_undo_stack_clean_changed(self, clean: bool) -> None:
        self._update_listener_preview()  # a save moves "how it is served now"

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

