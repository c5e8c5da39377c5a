"""What the live view calls each member: its label, its badge letter and colour, its ID on hover.

The same vocabulary as the editor (:mod:`balancedesk.gui.badges`): the member at sequence position *i* of
the group is letter *i* on colour *i*. The label is the balancer's own (``MemberSnap.label``) when it sends
one, else the label the window was given for that connector (the management server's catalog), else a
short form of the ID (:func:`short_id`). Plain Python: no widgets, so every panel asks the same object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from balancedesk.gui.badges import letter, letter_chip, member_color
from PySide6.QtGui import QColor, QPixmap

SHORT_ID = 8  # characters of an ID shown when a member has no known label (a UUID's first group)


def short_id(member_id: str) -> str:
    """``3f2a9c1e-77b0-…`` → ``3f2a9c1e``; an ID that is short already stays as it is."""
    if len(member_id) <= SHORT_ID + 4:
        return member_id
    head = member_id.split("-", 1)[0]
    return head if 0 < len(head) <= SHORT_ID else member_id[:SHORT_ID] + "…"


@dataclass(frozen=True)
class MemberNames:
    """Labels and badge positions of a group's members, by memberID.

    ``order``: memberIDs in sequence order (the saved group's, then any the balancer runs that it lacks);
    ``labels``: memberID → label (empty or missing: not known)."""

    order: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, *, saved: Iterable[str] = (), running: Iterable[tuple[str, str]] = (),
              labels: Mapping[str, str] | None = None) -> MemberNames:
        """``saved``: the saved group's memberIDs in sequence order; ``running``: (memberID, label) pairs
        as the balancer sends them, in its sequence order; ``labels``: the catalog's labels."""
        order = list(dict.fromkeys(saved))
        known = {k: v for k, v in (labels or {}).items() if v}
        for mid, label in running:
            if mid not in order:
                order.append(mid)
            if label:
                known[mid] = label  # the balancer's own idea of the label wins
        return cls(tuple(order), known)

    def position(self, member_id: str) -> int:
        try:
            return self.order.index(member_id)
        except ValueError:
            return len(self.order)

    def name(self, member_id: str) -> str:
        """The label, or a short ID when none is known."""
        return self.labels.get(member_id) or short_id(member_id)

    def letter(self, member_id: str) -> str:
        return letter(self.position(member_id))

    def color(self, member_id: str) -> QColor:
        return member_color(self.position(member_id))

    def badged(self, member_id: str) -> str:
        """``B orders-eu-2``: the letter and the name, for texts that cannot carry a drawn badge."""
        return f"{self.letter(member_id)} {self.name(member_id)}"

    def tooltip(self, member_id: str, endpoint: str = "") -> str:
        at = f"\nendpoint {endpoint}" if endpoint else ""
        return f"{self.letter(member_id)} · {self.name(member_id)}\nID {member_id}{at}"

    def chip(self, member_id: str, size: int = 20, *, dpr: float = 1.0) -> QPixmap:
        return letter_chip(self.letter(member_id), self.color(member_id), size, dpr=dpr)
