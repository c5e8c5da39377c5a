"""The control plane's calls of :class:`~balancedesk.core.client.MgmtClient` (a mixin) and the values they return.

A balancer holds a balancer token (``MgmtClient(url, token="bdt_…")``) and may call only
``pool_groups``, ``pool_group``, ``changes`` and ``heartbeat``, for its token's pool. An Administrator's client
may call all of them (any pool) plus the balancer list and the token calls. The contract is in
docs/ARCHITECTURE.md, "The control plane".

Following a pool (what ``balancedesk balance --api URL --pool P`` does)::

    groups = await client.pool_groups(P)                     # every group, and the cursor to follow from
    while True:
        answer = await client.changes(P, groups.cursor, wait=25, store_id=groups.store_id)
        if answer.resync:                                    # cursor unusable: re-read everything
            groups = await client.pool_groups(P)             # (without If-None-Match)
            continue
        for change in answer.changes: ...                    # CHANGED: pool_group(P, id); GONE: close it
        cursor = answer.cursor
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from balancedesk.core.fleet import AppliedGroup, Heartbeat, Override
from balancedesk.core.model import BalancerConfig, RuleError, parse_balancer_config


@dataclass(frozen=True)
class PoolGroup:
    """One group as a pool's balancers serve it: ``version`` rises whenever ``config`` changes."""

    connector_id: str
    version: int
    rev: int
    config: BalancerConfig


@dataclass(frozen=True)
class PoolGroups:
    pool: str
    store_id: str
    cursor: int
    groups: tuple[PoolGroup, ...]
    etag: str


@dataclass(frozen=True)
class FeedChange:
    connector_id: str
    version: int
    state: str  # fleet.CHANGED or fleet.GONE


@dataclass(frozen=True)
class FeedAnswer:
    store_id: str
    cursor: int
    resync: bool
    more: bool
    changes: tuple[FeedChange, ...]


@dataclass(frozen=True)
class HeartbeatAnswer:
    pool: str
    state: str
    heartbeat_interval: float
    lost_after: float


@dataclass(frozen=True)
class BalancerInfo:
    instance_id: str
    pool: str
    host: str
    admin_url: str | None
    has_admin_token: bool
    data_plane: str
    workers: int
    started_at: float
    groups: tuple[AppliedGroup, ...]
    overrides: tuple[Override, ...]
    state: str  # fleet.ALIVE or fleet.LOST
    last_seen: float  # Unix time
    last_seen_ago_s: float
    token_id: str


@dataclass(frozen=True)
class BalancerAdmin:
    instance_id: str
    admin_url: str | None
    admin_token: str | None


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    pool: str
    label: str
    created: float
    revoked: float | None


def _token_info(raw: Mapping[str, Any]) -> TokenInfo:
    return TokenInfo(str(raw["tokenID"]), str(raw["pool"]), str(raw["label"]), float(raw["created"]),
                     None if raw.get("revoked") is None else float(raw["revoked"]))


def _balancer(raw: Mapping[str, Any]) -> BalancerInfo:
    return BalancerInfo(
        instance_id=str(raw["instanceID"]),
        pool=str(raw["pool"]),
        host=str(raw["host"]),
        admin_url=raw.get("adminURL"),
        has_admin_token=bool(raw["hasAdminToken"]),
        data_plane=str(raw["dataPlane"]),
        workers=int(raw["workers"]),
        started_at=float(raw["startedAt"]),
        groups=tuple(AppliedGroup.model_validate(g) for g in raw["groups"]),
        overrides=tuple(Override.model_validate(o) for o in raw["overrides"]),
        state=str(raw["state"]),
        last_seen=float(raw["lastSeen"]),
        last_seen_ago_s=float(raw["lastSeenAgo_s"]),
        token_id=str(raw["tokenID"]),
    )


class FleetCalls:
    """Mixed into MgmtClient, which supplies the plumbing below."""

    timeout: float

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        if_match: str | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        raise NotImplementedError

    def _json(self, response: httpx.Response) -> Any:
        raise NotImplementedError

    def _pool_group(self, raw: Mapping[str, Any]) -> PoolGroup:
        from balancedesk.core.client import ApiError

        try:
            config = parse_balancer_config(raw["config"])
        except RuleError as exc:
            raise ApiError(200, "", f"The server sent a group config this client cannot read: {exc}",
                           exc.problems) from exc
        return PoolGroup(str(raw["connectorID"]), int(raw["version"]), int(raw["rev"]), config)

    # -- what a balancer reads and reports ----------------------------------------------------------------

    async def pool_groups(self, pool: str, *, if_none_match: str | None = None) -> PoolGroups | None:
        """Every group of ``pool`` with its config; None if ``if_none_match`` is still current (304)."""
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        r = await self._request("GET", f"/api/admin/pools/{pool}/groups", headers=headers)
        if r.status_code == 304:
            return None
        body = self._json(r)
        return PoolGroups(str(body["pool"]), str(body["storeID"]), int(body["cursor"]),
                          tuple(self._pool_group(g) for g in body["groups"]), str(r.headers.get("ETag", "")))

    async def pool_group(
        self, pool: str, connector_id: str, *, if_none_match: str | None = None
    ) -> tuple[PoolGroup, str] | None:
        """One group of ``pool`` and its ETag; None on 304. ``ApiError`` 404 if the pool does not serve it."""
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        r = await self._request("GET", f"/api/admin/pools/{pool}/groups/{connector_id}", headers=headers)
        if r.status_code == 304:
            return None
        return self._pool_group(self._json(r)), str(r.headers.get("ETag", ""))

    async def changes(
        self, pool: str, cursor: int, *, wait: float = 0.0, store_id: str | None = None
    ) -> FeedAnswer:
        """The pool's changes after ``cursor``, waiting up to ``wait`` seconds for one (long poll)."""
        params = {"cursor": str(cursor), "wait": repr(float(wait))}
        if store_id is not None:
            params["store"] = store_id
        r = await self._request("GET", f"/api/admin/pools/{pool}/changes", params=params,
                                read_timeout=wait + self.timeout)
        body = self._json(r)
        return FeedAnswer(
            str(body["storeID"]), int(body["cursor"]), bool(body["resync"]), bool(body["more"]),
            tuple(FeedChange(str(c["connectorID"]), int(c["version"]), str(c["state"])) for c in body["changes"]),
        )

    async def heartbeat(self, heartbeat: Heartbeat) -> HeartbeatAnswer:
        body = self._json(await self._request("POST", "/api/admin/balancers/heartbeat", json=heartbeat.to_json()))
        return HeartbeatAnswer(str(body["pool"]), str(body["state"]), float(body["heartbeatInterval"]),
                               float(body["lostAfter"]))

    # -- Administrators: the fleet and its tokens ---------------------------------------------------------

    async def list_balancers(self, *, pool: str | None = None) -> list[BalancerInfo]:
        params = {"pool": pool} if pool is not None else None
        body = self._json(await self._request("GET", "/api/admin/balancers", params=params))
        return [_balancer(b) for b in body["balancers"]]

    async def balancer_admin(self, instance_id: str) -> BalancerAdmin:
        """Where a balancer's admin endpoint is, and its bearer token (Administrators only)."""
        body = self._json(await self._request("GET", f"/api/admin/balancers/{instance_id}/admin"))
        return BalancerAdmin(str(body["instanceID"]), body.get("adminURL"), body.get("adminToken"))

    async def forget_balancer(self, instance_id: str) -> None:
        await self._request("DELETE", f"/api/admin/balancers/{instance_id}")

    async def create_token(self, pool: str, *, label: str = "") -> tuple[str, TokenInfo]:
        """A new balancer token for ``pool``: the token itself (shown this once) and its listing entry."""
        body = self._json(await self._request("POST", "/api/admin/tokens", json={"pool": pool, "label": label}))
        return str(body["token"]), _token_info(body)

    async def list_tokens(self) -> list[TokenInfo]:
        body = self._json(await self._request("GET", "/api/admin/tokens"))
        return [_token_info(t) for t in body["tokens"]]

    async def revoke_token(self, token_id: str) -> TokenInfo:
        return _token_info(self._json(await self._request("DELETE", f"/api/admin/tokens/{token_id}")))
