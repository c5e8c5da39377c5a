"""One engine interface for the views: what the live view needs from a running load balancer.

Two implementations, and the views do not know which they watch:

* ``gui.live.admin.AdminClient`` — Balance Desk's own balancer, through its admin endpoint (HTTP + a bearer
  token); events come from the balancer's ring (routes, health, admin, config).
* :class:`balancedesk.core.haproxy.engine.HaproxyEngine` — one backend of an HAProxy, through its Runtime API
  (the stats socket); health and admin events are derived from state changes between two polls.

Every call is a coroutine and raises :class:`EngineUnavailable` (cannot reach it; the view keeps its last
picture and says so) or :class:`EngineRefused` (it answered no; the message is the engine's own).

=========================================  =====================================================================
call                                       meaning
=========================================  =====================================================================
``snapshot() -> contract.Snapshot``        members (state, weight, sessions, errors, checks), overrides
``events(after, limit, newest=) ->``       events after cursor ``after`` (None: from the start) as contract
``EventBatch``                             JSON (``contract.parse_event`` reads each); ``cursor`` to ask next
``set_state(member_id, state)``            ``enabled`` / ``drain`` / ``disabled`` (``contract.MEMBER_STATES``)
``set_weight(member_id, weight)``          1..``model.WEIGHT_MAX``, live, no reload
``revert(member_id)``                      the config's weight and state again
``aclose()``                               close connections
``base_url``                               what the view shows as the engine's address
=========================================  =====================================================================

Both implementations report runtime changes as overrides (``Snapshot.overrides``, ``core.fleet.Override`` JSON),
so the view offers "save to the group" and "revert" the same way for both.

Imports: the standard library and ``core.proxy.contract`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from balancedesk.core.proxy.contract import Snapshot


class EngineUnavailable(Exception):
    """The engine could not be reached (refused, timed out, process gone)."""


class EngineRefused(Exception):
    """The engine refused a call; ``status`` as HTTP would say it (400: bad value, 404: no such member)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


@dataclass(frozen=True)
class EventBatch:
    """Events after a cursor. ``dropped``: lost to the ring or sampled away by the balancer; ``skipped``:
    route events a newest-only read left out; ``newest``: the endpoint honoured ``newest=1`` (a balancer
    older than that answers the oldest ``limit`` events instead)."""

    cursor: int
    events: tuple[Mapping[str, Any], ...]
    dropped: int
    skipped: int = 0
    newest: bool = False


@runtime_checkable
class Engine(Protocol):
    """A running engine the live view watches and steers (see the module's table)."""

    @property
    def base_url(self) -> str: ...

    async def snapshot(self) -> Snapshot: ...

    async def events(self, after: int | None, limit: int = 500, *, newest: bool = False) -> EventBatch: ...

    async def set_state(self, member_id: str, state: str) -> Any: ...

    async def set_weight(self, member_id: str, weight: int) -> Any: ...

    async def revert(self, member_id: str) -> Any: ...

    async def aclose(self) -> None: ...
