"""The table view of the app's lists (a :class:`~balancedesk.gui.fleet.models.ListTableModel` shown in the
Balancers and the Manage windows), made in one place so every list looks and selects alike."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView


def list_table_view() -> QTableView:
    """A table of whole rows: one row chosen at a time, no row numbers, one line per row (no wrapping, fixed
    height), alternating row colours; columns fit their contents and the last takes the free width. A caller
    may give one column another resize mode (again after each model reset: a reset gives every column the
    default mode)."""
    t = QTableView()
    t.setWordWrap(False)
    t.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().hide()
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setStretchLastSection(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return t
