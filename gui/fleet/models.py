"""Qt item models of the Balancers view, each adapting one plain Python list (the list is the truth).

:class:`ListTableModel` is a read-only table over ``rows`` with a column per :class:`Column` (title, text,
optional colour role). ``set_rows`` keeps the rows that are the same object-by-key and emits
``dataChanged`` when only their values moved, a reset only when the keys changed (a selection survives a
refresh that changed nothing but counters).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from balancedesk.core.fleetclient import TokenInfo
from balancedesk.gui.fleet.rows import (
    FAILED,
    IN_SYNC,
    GroupRow,
    InstanceRow,
    ago,
    started_text,
)
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex

class _Tone:
    """A text colour with a light-theme and a dark-theme shade, picked from the palette when drawn."""

    def __init__(self, light: str, dark: str) -> None:
        self.light, self.dark = QColor(light), QColor(dark)

    def color(self) -> QColor:
        from PySide6.QtGui import QGuiApplication

        return self.dark if QGuiApplication.palette().base().color().lightness() < 128 else self.light


LOST = _Tone("#c62828", "#ff6b6b")
DRIFT = _Tone("#b26a00", "#ffb74d")
OK = _Tone("#2e7d32", "#81c784")


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    text: Callable[[R], str]
    color: Callable[[R], QColor | None] | None = None
    tip: Callable[[R], str] | None = None


class ListTableModel(QAbstractTableModel, Generic[R]):
    """A read-only table over a plain list; ``key`` names a row across refreshes. No signals of its own."""

    def __init__(self, columns: Sequence[Column[R]], key: Callable[[R], str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.key = key
        self.rows: list[R] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self.rows)) or index.column() >= len(self.columns):
            return None
        row, col = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.text(row)
        if role == Qt.ItemDataRole.ForegroundRole and col.color is not None:
            return col.color(row)
        if role == Qt.ItemDataRole.ToolTipRole and col.tip is not None:
            return col.tip(row)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal
                and 0 <= section < len(self.columns)):
            return self.columns[section].title
        return None

    def set_rows(self, rows: Sequence[R]) -> None:
        new = list(rows)
        if [self.key(r) for r in new] != [self.key(r) for r in self.rows]:
            self.beginResetModel()
            self.rows = new
            self.endResetModel()
            return
        changed = [i for i, (a, b) in enumerate(zip(self.rows, new, strict=True)) if a != b]
        self.rows = new
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), len(self.columns) - 1))

    def row_at(self, row: int) -> R | None:
        return self.rows[row] if 0 <= row < len(self.rows) else None


def _instance_color(r: InstanceRow) -> QColor | None:
    return (LOST if r.lost else DRIFT if r.drifting else OK).color()


INSTANCE_COLUMNS: list[Column[InstanceRow]] = [
    Column("Instance", lambda r: r.instance_id),
    Column("Host", lambda r: r.info.host),
    Column("Pool", lambda r: r.info.pool),
    Column("State", InstanceRow.state_text, _instance_color),
    Column("Data plane", lambda r: r.info.data_plane),
    Column("Workers", lambda r: str(r.info.workers)),
    Column("Started", lambda r: started_text(r.info.started_at)),
    Column("Groups", InstanceRow.groups_text),
    Column("Drift", InstanceRow.drift_text, lambda r: None if r.lost else (DRIFT if r.drifting else OK).color(),
           InstanceRow.drift_text),
    Column("Overrides", InstanceRow.overrides_text, None, lambda r: "\n".join(r.override_texts())),
]
INSTANCE_COL_STATE = 3
INSTANCE_COL_DRIFT = 8


def _version(v: int | None) -> str:
    return "—" if v is None else f"v{v}"


GROUP_COLUMNS: list[Column[GroupRow]] = [
    Column("Group", lambda g: g.label, None, lambda g: f"connectorID {g.connector_id}"),
    Column("Applied", lambda g: _version(g.applied)),
    Column("Saved", lambda g: _version(g.saved)),
    Column("Status", lambda g: g.error if g.status == FAILED else g.status,
           lambda g: (OK if g.status == IN_SYNC else DRIFT).color()),
    Column("Listens on", lambda g: g.listen),
]


def instances_model(parent: QObject | None = None) -> ListTableModel[InstanceRow]:
    return ListTableModel(INSTANCE_COLUMNS, lambda r: r.instance_id, parent)


def groups_model(parent: QObject | None = None) -> ListTableModel[GroupRow]:
    return ListTableModel(GROUP_COLUMNS, lambda g: g.connector_id, parent)


def _revoked(t: TokenInfo) -> str:
    return "active" if t.revoked is None else f"revoked {started_text(t.revoked)}"


TOKEN_COLUMNS: list[Column[TokenInfo]] = [
    Column("Token ID", lambda t: t.token_id),
    Column("Pool", lambda t: t.pool),
    Column("Label", lambda t: t.label),
    Column("Created", lambda t: started_text(t.created)),
    Column("State", _revoked, lambda t: (OK if t.revoked is None else LOST).color()),
]


def tokens_model(parent: QObject | None = None) -> ListTableModel[TokenInfo]:
    return ListTableModel(TOKEN_COLUMNS, lambda t: t.token_id, parent)


__all__ = ["Column", "ListTableModel", "ago", "groups_model", "instances_model", "tokens_model"]
