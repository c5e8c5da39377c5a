"""What each management and admin request does, independent of HTTP: permissions, rules, storage.

Every method takes the authenticated :class:`Caller`, checks visibility (404 for what you cannot see, 403
for what you can see but do not own), the ``If-Match`` precondition (412), then the rules of
:mod:`balancedesk.core.model` (400, each problem naming its field and member), and writes in one
transaction. A refused request raises :class:`ApiFailure` and changes nothing.

Reads are served from a small cache that is valid only while :meth:`Store.stamp` is unchanged: any
commit, through this server or by another process on the same file (``balancedesk connectors …``), drops
it. It holds connectors as read (:class:`Stored`, whose JSON and ETag are computed once) and the listings
already serialised to JSON bytes, so a repeated ``GET /connectors?details=true`` costs a lookup.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from balancedesk.core.mgmt import fleet, idempotency, tokens
from balancedesk.core.mgmt.auth import PASSWORD_MIN, hash_password
from balancedesk.core.mgmt.errors import ApiFailure, not_found, rule_failure
from balancedesk.core.mgmt.store import ROLES, Store, Stored, UserRow
from balancedesk.core.model import (
    Connector,
    ConnectorGroup,
    Member,
    Problem,
    RuleError,
    check_group_rules,
    id_problem,
    parse_connector,
    parse_members,
    plain_connector_problems,
    user_name_problem,
)

AUTH_USER_LIMIT = 1000  # most names one authuser call may carry
CACHED_CONNECTORS = 10_000  # most connectors the read cache holds (it is emptied when full)
CACHED_LISTINGS = 256  # most listings (one per user and kind) it holds


def json_bytes(content: Any) -> bytes:
    """Compact UTF-8 JSON. orjson is several times faster than the standard library on big listings; the
    standard library still answers for what orjson refuses (integers past 64 bits, non-string keys)."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Caller:
    """Who asks: a user (``is_admin`` for the Administrator role), or a balancer token (``pool`` and
    ``token_id`` set, never an admin; see :mod:`.tokens`)."""

    name: str
    is_admin: bool
    pool: str | None = None
    token_id: str | None = None

    @property
    def roles(self) -> list[str]:
        return ["Administrator"] if self.is_admin else ["User"]


def _body_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise rule_failure([Problem("body", "must be a JSON object")])
    return body



_F = TypeVar("_F", bound=Callable[..., Any])


def _atomic(method: _F) -> _F:
    """Run a mutating request as one write transaction: its checks (If-Match, ownership, group rules)
    read what its write replaces, with no other writer — another server thread or a CLI process —
    in between. A rejected request rolls back and changes nothing."""

    @functools.wraps(method)
    def wrapper(self: Service, *args: Any, **kwargs: Any) -> Any:
        if self.store.db.in_transaction:  # joined to an outer request (Service.once): the outer one wakes
            return method(self, *args, **kwargs)
        try:
            with self.store.write():
                result = method(self, *args, **kwargs)
        finally:
            recorded, self._recorded = self._recorded, False
        if recorded:
            for wake in self.on_change:
                wake()
        return result

    return cast(_F, wrapper)

class Service:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.on_change: list[Callable[[], None]] = []  # called after a commit that recorded a fleet change
        self._recorded = False
        self._stamp: tuple[int, int] | None = None
        self._connectors: dict[str, Stored] = {}
        self._listings: dict[tuple[str | None, str | None, bool], bytes] = {}

    # -- read cache ---------------------------------------------------------------------------------

    def _check_cache(self) -> None:
        """Empty the cache if anything was committed since it was filled (by us or another process)."""
        stamp = self.store.stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            self._connectors.clear()
            self._listings.clear()

    def _get(self, connector_id: str) -> Stored | None:
        self._check_cache()
        stored = self._connectors.get(connector_id)
        if stored is None:
            stored = self.store.get(connector_id)
            if stored is not None:
                self._remember(stored)
        return stored

    def _remember(self, stored: Stored) -> None:
        if len(self._connectors) >= CACHED_CONNECTORS:
            self._connectors.clear()
        self._connectors[stored.connector.connector_id or ""] = stored

    # -- idempotency keys ---------------------------------------------------------------------------

    def once(
        self, caller: Caller, key: str, fingerprint: str, run: Callable[[], idempotency.Answer], now: float
    ) -> tuple[idempotency.Answer, bool]:
        """Run a write that carries an idempotency key at most once (the rules: :mod:`.idempotency`):
        ``(its answer, replayed)``. ``run`` does the write and returns its answer; a refusal it raises rolls
        everything back and stores nothing. ``now``: wall-clock seconds."""
        who = idempotency.principal(caller.name, caller.token_id)
        replay = self._replay(who, key, fingerprint, now)
        if replay is not None:
            return replay, True
        return self._run_once(who, key, fingerprint, run, now)

    def _replay(self, who: str, key: str, fingerprint: str, now: float) -> idempotency.Answer | None:
        """The stored answer for this key, if it is still kept (422 if it was another request's)."""
        found = self.store.remembered(who, key)
        if found is None or idempotency.expired(found, now):
            return None
        return idempotency.check_replay(found, fingerprint)

    @_atomic
    def _run_once(
        self, who: str, key: str, fingerprint: str, run: Callable[[], idempotency.Answer], now: float
    ) -> tuple[idempotency.Answer, bool]:
        replay = self._replay(who, key, fingerprint, now)  # again, under the write lock: a concurrent first try
        if replay is not None:  # may have committed since
            return replay, True
        answer = run()
        if idempotency.storable(answer):
            self.store.remember(who, key, fingerprint, answer, now)
        return answer, False

    # -- access -------------------------------------------------------------------------------------

    def _managed(self, caller: Caller, connector_id: str, if_match: str | None = None) -> Stored:
        stored = self._get(connector_id)
        if stored is None:
            raise not_found(connector_id)
        c = stored.connector
        if not caller.is_admin and c.owner != caller.name:
            if caller.name in c.auth_user:
                raise ApiFailure(
                    403,
                    f"Connector {connector_id} is shared with you, but only its owner ({c.owner}) "
                    "or an Administrator can manage it.",
                )
            raise not_found(connector_id)
        if if_match is not None:
            tags = [t.strip() for t in if_match.split(",")]
            if "*" not in tags and stored.etag not in tags and f"W/{stored.etag}" not in tags:
                raise ApiFailure(
                    412,
                    f"Connector {connector_id} was changed by someone else since you read it "
                    f"(If-Match {if_match} no longer matches {stored.etag}); reload it and try again.",
                    headers={"ETag": stored.etag},
                )
        return stored

    def _group(self, caller: Caller, connector_id: str, if_match: str | None = None) -> Stored:
        stored = self._managed(caller, connector_id, if_match)
        if stored.connector.connector_group is None:
            raise rule_failure(
                [Problem("members", f"connector {connector_id} is a plain connector, not a group; it has no members")]
            )
        return stored

    def _check_auth_users(self, names: Sequence[str], field: str = "authUser") -> None:
        problems: list[Problem] = []
        if len(names) > AUTH_USER_LIMIT:
            problems.append(Problem(field, f"at most {AUTH_USER_LIMIT} users per request, got {len(names)}"))
        bad = [(i, n) for i, n in enumerate(names) if not isinstance(n, str) or not n]
        problems += [Problem(f"{field}[{i}]", f"must be a user name, got {n!r}") for i, n in bad]
        known = self.store.existing_users(n for n in names if isinstance(n, str))
        problems += [
            Problem(f"{field}[{i}]", f"there is no user named {n!r}")
            for i, n in enumerate(names)
            if isinstance(n, str) and n and n not in known
        ]
        if problems:
            raise rule_failure(problems)

    def _check_group(self, connector: Connector, group_id: str | None, prefix: str) -> None:
        group = connector.connector_group
        assert group is not None
        known = self.store.known(m.member_id for m in group.members)
        problems = check_group_rules(
            group_id=group_id, owner=connector.owner, members=group.members, known=known, field_prefix=prefix
        )
        if problems:
            raise rule_failure(problems)

    @staticmethod
    def _parse(body: Any) -> Connector:
        try:
            return parse_connector(_body_dict(body))
        except RuleError as exc:
            raise rule_failure(exc.problems) from exc

    def _save(self, connector: Connector, previous: Stored | None) -> Stored:
        """Write a connector (a new revision) and record the fleet change it makes — unless nothing changed:
        then nothing is written, and the revision, the ETag and the change feed stay as they were."""
        if previous is not None and fleet.unchanged(connector, previous):
            return previous
        with self.store.write():
            if previous is None:
                self.store.save(connector, rev=1)
            else:
                self.store.save(connector, rev=previous.rev + 1, created=previous.created)
            self._recorded |= fleet.record_save(self.store, connector, previous)
        return self._reread(connector.connector_id or "")

    def _check_listener(self, caller: Caller, connector: Connector, group_id: str | None) -> None:
        fleet.check_listener(self.store, connector, group_id, caller=caller.name, admin=caller.is_admin)

    def _reread(self, connector_id: str) -> Stored:
        """A connector just written, read back (and cached: the next GET of it is a lookup)."""
        self._check_cache()  # stamp first, then read: a commit in between only makes the entry look stale
        stored = self.store.get(connector_id)
        assert stored is not None
        self._remember(stored)
        return stored

    # -- /api/mgmt/connectors -----------------------------------------------------------------------

    def list_connectors(self, caller: Caller, *, details: bool, accessible: bool) -> dict[str, Any]:
        owner = None if caller.is_admin else caller.name
        shared = caller.name if accessible and not caller.is_admin else None
        if details:
            return {"connectors": self.store.list_details(owner=owner, shared_with=shared)}
        return {"connectorIDs": self.store.list_ids(owner=owner, shared_with=shared)}

    def list_connectors_json(self, caller: Caller, *, details: bool, accessible: bool) -> bytes:
        """:meth:`list_connectors` as JSON bytes, from the cache while nothing has been committed since."""
        key = (
            None if caller.is_admin else caller.name,
            caller.name if accessible and not caller.is_admin else None,
            details,
        )
        self._check_cache()
        body = self._listings.get(key)
        if body is None:
            body = json_bytes(self.list_connectors(caller, details=details, accessible=accessible))
            if len(self._listings) >= CACHED_LISTINGS:
                self._listings.clear()
            self._listings[key] = body
        return body

    def get_connector(self, caller: Caller, connector_id: str) -> Stored:
        return self._managed(caller, connector_id)

    @_atomic
    def create_group(self, caller: Caller, body: Any) -> Stored:
        raw = _body_dict(body)
        if "owner" not in raw:
            raw = {**raw, "owner": caller.name}
        connector = self._parse(raw)
        problems: list[Problem] = []
        if connector.connector_id is not None:
            problems.append(Problem("connectorID", "is assigned by the server; leave it out when creating a group"))
        if connector.connector_group is None:
            problems.append(
                Problem("connectorGroup", "is required: POST /connectors creates a connector group with its members")
            )
        if connector.endpoint is not None:
            problems.append(Problem("endpoint", "a group has no endpoint of its own; its members do"))
        if problems:
            raise rule_failure(problems)
        if connector.owner != caller.name and not caller.is_admin:
            raise ApiFailure(403, f"You can create groups only for yourself, not for {connector.owner}.")
        if self.store.user(connector.owner) is None:
            raise rule_failure([Problem("owner", f"there is no user named {connector.owner!r}")])
        self._check_auth_users(connector.auth_user)
        self._check_group(connector, None, "connectorGroup.members")
        self._check_listener(caller, connector, None)
        connector = connector.model_copy(update={"connector_id": str(uuid.uuid4())})
        return self._save(connector, None)

    @_atomic
    def put_connector(self, caller: Caller, connector_id: str, body: Any, if_match: str | None) -> Stored:
        stored = self._managed(caller, connector_id, if_match)
        connector = self._parse(body)
        problems: list[Problem] = []
        current = stored.connector
        if "listener" not in body:  # absent keeps the group's listener (HDP clients do not know it); null drops it
            connector = connector.model_copy(update={"listener": current.listener})
        if connector.connector_id is not None and connector.connector_id != connector_id:
            problems.append(Problem("connectorID", f"{connector.connector_id} does not match the URL's {connector_id}"))
        if connector.owner != current.owner:
            problems += self._owner_change_problems(caller, connector_id, current, connector.owner)
        if current.connector_group is not None:
            if connector.connector_group is None:
                problems.append(Problem("connectorGroup", "is required for a group, with its members"))
            if connector.endpoint is not None:
                problems.append(Problem("endpoint", "a group has no endpoint of its own; its members do"))
        elif connector.connector_group is not None:
            problems.append(
                Problem(
                    "connectorGroup",
                    f"connector {connector_id} is a plain connector and cannot have members; "
                    "create a group with POST /api/mgmt/connectors",
                )
            )
        if problems:
            raise rule_failure(problems)
        self._check_auth_users(connector.auth_user)
        if connector.connector_group is not None:
            self._check_group(connector, connector_id, "connectorGroup.members")
        update: dict[str, Any] = {"connector_id": connector_id, "auth_user": tuple(dict.fromkeys(connector.auth_user))}
        if current.connector_group is None and connector.endpoint is None:
            update["endpoint"] = current.endpoint  # absent endpoint keeps the registered one
        connector = connector.model_copy(update=update)
        self._check_listener(caller, connector, connector_id)
        return self._save(connector, stored)

    def _owner_change_problems(
        self, caller: Caller, connector_id: str, current: Connector, owner: str
    ) -> list[Problem]:
        """An Administrator may hand a connector or group to another user. A group's members must then be
        registered to the new owner (the group rules check that); a plain connector still in a group keeps
        that group's owner."""
        if not caller.is_admin:
            raise ApiFailure(
                403,
                f"Only an Administrator can change the owner of {connector_id} (it belongs to {current.owner}).",
                [Problem("owner", f"only an Administrator can change it from {current.owner}")],
            )
        if self.store.user(owner) is None:
            return [Problem("owner", f"{owner} is not a known user")]
        if current.connector_group is None:
            group_id = self.store.known([connector_id])[connector_id].group_id
            if group_id is not None:
                return [
                    Problem(
                        "owner",
                        f"connector {connector_id} is a member of group {group_id}, which belongs to "
                        f"{current.owner}; remove it from that group first",
                    )
                ]
        return []

    @_atomic
    def delete_connector(self, caller: Caller, connector_id: str, if_match: str | None) -> None:
        stored = self._managed(caller, connector_id, if_match)
        if stored.connector.connector_group is None:
            raise ApiFailure(
                400,
                f"Connector {connector_id} is a plain connector; only groups are deleted here. "
                "An Administrator unregisters connectors with DELETE /api/admin/connectors/{id}.",
                [Problem("connectorID", "is a plain connector, not a group")],
            )
        with self.store.write():
            self.store.delete(connector_id)
            self._recorded |= fleet.record_delete(self.store, stored)

    # -- members ------------------------------------------------------------------------------------

    def get_members(self, caller: Caller, connector_id: str) -> Stored:
        return self._group(caller, connector_id)

    def _with_members(self, stored: Stored, members: Sequence[Member]) -> Connector:
        group = stored.connector.connector_group
        assert group is not None
        new_group = ConnectorGroup.model_construct(
            connection_timeout=group.connection_timeout,
            retry_delay=group.retry_delay,
            load_balancing=group.load_balancing,
            members=tuple(members),
        )
        return stored.connector.model_copy(update={"connector_group": new_group})

    @staticmethod
    def _parse_members(body: Any) -> tuple[Member, ...]:
        try:
            members: tuple[Member, ...] = parse_members(body)
        except RuleError as exc:
            raise rule_failure(exc.problems) from exc
        return members

    @_atomic
    def add_members(self, caller: Caller, connector_id: str, body: Any, if_match: str | None) -> Stored:
        stored = self._group(caller, connector_id, if_match)
        new = self._parse_members(body)
        group = stored.connector.connector_group
        assert group is not None
        current = {m.member_id for m in group.members}
        problems = [
            Problem(f"members[{i}].memberID", f"connector {m.member_id} is already a member of this group", m.member_id)
            for i, m in enumerate(new)
            if m.member_id in current
        ]
        if not new:
            problems.append(Problem("members", "lists no members to add"))
        if problems:
            raise rule_failure(problems)
        known = self.store.known(m.member_id for m in new)
        known.update(self.store.known(m.member_id for m in group.members))
        found = check_group_rules(
            group_id=connector_id,
            owner=stored.connector.owner,
            members=[*new, *group.members],
            known=known,
            field_prefix="members",
        )
        found = [p for p in found if _index(p.field) < len(new)]
        if found:
            raise rule_failure(found)
        final = self._with_members(stored, [*group.members, *new])
        self._check_listener(caller, final, connector_id)
        return self._save(final, stored)

    @_atomic
    def put_members(self, caller: Caller, connector_id: str, body: Any, if_match: str | None) -> Stored:
        stored = self._group(caller, connector_id, if_match)
        new = self._parse_members(body)
        connector = self._with_members(stored, new)
        self._check_group(connector, connector_id, "members")
        self._check_listener(caller, connector, connector_id)
        return self._save(connector, stored)

    @_atomic
    def remove_members(self, caller: Caller, connector_id: str, body: Any, if_match: str | None) -> Stored:
        stored = self._group(caller, connector_id, if_match)
        raw = _body_dict(body).get("members")
        if not isinstance(raw, list) or not raw:
            raise rule_failure([Problem("members", 'is required: {"members": ["<memberID>", ...]}')])
        ids: list[str] = []
        problems: list[Problem] = []
        for i, item in enumerate(raw):
            mid = item.get("memberID") if isinstance(item, dict) else item
            if not isinstance(mid, str):
                problems.append(Problem(f"members[{i}]", f"must be a memberID string, got {item!r}"))
            else:
                ids.append(mid)
        group = stored.connector.connector_group
        assert group is not None
        current = {m.member_id for m in group.members}
        problems += [
            Problem(f"members[{i}]", f"connector {mid} is not a member of this group", mid)
            for i, mid in enumerate(ids)
            if mid not in current
        ]
        remaining = [m for m in group.members if m.member_id not in set(ids)]
        if not problems and not remaining:
            problems.append(
                Problem("members", "would remove every member; delete the group instead (DELETE /connectors/{id})")
            )
        if problems:
            raise rule_failure(problems)
        return self._save(self._with_members(stored, remaining), stored)

    # -- authorized users ---------------------------------------------------------------------------

    def get_auth_users(self, caller: Caller, connector_id: str) -> Stored:
        return self._managed(caller, connector_id)

    @staticmethod
    def _names(body: Any) -> list[str]:
        raw = _body_dict(body).get("authUser")
        if not isinstance(raw, list):
            raise rule_failure([Problem("authUser", 'is required: {"authUser": ["<user>", ...]}')])
        return raw

    @_atomic
    def change_auth_users(
        self, caller: Caller, connector_id: str, body: Any, if_match: str | None, *, how: str
    ) -> Stored:
        stored = self._managed(caller, connector_id, if_match)
        names = self._names(body)
        self._check_auth_users(names)
        current = list(stored.connector.auth_user)
        if how == "add":
            result = list(dict.fromkeys([*current, *names]))
        elif how == "replace":
            result = list(dict.fromkeys(names))
        else:
            missing = [(i, n) for i, n in enumerate(names) if n not in current]
            if missing:
                raise rule_failure(
                    [Problem(f"authUser[{i}]", f"{n} is not an authorized user of this connector") for i, n in missing]
                )
            result = [n for n in current if n not in set(names)]
        return self._save(stored.connector.model_copy(update={"auth_user": tuple(result)}), stored)

    # -- /api/admin/connectors ----------------------------------------------------------------------

    @staticmethod
    def _require_admin(caller: Caller) -> None:
        if not caller.is_admin:
            raise ApiFailure(403, "This needs the Administrator role.")

    @_atomic
    def register_connector(self, caller: Caller, body: Any) -> dict[str, Any]:
        self._require_admin(caller)
        raw = _body_dict(body)
        problems: list[Problem] = []
        allowed = {"label", "owner", "endpoint", "connectorID"}
        problems += [Problem(k, "is not a known field") for k in raw if k not in allowed]
        label, owner, endpoint, cid = raw.get("label"), raw.get("owner"), raw.get("endpoint"), raw.get("connectorID")
        problems += plain_connector_problems(label=label, endpoint=endpoint, has_endpoint="endpoint" in raw)
        if not isinstance(owner, str) or not owner:
            problems.append(Problem("owner", "is required: the user the connector is registered to"))
        elif self.store.user(owner) is None:
            problems.append(Problem("owner", f"there is no user named {owner!r}"))
        if "connectorID" in raw and (problem := id_problem(cid)):
            problems.append(Problem("connectorID", problem))
        if problems:
            raise rule_failure(problems)
        cid = cid or str(uuid.uuid4())
        if self.store.get(cid) is not None:
            raise ApiFailure(
                409, f"A connector with ID {cid} is already registered.", [Problem("connectorID", "is taken")]
            )
        assert isinstance(owner, str) and isinstance(label, str)  # checked above: problems otherwise
        connector = Connector.model_construct(
            connector_id=cid, owner=owner, label=label, connector_group=None, auth_user=(), endpoint=endpoint
        )
        self._save(connector, None)
        return self.registered(caller, cid)

    def registered(self, caller: Caller, connector_id: str) -> dict[str, Any]:
        self._require_admin(caller)
        for row in self.store.admin_rows():
            if row["connectorID"] == connector_id:
                return _admin_view(row)
        raise not_found(connector_id)

    def list_registered(self, caller: Caller, filters: dict[str, str]) -> dict[str, Any]:
        self._require_admin(caller)
        rows = [_admin_view(r) for r in self.store.admin_rows()]
        for key, value in filters.items():
            rows = [r for r in rows if str(r.get(key)).lower() == value.lower()]
        return {"connectors": rows}

    @_atomic
    def unregister(self, caller: Caller, connector_id: str) -> None:
        self._require_admin(caller)
        stored = self.store.get(connector_id)
        if stored is None:
            raise not_found(connector_id)
        if stored.group_id is not None:
            raise ApiFailure(
                409,
                f"Connector {connector_id} is a member of group {stored.group_id}; remove it from the group first.",
                [Problem("connectorID", f"is a member of group {stored.group_id}", connector_id)],
            )
        with self.store.write():
            self.store.delete(connector_id)
            self._recorded |= fleet.record_delete(self.store, stored)

    # -- /api/admin/users ---------------------------------------------------------------------------

    def list_users(self, caller: Caller) -> dict[str, Any]:
        self._require_admin(caller)
        return {"users": [u.as_json() for u in self.store.users()]}

    def get_user(self, caller: Caller, name: str) -> dict[str, Any]:
        self._require_admin(caller)
        return _user_json(self._user(name))

    def _user(self, name: str) -> UserRow:
        user = self.store.user(name)
        if user is None:
            raise ApiFailure(404, f"There is no user named {name}.")
        return user

    @_atomic
    def add_user(self, caller: Caller | None, body: Any, *, pw_hash: str | None = None) -> dict[str, Any]:
        """``caller`` None means the command line (trusted, talking to the store directly)."""
        if caller is not None:
            self._require_admin(caller)
        raw = _body_dict(body)
        problems = [Problem(k, "is not a known field") for k in raw if k not in {"name", "password", "role"}]
        name, password, role = raw.get("name"), raw.get("password"), raw.get("role", "User")
        if problem := user_name_problem(name):
            problems.append(Problem("name", problem))
        if not isinstance(password, str) or len(password) < PASSWORD_MIN:
            problems.append(Problem("password", f"must be at least {PASSWORD_MIN} characters"))
        if role not in ROLES:
            problems.append(Problem("role", f"must be one of {', '.join(ROLES)}, got {role!r}"))
        if problems:
            raise rule_failure(problems)
        assert isinstance(name, str) and isinstance(password, str) and isinstance(role, str)
        if self.store.user(name) is not None:
            raise ApiFailure(409, f"A user named {name} already exists.", [Problem("name", "is taken")])
        pw_hash = pw_hash or hash_password(password)
        with self.store.write():
            self.store.insert_user(name, pw_hash, role)
        return _user_json(self._user(name))

    @_atomic
    def update_user(self, caller: Caller | None, name: str, body: Any, *, pw_hash: str | None = None) -> dict[str, Any]:
        if caller is not None:
            self._require_admin(caller)
        user = self._user(name)
        raw = _body_dict(body)
        problems = [Problem(k, "is not a known field") for k in raw if k not in {"password", "role", "active"}]
        password, role, active = raw.get("password"), raw.get("role"), raw.get("active")
        # a field that is present is a change: null is not "leave it as it is" (leave the field out for that)
        if "password" in raw and (not isinstance(password, str) or len(password) < PASSWORD_MIN):
            problems.append(Problem("password", f"must be a string of at least {PASSWORD_MIN} characters"))
        if "role" in raw and role not in ROLES:
            problems.append(Problem("role", f"must be one of {', '.join(ROLES)}, got {role!r}"))
        if "active" in raw and not isinstance(active, bool):
            problems.append(Problem("active", "must be true or false"))
        if problems:
            raise rule_failure(problems)
        demoted = user.is_admin and user.active and (active is False or (role is not None and role != user.role))
        if demoted and not any(u.is_admin and u.active and u.name != name for u in self.store.users()):
            problem = (Problem("active", "must stay true for the last active Administrator; make another one first")
                       if active is False else
                       Problem("role", "must stay Administrator for the last active Administrator; make another one "
                                       "first"))
            raise ApiFailure(409, f"{name} is the last active Administrator; make another one first.", [problem])
        if isinstance(password, str) and pw_hash is None:
            pw_hash = hash_password(password)
        with self.store.write():
            self.store.update_user(name, pw_hash=pw_hash, role=role, active=active)
        return _user_json(self._user(name))


    # -- balancer tokens (see tokens.py); ``caller`` None means the command line --------------------------

    @_atomic
    def create_token(self, caller: Caller | None, body: Any) -> dict[str, Any]:
        if caller is not None:
            self._require_admin(caller)
        return tokens.create(self.store, body)

    def list_tokens(self, caller: Caller | None) -> dict[str, Any]:
        if caller is not None:
            self._require_admin(caller)
        return tokens.listing(self.store)

    @_atomic
    def revoke_token(self, caller: Caller | None, token_id: str) -> dict[str, Any]:
        if caller is not None:
            self._require_admin(caller)
        return tokens.revoke(self.store, token_id)


def _user_json(user: UserRow) -> dict[str, Any]:
    out: dict[str, Any] = user.as_json()
    return out


def _index(field: str) -> int:
    """``members[3].memberID`` → 3; fields without an index sort first (-1)."""
    match = re.match(r"^members\[(\d+)\]", field)
    return int(match.group(1)) if match else -1


def _admin_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "version": "balancedesk", "tenantName": "Default"}
