"""The browser's Qt model: groups (with their members as children) and standalone connectors.

Adapts a :class:`Catalog` — plain, immutable data; a new listing replaces it with a model reset. Rows
drag out as connector IDs, which the editor's members table accepts (or refuses, saying why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from balancedesk.gui.catalog import Catalog
from balancedesk.gui.mime import CONNECTOR_MIME, connector_mime
from PySide6.QtCore import (
    QAbstractItemModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QStyle

if TYPE_CHECKING:
    from balancedesk.core.model import Connector

Index = QModelIndex | QPersistentModelIndex

CONNECTOR_ID_ROLE = int(Qt.ItemDataRole.UserRole) + 10
IS_GROUP_ROLE = int(Qt.ItemDataRole.UserRole) + 11


class BrowserModel(QAbstractItemModel):
    """Top level: every group, then every plain connector; a group's children are its members.

    Signals: none of its own (Qt's model signals only).
    """

    COLUMNS = ("Label", "Owner", "Endpoint", "Group", "ID")
    COL_LABEL, COL_OWNER, COL_ENDPOINT, COL_GROUP, COL_ID = range(5)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.catalog = Catalog()
        self._rows: list[Connector] = []
        self._children: list[list[str]] = []

    def set_catalog(self, catalog: Catalog) -> None:
        self.beginResetModel()
        self.catalog = catalog
        self._rows = catalog.groups + catalog.plain
        self._children = [
            [m.member_id for m in c.connector_group.ordered()] if c.connector_group is not None else []
            for c in self._rows
        ]
        self.endResetModel()

    def group_row(self, connector_id: str) -> int:
        for i, c in enumerate(self._rows):
            if c.connector_id == connector_id:
                return i
        return -1

    # structure --------------------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        if parent.internalId() != 0:
            return QModelIndex()
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, child: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not child.isValid():
            return QModelIndex()
        pid = child.internalId()
        if pid == 0:
            return QModelIndex()
        return self.createIndex(pid - 1, 0, 0)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if not parent.isValid():
            return len(self._rows)
        if parent.internalId() != 0 or parent.column() != 0:
            return 0
        return len(self._children[parent.row()])

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.COLUMNS):
            return self.COLUMNS[section]
        return None

    def connector_id(self, index: Index) -> str | None:
        if not index.isValid():
            return None
        pid = index.internalId()
        if pid == 0:
            cid = self._rows[index.row()].connector_id
            return None if cid is None else str(cid)
        return self._children[pid - 1][index.row()]

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        cid = self.connector_id(index)
        if cid is None:
            return None
        c = self.catalog.connectors.get(cid)
        col = index.column()
        is_group = c is not None and c.is_group
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if col == self.COL_LABEL:
                tip = role == Qt.ItemDataRole.ToolTipRole
                if tip and is_group and c is not None and c.connector_group is not None:
                    mode = "Round Robin" if c.connector_group.round_robin else "failover"
                    return f"{c.label}  ({len(c.connector_group.members)} members, {mode})"
                return self.catalog.label(cid)
            if col == self.COL_OWNER:
                return c.owner if c is not None else ""
            if col == self.COL_ENDPOINT:
                return self.catalog.endpoint(cid)
            if col == self.COL_GROUP:
                return "" if is_group else self.catalog.group_label_of(cid) or "—"
            if col == self.COL_ID:
                return cid
        elif role == Qt.ItemDataRole.DecorationRole and col == self.COL_LABEL:
            style = QApplication.style()
            icon = QStyle.StandardPixmap.SP_DirIcon if is_group else QStyle.StandardPixmap.SP_DriveNetIcon
            return style.standardIcon(icon)
        elif role == Qt.ItemDataRole.FontRole and is_group and col == self.COL_LABEL:
            font = QFont()
            font.setBold(True)
            return font
        elif role == Qt.ItemDataRole.AccessibleTextRole and col == self.COL_LABEL:
            kind = "group" if is_group else "connector"
            return f"{kind} {self.catalog.label(cid)}"
        elif role == CONNECTOR_ID_ROLE:
            return cid
        elif role == IS_GROUP_ROLE:
            return is_group
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsDragEnabled

    def mimeTypes(self) -> list[str]:
        return [CONNECTOR_MIME]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        ids = list(dict.fromkeys(cid for i in indexes if (cid := self.connector_id(i)) is not None))
        mime: QMimeData = connector_mime(ids)
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction


class BrowserFilter(QSortFilterProxyModel):
    """Case-insensitive filter over every column; a group stays visible when one of its members matches."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setRecursiveFilteringEnabled(True)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
