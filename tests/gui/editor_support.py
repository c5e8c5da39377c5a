"""Helpers for the group editor tests: canned answers for the prompter, a demo catalog built in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from balancedesk.core.model import ROUND_ROBIN, Connector, ConnectorGroup, Member
from balancedesk.gui.catalog import Catalog
from balancedesk.gui.document import Change, GroupDocument
from balancedesk.gui.prompts import Candidate, Conflict, Unsaved


@dataclass
class CannedPrompter:
    """Answers every question the window asks with a preset answer, and records the questions."""

    review_ok: bool = True
    conflict_choice: Conflict = Conflict.CANCEL
    unsaved_choice: Unsaved = Unsaved.DISCARD
    delete_ok: bool = True
    pick: str | None = None
    asked: list[tuple[str, Any]] = field(default_factory=list)

    async def review(self, label: str, changes: list[Change]) -> bool:
        self.asked.append(("review", changes))
        return self.review_ok

    async def conflict(self, label: str) -> Conflict:
        self.asked.append(("conflict", label))
        return self.conflict_choice

    async def unsaved(self, label: str) -> Unsaved:
        self.asked.append(("unsaved", label))
        return self.unsaved_choice

    async def confirm_delete(self, label: str) -> bool:
        self.asked.append(("delete", label))
        return self.delete_ok

    async def pick_connector(self, candidates: list[Candidate]) -> str | None:
        self.asked.append(("pick", candidates))
        return self.pick

    async def login(self, *, url: str, user: str, message: str = "") -> None:
        self.asked.append(("login", url))
        return None

    async def first_password(self, password: str, where: str) -> None:
        self.asked.append(("first_password", (password, where)))

    async def accept_certificate(self, url: str, fingerprint: str, subject: str) -> bool:
        self.asked.append(("certificate", fingerprint))
        return False

    def kinds(self) -> list[str]:
        return [k for k, _ in self.asked]


def plain(cid: str, owner: str = "admin", port: int = 9000) -> Connector:
    return Connector(connector_id=cid, owner=owner, label=cid, endpoint=f"127.0.0.1:{port}")


def group(gid: str, members: list[tuple[str, int]], *, owner: str = "admin", rr: bool = True) -> Connector:
    return Connector(
        connector_id=gid,
        owner=owner,
        label=gid.upper(),
        connector_group=ConnectorGroup(
            load_balancing=ROUND_ROBIN if rr else None,
            members=tuple(Member(member_id=m, sequence=i + 1, weight=w) for i, (m, w) in enumerate(members)),
        ),
    )


def demo_catalog() -> Catalog:
    """g1 = a(3), b(2), c(1); g2 = d; e free; f owned by bob."""
    return Catalog.from_connectors(
        [
            plain("a", port=9101), plain("b", port=9102), plain("c", port=9103), plain("d", port=9104),
            plain("e", port=9105), plain("f", owner="bob", port=9106),
            group("g1", [("a", 3), ("b", 2), ("c", 1)]),
            group("g2", [("d", 1)]),
        ]
    )


def demo_doc(catalog: Catalog | None = None) -> GroupDocument:
    catalog = catalog or demo_catalog()
    return GroupDocument(base=catalog.connectors["g1"], etag='"1"', catalog=catalog, owner="admin",
                         server="http://127.0.0.1:1")


def member_ids(doc: GroupDocument) -> list[str]:
    return [m.member_id for m in doc.members]
