"""The FastAPI application: HTTP in and out around :class:`~balancedesk.core.mgmt.service.Service`.

Authentication is HTTP Basic against the user store (401 with ``WWW-Authenticate: Basic``; 429 while a
client is locked out after repeated failures). Bodies are parsed here, not by FastAPI, so every refusal
uses HDP's envelope; the OpenAPI document still describes each body (see :mod:`.schemas`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from typing import Any

from balancedesk.core.fleet import HEARTBEAT_INTERVAL_S
from balancedesk.core.mgmt import fleet_routes, schemas
from balancedesk.core.mgmt.auth import PASSWORD_MIN, CredentialCache, LoginThrottle, hash_password, verify_password
from balancedesk.core.mgmt.conditional import not_modified
from balancedesk.core.mgmt.errors import CODES, INVALID_JSON, ApiFailure, envelope
from balancedesk.core.mgmt.service import Caller, Service, json_bytes
from balancedesk.core.mgmt.store import Store, Stored
from balancedesk.core.model import Problem
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("balancedesk.mgmt")

MAX_BODY = 1 << 20
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


async def _body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiFailure(413, f"The request body is larger than {MAX_BODY} bytes.")
    if not raw.strip():
        raise ApiFailure(
            400, "Invalid JSON input: the request body is empty.", [Problem("body", "is required")], code=INVALID_JSON
        )
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiFailure(
            400, f"Invalid JSON input: {exc}", [Problem("body", "is not valid JSON")], code=INVALID_JSON
        ) from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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


class Authenticator:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache = CredentialCache()
        self.throttle = LoginThrottle()
        self.tokens = fleet_routes.TokenAuth(store, self.throttle)

    async def __call__(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if not header:
            raise self._unauthorized("Authentication is required: send HTTP Basic credentials.")
        token = self.tokens.bearer(request)
        if token is not None:  # a balancer token: 401 if wrong (counted by the throttle), else 403
            try:
                self.tokens(request, token)
            except ApiFailure as exc:
                if exc.status != 401:
                    raise
                raise self._unauthorized("Only HTTP Basic authentication is supported here.") from None
            raise ApiFailure(403, fleet_routes.TOKEN_ONLY)
        client = request.client.host if request.client else "?"
        wait = self.throttle.retry_after(client, time.monotonic())
        if wait > 0:
            raise ApiFailure(
                429,
                f"Too many failed logins from {client}; try again in {math.ceil(wait)} s.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        name, password = self._parse(header)
        user = self.store.user(name) if name else None
        ok = False
        if user is not None and user.active:
            if self.cache.known(name, password, user.pw_hash):
                ok = True
            elif await asyncio.to_thread(verify_password, user.pw_hash, password):
                self.cache.remember(name, password, user.pw_hash)
                ok = True
        if not ok or user is None:
            self.throttle.failed(client, time.monotonic())
            raise self._unauthorized("The user name or password is wrong, or the user is disabled.")
        self.throttle.succeeded(client)
        caller = Caller(user.name, user.is_admin)
        if "user" in request.query_params and request.url.path.startswith("/api/mgmt/"):
            return self._on_behalf_of(caller, request.query_params.getlist("user"))
        return caller

    def _on_behalf_of(self, caller: Caller, names: list[str]) -> Caller:
        """HDP's ``?user=NAME``: an Administrator acts as that user (with that user's rights, no more) on the
        connector endpoints. Anyone else, an empty or repeated name, or an unknown or disabled user: 4xx."""
        if not caller.is_admin:
            raise ApiFailure(403, f"Only an Administrator can act on behalf of another user (?user=); "
                                  f"{caller.name} is not one.")
        if len(names) != 1 or not names[0]:
            raise ApiFailure(400, "?user= takes exactly one user name.", [Problem("user", "one user name")])
        target = self.store.user(names[0])
        if target is None or not target.active:
            why = "there is no user named" if target is None else "this user is disabled:"
            raise ApiFailure(400, f"?user=: {why} {names[0]!r}.", [Problem("user", f"{why} {names[0]!r}")])
        return Caller(target.name, target.is_admin)

    @staticmethod
    def _unauthorized(message: str) -> ApiFailure:
        return ApiFailure(401, message, headers={"WWW-Authenticate": 'Basic realm="balancedesk", charset="UTF-8"'})

    def _parse(self, header: str) -> tuple[str, str]:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise self._unauthorized("Only HTTP Basic authentication is supported.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        name, sep, password = decoded.partition(":")
        if not sep:
            raise self._unauthorized("The Basic credentials are malformed.")
        return name, password


def create_app(store: Store, *, heartbeat_interval: float = HEARTBEAT_INTERVAL_S) -> FastAPI:
    service = Service(store)
    auth = Authenticator(store)
    app = FastAPI(
        title="Balance Desk management API",
        version="1.0",
        description="HDP-compatible connector management (/api/mgmt) and administration (/api/admin). "
        "Errors use HDP's envelope; every resource has an ETag and PUT/DELETE honour If-Match.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.state.auth = auth

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
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _json_response(envelope(CODES[500], "Internal server error; see the server log."), status=500)

    def if_match(request: Request) -> str | None:
        return request.headers.get("if-match")

    cid_path = "/{connector_id}"

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
        stored = service.create_group(caller, await _body(request))
        return _connector(stored, 201)

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
        return _connector(service.put_connector(caller, connector_id, body, if_match(request)))

    @app.delete(f"{MGMT}/connectors{cid_path}", tags=["mgmt"], responses=schemas.errors(400, 401, 403, 404, 412))
    async def delete_connector(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        service.delete_connector(caller, connector_id, if_match(request))
        return _json_response({"success": True})

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
        return _members(service.add_members(caller, connector_id, body, if_match(request)))

    @app.put(
        f"{MGMT}/connectors{cid_path}/members",
        tags=["mgmt"],
        openapi_extra=schemas.body(schemas.MEMBERS_BODY),
        responses=schemas.errors(400, 401, 403, 404, 412),
    )
    async def put_members(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        body = await _body(request)
        return _members(service.put_members(caller, connector_id, body, if_match(request)))

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
        return _members(service.remove_members(caller, connector_id, body, if_match(request)))

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
        stored = service.change_auth_users(caller, connector_id, body, if_match(request), how=how)
        return _json_response({"success": True}, etag=stored.etag)

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
        return _json_response(service.register_connector(caller, await _body(request)), status=201)

    @app.get(f"{ADMIN}/connectors{cid_path}", tags=["admin"], responses=schemas.errors(401, 403, 404))
    async def admin_get(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        return _json_response(service.registered(caller, connector_id))

    @app.delete(f"{ADMIN}/connectors{cid_path}", tags=["admin"], responses=schemas.errors(401, 403, 404, 409))
    async def admin_unregister(request: Request, connector_id: str) -> Response:
        caller = await auth(request)
        service.unregister(caller, connector_id)
        return _json_response({"success": True})

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
        return _json_response(service.add_user(caller, body, pw_hash=pw_hash), status=201)

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
        return _json_response(service.update_user(caller, name, body, pw_hash=pw_hash))

    fleet_routes.register(
        app,
        service=service,
        users=auth,
        token_auth=auth.tokens,
        body=_body,
        json=_json_response,
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
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
