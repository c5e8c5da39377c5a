"""What the management views list, and what their forms check before anything is sent. Pure: no Qt.

The checks are the management API's own (imported, never re-typed), worded as the API words them, so a
refusal reads the same whether the form or the server found it:

* a connector's label and endpoint — :func:`balancedesk.core.model.plain_connector_problems`
  (``POST /api/admin/connectors`` uses it). An endpoint left empty is left out: on registering, the connector
  has none; on editing, the API keeps the registered one, so the form says it cannot be emptied.
* a user's name — :func:`balancedesk.core.model.user_name_problem`; the password's least length —
  ``PASSWORD_MIN``; the roles — ``ROLES`` (``POST/PUT /api/admin/users``).

:func:`sentence` turns a problem (``field`` + the API's message) into the line shown under that field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from balancedesk.core.mgmt.auth import PASSWORD_MIN, generate_password
from balancedesk.core.mgmt.store import ROLES
from balancedesk.core.model import Connector, Problem, plain_connector_problems, user_name_problem

__all__ = [
    "FIELD_TITLES",
    "PASSWORD_MIN",
    "ROLES",
    "ConnectorRow",
    "connector_form_problems",
    "connector_rows",
    "generate_password",
    "password_problems",
    "sentence",
    "user_form_problems",
]

FIELD_TITLES = {
    "label": "Label", "endpoint": "Endpoint", "owner": "Owner", "connectorID": "ID",
    "name": "Name", "password": "Password", "role": "Role", "active": "Active",
}
ENDPOINT_KEPT = "cannot be emptied: the API keeps a registered endpoint when it is left out; change it instead"


@dataclass(frozen=True)
class ConnectorRow:
    """One plain connector as the Connectors view lists it; ``group_*`` name the group it is a member of."""

    connector_id: str
    label: str
    owner: str
    endpoint: str | None
    group_id: str | None = None
    group_label: str | None = None


def connector_rows(connectors: Iterable[Connector]) -> list[ConnectorRow]:
    """The plain connectors of a listing (``GET /api/mgmt/connectors?details=true``), each with the group that
    lists it as a member, by label then ID. Groups themselves are the editor's, not listed here."""
    listed = list(connectors)
    member_of: dict[str, Connector] = {}
    for c in listed:
        if c.connector_group is not None:
            for m in c.connector_group.members:
                member_of.setdefault(m.member_id, c)
    rows = []
    for c in listed:
        if c.connector_group is not None or c.connector_id is None:
            continue
        group = member_of.get(c.connector_id)
        rows.append(ConnectorRow(connector_id=c.connector_id, label=c.label, owner=c.owner, endpoint=c.endpoint,
                                 group_id=group.connector_id if group is not None else None,
                                 group_label=group.label if group is not None else None))
    return sorted(rows, key=lambda r: (r.label.casefold(), r.connector_id))


def connector_form_problems(*, label: str, endpoint: str, registered_endpoint: str | None = None) -> list[Problem]:
    """The connector form's problems (none: it may be sent). ``registered_endpoint``: the endpoint of the
    connector being edited (None when registering)."""
    endpoint = endpoint.strip()
    problems = plain_connector_problems(label=label.strip(), endpoint=endpoint, has_endpoint=bool(endpoint))
    if not endpoint and registered_endpoint is not None:
        problems.append(Problem("endpoint", ENDPOINT_KEPT))
    return problems


def password_problems(password: str) -> list[Problem]:
    if len(password) < PASSWORD_MIN:
        return [Problem("password", f"must be at least {PASSWORD_MIN} characters")]
    return []


def user_form_problems(*, name: str, password: str, role: str) -> list[Problem]:
    """The new-user form's problems (none: it may be sent)."""
    problems = []
    if problem := user_name_problem(name):
        problems.append(Problem("name", problem))
    problems += password_problems(password)
    if role not in ROLES:
        problems.append(Problem("role", f"must be one of {', '.join(ROLES)}, got {role!r}"))
    return problems


def sentence(problem: Problem) -> str:
    """``Problem("endpoint", "endpoint must be host:port…")`` → "Endpoint must be host:port…"; a message that
    does not start with its field's name gets the field's title in front ("Label is required: …")."""
    title = FIELD_TITLES.get(problem.field, problem.field)
    message = problem.message.strip()
    if message.casefold().startswith(problem.field.casefold() + " "):
        message = message[len(problem.field) + 1:]
    text = f"{title} {message}" if title else message
    return text if text.endswith((".", "?", "!")) else text + "."
