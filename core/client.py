"""The async client for Balance Desk's management API (HDP-compatible ``/api/mgmt``, plus ``/api/admin``).

Used by the GUI (on the qasync loop) and by the balancer to pull a group's configuration. Every method is a
coroutine; nothing here blocks. Names below are a contract with the GUI: keep them stable.

``MgmtClient(base_url, user, password, *, verify=True, timeout=10.0, on_behalf_of=None, token=None, retries=2)``
— HTTP Basic auth, or with ``token="bdt_…"`` (and no user) a balancer token as a bearer credential;
``verify`` is ``True``/``False`` or a path to a CA bundle (for ``balancedesk serve --cert``); ``on_behalf_of``
(an Administrator only): every ``/api/mgmt`` call carries HDP's ``?user=NAME`` and acts as that user, with that
user's rights. Use ``async with`` or call ``aclose()``.

Identity
    ``whoami() -> Whoami``                                 ``GET /api/mgmt/whoami`` → ``Whoami(user, roles)``

Connectors (``/api/mgmt/connectors``)
    ``list_connectors(details=True, accessible=False)``    list[Connector], or list[str] of IDs
    ``get_connector(id) -> (Connector, etag)``
    ``get_connector_if_changed(id, etag) -> (Connector, etag) | None``   None: 304, ``etag`` is still current
    ``create_group(connector) -> (Connector, etag)``       POST; the server assigns ``connectorID``
    ``put_connector(connector, *, if_match=None) -> (Connector, etag)``   full replace, ID from the connector
    ``delete_connector(id, *, if_match=None) -> None``     groups only

Members of a group (``…/{id}/members``); ``etag`` is the group's ETag
    ``get_members(id) -> (tuple[Member, ...], etag)``
    ``add_members(id, members, *, if_match=None) -> (tuple[Member, ...], etag)``      POST
    ``put_members(id, members, *, if_match=None) -> (tuple[Member, ...], etag)``      PUT, replaces all
    ``remove_members(id, member_ids, *, if_match=None) -> (tuple[Member, ...], etag)``  deprecated DELETE

Authorized users (``…/{id}/authuser``); ``etag`` is the connector's ETag
    ``get_auth_users(id) -> (tuple[str, ...], etag)``
    ``add_auth_users(id, users, *, if_match=None) -> etag``      POST (all or nothing)
    ``put_auth_users(id, users, *, if_match=None) -> etag``      PUT, replaces all
    ``remove_auth_users(id, users, *, if_match=None) -> etag``   deprecated DELETE

Administrator (``/api/admin``)
    ``register_connector(label=, owner=, endpoint=, connector_id=None) -> RegisteredConnector``
    ``list_registered(*, owner=None) -> list[RegisteredConnector]``
    ``get_registered(id) -> RegisteredConnector``
    ``unregister_connector(id) -> None``
    ``add_user(name, password, *, role="User") -> User``   roles: ``ADMINISTRATOR``, ``USER``
    ``list_users() -> list[User]``
    ``disable_user(name) -> User`` / ``enable_user(name) -> User``
    ``update_user(name, *, password=None, role=None, active=None) -> User``   PUT; only the fields given change

The control plane (see :mod:`balancedesk.core.fleetclient` for the values and how a balancer follows a pool)
    ``pool_groups(pool, *, if_none_match=None) -> PoolGroups | None``          token or Administrator
    ``pool_group(pool, id, *, if_none_match=None) -> (PoolGroup, etag) | None``
    ``changes(pool, cursor, *, wait=0, store_id=None) -> FeedAnswer``          long poll
    ``heartbeat(Heartbeat) -> HeartbeatAnswer``                                 token only
    ``list_balancers(*, pool=None) -> list[BalancerInfo]``                       Administrator
    ``balancer_admin(instance_id) -> BalancerAdmin``  (its admin URL and token)  Administrator
    ``forget_balancer(instance_id)``, ``create_token(pool, *, label="") -> (token, TokenInfo)``,
    ``list_tokens() -> list[TokenInfo]``, ``revoke_token(id) -> TokenInfo``      Administrator

Failures
    ``ApiError(status, code, message, problems)`` for every 4xx/5xx answer; ``problems`` is a list of
    :class:`balancedesk.core.model.Problem` (field, message, member_id) to show next to the field.
    ``status == 412`` means someone else changed the resource since you read it (reload, then retry).
    ``ApiUnavailable(message)`` when the server cannot be reached, the connection breaks or times out.
    Before either, a call that may not have been carried out is sent again, up to ``retries`` more times: the
    connection failed or broke, or a gateway answered 502/503/504 (a management server behind a balancer
    died). Every POST, PUT and DELETE carries an ``Idempotency-Key`` that stays the same on each attempt, so
    the server applies the write once (:mod:`balancedesk.core.mgmt.idempotency`).
    Both derive from ``ClientError``; ``str(exc)`` is a readable sentence.
"""

from __future__ import annotations

import asyncio
import ssl
import types
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import httpx
from balancedesk.core.fleetclient import FleetCalls
from balancedesk.core.mgmt import idempotency
from balancedesk.core.model import Connector, Member, Problem, RuleError, parse_connector, parse_members

ADMINISTRATOR = "Administrator"
USER = "User"

__all__ = [
    "ADMINISTRATOR",
    "USER",
    "ApiError",
    "ApiUnavailable",
    "ClientError",
    "MgmtClient",
    "RegisteredConnector",
    "User",
    "Whoami",
]


class ClientError(Exception):
    """Base of every error this client raises."""


class ApiError(ClientError):
    """The server answered with an error (4xx/5xx) in HDP's envelope."""

    def __init__(self, status: int, code: str, message: str, problems: list[Problem] | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems or [])
        super().__init__(message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r}, problems={self.problems!r})"


class ApiUnavailable(ClientError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Whoami:
    user: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMINISTRATOR in self.roles


@dataclass(frozen=True)
class User:
    name: str
    role: str
    active: bool


@dataclass(frozen=True)
class RegisteredConnector:
    """A connector as the Administrator API shows it."""

    connector_id: str
    label: str
    owner: str
    endpoint: str | None
    is_group: bool
    group_id: str | None = None


def _registered(raw: Mapping[str, Any]) -> RegisteredConnector:
    return RegisteredConnector(
        connector_id=str(raw["connectorID"]),
        label=str(raw["label"]),
        owner=str(raw["owner"]),
        endpoint=raw.get("endpoint"),
        is_group=bool(raw.get("isGroup", False)),
        group_id=raw.get("groupID"),
    )


def _user(raw: Mapping[str, Any]) -> User:
    return User(name=str(raw["name"]), role=str(raw["role"]), active=bool(raw["active"]))


def _members_json(members: Iterable[Member]) -> list[dict[str, Any]]:
    return [{"memberID": m.member_id, "sequence": m.sequence, "weight": m.weight} for m in members]


class _Bearer(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request (a balancer token)."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = self._header
        yield request


def _error_from(response: httpx.Response) -> ApiError:
    code = ""
    message = f"The server answered {response.status_code} {response.reason_phrase}."
    problems: list[Problem] = []
    try:
        body = response.json()
        err = body["error"]
        code = str(err.get("code", ""))
        message = str(err["message"]["value"])
        for p in err.get("problems") or []:
            problems.append(Problem(str(p.get("field", "")), str(p.get("message", "")), p.get("memberID")))
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return ApiError(response.status_code, code, message, problems)


def _pause(attempt: int, retry_after: str | None) -> float:
    """Seconds to wait before attempt ``attempt + 2``: the fixed pause, or the server's ``Retry-After`` (in
    seconds) if it asks for longer, at most ``RETRY_AFTER_MAX_S``."""
    pause = idempotency.RETRY_PAUSES_S[min(attempt, len(idempotency.RETRY_PAUSES_S) - 1)]
    try:
        asked = float(retry_after) if retry_after is not None else 0.0
    except ValueError:
        asked = 0.0
    return max(pause, min(asked, idempotency.RETRY_AFTER_MAX_S))


def _connector(body: Any) -> Connector:
    try:
        return parse_connector(body)
    except RuleError as exc:
        raise ApiError(
            200, "", f"The server sent a connector this client cannot read: {exc}", exc.problems
        ) from exc


class MgmtClient(FleetCalls):
    """Async client for the management API. See the module docstring for the method list."""

    def __init__(
        self,
        base_url: str,
        user: str = "",
        password: str = "",
        *,
        verify: bool | str = True,
        timeout: float = 10.0,
        on_behalf_of: str | None = None,
        token: str | None = None,
        retries: int = idempotency.RETRY_ATTEMPTS - 1,
    ) -> None:
        if (token is None) == (not user):
            raise ValueError("MgmtClient needs a user and password, or a token (not both)")
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.on_behalf_of = on_behalf_of
        self.timeout = timeout
        self.retries = retries
        auth: httpx.Auth = httpx.BasicAuth(user, password) if token is None else _Bearer(token)
        # a CA bundle path becomes a context: httpx deprecates verify=<str>
        tls: bool | ssl.SSLContext = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            verify=tls,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> MgmtClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing -----------------------------------------------------------------------------------

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
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """One call, sent again (at most ``retries`` more times) when it may not have been carried out: the
        connection could not be made or broke before an answer, or a gateway answered 502/503/504. A write
        carries an ``Idempotency-Key`` (the same on every attempt), so the server applies it once whichever
        attempt reached it (:mod:`balancedesk.core.mgmt.idempotency`). A timeout is not retried: the caller's
        time is spent."""
        sent = {**(headers or {}), **({"If-Match": if_match} if if_match is not None else {})}
        if method in idempotency.UNSAFE_METHODS:
            sent.setdefault(idempotency.HEADER, uuid.uuid4().hex)
        if self.on_behalf_of is not None and path.startswith("/api/mgmt/"):
            params = {**(params or {}), "user": self.on_behalf_of}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, headers=sent,
                    timeout=httpx.USE_CLIENT_DEFAULT if read_timeout is None else read_timeout,
                    auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
                )
            except httpx.TimeoutException as exc:
                raise ApiUnavailable(
                    f"The server at {self.base_url} did not answer in time ({method} {path})."
                ) from exc
            except httpx.TransportError as exc:
                if last:
                    raise ApiUnavailable(
                        f"Cannot reach the server at {self.base_url}: {exc or type(exc).__name__}."
                    ) from exc
                await asyncio.sleep(_pause(attempt, None))  # backoff before the next attempt, not a wait
                continue
            if response.status_code in idempotency.RETRY_STATUSES and not last:
                await asyncio.sleep(_pause(attempt, response.headers.get("Retry-After")))  # backoff
                continue
            if response.status_code >= 400:
                raise _error_from(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "", "The server's answer was not valid JSON.") from exc

    @staticmethod
    def _etag(response: httpx.Response) -> str:
        return str(response.headers.get("ETag", ""))

    # -- identity -----------------------------------------------------------------------------------

    async def whoami(self) -> Whoami:
        body = self._json(await self._request("GET", "/api/mgmt/whoami"))
        return Whoami(user=str(body["user"]), roles=tuple(str(r) for r in body["roles"]))

    # -- connectors ---------------------------------------------------------------------------------

    @overload
    async def list_connectors(
        self, details: Literal[True] = ..., accessible: bool = ...
    ) -> list[Connector]: ...

    @overload
    async def list_connectors(self, details: Literal[False], accessible: bool = ...) -> list[str]: ...

    async def list_connectors(
        self, details: bool = True, accessible: bool = False
    ) -> list[Connector] | list[str]:
        params = {"details": str(details).lower(), "accessible": str(accessible).lower()}
        body = self._json(await self._request("GET", "/api/mgmt/connectors", params=params))
        if details:
            return [_connector(c) for c in body["connectors"]]
        return [str(i) for i in body["connectorIDs"]]

    async def get_connector(self, connector_id: str) -> tuple[Connector, str]:
        response = await self._request("GET", f"/api/mgmt/connectors/{connector_id}")
        return _connector(self._json(response)), self._etag(response)

    async def get_connector_if_changed(self, connector_id: str, etag: str) -> tuple[Connector, str] | None:
        """The connector if it changed since ``etag`` was read, else None (the server answered 304)."""
        response = await self._request(
            "GET", f"/api/mgmt/connectors/{connector_id}", headers={"If-None-Match": etag}
        )
        if response.status_code == 304:
            return None
        return _connector(self._json(response)), self._etag(response)

    async def create_group(self, connector: Connector) -> tuple[Connector, str]:
        body = connector.to_json()
        body.pop("connectorID", None)
        response = await self._request("POST", "/api/mgmt/connectors", json=body)
        return _connector(self._json(response)), self._etag(response)

    async def put_connector(
        self, connector: Connector, *, if_match: str | None = None, drop_listener: bool = False
    ) -> tuple[Connector, str]:
        """Replace a connector. A group's listener absent from ``connector`` is kept by the server;
        ``drop_listener`` removes it (sent as ``"listener": null``)."""
        if not connector.connector_id:
            raise ValueError("put_connector needs a connector with a connector_id")
        body = connector.to_json()
        if drop_listener and connector.listener is None:
            body["listener"] = None
        response = await self._request(
            "PUT",
            f"/api/mgmt/connectors/{connector.connector_id}",
            json=body,
            if_match=if_match,
        )
        return _connector(self._json(response)), self._etag(response)

    async def delete_connector(self, connector_id: str, *, if_match: str | None = None) -> None:
        await self._request("DELETE", f"/api/mgmt/connectors/{connector_id}", if_match=if_match)

    # -- members ------------------------------------------------------------------------------------

    def _members(self, response: httpx.Response) -> tuple[tuple[Member, ...], str]:
        try:
            members = parse_members(self._json(response))
        except RuleError as exc:
            raise ApiError(
                response.status_code, "", f"The server sent members this client cannot read: {exc}"
            ) from exc
        return members, self._etag(response)

    async def get_members(self, connector_id: str) -> tuple[tuple[Member, ...], str]:
        return self._members(await self._request("GET", f"/api/mgmt/connectors/{connector_id}/members"))

    async def add_members(
        self, connector_id: str, members: Iterable[Member], *, if_match: str | None = None
    ) -> tuple[tuple[Member, ...], str]:
        path = f"/api/mgmt/connectors/{connector_id}/members"
        return self._members(
            await self._request("POST", path, json={"members": _members_json(members)}, if_match=if_match)
        )

    async def put_members(
        self, connector_id: str, members: Iterable[Member], *, if_match: str | None = None
    ) -> tuple[tuple[Member, ...], str]:
        path = f"/api/mgmt/connectors/{connector_id}/members"
        return self._members(
            await self._request("PUT", path, json={"members": _members_json(members)}, if_match=if_match)
        )

    async def remove_members(
        self, connector_id: str, member_ids: Iterable[str], *, if_match: str | None = None
    ) -> tuple[tuple[Member, ...], str]:
        path = f"/api/mgmt/connectors/{connector_id}/members"
        return self._members(
            await self._request("DELETE", path, json={"members": list(member_ids)}, if_match=if_match)
        )

    # -- authorized users ---------------------------------------------------------------------------

    async def get_auth_users(self, connector_id: str) -> tuple[tuple[str, ...], str]:
        response = await self._request("GET", f"/api/mgmt/connectors/{connector_id}/authuser")
        body = self._json(response)
        return tuple(str(u) for u in body["authUser"]), self._etag(response)

    async def _auth_users(
        self, method: str, connector_id: str, users: Iterable[str], if_match: str | None
    ) -> str:
        path = f"/api/mgmt/connectors/{connector_id}/authuser"
        response = await self._request(method, path, json={"authUser": list(users)}, if_match=if_match)
        return self._etag(response)

    async def add_auth_users(
        self, connector_id: str, users: Iterable[str], *, if_match: str | None = None
    ) -> str:
        return await self._auth_users("POST", connector_id, users, if_match)

    async def put_auth_users(
        self, connector_id: str, users: Iterable[str], *, if_match: str | None = None
    ) -> str:
        return await self._auth_users("PUT", connector_id, users, if_match)

    async def remove_auth_users(
        self, connector_id: str, users: Iterable[str], *, if_match: str | None = None
    ) -> str:
        return await self._auth_users("DELETE", connector_id, users, if_match)

    # -- administrator ------------------------------------------------------------------------------

    async def register_connector(
        self, *, label: str, owner: str, endpoint: str | None, connector_id: str | None = None
    ) -> RegisteredConnector:
        body: dict[str, Any] = {"label": label, "owner": owner}
        if endpoint is not None:  # left out, not null: a connector may have no endpoint
            body["endpoint"] = endpoint
        if connector_id is not None:
            body["connectorID"] = connector_id
        return _registered(self._json(await self._request("POST", "/api/admin/connectors", json=body)))

    async def list_registered(self, *, owner: str | None = None) -> list[RegisteredConnector]:
        params = {"details": "true"}
        if owner is not None:
            params["owner"] = owner
        body = self._json(await self._request("GET", "/api/admin/connectors", params=params))
        return [_registered(c) for c in body["connectors"]]

    async def get_registered(self, connector_id: str) -> RegisteredConnector:
        return _registered(self._json(await self._request("GET", f"/api/admin/connectors/{connector_id}")))

    async def unregister_connector(self, connector_id: str) -> None:
        await self._request("DELETE", f"/api/admin/connectors/{connector_id}")

    async def add_user(self, name: str, password: str, *, role: str = USER) -> User:
        body = {"name": name, "password": password, "role": role}
        return _user(self._json(await self._request("POST", "/api/admin/users", json=body)))

    async def list_users(self) -> list[User]:
        body = self._json(await self._request("GET", "/api/admin/users"))
        return [_user(u) for u in body["users"]]

    async def disable_user(self, name: str) -> User:
        return _user(
            self._json(await self._request("PUT", f"/api/admin/users/{name}", json={"active": False}))
        )

    async def enable_user(self, name: str) -> User:
        return _user(
            self._json(await self._request("PUT", f"/api/admin/users/{name}", json={"active": True}))
        )

    async def update_user(
        self, name: str, *, password: str | None = None, role: str | None = None, active: bool | None = None
    ) -> User:
        """Change a user's password, role or active state (only those given); 409 for the last active
        Administrator's demotion or disabling."""
        body: dict[str, Any] = {}
        if password is not None:
            body["password"] = password
        if role is not None:
            body["role"] = role
        if active is not None:
            body["active"] = active
        try:
            return _user(self._json(await self._request("PUT", f"/api/admin/users/{name}", json=body)))
        except ApiError as exc:
            if exc.status != 401 or password is None or name != self.user:
                raise
            # Our own password: an attempt that changed it may have lost its answer, and the request sent again
            # (by this client, or by a balancer in front) then carried the old one. Ask with the new password.
            try:
                confirmed = await self._request("GET", f"/api/admin/users/{name}",
                                                auth=httpx.BasicAuth(name, password))
            except ApiError:
                raise exc from None  # not changed: the session's own password was refused
            return _user(self._json(confirmed))
