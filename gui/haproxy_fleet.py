"""HAProxy instances in the Balancers view, beside Balance Desk's balancers (no widgets of its own).

How the view learns about them — the GUI polls the instances it is configured with; nothing runs beside
HAProxy (no agent, no heartbeat): the setting :data:`INSTANCES_KEY` (chosen with the view's "HAProxy
instances…" button) names an instances file, the same JSON list
``balancedesk haproxy deploy|status --instances FILE`` reads. Every poll of the Balancers view reads that
file, each instance's config (the managed sections: which groups, which version) and asks its sockets
(``core.haproxy.status``) — off the UI thread, on the qasync loop.

Rules, per instance:

* One row per pool its sections name (a section deployed from a ``--config`` file names none: pool
  ``haproxy``). The row's ID is ``haproxy:<name>``; its data plane ``HAProxy <version>``.
* A group's "applied" version is the saved version the section was deployed from (``saved``), else the
  section's own version; the verdict against the pool's saved version is the balancers' own
  (``gui.fleet.rows.group_rows``) — but only over the groups the instance serves: an HAProxy serving one group
  of a pool is not "not serving" the others.
* An instance whose sockets do not answer is ``lost`` (its config is still read and shown).
* Overrides: ``show servers state`` of each served backend, as the live view shows them (``core.haproxy.stats``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from balancedesk.core.export import backend_for
from balancedesk.core.fleet import ALIVE, LOST, AppliedGroup, Override
from balancedesk.core.fleetclient import BalancerInfo
from balancedesk.core.haproxy.cli import parse_instances
from balancedesk.core.haproxy.deploy import Instance
from balancedesk.core.haproxy.runtime import RuntimeClient, RuntimeRefused, RuntimeUnavailable
from balancedesk.core.haproxy.stats import overrides
from balancedesk.core.haproxy.status import instance_status
from balancedesk.gui.fleet.rows import NO_NAMES, InstanceRow, PoolSaved, group_rows
from balancedesk.gui.settings import app_settings
from PySide6.QtWidgets import QWidget

INSTANCES_KEY = "fleet/haproxyInstancesFile"
NO_POOL = "haproxy"
ID_PREFIX = "haproxy:"


def choose_instances_file(window: QWidget) -> None:
    """Ask for the instances file (a file dialog) and keep it in :data:`INSTANCES_KEY`; the next poll lists them."""
    from PySide6.QtWidgets import QFileDialog

    start = str(configured_file() or "")
    path, _ = QFileDialog.getOpenFileName(window, "HAProxy instances file", start, "JSON (*.json);;All files (*)")
    if path:
        app_settings().setValue(INSTANCES_KEY, path)
        poller = getattr(window, "poller", None)
        if poller is not None:
            poller.poke()


def configured_file() -> Path | None:
    value = str(app_settings().value(INSTANCES_KEY, "") or "")
    return Path(value).expanduser() if value else None


def read_instances(path: Path | None) -> list[Instance]:
    """The instances of the configured file (none when unset; ValueError naming the problem)."""
    if path is None:
        return []
    try:
        return parse_instances(json.loads(path.read_text()))
    except OSError as exc:
        raise ValueError(f"HAProxy instances file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"HAProxy instances file {path} is not valid JSON: {exc}") from None


async def _overrides(stats: str | None, group_ids: list[str]) -> tuple[Override, ...]:
    if stats is None:
        return ()
    client = RuntimeClient(stats)
    out: list[Override] = []
    for gid in group_ids:
        try:
            rows = await client.show_servers_state(backend_for(gid))
        except (RuntimeUnavailable, RuntimeRefused):
            continue
        out += [Override.model_validate({**o, "connectorID": gid}) for o in overrides(backend_for(gid), rows, {})]
    return tuple(out)


async def instance_infos(instance: Instance, *, now: float | None = None) -> list[BalancerInfo]:
    """One :class:`BalancerInfo` per pool of ``instance`` (see the module's rules)."""
    status: Mapping[str, Any] = await instance_status(instance)
    wall = time.time() if now is None else now
    by_pool: dict[str, list[Mapping[str, Any]]] = {}
    for g in status["groups"]:
        by_pool.setdefault(g.get("pool") or NO_POOL, []).append(g)
    if not by_pool:
        by_pool[NO_POOL] = []
    alive = status.get("version") is not None and not status.get("error")
    infos = []
    for pool, groups in sorted(by_pool.items()):
        ids = [g["connectorID"] for g in groups]
        suffix = f" ({pool})" if len(by_pool) > 1 else ""
        infos.append(BalancerInfo(
            instance_id=f"{ID_PREFIX}{status['name']}{suffix}", pool=pool, host=str(instance.config),
            admin_url=None, has_admin_token=False,
            data_plane=f"HAProxy {status.get('version') or '?'}", workers=max(1, len(status.get("workers") or ())),
            started_at=wall - float(status.get("uptime_s") or 0),
            groups=tuple(AppliedGroup.model_validate(
                {"connectorID": g["connectorID"],
                 "version": g["saved"] if g.get("saved") is not None else g["version"]}) for g in groups),
            overrides=await _overrides(instance.stats, ids) if alive else (),
            state=ALIVE if alive else LOST, last_seen=wall, last_seen_ago_s=0.0, token_id=""))
    return infos


async def haproxy_infos() -> list[BalancerInfo]:
    """Every configured instance's rows (an unreadable instances file: none, and the error raised)."""
    path = configured_file()
    if path is None:  # none configured (the usual case): no thread, no file
        return []
    instances = await asyncio.to_thread(read_instances, path)
    found = await asyncio.gather(*(instance_infos(i) for i in instances))
    return [info for infos in found for info in infos]


def haproxy_rows(infos: list[BalancerInfo], saved_by_pool: Mapping[str, PoolSaved]) -> list[InstanceRow]:
    """The view's rows for HAProxy instances: judged only over the groups each serves."""
    rows = []
    for b in infos:
        pool = saved_by_pool.get(b.pool)
        served = {g.connector_id for g in b.groups}
        mine = None if pool is None else PoolSaved({k: v for k, v in pool.versions.items() if k in served},
                                                    pool.labels, pool.endpoints)
        rows.append(InstanceRow(b, group_rows(b.groups, mine), 0.0, pool or NO_NAMES))
    return rows


def is_haproxy_row(row_id: str) -> bool:
    return row_id.startswith(ID_PREFIX)


async def instance_for(row_id: str) -> Instance | None:
    """The configured instance behind a row of the view (None if it is not an HAProxy row)."""
    if not is_haproxy_row(row_id):
        return None
    name = row_id[len(ID_PREFIX):].rsplit(" (", 1)[0]
    path = configured_file()
    try:
        instances = await asyncio.to_thread(read_instances, path) if path is not None else []
    except ValueError:
        return None
    return next((i for i in instances if i.title == name), None)


async def open_haproxy_live(parent: QWidget, mgmt: Any, row_id: str, connector_id: str) -> QWidget | str:
    """A live view of ``connector_id``'s backend on the HAProxy behind ``row_id`` (the LiveWindow), or the
    sentence saying why not. The saved group is read from ``mgmt`` (the management client)."""
    from balancedesk.core.client import ApiError, ApiUnavailable
    from balancedesk.core.haproxy.engine import HaproxyEngine
    from balancedesk.gui.live import open_live_view

    instance = await instance_for(row_id)
    if instance is None or instance.stats is None:
        return f"{row_id}: no stats socket configured for it in the instances file: nothing to watch"
    try:
        group, _etag = await mgmt.get_connector(connector_id)
    except (ApiError, ApiUnavailable) as exc:
        return f"Cannot read group {connector_id}: {exc}"
    endpoints = {m.member_id: "" for m in (group.connector_group.members if group.connector_group else ())}
    engine = HaproxyEngine(instance.stats, backend_for(connector_id), listen=instance.listen or "")
    return open_live_view(parent=parent, group=group, endpoints={k: v for k, v in endpoints.items() if v},
                          client=engine, mgmt=mgmt, instance=row_id)
