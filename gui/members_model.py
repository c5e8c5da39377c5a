"""The members table's Qt model: adapts the editor's plain list of :class:`DraftMember` (in sequence order).

The list is the truth; row *i* has ``sequence`` *i + 1*. Every user change — ``moveRows``, a drop
(``dropMimeData``), ``setData`` on a weight, add and remove — pushes an undo command whose ``redo()``
calls one of the ``_apply_*`` methods here, which alone mutate the list and emit Qt's signals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from balancedesk.core.model import WEIGHT_MAX, share_texts
from balancedesk.gui.badges import MEMBER_COLORS as MEMBER_COLORS  # re-exported: older callers
from balancedesk.gui.badges import app_dpr, letter, letter_chip, member_color
from balancedesk.gui.commands import (
    InsertMemberCommand,
    MoveMembersCommand,
    RemoveMemberCommand,
    SetWeightCommand,
)
from balancedesk.gui.mime import CONNECTOR_MIME, connector_ids
from balancedesk.gui.mime import connector_mime as connector_mime  # re-exported: tests and older callers
from PySide6.QtCore import (
    QAbstractTableModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

if TYPE_CHECKING:
    from balancedesk.gui.document import GroupDocument

MEMBER_MIME = "application/x-balancedesk-member-rows"
WEIGHT_REFUSED = f"A weight is a whole number from 1 to {WEIGHT_MAX}; the weight was not changed."

Index = QModelIndex | QPersistentModelIndex

MEMBER_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 1
SHARE_ROLE = int(Qt.ItemDataRole.UserRole) + 2
COLOR_ROLE = int(Qt.ItemDataRole.UserRole) + 3


@dataclass(frozen=True)
class DraftMember:
    member_id: str
    weight: int = 1


class MembersModel(QAbstractTableModel):
    """Members in sequence order.

    Signals:
        members_changed(): order, weights or membership changed (after the Qt signals).
        refused(str): a drop or an add was refused; the argument says why, in a sentence.
    """

    members_changed = Signal()
    refused = Signal(str)

    # Column 0 is the member's label (stable across moves); the view shows "#" first.
    COLUMNS = ("Member", "#", "Endpoint", "Weight", "Share")
    COL_MEMBER, COL_SEQ, COL_ENDPOINT, COL_WEIGHT, COL_SHARE = range(5)

    def __init__(self, doc: GroupDocument, members: list[DraftMember]) -> None:
        super().__init__(doc)
        self._doc = doc
        self.members: list[DraftMember] = list(members)
        self.problems: dict[str, str] = {}  # memberID → message shown next to the member

    # read side --------------------------------------------------------------------------------
    def display_name(self, member_id: str) -> str:
        return str(self._doc.catalog.label(member_id))

    def row_of(self, member_id: str) -> int:
        for i, m in enumerate(self.members):
            if m.member_id == member_id:
                return i
        return -1

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.members)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.COLUMNS):
            return self.COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.members):
            return None
        row, col = index.row(), index.column()
        m = self.members[row]
        problem = self.problems.get(m.member_id)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == self.COL_SEQ:
                return str(row + 1)
            if col == self.COL_MEMBER:
                return self.display_name(m.member_id)
            if col == self.COL_ENDPOINT:
                return self._doc.catalog.endpoint(m.member_id)
            if col == self.COL_SHARE:
                return self.share_text(row)
        elif role == Qt.ItemDataRole.DecorationRole and col == self.COL_MEMBER:
            return letter_chip(letter(row), member_color(row), dpr=app_dpr())  # sharp at 200 %
        elif role == Qt.ItemDataRole.EditRole and col == self.COL_WEIGHT:
            return m.weight
        elif role == Qt.ItemDataRole.ToolTipRole:
            tip = f"{self.display_name(m.member_id)} ({m.member_id})"
            return f"{tip}\n⚠ {problem}" if problem else tip
        elif role == Qt.ItemDataRole.AccessibleTextRole and col == self.COL_MEMBER:
            return f"Member {row + 1}: {self.display_name(m.member_id)}, weight {m.weight}, {self.share_text(row)}"
        elif role == Qt.ItemDataRole.ForegroundRole and problem and col == self.COL_MEMBER:
            return QColor("#D32F2F")
        elif role == Qt.ItemDataRole.TextAlignmentRole and col in (self.COL_SEQ, self.COL_SHARE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        elif role == MEMBER_ID_ROLE:
            return m.member_id
        elif role == SHARE_ROLE:
            return self.shares()[row]
        elif role == COLOR_ROLE:
            return member_color(row)
        return None

    def shares(self) -> list[float]:
        """Each row's share of new connections: weights with Round Robin, else the first takes all."""
        if not self.members:
            return []
        if not self._doc.round_robin:
            return [1.0 if i == 0 else 0.0 for i in range(len(self.members))]
        total = sum(m.weight for m in self.members)
        return [m.weight / total for m in self.members]

    def share_text(self, row: int) -> str:
        if not self._doc.round_robin:
            return "first" if row == 0 else f"standby {row}"
        return share_texts(self.shares())[row]

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        f = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsDragEnabled
        if index.column() == self.COL_WEIGHT and self._doc.round_robin:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    # user edits: each pushes an undo command -------------------------------------------------
    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or index.column() != self.COL_WEIGHT or role != Qt.ItemDataRole.EditRole:
            return False
        try:
            weight = int(value)
        except (TypeError, ValueError):
            self.refused.emit(WEIGHT_REFUSED)
            return False
        if not 1 <= weight <= WEIGHT_MAX:
            self.refused.emit(WEIGHT_REFUSED)
            return False
        m = self.members[index.row()]
        if weight != m.weight:
            self._doc.undo_stack.push(SetWeightCommand(self, m.member_id, m.weight, weight))
        return True

    def set_weight(self, member_id: str, weight: int) -> None:
        row = self.row_of(member_id)
        if row >= 0:
            self.setData(self.index(row, self.COL_WEIGHT), weight)

    def moveRows(
        self, sourceParent: Index, sourceRow: int, count: int, destinationParent: Index, destinationChild: int
    ) -> bool:
        n = len(self.members)
        if sourceParent.isValid() or destinationParent.isValid() or count < 1:
            return False
        if sourceRow < 0 or sourceRow + count > n or not 0 <= destinationChild <= n:
            return False
        if sourceRow <= destinationChild <= sourceRow + count:
            return False  # no movement
        self._doc.undo_stack.push(MoveMembersCommand(self, sourceRow, count, destinationChild))
        return True

    def move_member(self, row: int, delta: int) -> bool:
        """Keyboard reorder (Alt+Up/Down): move one row up (-1) or down (+1)."""
        dst = row - 1 if delta < 0 else row + 2
        return self.moveRows(QModelIndex(), row, 1, QModelIndex(), dst)

    def refusal(self, member_id: str) -> str | None:
        if self.row_of(member_id) >= 0:
            return f"“{self.display_name(member_id)}” is already a member of this group."
        reason = self._doc.catalog.refusal(member_id, group_id=self._doc.group_id, owner=self._doc.owner)
        return None if reason is None else str(reason)

    def add_member(self, member_id: str, row: int | None = None, weight: int = 1) -> bool:
        """Add a connector (refused, with :attr:`refused` emitted, when the rules forbid it)."""
        reason = self.refusal(member_id)
        if reason is not None:
            self.refused.emit(reason)
            return False
        row = len(self.members) if row is None or not 0 <= row <= len(self.members) else row
        self._doc.undo_stack.push(InsertMemberCommand(self, row, DraftMember(member_id, weight)))
        return True

    def remove_member(self, row: int) -> bool:
        if not 0 <= row < len(self.members):
            return False
        self._doc.undo_stack.push(RemoveMemberCommand(self, row))
        return True

    # drag and drop --------------------------------------------------------------------------
    def mimeTypes(self) -> list[str]:
        return [MEMBER_MIME, CONNECTOR_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid()})
        mime = QMimeData()
        mime.setData(MEMBER_MIME, QByteArray(json.dumps(rows).encode()))
        mime.setText("\n".join(self.members[r].member_id for r in rows))
        return mime

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def drop_refusal(self, data: QMimeData) -> str | None:
        """Why this drop would be refused (None when it is welcome)."""
        if data.hasFormat(CONNECTOR_MIME):
            for cid in connector_ids(data):
                if reason := self.refusal(cid):
                    return reason
            return None
        if data.hasFormat(MEMBER_MIME):
            return None
        return "Only connectors from the browser can be dropped here."

    def canDropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        return self.drop_refusal(data) is None

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index
    ) -> bool:
        if action == Qt.DropAction.IgnoreAction:
            return True
        dst = row if row >= 0 else (parent.row() if parent.isValid() else len(self.members))
        if data.hasFormat(MEMBER_MIME):
            rows = json.loads(bytes(data.data(MEMBER_MIME).data()).decode())
            if len(rows) != 1:
                return False
            return self.moveRows(QModelIndex(), int(rows[0]), 1, QModelIndex(), dst)
        if data.hasFormat(CONNECTOR_MIME):
            ids = connector_ids(data)
            reason = self.drop_refusal(data)
            if reason is not None or not ids:
                self.refused.emit(reason or "Nothing to add.")
                return False
            if len(ids) > 1:
                self._doc.undo_stack.beginMacro(f"Add {len(ids)} members")
            for i, cid in enumerate(ids):
                self.add_member(cid, dst + i)
            if len(ids) > 1:
                self._doc.undo_stack.endMacro()
            return True
        self.refused.emit("Only connectors from the browser can be dropped here.")
        return False

    # the only mutators, called by undo commands ---------------------------------------------------
    def _apply_move(self, src: int, count: int, dst: int) -> None:
        self.beginMoveRows(QModelIndex(), src, src + count - 1, QModelIndex(), dst)
        block = self.members[src : src + count]
        del self.members[src : src + count]
        at = dst - count if dst > src else dst
        self.members[at:at] = block
        self.endMoveRows()
        self._all_rows_changed()

    def _apply_insert(self, row: int, member: DraftMember) -> None:
        self.beginInsertRows(QModelIndex(), row, row)
        self.members.insert(row, member)
        self.endInsertRows()
        self._all_rows_changed()

    def _apply_remove(self, row: int) -> DraftMember:
        self.beginRemoveRows(QModelIndex(), row, row)
        member = self.members.pop(row)
        self.endRemoveRows()
        self._all_rows_changed()
        return member

    def _apply_weight(self, member_id: str, weight: int) -> None:
        row = self.row_of(member_id)
        if row < 0:
            return
        self.members[row] = DraftMember(member_id, weight)
        self._all_rows_changed()

    def _all_rows_changed(self) -> None:
        """Sequence, letters and shares depend on every row: refresh them all."""
        if self.members:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.members) - 1, len(self.COLUMNS) - 1))
        self.members_changed.emit()

    def set_problems(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        if self.members:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.members) - 1, len(self.COLUMNS) - 1))

    def refresh(self) -> None:
        """Round Robin toggled or catalog changed: display text and flags change everywhere."""
        self._all_rows_changed()

