"""The failed-login throttle of an installation of several servers on one database: kept in ``login_events``.

Same policy as :class:`~balancedesk.core.mgmt.throttle.LoginThrottle` — this class *is* one — with the
logins of the other servers told to it, so the budget (each key's free failures, then the doubling wait)
holds for the installation as a whole, whichever server a guess lands on. The rules:

* **Written**: every failed attempt, in the request that failed (after the policy here counted it), as one
  row: the user key and source the policy already uses (a 16-byte hash of the name, an IPv4 address or an
  IPv6 /64 — never a password or a user name), whether it succeeded, this server's random ``origin`` and the
  wall-clock time. A success is written only when it tells the others something: it clears the pair's
  failures, or this server has not announced that pair's trust for :data:`ANNOUNCE_S` (so a logged-in GUI's
  every request is not a write). Each write purges the rows older than
  :data:`~balancedesk.core.mgmt.throttle.FORGET_S` and keeps at most :data:`TABLE_MAX_ROWS`: one row per
  failure, the table bounded under any attack.
* **Read**: before each decision (:meth:`SharedThrottle.admit`), the rows after the last one seen, at most
  :data:`REPLAY_MAX_ROWS` (a server further behind catches up over its next decisions), are replayed into
  the policy (:func:`replay`); this server's own rows are skipped (already counted). Ids are given under the
  store's write lock, so they rise in commit order and "after the last id seen" misses none.
* **Pending stays per server**: an attempt in flight is pending only on the server verifying it (a crashed
  server would leave a shared one pending for ever). So a burst of parallel guesses spread over N servers
  can have up to N times a key's budget in flight at once; their failures are then shared as they land.
* **Clocks**: a row's time is wall-clock Unix time (the servers' monotonic clocks are unrelated), turned into
  this policy's monotonic ``now`` by its age; a time in the future counts as now. A server whose clock is off
  forgets or waits too early or too late by that much: keep the servers' clocks synchronised (NTP).
* **Database away**: reading before a decision and writing after an attempt raise the engine's error, so the
  request gets the 503 every request gets then; a failure is counted here before it is written.

Used only on a shared database (:attr:`Store.shared <balancedesk.core.mgmt.store.Store.shared>`). A single
SQLite server keeps the plain in-memory policy, which is already the whole installation's: writing the rows
there would cost an fsync per failed login (``synchronous=FULL``) for nobody to read. ``login_events`` is not
copied by ``--migrate-from`` (transient: what a restart forgets anyway).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from balancedesk.core.mgmt.store import Store
from balancedesk.core.mgmt.throttle import (
    FORGET_S,
    MAX_ENTRIES,
    PAIR,
    SOURCE,
    TRUST_S,
    USER,
    Attempt,
    LoginThrottle,
    Refused,
    Rule,
)

REPLAY_MAX_ROWS = 1000
"""Rows of other servers' logins read and replayed before one decision, at most."""

TABLE_MAX_ROWS = 100_000
"""Rows ``login_events`` keeps at most (the oldest go first): far more than an hour of failures the servers'
argon2 checks can make."""

ANNOUNCE_S = FORGET_S / 2
"""A success that clears nothing is written again once this long has passed since this server last wrote the
pair's: rows live :data:`~balancedesk.core.mgmt.throttle.FORGET_S`, so a server started later finds a pair
that is in use trusted."""


@dataclass(frozen=True)
class LoginEvent:
    """One row of ``login_events``: a login on the server ``origin`` at wall-clock time ``at``."""

    id: int
    origin: str
    ok: bool
    user: bytes
    source: str
    at: float


def replay(policy: LoginThrottle, events: Iterable[LoginEvent], *, origin: str, now: float, wall: float) -> int:
    """Tell ``policy`` the events of origins other than ``origin``, in order; ``now`` is the policy's clock and
    ``wall`` the wall-clock time at that moment. The highest id seen (own events included), 0 if none."""
    last = 0
    for event in events:
        last = max(last, event.id)
        if event.origin == origin:
            continue
        at = now - max(0.0, wall - event.at)
        if event.ok:
            policy.note_succeeded(event.user, event.source, at, now)
        else:
            policy.note_failed(event.user, event.source, at, now)
    return last


class SharedThrottle(LoginThrottle):
    """The policy, with the other servers' logins replayed into it (see the module text). ``wall`` gives the
    wall-clock time (``time.time``; a test passes its own); ``now`` stays the caller's monotonic clock."""

    def __init__(
        self,
        store: Store,
        *,
        wall: Callable[[], float] = time.time,
        pair: Rule = PAIR,
        user: Rule = USER,
        source: Rule = SOURCE,
        forget_s: float = FORGET_S,
        trust_s: float = TRUST_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        super().__init__(pair=pair, user=user, source=source, forget_s=forget_s, trust_s=trust_s,
                         max_entries=max_entries)
        self.store = store
        self.wall = wall
        self.origin = secrets.token_hex(8)
        self.seen = 0  # the id of the last row read
        self._announced: OrderedDict[tuple[bytes, str], float] = OrderedDict()

    def catch_up(self, now: float) -> None:
        """Replay the rows written since the last read (at most :data:`REPLAY_MAX_ROWS`)."""
        rows = self.store.logins_after(self.seen, REPLAY_MAX_ROWS)
        if rows:
            events = (LoginEvent(*row) for row in rows)
            self.seen = max(self.seen, replay(self, events, origin=self.origin, now=now, wall=self.wall()))

    def admit(self, user: str, source: str, now: float) -> Attempt | Refused:
        self.catch_up(now)
        return super().admit(user, source, now)

    def failed(self, attempt: Attempt, now: float) -> None:
        super().failed(attempt, now)
        self._record(attempt, ok=False)

    def succeeded(self, attempt: Attempt, now: float) -> None:
        pair = (attempt.user, attempt.source)
        last = self._announced.get(pair)
        news = self.has_failures(attempt.user, attempt.source, now) or last is None or now - last >= ANNOUNCE_S
        super().succeeded(attempt, now)
        if news:
            self._record(attempt, ok=True)
            self._announced.pop(pair, None)
            self._announced[pair] = now
            while len(self._announced) > self._max_entries:
                self._announced.popitem(last=False)

    def _record(self, attempt: Attempt, *, ok: bool) -> None:
        wall = self.wall()
        self.store.record_login(self.origin, ok, attempt.user, attempt.source, wall,
                                forget_before=wall - self.forget_s, keep=TABLE_MAX_ROWS)
