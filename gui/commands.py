"""Undo commands of the group editor. Each ``redo()`` makes the change; ``undo()`` takes it back.

Commands change the editor's truth only through the small ``_apply_*`` methods of
:class:`~balancedesk.gui.document.GroupDocument` and :class:`~balancedesk.gui.members_model.MembersModel`,
which emit the Qt signals views need. Consecutive edits of one field, and consecutive weight moves of one
member (a slider drag), merge into one undo step through ``id()``/``mergeWith()``; a toggle or a choice
(Round Robin, the listener on/off, its mode) is always a step of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtGui import QUndoCommand

if TYPE_CHECKING:
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.members_model import DraftMember, MembersModel

FIELD_TEXT = {
    "label": "label",
    "owner": "owner",
    "auth_user": "authorised users",
    "connection_timeout": "connection timeout",
    "retry_delay": "retry delay",
    "round_robin": "Round Robin",
    # the listener (issue 11): where a pool's balancers serve the group
    "listener": "served by a balancer pool",
    "listener_port": "listener port",
    "listener_bind": "bind address",
    "listener_mode": "mode",
    "listener_affinity": "affinity header",
    "listener_pool": "pool",
}
LISTENER_FIELDS = tuple(name for name in FIELD_TEXT if name.startswith("listener_"))
CHOICE_FIELDS = frozenset({"round_robin", "listener", "listener_mode"})  # each change its own undo step
_FIELD_IDS = {name: 1000 + i for i, name in enumerate(FIELD_TEXT)}
WEIGHT_ID = 2000


class SetFieldCommand(QUndoCommand):
    """Set one group field; consecutive sets of the same field merge."""

    def __init__(self, doc: GroupDocument, name: str, old: Any, new: Any) -> None:
        super().__init__(f"Change {FIELD_TEXT[name]}")
        self._doc = doc
        self.name = name
        self.old = old
        self.new = new

    def redo(self) -> None:
        self._doc._apply_field(self.name, self.new)

    def undo(self) -> None:
        self._doc._apply_field(self.name, self.old)

    def id(self) -> int:
        # toggles and choices never merge: each is its own step; typing into a box merges
        return -1 if self.name in CHOICE_FIELDS else _FIELD_IDS[self.name]

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetFieldCommand) or other.name != self.name:
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)
        return True


class SetWeightCommand(QUndoCommand):
    """Set one member's weight; consecutive changes of the same member (a slider drag) merge."""

    def __init__(self, model: MembersModel, member_id: str, old: int, new: int) -> None:
        super().__init__(f"Change weight of {model.display_name(member_id)}")
        self._model = model
        self.member_id = member_id
        self.old = old
        self.new = new

    def redo(self) -> None:
        self._model._apply_weight(self.member_id, self.new)

    def undo(self) -> None:
        self._model._apply_weight(self.member_id, self.old)

    def id(self) -> int:
        return WEIGHT_ID

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SetWeightCommand) or other.member_id != self.member_id:
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)
        return True


class MoveMembersCommand(QUndoCommand):
    """Move ``count`` members starting at ``src`` to before row ``dst`` (pre-move coordinates)."""

    def __init__(self, model: MembersModel, src: int, count: int, dst: int) -> None:
        names = ", ".join(model.display_name(m.member_id) for m in model.members[src : src + count])
        super().__init__(f"Move {names}")
        self._model = model
        self.src, self.count, self.dst = src, count, dst

    def redo(self) -> None:
        self._model._apply_move(self.src, self.count, self.dst)

    def undo(self) -> None:
        if self.dst > self.src:  # the block now starts at dst - count
            self._model._apply_move(self.dst - self.count, self.count, self.src)
        else:  # the block now starts at dst
            self._model._apply_move(self.dst, self.count, self.src + self.count)


class InsertMemberCommand(QUndoCommand):
    """Add a member at ``row``."""

    def __init__(self, model: MembersModel, row: int, member: DraftMember) -> None:
        super().__init__(f"Add {model.display_name(member.member_id)}")
        self._model = model
        self.row = row
        self.member = member

    def redo(self) -> None:
        self._model._apply_insert(self.row, self.member)

    def undo(self) -> None:
        self._model._apply_remove(self.row)


class RemoveMemberCommand(QUndoCommand):
    """Remove the member at ``row`` (kept, with its weight, for undo)."""

    def __init__(self, model: MembersModel, row: int) -> None:
        self._model = model
        self.row = row
        self.member = model.members[row]
        super().__init__(f"Remove {model.display_name(self.member.member_id)}")

    def redo(self) -> None:
        self._model._apply_remove(self.row)

    def undo(self) -> None:
        self._model._apply_insert(self.row, self.member)
