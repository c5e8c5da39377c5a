"""The fleet side of the management server: listener rules across groups, what a save records in the change
log, the documents a pool's balancers read, and the wake-up of long-polling followers.

Rules a group's ``listener`` must keep (on create and PUT; 400/409 naming the field):

* only a connector group has one (``listener``: 400);
* ``listener.port`` is required (400): a pool's balancers open one listener per group;
* every member needs an endpoint (400 naming the member): the balancers must reach it;
* two groups of one pool cannot claim the same socket — same port and the same address, or either one a
  wildcard (no ``bind``, ``0.0.0.0``, ``::``) — 409 naming ``listener.port``. Groups of different pools
  may share a port: they are served by different balancer hosts.

A save that changes nothing is not saved (:func:`unchanged`): no new revision, no ETag change, no change
event. A save that changes what a balancer serves records one (:func:`record_save`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from balancedesk.core.mgmt import fleetlog
from balancedesk.core.mgmt.errors import ApiFailure, rule_failure
from balancedesk.core.mgmt.store import Store, Stored, listener_from
from balancedesk.core.model import Connector, Problem


def pool_of(connector: Connector | None) -> str | None:
    """The pool that serves a group (None: a plain connector, or a group without a listener)."""
    if connector is None or connector.connector_group is None or connector.listener is None:
        return None
    return connector.listener.pool


def unchanged(connector: Connector, previous: Stored | None) -> bool:
    return previous is not None and connector.to_json() == previous.document


def _served(connector: Connector) -> dict[str, Any]:
    """What a pool's balancers get of a group (its config but the members' endpoints): authUser is not part."""
    return {k: v for k, v in connector.to_json().items() if k != "authUser"}


def check_listener(store: Store, connector: Connector, group_id: str | None, *, caller: str, admin: bool) -> None:
    """Raise the 400/409 of the rules above, if ``connector`` (saved as ``group_id``) breaks one."""
    listener = connector.listener
    if listener is None:
        return
    group = connector.connector_group
    if group is None:
        raise rule_failure(
            [Problem("listener", "only a connector group has a listener; a plain connector is served through "
                                 "the groups it is a member of")]
        )
    if listener.port is None:
        raise rule_failure([Problem("listener.port", "is required: the port the pool's balancers listen on")])
    ids = [m.member_id for m in group.members]
    endpoints = fleetlog.endpoints_of(store, ids)
    missing = [
        Problem(f"connectorGroup.members[{i}].memberID",
                f"connector {mid} has no endpoint, so the pool's balancers could not reach it", mid)
        for i, mid in enumerate(ids)
        if mid not in endpoints
    ]
    if missing:
        raise rule_failure(missing)
    for gid, owner, label, text in fleetlog.listeners_on(store, listener.pool, listener.port, exclude=group_id):
        other = listener_from(text)
        if other is None or other.pool != listener.pool or not listener.claims(other):
            continue
        who = f"group {gid} ({label})" if admin or owner == caller else "another user's group"
        where = f"{other.bind or '*'}:{other.port}"
        raise ApiFailure(
            409,
            f"listener.port: {where} is already claimed in pool {listener.pool} by {who}; "
            "choose another port or bind address, or another pool.",
            [Problem("listener.port", f"{where} is taken in pool {listener.pool} by {who}")],
        )


def record_save(store: Store, connector: Connector, previous: Stored | None) -> bool:
    """In the save's transaction: record the change a balancer must follow, if any. A group records itself
    (gone from its old pool, changed in its new one); a plain connector whose endpoint or label changed
    records the group it is a member of."""
    old = previous.connector if previous is not None else None
    if connector.connector_group is not None or (old is not None and old.connector_group is not None):
        if old is not None and pool_of(old) == pool_of(connector) and _served(old) == _served(connector):
            return False  # e.g. only authUser changed: nothing a balancer serves
        return fleetlog.record(
            store, connector.connector_id or "", old_pool=pool_of(old), new_pool=pool_of(connector)
        )
    if (previous is None or previous.group_id is None or old is None
            or (old.endpoint == connector.endpoint and old.label == connector.label)):
        return False  # a member's endpoint or label is what its group's balancers serve
    group = store.get(previous.group_id)
    pool = pool_of(group.connector if group is not None else None)
    return fleetlog.record(store, previous.group_id, old_pool=pool, new_pool=pool)


def record_delete(store: Store, stored: Stored) -> bool:
    return fleetlog.record(
        store, stored.connector.connector_id or "", old_pool=pool_of(stored.connector), new_pool=None
    )


# -- what a pool's balancers read -------------------------------------------------------------------------


def _etag(version: int, store_id: str) -> str:
    return f'"{version}-{store_id[:16]}"'


def group_document(store: Store, stored: Stored, version: int) -> dict[str, Any]:
    """``{"version", "rev", "config"}``: ``config`` is a balancer config (``parse_balancer_config`` reads it):
    the group's connectorID, owner, label, connectorGroup and listener, plus its members' ``endpoints`` and
    ``memberLabels`` (their connectors' labels).
    ``authUser`` is left out (a balancer has no use for user names)."""
    c = stored.connector
    group = c.connector_group
    listener = c.listener
    assert group is not None and listener is not None
    ids = [m.member_id for m in group.members]
    endpoints = fleetlog.endpoints_of(store, ids)
    config = {
        "connectorID": c.connector_id,
        "owner": c.owner,
        "label": c.label,
        "connectorGroup": group.to_json(),
        "listener": listener.to_json(),
        "endpoints": endpoints,
        "memberLabels": fleetlog.labels_of(store, ids),
    }
    return {"version": version, "rev": stored.rev, "config": config}


def pool_etag(store: Store, pool: str) -> str:
    return _etag(fleetlog.pool_mark(store, pool), fleetlog.store_id(store))


def pool_document(store: Store, pool: str) -> dict[str, Any]:
    """Every group of ``pool`` with its version and config, and the ``cursor`` to follow the feed from.
    The cursor is read first: a change committed meanwhile is both in the groups and in the feed after it,
    never in neither."""
    cursor = fleetlog.current_seq(store)
    groups = []
    for gid, version in fleetlog.members_of(store, pool):
        stored = store.get(gid)
        if stored is not None and stored.connector.listener is not None:
            groups.append({"connectorID": gid, **group_document(store, stored, version)})
    return {"pool": pool, "storeID": fleetlog.store_id(store), "cursor": cursor, "groups": groups}


def group_in_pool(store: Store, pool: str, group_id: str) -> tuple[dict[str, Any], str] | None:
    """One group of ``pool`` (its document and ETag), or None if it is not in that pool."""
    version = fleetlog.version_in(store, pool, group_id)
    stored = store.get(group_id) if version is not None else None
    if version is None or stored is None or stored.connector.listener is None:
        return None
    sid = fleetlog.store_id(store)
    doc = {"connectorID": group_id, "pool": pool, "storeID": sid, **group_document(store, stored, version)}
    return doc, _etag(version, sid)


def feed_answer(store: Store, pool: str, cursor: int, store_id: str | None, limit: int) -> dict[str, Any]:
    """The feed's answer for ``cursor`` right now (see fleetlog's rules): ``resync`` when the cursor cannot be
    followed, else the pool's changes after it, and the cursor to ask with next."""
    sid = fleetlog.store_id(store)
    seq = fleetlog.current_seq(store)
    if (store_id is not None and store_id != sid) or cursor > seq or cursor < fleetlog.floor(store):
        return {"storeID": sid, "cursor": seq, "resync": True, "more": False, "changes": []}
    changes = fleetlog.since(store, pool, cursor, limit + 1)
    more = len(changes) > limit
    changes = changes[:limit]
    nxt = changes[-1].version if more else max(seq, changes[-1].version if changes else seq)
    return {"storeID": sid, "cursor": nxt, "resync": False, "more": more, "changes": [c.as_json() for c in changes]}


class Wakeup:
    """Wakes every long-polling follower when a commit recorded a change — no polling inside the server.

    :meth:`waiter` hands out the current event *before* the caller reads the log, :meth:`wake` (called on the
    event loop's thread right after the commit) sets it and starts a new one: a change committed between the
    read and the wait still wakes the waiter."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event

    def wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()
