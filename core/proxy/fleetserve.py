"""A balancer process serving many groups: ``balancedesk balance --api URL --token-file F [--pool P]`` and
``balancedesk balance --config FILE`` with a ``{"groups": […]}`` file.

Each worker (one process, one event loop) keeps a :class:`~balancedesk.core.proxy.groups.Groups` and its own
config source: a :class:`~balancedesk.core.proxy.follow.PoolFollower` of the pool, or a :class:`GroupsFile`
watched like ``--config`` (mtime/size about every second, and SIGHUP). With ``--workers N`` every worker
listens on each group's port with ``SO_REUSEPORT`` and follows on its own, under the same supervisor as a
one-group balancer (``server.supervise``). The parent makes one
:class:`~balancedesk.core.proxy.shared.SharedState` before it forks, and every group's ``Runtime`` in every
worker — groups that appear later included — takes its slots there (``shared.py`` has the rules): health
marks and sticky entries are the process's, and so are the admin actions and the snapshot.

The control plane inside the process: worker 0 alone serves the admin endpoint and heartbeats. An admin
action (drain/disable/enable, a live weight, a revert) is carried out in worker 0's ``Runtime`` and written
to the member's shared slot with a generation bump; every other worker adopts it at its next pick (one read
of the generation per pick) and keeps it across the config updates it applies, as worker 0 does. The
snapshot (and the heartbeat's overrides) are therefore the process's: its counters are summed over every
worker's row (the snapshot's ``shared`` says so, with each worker's ``countersAge_s``); events, latency
percentiles and ``/metrics`` are worker 0's.

The admin endpoint (bearer token as for one group):

* ``GET /admin/groups`` — every group: ``connectorID``, ``version`` (the server's, applied by worker 0),
  ``localVersion``, ``listen`` or ``error``, ``mode``, with ``--workers N`` ``versionPerWorker``; plus
  ``controlPlane`` (following: ``state`` connected/unreachable, ``since``, ``lastError``, ``cursor``) and
  ``overrides`` (every group's, as in the heartbeat).
* ``/groups/{connectorID}/snapshot``, ``…/events``, ``…/metrics``, ``…/members/{memberID}/state|weight``,
  ``DELETE …/overrides/{memberID}`` — one group's routes, as ``/admin/…`` of a one-group balancer.
* While exactly one group is served, the old ``/admin/snapshot`` … routes (and ``/metrics``) are its.
* ``PUT …/config`` is refused (409) while following the server: the server is the source of truth.

The ready line: ``balancedesk: balancing N groups [pool P] admin URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig, Problem, RuleError, parse_balancer_config
from balancedesk.core.proxy import admin as admin_mod
from balancedesk.core.proxy.config import POLL_S, log
from balancedesk.core.proxy.follow import ControlPlane, Heartbeater, Identity, PoolFollower
from balancedesk.core.proxy.groups import Groups
from balancedesk.core.proxy.server import Options, hostport, ready_line, run_worker_loop, supervise
from balancedesk.core.proxy.shared import SharedState


@dataclass
class FleetOptions:
    """What a many-group balancer needs beyond the per-listener :class:`Options`."""

    base: Options
    default_bind: str
    api: str | None = None
    pool: str = "default"
    token: str | None = None  # the balancer token (bdt_…)
    verify: bool | str = True
    groups_file: Path | None = None


def parse_groups_file(raw: bytes) -> list[BalancerConfig]:
    """``{"groups": [<balancer config with listener.port>, …]}`` → configs; RuleError naming the field."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RuleError([Problem("body", f"is not valid JSON: {exc}")]) from None
    if not isinstance(body, dict) or not isinstance(body.get("groups"), list):
        raise RuleError([Problem("groups", "must be a list of group configs")])
    out: list[BalancerConfig] = []
    seen: set[str] = set()
    for i, raw_group in enumerate(body["groups"]):
        try:
            cfg = parse_balancer_config(raw_group)
        except RuleError as exc:
            raise RuleError([Problem(f"groups[{i}].{p.field}", p.message) for p in exc.problems]) from None
        if not cfg.connector_id:
            raise RuleError([Problem(f"groups[{i}].connectorID", "is required in a file of several groups")])
        if cfg.listener.port is None:
            raise RuleError([Problem(f"groups[{i}].listener.port", "is required in a file of several groups")])
        if cfg.connector_id in seen:
            raise RuleError([Problem(f"groups[{i}].connectorID", f"{cfg.connector_id} is listed twice")])
        seen.add(cfg.connector_id)
        out.append(cfg)
    return out


def is_groups_file(raw: bytes) -> bool:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and "groups" in body


class GroupsFile:
    """``--config`` with several groups: re-read when the file changes or on SIGHUP; a bad file is refused
    whole (logged; every group keeps serving)."""

    def __init__(self, path: Path, groups: Groups) -> None:
        self.path = path
        self.groups = groups
        self._stamp = self._stat()
        self.last_error: str | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def load(self) -> None:
        self._stamp = self._stat()
        try:
            configs = parse_groups_file(self.path.read_bytes())
        except (OSError, RuleError) as exc:
            self.last_error = str(exc)
            log(f"config {self.path} refused, the old groups keep serving: {exc}")
            return
        self.last_error = None
        await self.groups.sync([(cfg, 0) for cfg in configs])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            if self._stat() != self._stamp:
                await self.load()


class FleetAdmin:
    """The admin endpoint's routes over :class:`Groups` (see the module docstring)."""

    def __init__(self, groups: Groups, control: ControlPlane | None, ident: Identity) -> None:
        self.groups = groups
        self.control = control
        self.ident = ident

    def groups_json(self) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        overrides: list[dict[str, Any]] = []
        for gid, g in sorted(self.groups.items.items()):
            item = {"connectorID": gid, "version": g.version,
                    "localVersion": g.rt.version if g.rt is not None else None,
                    "listen": g.listen, "error": g.error, "mode": g.cfg.listener.mode}
            sums = g.rt.shared.totals_sums() if g.rt is not None and g.rt.shared is not None else None
            if sums is not None:  # --workers N: the server's version each worker applies (each follows alone)
                item["versionPerWorker"] = sums[2]
            out.append(item)
            if g.rt is not None:
                overrides.extend(admin_mod.overrides_json(g.rt))
        return {"instanceID": self.ident.instance_id, "groups": out, "overrides": overrides,
                "controlPlane": self.control.to_json() if self.control is not None else None}

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
        path = target.split("?", 1)[0]
        seg = path.strip("/").split("/")
        if seg == ["admin", "groups"]:
            if method != "GET":
                return _err(405, "use GET")
            return 200, "application/json", json.dumps(self.groups_json()).encode()
        if len(seg) >= 3 and seg[0] == "groups":
            gid, rest = seg[1], "/".join(seg[2:])
            query = target[len(path):]
            return self._group(gid, method, ("/metrics" if rest == "metrics" else "/admin/" + rest) + query, body)
        if len(self.groups.items) == 1 and (path.startswith("/admin/") or path == "/metrics"):
            (gid,) = self.groups.items
            return self._group(gid, method, target, body)
        return _err(404, f"no such admin resource {path}" + (
            " (this balancer serves several groups: use /groups/{connectorID}/…)" if path.startswith("/admin/")
            else ""))

    def _group(self, gid: str, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
        g = self.groups.items.get(gid)
        if g is None:
            return _err(404, f"this balancer does not serve group {gid}")
        if g.rt is None:
            return _err(503, f"group {gid} is not served: {g.error}")
        if target.split("?", 1)[0] == "/admin/config" and self.control is not None:
            return _err(409, "this balancer follows the management server: save the group there")
        if target.split("?", 1)[0] == "/admin/snapshot" and method == "GET":
            snap = admin_mod.snapshot(g.rt, server_version=g.version,
                                      control_plane=self.control.to_json() if self.control is not None else None)
            return 200, "application/json", json.dumps(snap).encode()
        return admin_mod.handle(g.rt, method, target, body)


def _err(status: int, message: str) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps({"error": {"message": message}}).encode()


def new_identity(workers: int, data_plane: str) -> Identity:
    host = socket.gethostname() or "localhost"
    return Identity(instance_id=f"{host[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}", host=host,
                    data_plane=data_plane, workers=workers, started_at=time.time())


async def serve_fleet(fo: FleetOptions, ident: Identity, *, admin: bool, ready: Any,
                      shared: SharedState | None = None) -> int:
    """Run one worker of a many-group balancer until SIGTERM/SIGINT; then every listener stops gracefully."""
    from balancedesk.core.client import MgmtClient
    from balancedesk.core.proxy.server import use_native

    loop = asyncio.get_running_loop()
    opts = fo.base
    groups = Groups(opts, default_bind=fo.default_bind, reuseport=opts.workers > 1, shared=shared)
    tasks: list[asyncio.Task[Any]] = []
    control: ControlPlane | None = None
    client: MgmtClient | None = None
    gfile: GroupsFile | None = None
    if fo.api is not None:
        assert fo.token is not None
        client = MgmtClient(fo.api, token=fo.token, verify=fo.verify)
        control = ControlPlane(fo.api, fo.pool)
        follower = PoolFollower(client, fo.pool, groups, control)
        await follower.first_sync()
        tasks.append(loop.create_task(follower.run()))
    else:
        assert fo.groups_file is not None
        gfile = GroupsFile(fo.groups_file, groups)
        await gfile.load()
        if gfile.last_error is not None:
            raise SystemExit(f"balancedesk balance: {fo.groups_file}: {gfile.last_error}")
        tasks.append(loop.create_task(gfile.run()))

    fa = FleetAdmin(groups, control, ident)
    admin_server = None
    admin_conns: set[Any] = set()
    admin_url = None
    if admin and opts.admin is not None and opts.admin_token:
        make, admin_conns = admin_mod.handler_factory(fa.handle, opts.admin_token)
        admin_server = await loop.create_server(make, opts.admin[0], opts.admin[1])
        admin_url = "http://" + hostport(admin_server.sockets[0].getsockname())
    if admin and client is not None:
        plane = "native" if use_native(opts.data_plane, "tcp") else "asyncio"
        ident = Identity(ident.instance_id, ident.host, plane, ident.workers, ident.started_at)
        hb = Heartbeater(client, groups, ident, admin_url=admin_url, admin_token=opts.admin_token)
        tasks.append(loop.create_task(hb.run()))

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if gfile is not None:
        g = gfile
        loop.add_signal_handler(signal.SIGHUP, lambda: tasks.append(loop.create_task(g.load())))
    else:
        loop.add_signal_handler(signal.SIGHUP, lambda: None)

    def on_usr1() -> None:
        for item in groups.items.values():
            if item.rt is not None and item.rt.access_log is not None:
                item.rt.access_log.reopen()

    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    for item in groups.items.values():
        if item.error:
            log(f"group {item.cfg.connector_id}: {item.error}")
    ready(len(groups.items), admin_url)
    await stop.wait()
    for t in tasks:
        t.cancel()
    await groups.close_all()
    if client is not None:
        with contextlib.suppress(Exception):
            await client.aclose()
    if admin_server is not None:
        admin_server.close()
        for c in list(admin_conns):
            if c.transport is not None:
                c.transport.close()
    return 0


def fleet_ready_line(n: int, fo: FleetOptions, admin_url: str | None) -> str:
    where = f"{n} groups" + (f" pool {fo.pool}" if fo.api is not None else "")
    return ready_line(where, admin_url)


def run_fleet(fo: FleetOptions) -> int:
    """Run a many-group balancer (forking ``--workers`` under :func:`~balancedesk.core.proxy.server.supervise`,
    with one :class:`~balancedesk.core.proxy.shared.SharedState` for every group); returns the exit code."""
    from balancedesk.core.proxy.server import fd_cap

    opts = fo.base
    opts.max_connections = fd_cap(opts.max_connections)
    ident = new_identity(opts.workers, opts.data_plane)
    if opts.workers <= 1:
        def ready(n: int, admin_url: str | None) -> None:
            print(fleet_ready_line(n, fo, admin_url), flush=True)

        return run_worker_loop(serve_fleet(fo, ident, admin=True, ready=ready))
    shared = SharedState(workers=opts.workers)  # before the fork: groups that come later find room in it too

    def work(i: int, tell: Callable[[str], None]) -> int:
        def ready_w(n: int, admin_url: str | None) -> None:
            tell(f"{n}|{admin_url or ''}")

        return run_worker_loop(serve_fleet(fo, ident, admin=i == 0, ready=ready_w, shared=shared))

    def announce(first: str) -> None:
        n, _, admin_url = first.partition("|")
        print(fleet_ready_line(int(n or 0), fo, admin_url or None), flush=True)

    return supervise(opts.workers, work, shared=shared, announce=announce)
