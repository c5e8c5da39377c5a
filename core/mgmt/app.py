"""The FastAPI application: HTTP in and out around :class:`~balancedesk.core.mgmt.service.Service`.

Authentication is HTTP Basic against the user store (:mod:`.login`: 401 with ``WWW-Authenticate: Basic``;
429 while failed logins are being slowed). Bodies are parsed by :mod:`.inputs`, not by FastAPI, so every
refusal uses HDP's envelope; the OpenAPI document still describes each body (see :mod:`.schemas`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from balancedesk.core.fleet import HEARTBEAT_INTERVAL_S
from balancedesk.core.mgmt import fleet_routes, idempotency, schemas
from balancedesk.core.mgmt.auth import PASSWORD_MIN, hash_password
from balancedesk.core.mgmt.conditional import not_modified
from balancedesk.core.mgmt.errors import CODES, ApiFailure, envelope
from balancedesk.core.mgmt.inputs import check_url
from balancedesk.core.mgmt.inputs import json_body as _body
from balancedesk.core.mgmt.installation import HEALTH_PATH
from balancedesk.core.mgmt.login import Authenticator
from balancedesk.core.mgmt.service import Caller, Service, json_bytes
from balancedesk.core.mgmt.store import Store, Stored
from balancedesk.core.model import Problem
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("balancedesk.mgmt")

MGMT = "/api/mgmt"
ADMIN = "/api/admin"


def _json_response(content: Any, *, status: int = 200, etag: str | None = None, **headers: str) -> Response:
    return _bytes_response(json_bytes(content), status=status, etag=etag, **headers)


def _bytes_response(data: bytes, *, status: int = 200, etag: str | None = None, **headers: str) -> Response:
    out = dict(headers)
    if etag is not None:
        out["ETag"] = etag
    return Response(data, status_code=status, media_type="application/json", headers=out)


def _failure_response(exc: ApiFailure) -> Response:
    return _json_response(exc.body(), status=exc.status, **exc.headers)


def _connector(stored: Stored, status: int = 200) -> Response:
    return _json_response(stored.document, status=status, etag=stored.etag)


def _members(stored: Stored) -> Response:
    group = stored.document.get("connectorGroup")
    assert group is not None
    return _json_response({"members": group["members"]}, etag=stored.etag)


async def _hash_of(body: Any) -> str | None:
    """Hash a body's password off the event loop (argon2 is slow by design); None if there is none."""
    password = body.get("password") if isinstance(body, dict) else None
    if isinstance(password, str) and len(password) >= PASSWORD_MIN:
        return await asyncio.to_thread(hash_password, password)
    return None


def create_app(store: Store, *, heartbeat_interval: float = HEARTBEAT_INTERVAL_S) -> FastAPI:
    service = Service(store)
    logins = Authenticator(store)
    tokens = fleet_routes.TokenAuth(store, logins.throttle, logins.clock)
    auth = fleet_routes.NoTokens(logins, tokens)  # the Basic routes: a balancer token gets 403 there
    app = FastAPI(
        title="Balance Desk management API",
        version="1.0",
        description="HDP-compatible connector management (/api/mgmt) and administration (/api/admin). "
        "Errors use HDP's envelope; every resource has an ETag and PUT/DELETE honour If-Match.",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(check_url)],
    )
    app.state.service = service
    app.state.auth = logins

    @app.exception_handler(ApiFailure)
    async def _on_failure(request: Request, exc: ApiFailure) -> Response:
        return _failure_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        message = {404: "There is no such resource.", 405: f"Method {request.method} is not allowed here."}.get(
            status, str(exc.detail)
        )
        return _json_response(
            envelope(CODES.get(status, CODES[400]), message), status=status, **dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [Problem(".".join(str(p) for p in e["loc"][1:]) or "request", str(e["msg"])) for e in exc.errors()]
        failure = ApiFailure(
            400, "Invalid request: " + "; ".join(f"{p.field}: {p.message}" for p in problems), problems
        )
        return _failure_response(failure)

    @app.exception_handler(Exception)
    async def _on_bug(request: Request, exc: Exception) -> Response:
        if isinstance(exc, store.db.unavailable_errors):  # the database is away: the client may retry
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
            return _failure_response(ApiFailure(503, "The database is unavailable; try again shortly.",
                                                headers={"Retry-After": "1"}))
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _json_response(envelope(CODES[500], "Internal server error; see the server log."), status=500)

    def if_match(request: Request) -> str | None:
        return request.headers.get("if-match")

    def once(request: Request, caller: Caller, body: Any, run: Callable[[], Response]) -> Response:
        """A write, applied once per ``Idempotency-Key`` (:mod:`.idempotency`); as before without one.
        Called after the body was read: nothing here awaits, so the write transaction never interleaves."""
        key = idempotency.key_of(request.headers)
        if key is None:
            return run()

        def answer() -> idempotency.Answer:
            response = run()
            return idempotency.Answer(response.status_code, bytes(response.body), response.headers.get("etag"))

        fingerprint = idempotency.fingerprint(request.method, request.url.path, request.url.query,
                                              if_match(request), body)
        got, replayed = service.once(caller, key, fingerprint, answer, time.time())
        extra = {idempotency.REPLAYED_HEADER: "true"} if replayed else {}
        return _bytes_response(got.body, status=got.status, etag=got.etag, **extra)

    cid_path = "/{connector_id}"

    @app.get(HEALTH_PATH, tags=["health"], responses=schemas.errors(503))
    async def healthz() -> Response:
        """A load balancer's health check (installation.py): 200 while this server reaches its database, 503
        (with ``Retry-After``) when it cannot. No login, nothing about the data."""
        try:
            store.db.execute("SELECT 1").fetchone()
        except store.db.unavailable_errors as exc:
            log.warning("health check: the database is unavailable: %s", exc)
            return _failure_response(ApiFailure(503, "The database is unavailable.", headers={"Retry-After": "1"}))
        answer = _json_response({"status": "ok"})
        answer.headers["Cache-Control"] = "no-store"
        return answer

    # -- /api/mgmt ----------------------------------------------------------------------------------

    @app.get(f"{MGMT}/whoami", tags=["mgmt"], responses=schemas.errors(401))
    async def whoami(request: Request) -> Response:
        caller = await auth(request)
        return _json_response({"user": caller.name, "roles": caller.roles})

    @app.get(f"{MGMT}/connectors", tags=["mgmt"], responses=schemas.errors(400, 401))
    async def list_connectors(
        request: Request, details: bool = Query(False), accessible: bool = Query(False)
    ) -> Response:
        caller = await auth(request)
        return _bytes_response(service.list_connectors_json(caller, details=details, accessible=accessible))

    @app.post(
        f"{MGMT}/connectors",
        tags=["mgmt"],
        status_code=201,
        openapi_extra=schemas.body(schemas.GROUP_CREATE),
        responses=schemas.errors(400, 401, 403),
    )
    async def create_group(request: Request) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body, lambda: _connector(service.create_group(caller, body), 201))

    @app.get(f"{MGMT}/connectors{cid_path}", tags=["mgmt"], responses=schemas.errors(401, 403, 404))
    async def get_connector(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        stored = service.get_connector(caller, connector_id)
        return not_modified(request, stored.etag) or _connector(stored)

    @app.put(
        f"{MGMT}/connectors{cid_path}",
        tags=["mgmt"],
        openapi_extra=schemas.body(schemas.CONNECTOR),
        responses=schemas.errors(400, 401, 403, 404, 412),
    )
    async def put_connector(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body,
                    lambda: _connector(service.put_connector(caller, connector_id, body, if_match(request))))

    @app.delete(f"{MGMT}/connectors{cid_path}", tags=["mgmt"], responses=schemas.errors(400, 401, 403, 404, 412))
    async def delete_connector(request: Request, connector_id: str) -> Response:
        caller = await auth(request)

        def run() -> Response:
            service.delete_connector(caller, connector_id, if_match(request))
            return _json_response({"success": True})

        return once(request, caller, None, run)

    @app.get(f"{MGMT}/connectors{cid_path}/members", tags=["mgmt"], responses=schemas.errors(400, 401, 403, 404))
    async def get_members(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        stored = service.get_members(caller, connector_id)
        return not_modified(request, stored.etag) or _members(stored)

    @app.post(
        f"{MGMT}/connectors{cid_path}/members",
        tags=["mgmt"],
        openapi_extra=schemas.body(schemas.MEMBERS_BODY),
        responses=schemas.errors(400, 401, 403, 404, 412),
    )
    async def add_members(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body,
                    lambda: _members(service.add_members(caller, connector_id, body, if_match(request))))

    @app.put(
        f"{MGMT}/connectors{cid_path}/members",
        tags=["mgmt"],
        openapi_extra=schemas.body(schemas.MEMBERS_BODY),
        responses=schemas.errors(400, 401, 403, 404, 412),
    )
    async def put_members(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body,
                    lambda: _members(service.put_members(caller, connector_id, body, if_match(request))))

    @app.delete(
        f"{MGMT}/connectors{cid_path}/members",
        tags=["mgmt"],
        deprecated=True,
        openapi_extra=schemas.body(schemas.MEMBER_IDS_BODY),
        responses=schemas.errors(400, 401, 403, 404, 412),
    )
    async def remove_members(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body,
                    lambda: _members(service.remove_members(caller, connector_id, body, if_match(request))))

    @app.get(f"{MGMT}/connectors{cid_path}/authuser", tags=["mgmt"], responses=schemas.errors(401, 403, 404))
    async def get_auth_users(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        stored = service.get_auth_users(caller, connector_id)
        return not_modified(request, stored.etag) or _json_response(
            {"authUser": list(stored.connector.auth_user)}, etag=stored.etag
        )

    async def _auth_users(request: Request, connector_id: str, how: str) -> Response:
        caller = await auth(request)
        body = await _body(request)

        def run() -> Response:
            stored = service.change_auth_users(caller, connector_id, body, if_match(request), how=how)
            return _json_response({"success": True}, etag=stored.etag)

        return once(request, caller, body, run)

    auth_doc: dict[str, Any] = {
        "tags": ["mgmt"],
        "openapi_extra": schemas.body(schemas.AUTH_USERS_BODY),
        "responses": schemas.errors(400, 401, 403, 404, 412),
    }

    @app.post(f"{MGMT}/connectors{cid_path}/authuser", **auth_doc)
    async def add_auth_users(request: Request, connector_id: str) -> Response:
        return await _auth_users(request, connector_id, "add")

    @app.put(f"{MGMT}/connectors{cid_path}/authuser", **auth_doc)
    async def put_auth_users(request: Request, connector_id: str) -> Response:
        return await _auth_users(request, connector_id, "replace")

    @app.delete(f"{MGMT}/connectors{cid_path}/authuser", deprecated=True, **auth_doc)
    async def remove_auth_users(request: Request, connector_id: str) -> Response:
        return await _auth_users(request, connector_id, "remove")

    # -- /api/admin ---------------------------------------------------------------------------------

    @app.get(f"{ADMIN}/connectors", tags=["admin"], responses=schemas.errors(400, 401, 403))
    async def admin_list(
        request: Request, owner: str | None = None, label: str | None = None, details: bool = Query(False)
    ) -> Response:
        caller = await auth(request)
        filters = {k: v for k, v in {"owner": owner, "label": label}.items() if v is not None}
        return _json_response(service.list_registered(caller, filters))

    @app.post(
        f"{ADMIN}/connectors",
        tags=["admin"],
        status_code=201,
        openapi_extra=schemas.body(schemas.REGISTER_BODY),
        responses=schemas.errors(400, 401, 403, 409),
    )
    async def admin_register(request: Request) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return once(request, caller, body,
                    lambda: _json_response(service.register_connector(caller, body), status=201))

    @app.get(f"{ADMIN}/connectors{cid_path}", tags=["admin"], responses=schemas.errors(401, 403, 404))
    async def admin_get(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        return _json_response(service.registered(caller, connector_id))

    @app.delete(f"{ADMIN}/connectors{cid_path}", tags=["admin"], responses=schemas.errors(401, 403, 404, 409))
    async def admin_unregister(request: Request, connector_id: str) -> Response:
        caller = await auth(request)

        def run() -> Response:
            service.unregister(caller, connector_id)
            return _json_response({"success": True})

        return once(request, caller, None, run)

    @app.get(f"{ADMIN}/users", tags=["admin"], responses=schemas.errors(401, 403))
    async def users_list(request: Request) -> Response:
        caller = await auth(request)
        return _json_response(service.list_users(caller))

    @app.post(
        f"{ADMIN}/users",
        tags=["admin"],
        status_code=201,
        openapi_extra=schemas.body(schemas.USER_BODY),
        responses=schemas.errors(400, 401, 403, 409),
    )
    async def users_add(request: Request) -> Response:
        caller = await auth(request)
        body = await _body(request)
        pw_hash = await _hash_of(body)
        return once(request, caller, body,
                    lambda: _json_response(service.add_user(caller, body, pw_hash=pw_hash), status=201))

    @app.get(f"{ADMIN}/users/{{name}}", tags=["admin"], responses=schemas.errors(401, 403, 404))
    async def users_get(request: Request, name: str) -> Response:
        caller = await auth(request)
        return _json_response(service.get_user(caller, name))

    @app.put(
        f"{ADMIN}/users/{{name}}",
        tags=["admin"],
        openapi_extra=schemas.body(schemas.USER_UPDATE_BODY),
        responses=schemas.errors(400, 401, 403, 404, 409),
    )
    async def users_update(request: Request, name: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        pw_hash = await _hash_of(body)
        return once(request, caller, body,
                    lambda: _json_response(service.update_user(caller, name, body, pw_hash=pw_hash)))

    fleet_routes.register(
        app,
        service=service,
        users=auth,
        token_auth=tokens,
        body=_body,
        json=_json_response,
        once=once,
        heartbeat_interval=heartbeat_interval,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {})["securitySchemes"] = {
                "basic": {"type": "http", "scheme": "basic"},
                "balancerToken": {"type": "http", "scheme": "bearer", "description": "bdt_… (balancedesk tokens add)"},
            }
            doc["security"] = [{"basic": []}]
            for path, ops in doc.get("paths", {}).items():
                if path.startswith(f"{ADMIN}/pools/"):
                    for op in ops.values():
                        op["security"] = [{"basic": []}, {"balancerToken": []}]
                elif path == f"{ADMIN}/balancers/heartbeat":
                    for op in ops.values():
                        op["security"] = [{"balancerToken": []}]
            on_behalf_of = {"name": "user", "in": "query", "required": False, "schema": {"type": "string"},
                            "description": "An Administrator acts on behalf of this user, with that user's rights "
                                           "(HDP's ?user=). Anyone else: 403."}
            for path, ops in doc.get("paths", {}).items():
                if path.startswith(f"{MGMT}/"):
                    for op in ops.values():
                        op.setdefault("parameters", []).append(on_behalf_of)
                for method, op in ops.items():
                    if method.upper() in idempotency.UNSAFE_METHODS and (method.upper(), path) not in \
                            idempotency.NOT_KEYED:
                        op.setdefault("parameters", []).append(idempotency.OPENAPI_PARAMETER)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
