"""Runtime overrides in the live view: what a balancer runs that the saved group does not say (pure, no Qt).

An override is a member's admin state other than ``enabled`` (drain, disabled) or a live weight other than
the saved one. Two ways to end one:

* **Save to the server** — a live weight becomes the group's saved weight (``PUT`` of the group through the
  management API, with ``If-Match``); drain and disabled are runtime-only states (a saved group has no
  such field), so they are explained, never saved.
* **Revert** — the balancer goes back to the saved config's values: state ``enabled`` and the saved weight,
  through the admin endpoint's member routes (it has no route that drops an override as such).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from balancedesk.core.model import Connector
from balancedesk.gui.live.admin import Snapshot

RUNTIME_ONLY = ("drain", "disabled")


@dataclass(frozen=True)
class MemberOverride:
    member_id: str
    state: str | None  # "drain" / "disabled", or None when the member is enabled
    weight: int | None  # the live weight when it differs from the saved one
    saved_weight: int


def overrides(group: Connector, snap: Snapshot) -> list[MemberOverride]:
    """The members of ``snap`` whose state or weight the saved ``group`` does not say, in snapshot order."""
    saved = {m.member_id: m for m in (group.connector_group.members if group.connector_group else ())}
    out = []
    for m in snap.members:
        s = saved.get(m.member_id)
        if s is None:
            continue
        state = m.admin if m.admin in RUNTIME_ONLY else None
        weight = m.weight if m.weight != s.weight else None
        if state is not None or weight is not None:
            out.append(MemberOverride(m.member_id, state, weight, s.weight))
    return out


def with_weights(group: Connector, weights: Mapping[str, int]) -> Connector:
    """``group`` with the given members' weights replaced (the body of "Save to the server")."""
    cg = group.connector_group
    if cg is None:
        return group
    members = tuple(m.model_copy(update={"weight": weights[m.member_id]}) if m.member_id in weights else m
                    for m in cg.members)
    return group.model_copy(update={"connector_group": cg.model_copy(update={"members": members})})


def runtime_only_text(found: Iterable[MemberOverride], name: Callable[[str], str] = str) -> str:
    """The sentence for drain/disabled overrides "Save to the server" cannot save ("" when none); members
    called by ``name``."""
    states = [f"{name(o.member_id)} is {o.state}" for o in found if o.state is not None]
    if not states:
        return ""
    return ("; ".join(states) + ": drain and disabled are runtime-only states (a saved group has no such "
            "setting), so they stay on this balancer only; Revert ends them")
