"""The per-instance breakdown of the aggregated live view: a Qt table model over
:class:`~balancedesk.gui.live.aggregate.InstanceRow` (a plain list is the truth; the model adapts it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from balancedesk.gui.fleet.models import DRIFT, LOST, OK
from balancedesk.gui.live.aggregate import ANSWERS, UNREACHABLE, InstanceRow
from balancedesk.gui.live.aggregate import LOST as REACH_LOST
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush

_Index = QModelIndex | QPersistentModelIndex

BREAKDOWN_COLUMNS = ("Instance", "State", "Version", "Plane", "Active", "Total", "Rate/s", "Errors",
                     "Differs from the others")
REACH_TONES = {ANSWERS: OK, UNREACHABLE: DRIFT, REACH_LOST: LOST}  # the Balancers view's tones (light/dark)


def cell(row: InstanceRow, col: int) -> str:
    """The text of column ``col`` for ``row``."""
    values = (row.name, row.reach_text(), row.version_text(), row.data_plane or "–", str(row.active),
              str(row.total), f"{row.rate:.1f}", str(row.failures), ", ".join(row.differs) or "—")
    return values[col]


class BreakdownModel(QAbstractTableModel):
    """One row per instance serving the group. No signals of its own."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[InstanceRow] = []

    def set_rows(self, rows: Sequence[InstanceRow]) -> None:
        rows = list(rows)
        if [r.instance_id for r in rows] != [r.instance_id for r in self.rows]:
            self.beginResetModel()
            self.rows = rows
            self.endResetModel()
            return
        old, self.rows = self.rows, rows
        for r, (a, b) in enumerate(zip(old, rows, strict=True)):
            if a != b:
                self.dataChanged.emit(self.index(r, 0), self.index(r, len(BREAKDOWN_COLUMNS) - 1))

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(BREAKDOWN_COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal \
                and 0 <= section < len(BREAKDOWN_COLUMNS):
            return BREAKDOWN_COLUMNS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self.rows)):
            return None
        row, col = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return cell(row, col)
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.instance_id if col == 0 else cell(row, col)
        if role == Qt.ItemDataRole.ForegroundRole and col == 1 and row.reach in REACH_TONES:
            return QBrush(REACH_TONES[row.reach].color())
        if role == Qt.ItemDataRole.ForegroundRole and col == 2 and row.behind:
            return QBrush(DRIFT.color())
        if role == Qt.ItemDataRole.UserRole:
            return row.instance_id
        if role == Qt.ItemDataRole.TextAlignmentRole and 4 <= col <= 7:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
