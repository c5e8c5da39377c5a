"""One group being edited: its fields, its members model, its undo stack, and what a save would send.

The fields are a plain dict and the members a plain list (adapted by :class:`MembersModel`); the undo
stack's clean state is "equal to what the server last gave us". :meth:`GroupDocument.problems` runs the
core's own rules (``parse_connector`` + ``check_group_rules``) so mistakes show before a save is tried.

The listener (Balance Desk's extension beside HDP's fields, :class:`~balancedesk.core.model.ListenerSettings`)
is edited as fields too: ``listener`` (served by a pool's balancers, or not), ``listener_port`` (None: not
chosen), ``listener_bind`` ("" = the balancer's default address), ``listener_mode``, ``listener_affinity``
("" = no affinity) and ``listener_pool``. What the editor does not show of a saved listener (read timeout,
health check, access log) is sent back as it was. Rules the server alone can check (a port required, a
port another group of the pool claims) come back from a save as field problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from balancedesk.core.balance import SmoothWRR
from balancedesk.core.model import (
    DEFAULT_AFFINITY_HEADER,
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_MODE,
    DEFAULT_POOL,
    DEFAULT_RETRY_DELAY,
    ROUND_ROBIN,
    Connector,
    ListenerSettings,
    Member,
    Problem,
    RuleError,
    check_group_rules,
    parse_connector,
)
from balancedesk.gui.catalog import Catalog
from balancedesk.gui.commands import FIELD_TEXT, LISTENER_FIELDS, SetFieldCommand
from balancedesk.gui.members_model import DraftMember, MembersModel
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

FIELDS = tuple(FIELD_TEXT)


@dataclass(frozen=True)
class Change:
    """One line of the review: ``what`` changed from ``old`` to ``new`` (texts; "" = absent)."""

    what: str
    old: str
    new: str


class GroupDocument(QObject):
    """The editor's truth for one group (new when ``base`` is None).

    Signals:
        field_changed(str): a field (name from ``FIELDS``) took a new value.
        members_changed(): order, weights or membership changed.
        refused(str): an add or a drop was refused; the argument says why.
    """

    field_changed = Signal(str)
    members_changed = Signal()
    refused = Signal(str)

    def __init__(
        self, *, base: Connector | None, etag: str | None, catalog: Catalog, owner: str, server: str,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.server = server  # the URL of the management server the group was loaded from (or is new on)
        self.base = base
        self.etag = etag
        self.catalog = catalog
        self.undo_stack = QUndoStack(self)
        self.fields: dict[str, Any] = _fields_of(base, owner)
        members = []
        if base is not None and base.connector_group is not None:
            members = [DraftMember(m.member_id, m.weight) for m in base.connector_group.ordered()]
        self.members_model = MembersModel(self, members)
        self.members_model.members_changed.connect(self.members_changed)
        self.members_model.refused.connect(self.refused)

    # fields -----------------------------------------------------------------------------------
    @property
    def group_id(self) -> str | None:
        return self.base.connector_id if self.base is not None else None

    @property
    def owner(self) -> str:
        return str(self.fields["owner"])

    @property
    def round_robin(self) -> bool:
        return bool(self.fields["round_robin"])

    @property
    def members(self) -> list[DraftMember]:
        members: list[DraftMember] = self.members_model.members
        return members

    def set_field(self, name: str, value: Any) -> None:
        if name not in self.fields:
            raise KeyError(name)
        if self.fields[name] != value:
            self.undo_stack.push(SetFieldCommand(self, name, self.fields[name], value))

    def _apply_field(self, name: str, value: Any) -> None:
        self.fields[name] = value
        self.field_changed.emit(name)
        if name == "round_robin":
            self.members_model.refresh()

    # derived ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        group: dict[str, Any] = {
            "connectionTimeout": self.fields["connection_timeout"],
            "retryDelay": self.fields["retry_delay"],
        }
        if self.round_robin:
            group["loadBalancing"] = ROUND_ROBIN
        group["members"] = [
            {"memberID": m.member_id, "sequence": i + 1, "weight": m.weight} for i, m in enumerate(self.members)
        ]
        out: dict[str, Any] = {}
        if self.group_id is not None:
            out["connectorID"] = self.group_id
        out.update(
            owner=self.fields["owner"],
            label=self.fields["label"],
            connectorGroup=group,
            authUser=list(self.fields["auth_user"]),
        )
        if self.fields["listener"]:
            out["listener"] = self.listener_json()
        return out

    def listener_json(self) -> dict[str, Any]:
        """The listener a save sends: the saved one's other settings kept, the edited fields over them."""
        saved = self.base.listener if self.base is not None else None
        out: dict[str, Any] = saved.to_json() if saved is not None else {}
        for key in ("port", "bind"):
            out.pop(key, None)
        f = self.fields
        if f["listener_port"] is not None:
            out["port"] = f["listener_port"]
        if f["listener_bind"]:
            out["bind"] = f["listener_bind"]
        out["mode"] = f["listener_mode"]
        out["affinityHeader"] = f["listener_affinity"] or None
        out["pool"] = f["listener_pool"]
        return out

    @property
    def drops_listener(self) -> bool:
        """Whether a save removes the saved group's listener (sent as ``"listener": null``)."""
        return not self.fields["listener"] and self.base is not None and self.base.listener is not None

    def listener_summary(self, *, saved: bool = False) -> str:
        """How the pool's balancers would serve the group (``saved``: as the server has it now)."""
        fields = _fields_of(self.base, self.owner) if saved else self.fields
        return listener_text(fields)

    def to_connector(self) -> Connector:
        """The group as a save would send it; raises RuleError if a field is malformed."""
        return parse_connector(self.to_json())

    def problems(self) -> list[Problem]:
        """Every broken rule, found locally with the core's rules (empty: a save may be tried)."""
        problems: list[Problem] = []
        try:
            self.to_connector()
        except RuleError as exc:
            problems += [p for p in exc.problems if not p.field.startswith("connectorGroup.members")]
        members = [Member(member_id=m.member_id, sequence=i + 1, weight=m.weight) for i, m in enumerate(self.members)]
        problems += check_group_rules(
            group_id=self.group_id, owner=self.owner, members=members, known=self.catalog.known()
        )
        return list(problems)

    def preview(self, count: int = 24) -> list[str]:
        """The next ``count`` picks (memberIDs) the core's scheduler would make under these weights."""
        if not self.members:
            return []
        if not self.round_robin:
            return [self.members[0].member_id] * count
        wrr = SmoothWRR([(m.member_id, m.weight) for m in self.members])
        return [p for p in (wrr.pick() for _ in range(count)) if p is not None]

    def changes(self) -> list[Change]:
        """What a save changes, field by field and member by member (old → new)."""
        old = _fields_of(self.base, self.owner)
        out: list[Change] = []
        if self.base is None:
            out.append(Change("group", "", "new group"))
        served = {bool(old["listener"]) and self.base is not None, bool(self.fields["listener"])}
        for name in FIELDS:
            a, b = old[name], self.fields[name]
            if name in LISTENER_FIELDS and served == {False}:
                continue  # neither before nor after served by a pool: its settings do not matter
            if name in LISTENER_FIELDS and not self.fields["listener"]:
                continue  # the listener goes: its line says so
            if self.base is None or a != b:
                out.append(Change(FIELD_TEXT[name], _fmt(name, a) if self.base else "", _fmt(name, b)))
        before: dict[str, Member] = {}
        if self.base is not None and self.base.connector_group is not None:
            before = {m.member_id: m for m in self.base.connector_group.members}
        after = {m.member_id: (i + 1, m.weight) for i, m in enumerate(self.members)}
        for mid, (seq, weight) in after.items():
            name = f"member {self.catalog.label(mid)}"
            if mid not in before:
                out.append(Change(name, "", f"added at #{seq}, weight {weight}"))
                continue
            b4 = before[mid]
            if b4.sequence != seq:
                out.append(Change(f"{name}: sequence", str(b4.sequence), str(seq)))
            if b4.weight != weight:
                out.append(Change(f"{name}: weight", str(b4.weight), str(weight)))
        for mid, b4 in before.items():
            if mid not in after:
                was = f"#{b4.sequence}, weight {b4.weight}"
                out.append(Change(f"member {self.catalog.label(mid)}", was, "removed"))
        return out

    def saved(self, connector: Connector, etag: str | None, catalog: Catalog) -> None:
        """The server accepted ``connector``: it becomes the base and the clean state. Fields take the
        server's form of their values (e.g. a header name in lower case, an IPv6 address shortened)."""
        self.base = connector
        self.etag = etag
        self.catalog = catalog
        for name, value in _fields_of(connector, self.owner).items():
            if self.fields[name] != value:
                self._apply_field(name, value)
        self.undo_stack.setClean()
        self.members_model.refresh()


def _fields_of(base: Connector | None, owner: str) -> dict[str, Any]:
    if base is None or base.connector_group is None:
        return {
            "label": "",
            "owner": owner,
            "auth_user": (),
            "connection_timeout": DEFAULT_CONNECTION_TIMEOUT,
            "retry_delay": DEFAULT_RETRY_DELAY,
            "round_robin": True,
            **_listener_fields(None),
        }
    g = base.connector_group
    return {
        "label": base.label,
        "owner": base.owner,
        "auth_user": tuple(base.auth_user),
        "connection_timeout": g.connection_timeout,
        "retry_delay": g.retry_delay,
        "round_robin": g.round_robin,
        **_listener_fields(base.listener),
    }


def _listener_fields(listener: ListenerSettings | None) -> dict[str, Any]:
    """The editor's listener fields of a saved listener (None: the defaults a new listener starts with)."""
    if listener is None:
        return {"listener": False, "listener_port": None, "listener_bind": "", "listener_mode": DEFAULT_MODE,
                "listener_affinity": DEFAULT_AFFINITY_HEADER, "listener_pool": DEFAULT_POOL}
    return {"listener": True, "listener_port": listener.port, "listener_bind": listener.bind or "",
            "listener_mode": listener.mode, "listener_affinity": listener.affinity_header or "",
            "listener_pool": listener.pool}


MODE_TEXT = {"tcp": "TCP (L4)", "http": "HTTP (L7)"}  # what each of core.model.MODES is called on screen


def listener_text(fields: dict[str, Any]) -> str:
    """One sentence on how a pool's balancers serve a group with these editor fields."""
    if not fields["listener"]:
        return "Not served by a balancer pool (balancers started with --config or --group serve it)."
    port = fields["listener_port"]
    where = f"{fields['listener_bind'] or '*'}:{port if port is not None else '?'}"
    mode = fields["listener_mode"]
    text = f"Pool “{fields['listener_pool']}” balancers listen on {where}, {MODE_TEXT.get(mode, mode)}"
    if mode == "http":
        affinity = fields["listener_affinity"]
        text += f", affinity by the {affinity} header" if affinity else ", no affinity"
    return text + "."


# what 0 seconds means, per field (the editor's boxes and the review say the same)
ZERO_SECONDS = {"connection_timeout": "0 s (no limit)", "retry_delay": "0 s (never left out)"}


def _fmt(name: str, value: Any) -> str:
    if name == "listener":
        return "yes" if value else "no"
    if name == "listener_port":
        return "(none)" if value is None else str(value)
    if name == "listener_bind":
        return value or "the balancer's default address"
    if name == "listener_mode":
        return MODE_TEXT.get(value, str(value))
    if name == "listener_affinity":
        return value or "none"
    if name in ZERO_SECONDS:
        return ZERO_SECONDS[name] if value == 0 else f"{value} s"
    if name == "round_robin":
        return "on" if value else "off (sequence failover)"
    if name == "auth_user":
        return ", ".join(value) or "(nobody)"
    return str(value)
