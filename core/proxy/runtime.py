"""The balancer's live state in one event loop: the group balancer, endpoints, per-member counters, the
event ring, the health re-enable timer, config apply, and the opt-in listener features that follow the
config (active health checks' decisions, the access log). The L4/L7 shells and the admin endpoint share it.

Sticky affinity (``core/balance/sticky.py``) keeps a displaced key where it went: in this process's table, or
— with ``--workers N`` — in the table every worker shares (``shared.py``), which also carries every
worker's health marks, the runtime overrides set through the admin endpoint and each worker's counters. The
shells pick through :meth:`Runtime.first_pick` and :meth:`Runtime.begin`, which first adopt what other
workers marked or the admin endpoint overrode (one read of shared memory when nothing changed).

Hot-path rules: counters are plain attributes on ``__slots__`` objects; an event is one tuple appended to
a bounded deque; JSON is built only when the admin endpoint is read.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable
from typing import Any

from balancedesk.core.balance import (
    ActiveChecks,
    AdminState,
    Downtime,
    GroupBalancer,
    Selection,
    StickyStore,
    StickyTable,
)
from balancedesk.core.model import BalancerConfig, parse_endpoint
from balancedesk.core.proxy import limits
from balancedesk.core.proxy.accesslog import AccessLogger
from balancedesk.core.proxy.shared import GEN_WORD, SharedGroup, SharedState

RESERVOIR = 512  # latency samples kept per member (a ring; p50/p99 computed when read)
EVENT_RING = 8192  # events kept for the admin stream
ROUTE_EVENTS_PER_TICK = 200  # route events recorded per 100 ms; the rest are counted in sampled_away
COUNTS_IDLE_TICKS = 20  # --workers N: an idle group writes its counters anyway every this many ticks (10 s)

# event tuple layouts (first two fields are seq and t, then kind):
#   ("route", client, attempts, member_id|None, outcome, key)   attempts: tuple[(mid, outcome, ms), ...]
#   ("health", member_id, state, until|None, reason)
#   ("admin", member_id, state)
#   ("config", version, error|None)
Event = tuple[Any, ...]


def classify(exc: BaseException) -> str:
    """A failed connect/exchange → the attempt outcome the admin stream shows."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "reset"
    if isinstance(exc, OSError) and exc.errno in (errno.ETIMEDOUT,):
        return "timeout"
    return "unreachable"


class MemberStats:
    """Counters of one member, kept across config reloads while the member exists."""

    __slots__ = ("active", "bytes_in", "bytes_out", "classes", "conns", "failures", "lat", "lat_n", "total")

    def __init__(self) -> None:
        self.active = 0
        self.total = 0
        self.failures = 0
        self.bytes_in = 0  # client → member
        self.bytes_out = 0  # member → client
        self.lat: list[float] = [0.0] * RESERVOIR
        self.lat_n = 0
        self.conns: set[Any] = set()  # live connections to this member (closed when it is disabled)
        # L7: final answers relayed from this member by class (index 0 = 1xx … 4 = 5xx; contract.STATUS_CLASSES).
        # A 101 that opens a tunnel counts; interim heads (100, 103) do not; an answer the balancer makes itself
        # (502/503/504: the member unreachable, a bad or missing answer) is never the member's.
        self.classes = [0, 0, 0, 0, 0]

    def sample(self, seconds: float) -> None:
        self.lat[self.lat_n % RESERVOIR] = seconds
        self.lat_n += 1

    def answered(self, status: int) -> None:
        """A final answer with ``status`` was relayed from this member (see ``classes``)."""
        if 100 <= status <= 599:
            self.classes[status // 100 - 1] += 1

    def percentiles(self) -> tuple[float | None, float | None]:
        n = min(self.lat_n, RESERVOIR)
        if not n:
            return None, None
        vals = sorted(self.lat[:n])
        return vals[(n - 1) // 2] * 1000.0, vals[min(n - 1, int(n * 0.99))] * 1000.0


class Runtime:
    """Everything one worker knows. Created inside the running loop."""

    def __init__(self, cfg: BalancerConfig, *, mode: str, listen: str = "", affinity_header: str | None,
                 shared: SharedState | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.mode = mode
        self.data_plane = "asyncio"  # or "native" (the C engine, native.py)
        self.listen = listen
        self.affinity_header = affinity_header
        self.started = self.loop.time()
        # the workers' shared marks and sticky table (``--workers N``), or None: this worker's own
        self.shared: SharedGroup | None = shared.group(cfg.connector_id or "") if shared is not None else None
        self.workers = shared.workers if shared is not None else 1
        self._shared_gen = -1
        self._gen_words = shared.header if shared is not None else None  # [GEN_WORD]: bumped at every mark
        self.sticky: StickyStore = self.shared if self.shared is not None else StickyTable(
            capacity=limits.STICKY_ENTRIES, idle_s=limits.STICKY_IDLE_S)
        self.balancer = GroupBalancer(cfg.connector_group, sticky=self.sticky)
        self._sticky_sweep: asyncio.TimerHandle | None = self.loop.call_later(
            limits.STICKY_SWEEP_PERIOD_S, self._sweep_sticky)
        # active health checks (listener.healthCheck; None = off): decisions here, probes in healthcheck.py
        self.checks: ActiveChecks | None = None
        self.downtime = Downtime()  # seconds each member was out (passive marks and check holds), since start
        self.access_log: AccessLogger | None = None  # listener.accessLog; the data planes add to it when set
        self.cfg = cfg
        self.version = 1
        self.server_version = 0  # following the management server: its version of ``cfg`` (set by Groups)
        self.endpoints: dict[str, tuple[str, int]] = {}
        self.stats: dict[str, MemberStats] = {}
        self._set_endpoints(cfg)
        # totals
        self.accepted = 0
        self.active = 0
        self.refused = 0
        self.failed = 0
        self.sampled_away = 0
        # events
        self.events: deque[Event] = deque(maxlen=EVENT_RING)
        self.seq = 0
        self._tick = -1
        self._tick_n = 0
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at: float | None = None
        # called with (memberID, new admin state) on admin changes, and with DRAIN when a member left the
        # group or moved to another endpoint: shells close pooled (DRAIN) or also live (DISABLED) connections
        self.on_member_change: list[Callable[[str, AdminState], None]] = []
        # called before the counters are read (admin snapshot, metrics): a data plane that counts on its own
        # (the native engine) folds its counts into ``stats``/``active``/``refused`` here
        self.refreshers: list[Callable[[], None]] = []
        self.on_config: list[Callable[[], None]] = []  # called after a new config was applied
        # runtime overrides set through the admin endpoint: memberID -> (admin state or None, weight or None);
        # they outlive config updates (re-applied after each) until reverted (DELETE …/overrides/{memberID})
        self.overrides: dict[str, tuple[AdminState | None, int | None]] = {}
        self._ticks = 0
        self._written = (-1, False)  # (accepted, anything open) at the last counters write
        if self.shared is not None:  # the snapshot shows what every worker marked, even before the next pick
            self.refreshers.append(lambda: self.adopt_shared(self.loop.time()))
            CountsTicker.of(self.shared.state, self.loop).rts.add(self)
        self._apply_checks(cfg)
        self._apply_access_log(cfg)
        self.record_config(None)

    # config -------------------------------------------------------------------------------------
    def _set_endpoints(self, cfg: BalancerConfig) -> None:
        eps = {mid: parse_endpoint(ep) for mid, ep in cfg.endpoints.items()}
        self.endpoints = {m.member_id: eps[m.member_id] for m in cfg.connector_group.members}
        for mid in self.endpoints:
            self.stats.setdefault(mid, MemberStats())
        self.admin = {v.member_id: v.admin for v in self.balancer.members()}
        self.labels = {mid: cfg.member_labels.get(mid, "") for mid in self.endpoints}  # what a person reads
        self.downtime.forget(set(self.endpoints))
        if self.shared is not None:
            self.shared.bind(self.endpoints)
            self._shared_gen = -1  # adopt the marks of the new members at the next pick

    def apply(self, cfg: BalancerConfig) -> int:
        """Apply a parsed, valid config; surviving members keep health, admin state and counters."""
        old_eps = self.endpoints
        self.balancer.apply(cfg.connector_group)
        self.cfg = cfg
        self._reapply_overrides()
        self._set_endpoints(cfg)
        self._apply_checks(cfg)
        self._apply_access_log(cfg)
        self.version += 1
        # counters of members that left stay (connections in flight still count into them; a member
        # that comes back goes on counting); snapshot and metrics show only current members
        for mid, ep in old_eps.items():
            if self.endpoints.get(mid) != ep:  # gone or moved: its pooled connections are stale
                for cb in self.on_member_change:
                    cb(mid, AdminState.DRAIN)  # connections in flight finish; pooled ones are closed
        self.record_config(None)
        self._arm_expiry()
        for applied in self.on_config:
            applied()
        return self.version

    # runtime overrides ------------------------------------------------------------------------------
    def override_admin(self, member_id: str, state: AdminState) -> None:
        """drain/disable/enable set live: kept across config updates. ``enabled`` is the config's own state, so
        it clears the state part of the override (a live weight stays)."""
        self.set_admin(member_id, state)
        _, weight = self.overrides.get(member_id, (None, None))
        self._set_override(member_id, None if state is AdminState.ENABLED else state, weight)
        self._publish_override(member_id)

    def override_weight(self, member_id: str, weight: int) -> None:
        """A live weight: kept across config updates until reverted (the config's own weight is no override)."""
        self.balancer.set_weight(member_id, weight)
        state, _ = self.overrides.get(member_id, (None, None))
        configured = next((m.weight for m in self.cfg.connector_group.members if m.member_id == member_id), None)
        self._set_override(member_id, state, None if weight == configured else weight)  # the config's: none
        self._publish_override(member_id)

    def revert(self, member_id: str) -> bool:
        """Drop ``member_id``'s override: its weight is the config's again and it is enabled. False if none."""
        got = self.overrides.pop(member_id, None)
        if got is None:
            return False
        self._publish_override(member_id)
        state, weight = got
        member = next((m for m in self.cfg.connector_group.members if m.member_id == member_id), None)
        if member is not None:
            if weight is not None:
                self.balancer.set_weight(member_id, member.weight)
            if state is not None:
                self.set_admin(member_id, AdminState.ENABLED)
        return True

    def _publish_override(self, member_id: str) -> None:
        """With ``--workers N``: the member's override (or none) written where every worker adopts it."""
        if self.shared is not None:
            state, weight = self.overrides.get(member_id, (None, None))
            self.shared.publish_override(member_id, state.value if state is not None else None, weight)

    def _adopt_overrides(self) -> None:
        """Take the overrides the admin endpoint (another worker's) set or reverted: as this worker's own."""
        assert self.shared is not None
        configured = {m.member_id: m.weight for m in self.cfg.connector_group.members}
        for mid, state_name, weight in self.shared.overrides():
            if mid not in configured:
                continue
            want = (AdminState(state_name) if state_name is not None else None, weight)
            have = self.overrides.get(mid, (None, None))
            if want == have:
                continue
            if want[1] != have[1]:
                self.balancer.set_weight(mid, want[1] if want[1] is not None else configured[mid])
            if want[0] != have[0]:
                self.set_admin(mid, want[0] or AdminState.ENABLED)
            self._set_override(mid, *want)

    def write_counts(self) -> None:
        """With ``--workers N``: this worker's counters written to its row of the shared state."""
        shared = self.shared
        if shared is None:
            return
        members = {mid: (st.active, st.total, st.failures, st.bytes_in, st.bytes_out)
                   for mid, st in self.stats.items() if mid in self.endpoints}
        totals = (self.accepted, self.active, self.refused, self.failed, self.server_version)
        shared.write_counts(members, totals, now=self.loop.time())

    def counts_tick(self) -> None:
        """:class:`CountsTicker`'s call, every ``SHARED_COUNTS_PERIOD_S``."""
        self._ticks += 1
        if self.accepted == self._written[0] and not self._written[1] and self._ticks % COUNTS_IDLE_TICKS:
            return  # idle since the last write (nothing accepted, nothing was open): nothing to fold or write
        for refresh in self.refreshers:
            refresh()
        self.write_counts()
        self._written = (self.accepted, self.active > 0)

    def _set_override(self, member_id: str, state: AdminState | None, weight: int | None) -> None:
        if state is None and weight is None:
            self.overrides.pop(member_id, None)
        else:
            self.overrides[member_id] = (state, weight)

    def _reapply_overrides(self) -> None:
        """After ``balancer.apply``: overrides of members still in the group are set again; others dropped."""
        present = {m.member_id for m in self.cfg.connector_group.members}
        for mid in [m for m in self.overrides if m not in present]:
            del self.overrides[mid]
        for mid, (state, weight) in self.overrides.items():
            if weight is not None:
                self.balancer.set_weight(mid, weight)
            if state is not None:
                self.balancer.set_admin(mid, state)

    def _apply_checks(self, cfg: BalancerConfig) -> None:
        spec = cfg.listener.health_check
        if spec is None:
            if self.checks is not None:  # turned off: only the passive rules remain
                now = self.loop.time()
                for mid in self.checks.release_all(now=now):
                    self.downtime.came_up(mid, now=now)
                    self._emit(("health", mid, "enabled", None, "health checks turned off"))
                self.checks = None
            return
        if self.checks is None:
            self.checks = ActiveChecks(spec, self.balancer)
        else:
            self.checks.apply(spec)

    def _apply_access_log(self, cfg: BalancerConfig) -> None:
        """Open, replace or close the access log as the config says (before ``on_config`` runs, so a data
        plane that keeps records of its own sees the new one there)."""
        spec = cfg.listener.access_log
        cur = self.access_log
        if cur is not None and cur.spec == spec:
            return
        if cur is not None:
            cur.close()
        self.access_log = AccessLogger(spec, self.loop) if spec is not None else None

    def check_done(self, member_id: str, *, ok: bool, detail: str, now: float) -> None:
        """A probe of ``member_id`` ended (healthcheck.py): the checks decide, flips go to the event stream."""
        checks = self.checks
        if checks is None:
            return
        flip = checks.record(member_id, ok=ok, detail=detail, now=now)
        if flip is not None:
            if flip.state == "disabled":
                self.downtime.went_down(member_id, now=now, until=None)  # held until the checks let it go
            else:
                self.downtime.came_up(member_id, now=now)
            self._emit(("health", member_id, flip.state, None, flip.reason))
            if flip.state == "enabled" and self.shared is not None:  # the checks lifted its mark: for all
                self.shared.publish(member_id, None)
            self._arm_expiry()

    def set_admin(self, member_id: str, state: AdminState) -> None:
        self.balancer.set_admin(member_id, state)
        self.admin[member_id] = state
        self._emit(("admin", member_id, state.value))
        for cb in self.on_member_change:
            cb(member_id, state)

    # decisions ----------------------------------------------------------------------------------
    def first_pick(self, key: str | None, now: float) -> str | None:
        """``GroupBalancer.first_pick`` after adopting other workers' marks: the hot path's member, or None
        (then :meth:`begin`)."""
        gen = self._gen_words
        if gen is not None and gen[GEN_WORD] != self._shared_gen:
            self.adopt_shared(now)
        return self.balancer.first_pick(key, now=now)

    def adopt_shared(self, now: float) -> None:
        """Other workers marked or cleared a member: take their deadlines (health events for the flips)."""
        shared = self.shared
        if shared is None:
            return
        self._shared_gen = shared.state.generation()
        self._adopt_overrides()
        changed = False
        for mid, until in shared.marks():
            if self.balancer.adopt_mark(mid, until, now=now):
                changed = True
                if until is not None and until > now:
                    # out since the other worker marked it (its deadline minus retryDelay), not since we saw it
                    since = min(now, max(self.started, until - self.balancer.retry_delay_s))
                    self.downtime.went_down(mid, now=since, until=until)
                    self._emit(("health", mid, "disabled", until, "connect failed (another worker)"))
                else:
                    self.downtime.came_up(mid, now=now)
                    self._emit(("health", mid, "enabled", None, "connect succeeded (another worker)"))
        if changed:
            self._arm_expiry()

    def begin(self, now: float, key: str | None, first: str | None = None) -> Selection:
        """A walk over the group's candidates. ``first``: the member ``first_pick`` chose and was tried
        already (the Selection is made only once it failed): the walk goes on from it."""
        gen = self._gen_words
        if gen is not None and gen[GEN_WORD] != self._shared_gen:
            self.adopt_shared(now)
        sel = self.balancer.begin(now=now, affinity_key=key)
        if first is not None:
            sel.tried.append(first)
        return sel

    def route_failed(self, now: float, client: Any, attempts: tuple[tuple[str, str, float], ...],
                     key: str | None) -> None:
        """Every candidate was tried and failed: counted, and recorded as a failed route."""
        self.failed += 1
        self.record_route(now, client, attempts, None, key)

    def connect_failed(self, sel: Selection, member_id: str, now: float, *, reason: str = "connect failed") -> None:
        """A member failed a connection or request: counted on it, and disabled for retryDelay (``reason`` in
        its health event: a failed connect, or after it took a request, no answer in time or a close)."""
        st = self.stats.get(member_id)
        if st is not None:
            st.failures += 1
        if self.checks is not None:
            self.checks.traffic_failed(member_id)
        if self.balancer.retry_delay_s > 0:  # out (or out longer) until the new deadline; retryDelay 0: never out
            self.downtime.went_down(member_id, now=now, until=now + self.balancer.retry_delay_s)
        if sel.failed(member_id, now=now):
            until = now + self.balancer.retry_delay_s
            self._emit(("health", member_id, "disabled", until, reason))
            self._arm_expiry()
        if self.shared is not None:  # every worker: the same deadline (none with retryDelay 0), one count
            retry = self.balancer.retry_delay_s
            self.shared.publish(member_id, now + retry if retry > 0 else None, failed=True)

    def connect_succeeded(self, sel: Selection | None, member_id: str, now: float) -> None:
        """A connect to ``member_id`` succeeded (``sel`` may be None: a first pick needs no Selection)."""
        if self.balancer.mark_succeeded(member_id, now=now):  # what ``Selection.succeeded`` does
            self.downtime.came_up(member_id, now=now)
            self._emit(("health", member_id, "enabled", None, "connect succeeded"))
            self._arm_expiry()
            if self.shared is not None:
                self.shared.publish(member_id, None)

    def _arm_expiry(self) -> None:
        when = self.balancer.next_expiry()
        if when == self._expiry_at:
            return
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._expiry_at = when
        if when is not None:
            self._expiry = self.loop.call_at(when + 0.001, self._on_expiry)

    def _on_expiry(self) -> None:
        self._expiry = None
        self._expiry_at = None
        now = self.loop.time()
        for mid in self.balancer.expire(now=now):
            self.downtime.came_up(mid, now=now)  # closed at its deadline already (Downtime's rule)
            self._emit(("health", mid, "enabled", None, "retryDelay ended"))
        self._arm_expiry()

    def _sweep_sticky(self) -> None:
        now = self.loop.time()
        self.sticky.sweep(now=now)
        self._sticky_sweep = self.loop.call_later(limits.STICKY_SWEEP_PERIOD_S, self._sweep_sticky)

    # events -------------------------------------------------------------------------------------
    def _emit(self, ev: tuple[Any, ...]) -> None:
        self.seq += 1
        self.events.append((self.seq, self.loop.time(), self.sampled_away, *ev))

    def record_config(self, error: str | None) -> None:
        self._emit(("config", self.version, error))

    def record_route(
        self,
        now: float,
        client: Any,
        attempts: tuple[tuple[str, str, float], ...],
        member_id: str | None,
        key: str | None,
    ) -> None:
        if self.route_wanted(now):
            self.add_route(now, client, attempts, member_id, key)

    def route_wanted(self, now: float) -> bool:
        """Whether a route event at ``now`` is recorded (at most ROUTE_EVENTS_PER_TICK per 100 ms); if not,
        it is counted in ``sampled_away``. Lets a caller skip building an event that would be dropped."""
        tick = int(now * 10.0)
        if tick != self._tick:
            self._tick = tick
            self._tick_n = 0
        elif self._tick_n >= ROUTE_EVENTS_PER_TICK:
            self.sampled_away += 1
            return False
        self._tick_n += 1
        return True

    def add_route(
        self,
        now: float,
        client: Any,
        attempts: tuple[tuple[str, str, float], ...],
        member_id: str | None,
        key: str | None,
    ) -> None:
        """Append a route event (after :meth:`route_wanted` said yes)."""
        self.seq += 1
        self.events.append(
            (self.seq, now, self.sampled_away, "route", client, attempts, member_id,
             "ok" if member_id is not None else "failed", key)
        )

    def close(self) -> None:
        if self.shared is not None:
            CountsTicker.of(self.shared.state, self.loop).rts.discard(self)
            self.shared.unbind()  # a group deleted or reopened: its slots go back when no runtime holds them
        if self._sticky_sweep is not None:
            self._sticky_sweep.cancel()
            self._sticky_sweep = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if self.access_log is not None:
            self.access_log.close()
            self.access_log = None


class CountsTicker:
    """One timer per worker (not one per group) that has every ``Runtime`` of a shared state write its
    counters every ``SHARED_COUNTS_PERIOD_S`` (a worker of 100 groups wakes twice a second, not 200 times)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.rts: set[Runtime] = set()
        self._timer = loop.call_later(limits.SHARED_COUNTS_PERIOD_S, self._tick)

    @staticmethod
    def of(state: SharedState, loop: asyncio.AbstractEventLoop) -> CountsTicker:
        """The worker's ticker on ``loop`` (made at its first use; kept on the worker's copy of ``state``)."""
        got = state.ticker
        if not isinstance(got, CountsTicker) or got.loop is not loop:
            got = CountsTicker(loop)
            state.ticker = got
        return got

    def _tick(self) -> None:
        self._timer = self.loop.call_later(limits.SHARED_COUNTS_PERIOD_S, self._tick)
        for rt in list(self.rts):
            rt.counts_tick()
