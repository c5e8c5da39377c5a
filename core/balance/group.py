"""One connector group's routing state and the per-connection walk through its members.

Rules (HDP's connector-group documents, plus header affinity and runtime admin state):

* Round Robin groups pick by smooth WRR over the *available* members; other groups take the available
  member with the lowest ``sequence``.
* A failed connect disables that member for ``retryDelay`` seconds (0 = never disable); the same client
  moves on to the next candidate, each member at most once. A member that answers is enabled at once.
* If every member is disabled at once, every member is tried anyway.
* With an affinity key, candidates are ranked by weighted rendezvous hashing; a disabled choice falls to
  the next-ranked member. With a sticky store (:mod:`balancedesk.core.balance.sticky`, the rules there) a
  key displaced that way stays on the member that took it while that member is up, even once its first-ranked
  member is back: the walk prefers the member a key's entry names, and remembers a pick that is not the key's
  rendezvous choice.
* Admin state: ``DRAIN`` and ``DISABLED`` members get no new connections (existing ones are the shell's
  business); only ``ENABLED`` members are candidates.
* Active health checks (opt-in, :mod:`balancedesk.core.balance.health` decides) hold a member *down*
  (``set_check_down``): it is not healthy whatever its retryDelay says, a successful connect does not
  re-enable it and the end of its retryDelay does not either; only the checks lift the hold. A held
  member is still tried when every member is disabled at once (the rule above).

Usage by the shell, per client connection or request::

    member = balancer.first_pick(key, now=now)   # the hot path when every member is up, else None: then
    sel = balancer.begin(now=now, affinity_key=key)
    while (member := sel.next(now=now)) is not None:
        ok = await connect(member)          # the shell's I/O, bounded by connectionTimeout
        if ok: sel.succeeded(member, now=now); break
        sel.failed(member, now=now)
    # member None: every candidate was tried → error to the client (sel.tried lists them)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from balancedesk.core.balance.affinity import rendezvous_rank
from balancedesk.core.balance.sticky import StickyStore
from balancedesk.core.balance.wrr import SmoothWRR
from balancedesk.core.model import ConnectorGroup


class AdminState(enum.Enum):
    ENABLED = "enabled"
    DRAIN = "drain"
    DISABLED = "disabled"


@dataclass(frozen=True)
class MemberView:
    """A member as the admin endpoint shows it. ``disabled_until`` is None while healthy."""

    member_id: str
    sequence: int
    weight: int
    admin: AdminState
    disabled_until: float | None
    failures: int
    check_down: bool = False  # held down by active health checks (see GroupBalancer.set_check_down)

    def healthy(self, now: float) -> bool:
        return not self.check_down and (self.disabled_until is None or now >= self.disabled_until)


class _Member:
    __slots__ = ("admin", "check_down", "disabled_until", "failures", "member_id", "sequence", "weight")

    def __init__(self, member_id: str, sequence: int, weight: int) -> None:
        self.member_id = member_id
        self.sequence = sequence
        self.weight = weight
        self.admin = AdminState.ENABLED
        self.disabled_until: float | None = None
        self.failures = 0
        self.check_down = False


class GroupBalancer:
    """Routing state of one group. Not thread-safe; one per event loop."""

    def __init__(self, group: ConnectorGroup, *, sticky: StickyStore | None = None) -> None:
        self._members: dict[str, _Member] = {}
        self._wrr = SmoothWRR([])
        self.sticky = sticky  # None: keys follow the rendezvous order alone (the member that is up)
        self.apply(group)

    # configuration -------------------------------------------------------------------------------
    def apply(self, group: ConnectorGroup) -> None:
        """Apply a (new) group definition: surviving members keep their health and admin state; the WRR
        rhythm continues only if members and weights are unchanged (see :meth:`SmoothWRR.reweight`)."""
        old = self._members
        members: dict[str, _Member] = {}
        for m in group.ordered():
            cur = old.get(m.member_id) or _Member(m.member_id, m.sequence, m.weight)
            cur.sequence = m.sequence
            cur.weight = m.weight
            members[m.member_id] = cur
        self._members = members
        self.group = group
        self.round_robin = group.round_robin
        self.retry_delay_s = float(group.retry_delay)
        self.connection_timeout_s = float(group.connection_timeout) or None
        self._order = list(members.values())
        self._weights = tuple((m.member_id, m.weight) for m in self._order)
        self._wrr.reweight(list(self._weights))
        self._recheck()

    def _recheck(self) -> None:
        """``_all_clear``: every member is admin-enabled and has no health mark, so a fresh pick needs no
        filtering (the hot path: one WRR step or one cached rendezvous rank). Kept by every mutator."""
        self._all_clear = bool(self._order) and all(
            m.admin is AdminState.ENABLED and m.disabled_until is None and not m.check_down for m in self._order
        )

    def set_admin(self, member_id: str, state: AdminState) -> None:
        """Runtime admin state; raises KeyError for an unknown member."""
        self._members[member_id].admin = state
        self._recheck()

    def set_weight(self, member_id: str, weight: int) -> None:
        if weight < 1:
            raise ValueError("weight must be a positive integer")
        self._members[member_id].weight = weight
        self._weights = tuple((m.member_id, m.weight) for m in self._order)
        self._wrr.reweight(list(self._weights))

    # health --------------------------------------------------------------------------------------
    def mark_failed(self, member_id: str, *, now: float) -> bool:
        """A connect to the member failed. Returns True if it became disabled by this failure."""
        m = self._members.get(member_id)
        if m is None:
            return False
        m.failures += 1
        if self.retry_delay_s <= 0:
            return False
        was_up = self._healthy(m, now)
        m.disabled_until = now + self.retry_delay_s
        self._all_clear = False
        return was_up

    def mark_succeeded(self, member_id: str, *, now: float) -> bool:
        """A connect succeeded. Returns True if the member was disabled and is enabled again."""
        m = self._members.get(member_id)
        if m is None or m.disabled_until is None:
            return False
        m.disabled_until = None
        self._recheck()
        return not m.check_down  # a member the checks hold down stays down

    def set_check_down(self, member_id: str, down: bool, *, now: float) -> bool:
        """Active checks hold the member down (``down``) or let it go — letting go also clears a passive
        mark (its retryDelay ends early). Returns True if the member's health at ``now`` changed."""
        m = self._members.get(member_id)
        if m is None:
            return False
        was = self._healthy(m, now)
        m.check_down = down
        if not down:
            m.disabled_until = None
        self._recheck()
        return was != self._healthy(m, now)

    def adopt_mark(self, member_id: str, until: float | None, *, now: float) -> bool:
        """Take a passive mark decided elsewhere — another worker of this balancer process, whose deadlines are
        on the same monotonic clock: ``until`` (None or a time not after ``now``: no mark). Counts no
        failure. Returns True if the member's health at ``now`` changed."""
        m = self._members.get(member_id)
        if m is None:
            return False
        if until is not None and until <= now:
            until = None
        if m.disabled_until == until:
            return False
        was = self._healthy(m, now)
        m.disabled_until = until
        self._recheck()
        return was != self._healthy(m, now)

    def passively_marked(self, member_id: str, *, now: float) -> bool:
        """Whether the member is disabled by a failed connect whose retryDelay has not ended."""
        m = self._members.get(member_id)
        return m is not None and m.disabled_until is not None and now < m.disabled_until

    def expire(self, *, now: float) -> list[str]:
        """Members whose retryDelay has ended by ``now``: re-enabled (returned, for the event stream) unless the
        checks hold them down (their mark is cleared all the same; they are not returned)."""
        out = []
        cleared = False
        for m in self._order:
            if m.disabled_until is not None and now >= m.disabled_until:
                m.disabled_until = None
                cleared = True
                if not m.check_down:
                    out.append(m.member_id)
        if cleared:
            self._recheck()
        return out

    def next_expiry(self) -> float | None:
        times = [m.disabled_until for m in self._order if m.disabled_until is not None]
        return min(times) if times else None

    # decisions -----------------------------------------------------------------------------------
    def begin(self, *, now: float, affinity_key: str | None = None) -> Selection:
        return Selection(self, affinity_key)

    def first_pick(self, affinity_key: str | None = None, *, now: float) -> str | None:
        """The first member of a walk when every member is enabled and unmarked (the hot path, no
        :class:`Selection` needed unless that member fails — then ``begin`` and mark it tried); None
        otherwise (use ``begin``). Same pick, same WRR rhythm as ``begin(...).next(...)``."""
        if not self._all_clear:
            return None
        if affinity_key is not None:
            if self.sticky is not None:
                held = self.sticky.get(affinity_key, now=now)
                if held is not None and held in self._members:  # every member is up: so is this one
                    return held
            ranked: tuple[str, ...] = rendezvous_rank(affinity_key, self._weights)
            return ranked[0]
        if self.round_robin:
            return self._wrr.pick_all()
        return self._order[0].member_id

    def _healthy(self, m: _Member, now: float) -> bool:
        return not m.check_down and (m.disabled_until is None or now >= m.disabled_until)

    def _pick(self, tried: list[str], key: str | None, now: float) -> str | None:
        if self._all_clear and not tried:
            # fast path, same answer as below when every member is enabled and unmarked
            if key is not None:
                return self.first_pick(key, now=now)
            if self.round_robin:
                picked: str | None = self._wrr.pick()
                return picked
            return self._order[0].member_id
        enabled = [m for m in self._order if m.admin is AdminState.ENABLED]
        untried = [m for m in enabled if m.member_id not in tried]
        if not untried:
            return None
        healthy = [m for m in untried if self._healthy(m, now)]
        if not healthy:
            if any(self._healthy(m, now) for m in enabled):
                # someone is up but was already tried: the rest are disabled and are skipped
                return None
            healthy = untried  # every member is disabled at once: try each anyway
        if key is not None:
            return self._keyed_pick(key, {m.member_id for m in healthy}, now)
        if self.round_robin:
            picked = self._wrr.pick(m.member_id for m in healthy)
            return picked
        return healthy[0].member_id

    def _keyed_pick(self, key: str, ids: set[str], now: float) -> str | None:
        """The candidate (in ``ids``) for ``key``: its sticky entry's member if that is a candidate, else the
        first-ranked candidate; the sticky entry follows the pick (see the sticky module's rules)."""
        ranked: tuple[str, ...] = rendezvous_rank(key, self._weights)
        sticky = self.sticky
        if sticky is None:
            return next((mid for mid in ranked if mid in ids), None)
        held = sticky.get(key, now=now)
        if held is not None and held in ids:
            return held
        chosen = next((mid for mid in ranked if mid in ids), None)
        if chosen is None:
            return None
        if chosen != ranked[0]:
            sticky.put(key, chosen, now=now)
        elif held is not None:
            sticky.discard(key)  # back on its rendezvous choice: no entry needed
        return chosen

    # views ---------------------------------------------------------------------------------------
    def members(self) -> list[MemberView]:
        return [
            MemberView(m.member_id, m.sequence, m.weight, m.admin, m.disabled_until, m.failures, m.check_down)
            for m in self._order
        ]

    def member_ids(self) -> list[str]:
        return [m.member_id for m in self._order]


class Selection:
    """The walk of one client connection (or request) through candidates, each member at most once."""

    __slots__ = ("_balancer", "affinity_key", "tried")

    def __init__(self, balancer: GroupBalancer, affinity_key: str | None) -> None:
        self._balancer = balancer
        self.affinity_key = affinity_key
        self.tried: list[str] = []

    def next(self, *, now: float) -> str | None:
        """The next member to try, or None when every candidate has been tried."""
        mid = self._balancer._pick(self.tried, self.affinity_key, now)
        if mid is not None:
            self.tried.append(mid)
        return mid

    def failed(self, member_id: str, *, now: float) -> bool:
        return self._balancer.mark_failed(member_id, now=now)

    def succeeded(self, member_id: str, *, now: float) -> bool:
        return self._balancer.mark_succeeded(member_id, now=now)

