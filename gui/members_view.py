"""The members table: drag to reorder, drop connectors from the browser, Alt+Up/Down, Delete.

Drops go to the model's ``dropMimeData`` (which pushes undo commands); a drag the rules refuse is refused
as it hovers, and the reason is emitted so the editor can show it next to the table.
"""

from __future__ import annotations

from balancedesk.gui.members_model import MembersModel
from PySide6.QtCore import QAbstractItemModel, QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QDrag, QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget


class MembersView(QTableView):
    """A table of members in sequence order.

    Signals:
        drag_refused(str): a connector dragged over the table would be refused; the argument says why.
        delete_requested(int): Delete was pressed on a row.
    """

    drag_refused = Signal(str)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)
        self.setDragDropOverwriteMode(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(34)
        self.setAccessibleName("Members in sequence order")
        self.setToolTip("Drag to reorder (or Alt+Up/Down). Drop connectors from the browser to add them.")

    def members_model(self) -> MembersModel:
        model = self.model()
        assert isinstance(model, MembersModel)
        return model

    def setModel(self, model: QAbstractItemModel | None) -> None:
        super().setModel(model)
        if not isinstance(model, MembersModel):
            return
        header = self.horizontalHeader()
        header.setSectionResizeMode(MembersModel.COL_SEQ, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(MembersModel.COL_MEMBER, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(MembersModel.COL_ENDPOINT, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(MembersModel.COL_WEIGHT, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(MembersModel.COL_WEIGHT, 240)
        header.setSectionResizeMode(MembersModel.COL_SHARE, QHeaderView.ResizeMode.ResizeToContents)
        header.moveSection(header.visualIndex(MembersModel.COL_SEQ), 0)

    def current_row(self) -> int:
        idx = self.currentIndex()
        return idx.row() if idx.isValid() else -1

    def select_row(self, row: int) -> None:
        model = self.model()
        if model is None or not 0 <= row < model.rowCount():
            return
        idx = model.index(row, MembersModel.COL_MEMBER)
        self.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        )

    # keyboard -------------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        row = self.current_row()
        mods = event.modifiers()
        if row >= 0 and mods & Qt.KeyboardModifier.AltModifier and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            delta = -1 if event.key() == Qt.Key.Key_Up else 1
            if self.members_model().move_member(row, delta):
                self.select_row(row + delta)
            event.accept()
            return
        if row >= 0 and event.key() == Qt.Key.Key_Delete:
            self.delete_requested.emit(row)
            event.accept()
            return
        super().keyPressEvent(event)

    # drag and drop ---------------------------------------------------------------------------------
    def startDrag(self, supportedActions: Qt.DropAction) -> None:
        """Drag the selected row; the move happens in the model's dropMimeData, never by removal here."""
        rows = self.selectionModel().selectedRows(MembersModel.COL_MEMBER)
        if not rows:
            return
        drag = QDrag(self)
        drag.setMimeData(self.members_model().mimeData(list(rows)))
        drag.exec(Qt.DropAction.MoveAction)

    def _check(self, event: QDragEnterEvent | QDragMoveEvent) -> bool:
        reason = self.members_model().drop_refusal(event.mimeData())
        if reason is not None:
            self.drag_refused.emit(reason)
            event.ignore()
            return False
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._check(event):
            super().dragEnterEvent(event)
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._check(event):
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        super().dropEvent(event)
        # the model did the work through undo commands; tell the source nothing needs removing
        event.setDropAction(Qt.DropAction.CopyAction if event.source() is not self else Qt.DropAction.MoveAction)
