"""What the GUI knows about the server's connectors: one plain snapshot, rebuilt after every listing.

:class:`Catalog` answers the questions the browser and the editor ask — a connector's label, owner and
endpoint, which group uses it — and builds :class:`~balancedesk.core.model.KnownConnector` maps for
:func:`~balancedesk.core.model.check_group_rules`, so the editor refuses what the server would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first needed: the window shows before pydantic is loaded
    from balancedesk.core.model import Connector, KnownConnector


@dataclass(frozen=True)
class Catalog:
    """An immutable snapshot of connectors by ID, plus who uses whom."""

    connectors: dict[str, Connector] = field(default_factory=dict)
    used_by: dict[str, str] = field(default_factory=dict)  # member connectorID → group connectorID

    @classmethod
    def from_connectors(
        cls, connectors: Iterable[Connector], *, used_by: dict[str, str] | None = None
    ) -> Catalog:
        """Index ``connectors``; ``used_by`` adds what the admin API knows of groups we cannot read."""
        by_id: dict[str, Connector] = {}
        used_by = dict(used_by or {})
        for c in connectors:
            if c.connector_id is None:
                continue
            by_id[c.connector_id] = c
        for c in by_id.values():
            if c.connector_group is not None and c.connector_id is not None:
                for m in c.connector_group.members:
                    used_by[m.member_id] = c.connector_id
        return cls(by_id, used_by)

    def with_connector(self, connector: Connector) -> Catalog:
        """A new catalog where ``connector`` replaces (or adds) its entry."""
        items = {k: v for k, v in self.connectors.items() if k != connector.connector_id}
        return Catalog.from_connectors([*items.values(), connector])

    def without(self, connector_id: str) -> Catalog:
        return Catalog.from_connectors(c for k, c in self.connectors.items() if k != connector_id)

    @property
    def groups(self) -> list[Connector]:
        return sorted((c for c in self.connectors.values() if c.is_group), key=_sort_key)

    @property
    def plain(self) -> list[Connector]:
        return sorted((c for c in self.connectors.values() if not c.is_group), key=_sort_key)

    def label(self, connector_id: str) -> str:
        c = self.connectors.get(connector_id)
        return c.label if c is not None else connector_id

    def endpoint(self, connector_id: str) -> str:
        c = self.connectors.get(connector_id)
        return (c.endpoint or "") if c is not None else ""

    def group_label_of(self, connector_id: str) -> str:
        gid = self.used_by.get(connector_id)
        return self.label(gid) if gid else ""

    def known(self) -> dict[str, KnownConnector]:
        from balancedesk.core.model import KnownConnector

        return {
            cid: KnownConnector(cid, c.owner, c.is_group, self.used_by.get(cid))
            for cid, c in self.connectors.items()
        }

    def refusal(self, connector_id: str, *, group_id: str | None, owner: str) -> str | None:
        """Why ``connector_id`` cannot join the group owned by ``owner`` (None if it can)."""
        c = self.connectors.get(connector_id)
        if c is None:
            return f"Connector {connector_id} is not registered on this server."
        if c.is_group or connector_id == group_id:
            return f"“{c.label}” is a connector group; groups cannot be members of a group."
        user = self.used_by.get(connector_id)
        if user is not None and user != group_id:
            return f"“{c.label}” already belongs to the group “{self.label(user)}”; a connector can be in one group."
        if c.owner != owner:
            return f"“{c.label}” is registered to {c.owner}, not to the group owner {owner}."
        return None


def _sort_key(c: Connector) -> tuple[str, str]:
    return (c.label.casefold(), c.connector_id or "")
