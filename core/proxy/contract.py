"""What a balancer says, defined once: its snapshot, its events and its admin commands as typed values.

The balancer builds these and serialises each with its one ``to_json`` (``core.proxy.admin``); the GUI
(``gui/live/admin.py``) and anything else that reads a balancer parses each with its one ``from_json`` /
:func:`parse_event`. The JSON shapes are the tables of docs/ARCHITECTURE.md, "Admin endpoint".

* :class:`MemberSnap`, :class:`Snapshot` — ``GET /admin/snapshot`` (``/groups/{id}/snapshot``).
* :class:`RouteEvent`, :class:`HealthEvent`, :class:`AdminEvent`, :class:`ConfigEvent` — ``/admin/events``;
  the runtime keeps them as tuples in its ring (cheap on the hot path): :func:`event_from_ring` is the one
  place that reads the ring's layout (:data:`RING_LAYOUT`).
* :class:`SetState`, :class:`SetWeight`, :class:`RevertOverride` — the admin commands: ``path`` and ``body``
  for a client, :func:`parse_command` for the endpoint.

Imports: the standard library only (the GUI and the balancer both import it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MEMBER_STATES = ("enabled", "drain", "disabled")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")  # MemberSnap.status_classes' keys, in this order


def status_class(status: int) -> str | None:
    """An HTTP status → its class key (``404`` → ``"4xx"``); None outside 100..599."""
    return f"{status // 100}xx" if 100 <= status <= 599 else None


def _classes(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {k: int(value.get(k) or 0) for k in STATUS_CLASSES if k in value}


def _f(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _opt(value: Any) -> float | None:
    return None if value is None else _f(value)


def _check(value: Any) -> dict[str, Any]:
    """The snapshot's ``check`` object of a member (None when checks are off) → MemberSnap fields."""
    if not isinstance(value, Mapping):
        return {}
    state = {"check_state": str(value.get("state") or "up"), "check_at": _opt(value.get("at")),
             "check_passes": int(value.get("passes") or 0), "check_fails": int(value.get("fails") or 0)}
    if value.get("ok") is None:
        return state
    return {**state, "check_ok": bool(value.get("ok")), "check_detail": str(value.get("detail") or ""),
            "check_ago_s": _opt(value.get("ago_s"))}


@dataclass(frozen=True)
class MemberSnap:
    """One member as the running balancer sees it."""

    member_id: str
    endpoint: str = ""
    sequence: int = 0
    weight: int = 1
    admin: str = "enabled"  # enabled / drain / disabled
    health: str = "up"  # up / disabled
    disabled_until: float | None = None
    retry_in_s: float | None = None
    active: int = 0
    total: int = 0
    failures: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    configured_share: float = 0.0
    actual_share: float = 0.0
    # active health checks (all None when the group has none, or before the first result)
    check_ok: bool | None = None
    check_detail: str | None = None
    check_ago_s: float | None = None
    check_state: str | None = None  # "up"/"down" while checks are on (None: off)
    check_at: float | None = None
    check_passes: int = 0
    check_fails: int = 0
    failures_all_workers: int | None = None  # --workers N: failures counted by every worker (None: one worker)
    label: str = ""  # the member connector's label ("" when the config names none)
    # L7 only: final answers relayed from this member by class ("1xx".."5xx"; a 101 that opens a tunnel counts,
    # interim 100/103 heads do not). A 502/503/504 the balancer makes itself (member unreachable, a bad or
    # missing answer) is not the member's answer and is never counted here. Empty for tcp groups.
    status_classes: Mapping[str, int] = field(default_factory=dict)
    down_total_s: float = 0.0  # seconds out (health-disabled or check-down) since start, a current outage included
    queued: int = 0  # requests waiting for this member (an engine with queues: HAProxy's qcur)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MemberSnap:
        return cls(
            member_id=str(d.get("memberID", "?")),
            endpoint=str(d.get("endpoint") or ""),
            sequence=int(d.get("sequence") or 0),
            weight=int(d.get("weight") or 1),
            admin=str(d.get("admin") or "enabled"),
            health=str(d.get("health") or "up"),
            disabled_until=_opt(d.get("disabledUntil")),
            retry_in_s=_opt(d.get("retryIn_s")),
            active=int(d.get("active") or 0),
            total=int(d.get("total") or 0),
            failures=int(d.get("failures") or 0),
            bytes_in=int(d.get("bytesIn") or 0),
            bytes_out=int(d.get("bytesOut") or 0),
            latency_p50_ms=_opt(d.get("latencyP50_ms")),
            latency_p99_ms=_opt(d.get("latencyP99_ms")),
            configured_share=_f(d.get("configuredShare")),
            actual_share=_f(d.get("actualShare")),
            **_check(d.get("check")),
            failures_all_workers=None if d.get("failuresAllWorkers") is None else int(d["failuresAllWorkers"]),
            label=str(d.get("label") or ""),
            status_classes=_classes(d.get("statusClasses")),
            down_total_s=_f(d.get("downTotal_s")),
            queued=int(d.get("queued") or 0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "memberID": self.member_id, "label": self.label, "endpoint": self.endpoint, "sequence": self.sequence,
            "weight": self.weight, "admin": self.admin, "health": self.health,
            "disabledUntil": self.disabled_until, "retryIn_s": self.retry_in_s, "active": self.active,
            "total": self.total, "failures": self.failures, "failuresAllWorkers": self.failures_all_workers,
            "bytesIn": self.bytes_in, "bytesOut": self.bytes_out,
            "latencyP50_ms": self.latency_p50_ms, "latencyP99_ms": self.latency_p99_ms,
            "configuredShare": self.configured_share, "actualShare": self.actual_share,
            "statusClasses": {k: int(self.status_classes[k]) for k in STATUS_CLASSES if k in self.status_classes},
            "downTotal_s": round(self.down_total_s, 3), "queued": self.queued,
            "check": None if self.check_state is None else {
                "state": self.check_state, "ok": self.check_ok, "detail": self.check_detail,
                "at": self.check_at, "ago_s": self.check_ago_s, "passes": self.check_passes,
                "fails": self.check_fails},
        }

    def check_text(self, elapsed: float = 0.0) -> str:
        """The last health check as a person reads it: ``check ok 0.3 s ago`` / ``check failed: refused``
        (``elapsed``: seconds since the snapshot arrived); empty without checks."""
        if self.check_ok is None or self.check_ago_s is None:
            return ""
        if self.check_ok:
            return f"check ok {self.check_ago_s + elapsed:.1f} s ago"
        return f"check failed: {self.check_detail or '?'}"

    @property
    def state(self) -> str:
        """What a person reads: ``disabled`` (health, with a countdown) wins over the admin state."""
        if self.health == "disabled":
            return "down"
        if self.admin == "drain":
            return "draining"
        if self.admin == "disabled":
            return "disabled"
        return "up"


@dataclass(frozen=True)
class Snapshot:
    version: int
    group: Mapping[str, Any]
    mode: str
    listen: str
    affinity_header: str | None
    now: float
    uptime_s: float
    members: tuple[MemberSnap, ...]
    totals: Mapping[str, int] = field(default_factory=dict)
    data_plane: str = ""  # "native" (the C engine) or "asyncio"; "" from a balancer that does not say
    listener: Mapping[str, Any] = field(default_factory=dict)  # the config's listener object
    access_log: Mapping[str, Any] | None = None
    overrides: tuple[Mapping[str, Any], ...] = ()  # core.fleet.Override entries (JSON)
    server_version: int | None = None  # a balancer following the management server: the version applied
    control_plane: Mapping[str, Any] | None = None  # following: {"state", "since", "lastError", …}
    sticky: Mapping[str, Any] | None = None  # the sticky affinity table's counts (None: no affinity)
    shared: Mapping[str, Any] | None = None  # what the workers of the process share (core.proxy.shared.shared_json)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Snapshot:
        return cls(
            version=int(d.get("version") or 0),
            group=dict(d.get("group") or {}),
            mode=str(d.get("mode") or "tcp"),
            listen=str(d.get("listen") or ""),
            affinity_header=d.get("affinityHeader"),
            now=_f(d.get("now")),
            uptime_s=_f(d.get("uptime_s")),
            members=tuple(MemberSnap.from_json(m) for m in d.get("members") or ()),
            totals={str(k): int(v or 0) for k, v in dict(d.get("totals") or {}).items()},
            data_plane=str(d.get("dataPlane") or ""),
            listener=dict(d.get("listener") or {}),
            access_log=d.get("accessLog"),
            overrides=tuple(dict(o) for o in d.get("overrides") or ()),
            server_version=None if d.get("serverVersion") is None else int(d["serverVersion"]),
            control_plane=d.get("controlPlane"),
            sticky=d.get("sticky"),
            shared=d.get("shared"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version, "group": dict(self.group), "mode": self.mode, "dataPlane": self.data_plane,
            "listen": self.listen, "affinityHeader": self.affinity_header, "listener": dict(self.listener),
            "accessLog": self.access_log, "sticky": self.sticky, "now": self.now, "uptime_s": self.uptime_s,
            "members": [m.to_json() for m in self.members], "overrides": [dict(o) for o in self.overrides],
            "totals": dict(self.totals), "shared": self.shared,
        }
        if self.server_version is not None or self.control_plane is not None:
            out["serverVersion"] = self.server_version
            out["controlPlane"] = self.control_plane
        return out

    def member(self, member_id: str) -> MemberSnap | None:
        return next((m for m in self.members if m.member_id == member_id), None)




# events --------------------------------------------------------------------------------------------------
# The runtime's ring holds tuples (seq, t, sampled_away, kind, …); the fields after kind, per kind:
RING_LAYOUT = {
    "route": ("client", "attempts", "memberID", "outcome", "key"),  # attempts: ((memberID, outcome, ms), …)
    "health": ("memberID", "state", "until", "reason"),
    "admin": ("memberID", "state"),
    "config": ("version", "error"),
}


@dataclass(frozen=True)
class Attempt:
    member_id: str
    outcome: str  # ok / refused / timeout / reset / unreachable / …
    ms: float


@dataclass(frozen=True)
class RouteEvent:
    seq: int
    t: float
    client: str | None
    attempts: tuple[Attempt, ...]
    member_id: str | None
    outcome: str  # ok / failed
    key: str | None
    kind: str = "route"

    @property
    def loud(self) -> bool:
        """A route a person should see: it failed, or an attempt before the chosen one failed."""
        return self.outcome != "ok" or len(self.attempts) != 1 or self.attempts[0].outcome != "ok"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "kind": "route", "client": self.client,
                "attempts": [{"memberID": a.member_id, "outcome": a.outcome, "ms": round(a.ms, 3)}
                             for a in self.attempts],
                "memberID": self.member_id, "outcome": self.outcome, "key": self.key}


@dataclass(frozen=True)
class HealthEvent:
    seq: int
    t: float
    member_id: str
    state: str  # disabled / enabled
    until: float | None
    reason: str
    kind: str = "health"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "kind": "health", "memberID": self.member_id,
                "state": self.state, "until": self.until, "reason": self.reason}


@dataclass(frozen=True)
class AdminEvent:
    seq: int
    t: float
    member_id: str
    state: str
    kind: str = "admin"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "t": self.t, "kind": "admin", "memberID": self.member_id, "state": self.state}


@dataclass(frozen=True)
class ConfigEvent:
    seq: int
    t: float
    version: int
    error: str | None = None
    kind: str = "config"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "t": self.t, "kind": "config", "version": self.version}
        if self.error is not None:
            out["error"] = self.error
        return out


Event = RouteEvent | HealthEvent | AdminEvent | ConfigEvent


def event_from_ring(ev: tuple[Any, ...], peer: Any = None) -> Event:
    """A ring tuple → its typed event (``peer`` formats a route's client address; default ``str``)."""
    seq, t, kind = int(ev[0]), float(ev[1]), ev[3]
    if kind == "route":
        client, attempts, mid, outcome, key = ev[4:9]
        return RouteEvent(seq, t, peer(client) if peer is not None else (None if client is None else str(client)),
                          tuple(Attempt(a, o, float(ms)) for a, o, ms in attempts), mid, outcome, key)
    if kind == "health":
        return HealthEvent(seq, t, ev[4], ev[5], ev[6], ev[7])
    if kind == "admin":
        return AdminEvent(seq, t, ev[4], ev[5])
    if kind == "config":
        return ConfigEvent(seq, t, int(ev[4]), ev[5])
    raise ValueError(f"unknown event kind {kind!r}")


def ring_route_loud(ev: tuple[Any, ...]) -> bool:
    """:attr:`RouteEvent.loud` of a ring tuple, without building the event (the newest-events walk)."""
    attempts, outcome = ev[5], ev[7]
    return bool(outcome != "ok" or len(attempts) != 1 or attempts[0][1] != "ok")


def parse_event(d: Mapping[str, Any]) -> Event:
    """An event's JSON → its typed event (ValueError for an unknown kind)."""
    seq, t, kind = int(d.get("seq") or 0), _f(d.get("t")), d.get("kind")
    if kind == "route":
        return RouteEvent(seq, t, d.get("client"),
                          tuple(Attempt(str(a.get("memberID")), str(a.get("outcome")), _f(a.get("ms")))
                                for a in d.get("attempts") or ()),
                          d.get("memberID"), str(d.get("outcome") or ""), d.get("key"))
    if kind == "health":
        return HealthEvent(seq, t, str(d.get("memberID")), str(d.get("state")), _opt(d.get("until")),
                           str(d.get("reason") or ""))
    if kind == "admin":
        return AdminEvent(seq, t, str(d.get("memberID")), str(d.get("state")))
    if kind == "config":
        return ConfigEvent(seq, t, int(d.get("version") or 0), d.get("error"))
    raise ValueError(f"unknown event kind {kind!r}")


# admin commands ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetState:
    """``POST …/members/{memberID}/state`` ``{"state": …}``: drain, disable or enable (a runtime override)."""

    member_id: str
    state: str

    @property
    def method(self) -> str:
        return "POST"

    @property
    def path(self) -> str:
        return f"members/{self.member_id}/state"

    def body(self) -> dict[str, Any] | None:
        return {"state": self.state}


@dataclass(frozen=True)
class SetWeight:
    """``POST …/members/{memberID}/weight`` ``{"weight": n}``: a live weight (a runtime override)."""

    member_id: str
    weight: int

    @property
    def method(self) -> str:
        return "POST"

    @property
    def path(self) -> str:
        return f"members/{self.member_id}/weight"

    def body(self) -> dict[str, Any] | None:
        return {"weight": self.weight}


@dataclass(frozen=True)
class RevertOverride:
    """``DELETE …/overrides/{memberID}``: the member's config weight and state again."""

    member_id: str

    @property
    def method(self) -> str:
        return "DELETE"

    @property
    def path(self) -> str:
        return f"overrides/{self.member_id}"

    def body(self) -> dict[str, Any] | None:
        return None


Command = SetState | SetWeight | RevertOverride


class CommandError(ValueError):
    """A command the endpoint refuses: ``status`` (400/405), the ``field`` it names, a message."""

    def __init__(self, status: int, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field_name


def parse_command(method: str, segments: list[str], body: Any, *, weight_max: int) -> Command | None:
    """``segments`` after ``/admin/`` (e.g. ``["members", "m1", "weight"]``) → a command; None if these are not
    a command's; :class:`CommandError` for a wrong method or body."""
    if len(segments) == 3 and segments[0] == "members" and segments[2] in ("state", "weight"):
        if method != "POST":
            raise CommandError(405, "use POST")
        mid = segments[1]
        if segments[2] == "state":
            state = body.get("state") if isinstance(body, dict) else None
            if state not in MEMBER_STATES:
                raise CommandError(400, 'state must be "enabled", "drain" or "disabled"', "state")
            return SetState(mid, str(state))
        w = body.get("weight") if isinstance(body, dict) else None
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= weight_max:
            raise CommandError(400, f"weight must be a whole number from 1 to {weight_max}", "weight")
        return SetWeight(mid, w)
    if len(segments) == 2 and segments[0] == "overrides":
        if method != "DELETE":
            raise CommandError(405, "use DELETE")
        return RevertOverride(segments[1])
    return None
