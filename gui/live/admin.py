"""The balancer's admin endpoint as async calls (httpx) and frozen values.

Contract: docs/ARCHITECTURE.md, "Admin endpoint". Everything here is plain Python (no Qt) so the bench
and tests can use it without a window. ``mono_s`` values are the balancer's clock; a viewer computes
countdowns from ``Snapshot.now`` and the ``retryIn_s`` of each member, never from its own clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


class AdminUnavailable(Exception):
    """The admin endpoint could not be reached (connection refused, timeout, process gone)."""


class AdminError(Exception):
    """The admin endpoint answered with an error status; ``problems`` as in the management API."""

    def __init__(self, status: int, message: str, problems: Sequence[Mapping[str, Any]] = ()) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__(f"{status}: {message}")


def _f(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _opt(value: Any) -> float | None:
    return None if value is None else _f(value)


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
        )

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
        )

    def member(self, member_id: str) -> MemberSnap | None:
        return next((m for m in self.members if m.member_id == member_id), None)


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


class AdminClient:
    """Async client for one balancer's admin endpoint: ``AdminClient("http://h:p", token)``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise AdminUnavailable(f"{self.base_url}: {exc.__class__.__name__} {exc}".strip()) from exc
        if resp.status_code >= 400:
            message, problems = resp.text[:300], []
            try:
                body = resp.json()
                err = body.get("error", body) if isinstance(body, dict) else body
                if isinstance(err, dict):
                    msg = err.get("message")
                    message = str(msg.get("value") if isinstance(msg, dict) else msg or message)
                    problems = list(err.get("problems") or body.get("problems") or [])
            except ValueError:
                pass
            raise AdminError(resp.status_code, message, problems)
        try:
            return resp.json()
        except ValueError as exc:
            raise AdminError(resp.status_code, f"not JSON: {resp.text[:200]!r}") from exc

    async def snapshot(self) -> Snapshot:
        return Snapshot.from_json(await self._call("GET", "/admin/snapshot"))

    async def events(self, after: int | None, limit: int = 500, *, newest: bool = False) -> EventBatch:
        """Events after ``after`` (None: from the start). ``newest``: every non-route event, but only the
        newest ``limit`` route events (and ``limit`` failed ones) — what a sampling viewer draws."""
        params: dict[str, int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        if newest:
            params["newest"] = 1
        d = await self._call("GET", "/admin/events", params=params)
        return EventBatch(
            cursor=int(d.get("cursor") or 0),
            events=tuple(d.get("events") or ()),
            dropped=int(d.get("dropped") or 0),
            skipped=int(d.get("skipped") or 0),
            newest="skipped" in d,
        )

    async def set_state(self, member_id: str, state: str) -> Any:
        return await self._call("POST", f"/admin/members/{member_id}/state", json={"state": state})

    async def set_weight(self, member_id: str, weight: int) -> Any:
        return await self._call("POST", f"/admin/members/{member_id}/weight", json={"weight": weight})

    async def put_config(self, config: Mapping[str, Any]) -> int:
        d = await self._call("PUT", "/admin/config", json=dict(config))
        return int(d.get("version") or 0)
