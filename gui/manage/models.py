"""Qt item models of the management views, over plain lists (the list is the truth): the table model is
the Balancers view's :class:`~balancedesk.gui.fleet.models.ListTableModel`, with these columns."""

from __future__ import annotations

from balancedesk.core.client import User
from balancedesk.gui.fleet.models import LOST, OK, Column, ListTableModel
from balancedesk.gui.manage.forms import ConnectorRow
from PySide6.QtCore import QObject

NOT_IN_GROUP = "—"

CONNECTOR_COLUMNS: list[Column[ConnectorRow]] = [
    Column("Label", lambda r: r.label, None, lambda r: f"connectorID {r.connector_id}"),
    Column("Endpoint", lambda r: r.endpoint or "none"),
    Column("Owner", lambda r: r.owner),
    Column("Group", lambda r: r.group_label or NOT_IN_GROUP, None,
           lambda r: f"a member of group {r.group_label} ({r.group_id})" if r.group_id else "in no group"),
    Column("ID", lambda r: r.connector_id),
]
CONNECTOR_COL_GROUP = 3
CONNECTOR_COL_ID = 4

USER_COLUMNS: list[Column[User]] = [
    Column("Name", lambda u: u.name),
    Column("Role", lambda u: u.role),
    Column("State", lambda u: "active" if u.active else "disabled",
           lambda u: (OK if u.active else LOST).color(),
           lambda u: "can log in" if u.active else "cannot log in until enabled"),
]

USER_COL_STATE = 2


def connectors_model(parent: QObject | None = None) -> ListTableModel[ConnectorRow]:
    return ListTableModel(CONNECTOR_COLUMNS, lambda r: r.connector_id, parent)


def users_model(parent: QObject | None = None) -> ListTableModel[User]:
    return ListTableModel(USER_COLUMNS, lambda u: u.name, parent)
