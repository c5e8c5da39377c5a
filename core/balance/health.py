"""Active health checks of one group: what each probe result means for routing (HAProxy's rise/fall).

Rules (``listener.healthCheck``; without it this object does not exist and the seed's passive rules —
:mod:`balancedesk.core.balance.group` — are all there is):

* Every member starts *up* as far as the checks are concerned (traffic and its passive marks decide, as
  without checks) with no result yet.
* Per member, consecutive passes and consecutive failures are counted; a pass resets the failures, a
  failure resets the passes.
* ``fall`` failures in a row take an up member *down*: the balancer holds it (``set_check_down``), so it gets
  no new connection whatever its retryDelay says — a successful connect (only tried when every member is
  disabled at once) does not bring it back, nor does the end of a retryDelay. Only the checks do:
* ``rise`` passes in a row bring a down member *up* again, and lift any passive mark with it.
* A failed connect by traffic (the passive rule) still disables an up member for retryDelay, and resets
  its consecutive passes: ``rise`` passes *after* that failure re-enable it before its retryDelay ends. A
  failed connect does not count towards ``fall`` (traffic failures and probe failures are different
  evidence; nginx and HAProxy keep them apart too).
* Members that leave the group are forgotten; new ones start as above; surviving ones keep their counts
  and state when the check settings change. When checks are turned off, every hold is lifted (see
  :meth:`release_all`) and only the passive rules remain.

Calling protocol (the shell, :mod:`balancedesk.core.proxy.healthcheck`, does the probing)::

    checks = ActiveChecks(spec, balancer)
    for mid in balancer.member_ids():               # every interval
        ok, detail = await probe(mid)               # the shell's I/O, bounded by spec.timeout
        flip = checks.record(mid, ok=ok, detail=detail, now=now)
        if flip is not None: emit a health event (flip.state, flip.reason)
    checks.traffic_failed(mid)                      # the shell saw a connect to mid fail
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from balancedesk.core.balance.group import GroupBalancer
from balancedesk.core.model import HealthCheck


class CheckState(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class CheckView:
    """The checks' view of one member, for the snapshot: ``last_ok`` None until the first result."""

    member_id: str
    state: CheckState
    passes: int
    fails: int
    last_ok: bool | None
    last_at: float | None
    last_detail: str | None


@dataclass(frozen=True)
class Flip:
    """A check result changed whether the member gets traffic: ``state`` "disabled" or "enabled"."""

    member_id: str
    state: str
    reason: str


class _Track:
    __slots__ = ("fails", "last_at", "last_detail", "last_ok", "passes", "state")

    def __init__(self) -> None:
        self.state = CheckState.UP
        self.passes = 0
        self.fails = 0
        self.last_ok: bool | None = None
        self.last_at: float | None = None
        self.last_detail: str | None = None


class ActiveChecks:
    """The rise/fall bookkeeping of one group's members, applied to its :class:`GroupBalancer`."""

    def __init__(self, spec: HealthCheck, balancer: GroupBalancer) -> None:
        self.balancer = balancer
        self._tracks: dict[str, _Track] = {}
        self.apply(spec)

    def apply(self, spec: HealthCheck) -> None:
        """New check settings or a new member list (after ``balancer.apply``): survivors keep their state."""
        self.spec = spec
        ids = self.balancer.member_ids()
        self._tracks = {mid: self._tracks.get(mid) or _Track() for mid in ids}

    def release_all(self, *, now: float) -> list[str]:
        """Checks turned off: every hold lifted. Returns the members that are up again because of it."""
        out = [mid for mid, tr in self._tracks.items()
               if tr.state is CheckState.DOWN and self.balancer.set_check_down(mid, False, now=now)]
        self._tracks.clear()
        return out

    def record(self, member_id: str, *, ok: bool, detail: str, now: float) -> Flip | None:
        """One probe's result at ``now``. Returns the flip it caused, if any."""
        tr = self._tracks.get(member_id)
        if tr is None:  # a probe of a member that left the group meanwhile
            return None
        tr.last_ok, tr.last_at, tr.last_detail = ok, now, detail
        spec = self.spec
        if not ok:
            tr.fails += 1
            tr.passes = 0
            if tr.state is CheckState.UP and tr.fails >= spec.fall:
                tr.state = CheckState.DOWN  # a flip even if traffic had disabled it: now only checks end it
                self.balancer.set_check_down(member_id, True, now=now)
                return Flip(member_id, "disabled", f"health check failed {tr.fails}x: {detail}")
            return None
        tr.passes += 1
        tr.fails = 0
        if tr.passes < spec.rise:
            return None
        if tr.state is CheckState.DOWN:
            tr.state = CheckState.UP
            self.balancer.set_check_down(member_id, False, now=now)
            return Flip(member_id, "enabled", f"health check passed {tr.passes}x")
        if self.balancer.passively_marked(member_id, now=now):
            self.balancer.set_check_down(member_id, False, now=now)  # lifts the passive mark early
            return Flip(member_id, "enabled", f"health check passed {tr.passes}x")
        return None

    def traffic_failed(self, member_id: str) -> None:
        """A connect by traffic failed: the passes so far no longer vouch for the member."""
        tr = self._tracks.get(member_id)
        if tr is not None:
            tr.passes = 0

    def view(self, member_id: str) -> CheckView | None:
        tr = self._tracks.get(member_id)
        if tr is None:
            return None
        return CheckView(member_id, tr.state, tr.passes, tr.fails, tr.last_ok, tr.last_at, tr.last_detail)


class _Outage:
    __slots__ = ("closed", "since", "until")

    def __init__(self) -> None:
        self.closed = 0.0  # seconds of outages that ended
        self.since: float | None = None  # the current outage's start (None: the member is not out)
        self.until: float | None = None  # when the current outage ends by itself (None: held until came_up)


class Downtime:
    """How long each member was out — health-disabled (a passive mark) or held down by the checks — as
    HAProxy's stats page shows it ("Dwntme"). Admin states (drain, disabled) are not outages.

    Rules (``now`` and ``until`` on the runtime's monotonic clock):

    * :meth:`went_down` at ``now``: an outage starts unless one is going on; it ends by itself at ``until``
      (a passive mark: the retryDelay's end) or, with ``until=None``, only at :meth:`came_up` (the checks
      hold it). Marked again while out, the same outage goes on: its end moves to the later ``until``, and a
      hold (None) wins over any deadline.
    * :meth:`came_up` at ``now`` ends the outage (at its ``until`` if that came first).
    * :meth:`total` at ``now``: every ended outage plus the current one up to ``now``.
    * :meth:`forget` drops a member that left the group; one that comes back starts from zero.
    """

    def __init__(self) -> None:
        self._by_member: dict[str, _Outage] = {}

    @staticmethod
    def _settle(o: _Outage, now: float) -> None:
        if o.since is not None and o.until is not None and o.until <= now:
            o.closed += max(0.0, o.until - o.since)
            o.since = o.until = None

    def went_down(self, member_id: str, *, now: float, until: float | None) -> None:
        o = self._by_member.setdefault(member_id, _Outage())
        self._settle(o, now)
        if o.since is None:
            o.since, o.until = now, until
        elif o.until is not None:
            o.until = None if until is None else max(o.until, until)

    def came_up(self, member_id: str, *, now: float) -> None:
        o = self._by_member.get(member_id)
        if o is None:
            return
        self._settle(o, now)
        if o.since is not None:
            o.closed += max(0.0, now - o.since)
            o.since = o.until = None

    def total(self, member_id: str, *, now: float) -> float:
        o = self._by_member.get(member_id)
        if o is None:
            return 0.0
        self._settle(o, now)
        return o.closed + (max(0.0, now - o.since) if o.since is not None else 0.0)

    def forget(self, keep: set[str]) -> None:
        """Members not in ``keep`` left the group: their time is dropped."""
        self._by_member = {m: o for m, o in self._by_member.items() if m in keep}
