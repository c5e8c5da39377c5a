"""The control plane's routes: what a pool's balancers read and report, and what Administrators manage.

Balancer-facing (a balancer token of the pool, or an Administrator):
  ``GET  /api/admin/pools/{pool}/groups``              the pool's groups with their configs (ETag, 304)
  ``GET  /api/admin/pools/{pool}/groups/{id}``         one group of the pool (ETag, 304; 404 if not in it)
  ``GET  /api/admin/pools/{pool}/changes?cursor=N&wait=S&store=ID``   the change feed (long poll)
  ``POST /api/admin/balancers/heartbeat``              a balancer token only
Administrators only:
  ``GET /api/admin/balancers[?pool=P]``, ``GET /api/admin/balancers/{instanceID}/admin``,
  ``DELETE /api/admin/balancers/{instanceID}``, ``GET|POST /api/admin/tokens``, ``DELETE /api/admin/tokens/{id}``

docs/ARCHITECTURE.md ("The control plane") gives every payload, status code and the cursor rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from balancedesk.core.fleet import MAX_FEED_CHANGES, MAX_FEED_WAIT_S, MAX_HEARTBEAT_BYTES, check_pool, parse_heartbeat
from balancedesk.core.mgmt import fleet, schemas, tokens
from balancedesk.core.mgmt.conditional import not_modified
from balancedesk.core.mgmt.errors import ApiFailure, rule_failure
from balancedesk.core.mgmt.login import Authenticator, unauthorized
from balancedesk.core.mgmt.registry import Registry, RegistryFull
from balancedesk.core.mgmt.service import Caller, Service
from balancedesk.core.mgmt.shared_registry import SharedRegistry
from balancedesk.core.mgmt.store import Store
from balancedesk.core.mgmt.throttle import LoginThrottle, Refused, source_key
from balancedesk.core.model import Problem, RuleError
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

MAX_FEED_WAITERS = 1000  # long polls held at once; more answer 503 with Retry-After
TOKEN_ONLY = (
    "A balancer token may only read its pool's groups (/api/admin/pools/{pool}/…), follow its change feed "
    "and send heartbeats; use an Administrator's credentials for anything else."
)

Json = Callable[..., Response]
Once = Callable[[Request, Caller, Any, Callable[[], Response]], Response]  # app.py: a write applied once per key
Authenticate = Callable[[Request], Awaitable[Caller]]


class TokenAuth:
    """``Authorization: Bearer bdt_…`` → the token's :class:`Caller` (401 if unknown or revoked). Every check is
    an attempt of the login throttle, keyed by the token's ID as the user: tokens cannot be guessed faster
    than passwords (429 with ``Retry-After`` while it holds a source back)."""

    def __init__(self, store: Store, throttle: LoginThrottle, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.throttle = throttle
        self.clock = clock

    @staticmethod
    def bearer(request: Request) -> str | None:
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None

    def __call__(self, request: Request, value: str) -> Caller:
        source = source_key(request.client.host if request.client else "?")
        verdict = self.throttle.admit(f"token:{tokens.token_id_of(value)}", source, self.clock())
        if isinstance(verdict, Refused):
            wait = max(1, math.ceil(verdict.wait_s))
            raise ApiFailure(429, f"Too many failed token checks from your address; try again in {wait} s.",
                             [Problem("Authorization", "token checks are slowed")], headers={"Retry-After": str(wait)})
        row = tokens.verify(self.store, value)
        if row is None:
            self.throttle.failed(verdict, self.clock())
            raise ApiFailure(401, "The balancer token is wrong or was revoked.",
                             headers={"WWW-Authenticate": 'Bearer realm="balancedesk"'})
        self.throttle.succeeded(verdict, self.clock())
        return Caller(f"token:{row.token_id}", False, pool=row.pool, token_id=row.token_id)


class NoTokens:
    """The authenticator of every route but the control plane's: HTTP Basic logins (``logins``); a balancer
    token is checked (401 with the Basic challenge if wrong) and refused with 403 — it may not use the route."""

    def __init__(self, logins: Authenticator, token_auth: TokenAuth) -> None:
        self.logins = logins
        self.tokens = token_auth

    async def __call__(self, request: Request) -> Caller:
        value = self.tokens.bearer(request)
        if value is None:
            return await self.logins(request)
        try:
            self.tokens(request, value)
        except ApiFailure as exc:
            if exc.status != 401:
                raise
            raise unauthorized("Only HTTP Basic authentication is supported here.") from None
        raise ApiFailure(403, TOKEN_ONLY)


def _pool_reader(caller: Caller, pool: str) -> str:
    try:
        check_pool(pool)
    except RuleError as exc:
        raise rule_failure(exc.problems) from exc
    if caller.pool is not None and caller.pool != pool:
        raise ApiFailure(403, f"This balancer token serves pool {caller.pool}, not {pool}.")
    if caller.pool is None and not caller.is_admin:
        raise ApiFailure(403, "Reading a pool needs an Administrator or a balancer token of that pool.")
    return pool


def _admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise ApiFailure(403, "This needs the Administrator role.")


def register(
    app: FastAPI,
    *,
    service: Service,
    users: Authenticate,
    token_auth: TokenAuth,
    body: Callable[[Request], Awaitable[Any]],
    json: Json,
    once: Once,
    heartbeat_interval: float,
) -> None:
    """Add the control plane's routes to ``app`` (``users`` is the Basic authenticator of the other routes;
    it refuses tokens with 403)."""
    store = service.store
    wakeup = fleet.Wakeup()
    service.on_change.append(wakeup.wake)
    # one registry per server, or — several servers on one database — the shared one (its clock: wall time)
    registry = SharedRegistry(store, interval_s=heartbeat_interval) if store.shared else Registry(
        interval_s=heartbeat_interval)
    clock = time.time if store.shared else time.monotonic
    app.state.registry = registry
    waiting = [0]

    async def anyone(request: Request) -> Caller:
        value = token_auth.bearer(request)
        return token_auth(request, value) if value is not None else await users(request)

    async def administrator(request: Request) -> Caller:
        caller = await users(request)
        _admin(caller)
        return caller

    pools = "/api/admin/pools/{pool}"

    @app.get(f"{pools}/groups", tags=["fleet"], responses=schemas.errors(400, 401, 403))
    async def pool_groups(request: Request, pool: str) -> Response:
        _pool_reader(await anyone(request), pool)
        etag = fleet.pool_etag(store, pool)
        return not_modified(request, etag) or json(fleet.pool_document(store, pool), etag=etag)

    @app.get(f"{pools}/groups/{{connector_id}}", tags=["fleet"], responses=schemas.errors(400, 401, 403, 404))
    async def pool_group(request: Request, pool: str, connector_id: str) -> Response:
        _pool_reader(await anyone(request), pool)
        found = fleet.group_in_pool(store, pool, connector_id)
        if found is None:
            raise ApiFailure(404, f"Pool {pool} serves no group with ID {connector_id}.")
        doc, etag = found
        return not_modified(request, etag) or json(doc, etag=etag)

    @app.get(f"{pools}/changes", tags=["fleet"], responses=schemas.errors(400, 401, 403, 503))
    async def pool_changes(
        request: Request,
        pool: str,
        cursor: int = Query(ge=0, le=2**62),
        wait: float = Query(0.0, ge=0.0, le=MAX_FEED_WAIT_S),
        store_id: str | None = Query(None, alias="store", max_length=64),
    ) -> Response:
        _pool_reader(await anyone(request), pool)
        deadline = asyncio.get_running_loop().time() + wait
        if waiting[0] >= MAX_FEED_WAITERS and wait > 0:
            raise ApiFailure(503, f"{MAX_FEED_WAITERS} followers are waiting already; retry.",
                             headers={"Retry-After": "1"})
        waiting[0] += 1
        if store.shared:  # commits of the other servers wake our followers too (LISTEN/NOTIFY)
            loop = asyncio.get_running_loop()

            def wake_here() -> None:
                loop.call_soon_threadsafe(wakeup.wake)

            store.listen(wake_here)
        try:
            while True:
                event = wakeup.waiter()  # before reading: a commit in between still wakes us
                answer = fleet.feed_answer(store, pool, cursor, store_id, MAX_FEED_CHANGES)
                left = deadline - asyncio.get_running_loop().time()
                if answer["changes"] or answer["resync"] or left <= 0:
                    return json(answer)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), left)
        finally:
            waiting[0] -= 1

    @app.post(
        "/api/admin/balancers/heartbeat",
        tags=["fleet"],
        openapi_extra=schemas.body(schemas.HEARTBEAT_BODY),
        responses=schemas.errors(400, 401, 403, 409, 413, 503),
    )
    async def heartbeat(request: Request) -> Response:
        value = token_auth.bearer(request)
        if value is None:
            await users(request)
            raise ApiFailure(403, "Heartbeats are sent with a balancer token (balancedesk tokens add --pool P).")
        caller = token_auth(request, value)
        if len(await request.body()) > MAX_HEARTBEAT_BYTES:
            raise ApiFailure(413, f"A heartbeat is at most {MAX_HEARTBEAT_BYTES} bytes.")
        try:
            hb = parse_heartbeat(await body(request))
        except RuleError as exc:
            raise rule_failure(exc.problems, "The heartbeat breaks") from exc
        assert caller.pool is not None and caller.token_id is not None
        try:
            entry = registry.heartbeat(hb, pool=caller.pool, token_id=caller.token_id, now=clock(),
                                       wall=time.time())
        except PermissionError as exc:
            raise ApiFailure(409, str(exc), [Problem("instanceID", "is used by another token")]) from exc
        except RegistryFull as exc:
            raise ApiFailure(503, str(exc), headers={"Retry-After": str(math.ceil(registry.interval_s))}) from exc
        return json({"pool": entry.pool, "state": registry.state(entry, clock()),
                     "heartbeatInterval": registry.interval_s, "lostAfter": registry.lost_after_s})

    @app.get("/api/admin/balancers", tags=["fleet"], responses=schemas.errors(400, 401, 403))
    async def balancers(request: Request, pool: str | None = None) -> Response:
        await administrator(request)
        if pool is not None:
            _pool_reader(Caller("", True), pool)
        return json({"heartbeatInterval": registry.interval_s, "lostAfter": registry.lost_after_s,
                     "balancers": registry.listing(clock(), pool=pool)})

    @app.get("/api/admin/balancers/{instance_id}/admin", tags=["fleet"], responses=schemas.errors(401, 403, 404))
    async def balancer_admin(request: Request, instance_id: str) -> Response:
        await administrator(request)
        entry = registry.get(instance_id)
        if entry is None:
            raise ApiFailure(404, f"No balancer with instance ID {instance_id} has sent a heartbeat.")
        hb = entry.heartbeat
        return json({"instanceID": instance_id, "adminURL": hb.admin_url, "adminToken": hb.admin_token},
                    **{"Cache-Control": "no-store"})

    @app.delete("/api/admin/balancers/{instance_id}", tags=["fleet"], responses=schemas.errors(401, 403, 404))
    async def balancer_forget(request: Request, instance_id: str) -> Response:
        await administrator(request)
        if not registry.forget(instance_id):
            raise ApiFailure(404, f"No balancer with instance ID {instance_id} is listed.")
        return json({"success": True})

    @app.get("/api/admin/tokens", tags=["fleet"], responses=schemas.errors(401, 403))
    async def tokens_list(request: Request) -> Response:
        caller = await administrator(request)
        return json(service.list_tokens(caller))

    @app.post(
        "/api/admin/tokens",
        tags=["fleet"],
        status_code=201,
        openapi_extra=schemas.body(schemas.TOKEN_BODY),
        responses=schemas.errors(400, 401, 403, 409),
    )
    async def tokens_add(request: Request) -> Response:
        caller = await administrator(request)
        raw = await body(request)
        return json(service.create_token(caller, raw), status=201, **{"Cache-Control": "no-store"})

    @app.delete("/api/admin/tokens/{token_id}", tags=["fleet"], responses=schemas.errors(401, 403, 404))
    async def tokens_revoke(request: Request, token_id: str) -> Response:
        caller = await administrator(request)
        return once(request, caller, None, lambda: json(service.revoke_token(caller, token_id)))
