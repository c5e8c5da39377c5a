"""Many groups in one balancer worker: one listener per group, each opened, changed and closed on its own.

:class:`GroupListener` is one group's listener — its :class:`Runtime`, :class:`Shell`, data plane and health
prober — on the socket its ``listener`` names (``bind`` or the balancer's default address, ``port``).
:class:`Groups` holds them by ``connectorID`` and applies what a config source says (``core.proxy.follow``
for a pool of the management server, a ``{"groups": […]}`` file for ``--config``):

* :meth:`Groups.put` of a group whose served config is unchanged does nothing (no new local version, no
  ``config`` event); of a changed one whose socket settings (address, port, mode, affinity header) are the
  same applies it in place (:meth:`Runtime.apply`: connections in flight keep going); of one whose socket
  settings changed closes the old listener gracefully and opens a new one (runtime overrides carry over).
* :meth:`Groups.remove` closes that listener only: no new connections, those in flight get
  ``stop_grace`` seconds to finish (the same graceful stop as the whole process's).
* With ``--workers N`` every group's ``Runtime`` shares the process's
  :class:`~balancedesk.core.proxy.shared.SharedState` (health marks, sticky entries, overrides, counters); a
  group's slots there go back when its last ``Runtime`` closes (``Runtime.close``, after the drain).
* A listener that cannot open (port taken, address not local) is kept with its ``error``; the other groups
  keep serving, and the next change of that group tries again.

Imports: asyncio, ``core.model``, ``core.proxy.{healthcheck, runtime, server, shared, shell, tcp, http}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from balancedesk.core.model import BalancerConfig
from balancedesk.core.proxy.healthcheck import HealthProber
from balancedesk.core.proxy.runtime import Runtime
from balancedesk.core.proxy.server import Options, hostport, listen_socket, make_shell
from balancedesk.core.proxy.shared import SharedState
from balancedesk.core.proxy.shell import Shell


def group_id(cfg: BalancerConfig) -> str:
    """A served group's connectorID (a config without one cannot be served beside others)."""
    if not cfg.connector_id:
        raise ValueError("a group served beside others needs its connectorID")
    return cfg.connector_id


def socket_key(cfg: BalancerConfig, default_bind: str) -> tuple[str, int, str, str | None]:
    """What a group's socket is made of: a change of any of these reopens the listener."""
    lst = cfg.listener
    return (lst.bind or default_bind, lst.port or 0, lst.mode, lst.affinity_header if lst.mode == "http" else None)


class GroupListener:
    """One group's listener in this worker. ``version``: the management server's version of the config it
    serves (0 for a file); ``error``: why it does not listen (then ``rt`` is None)."""

    def __init__(self, cfg: BalancerConfig, version: int, opts: Options, *, default_bind: str,
                 reuseport: bool, shared: SharedState | None = None) -> None:
        self.cfg = cfg
        self.shared = shared
        self.version = version
        self.opts = opts
        self.default_bind = default_bind
        self.reuseport = reuseport
        self.rt: Runtime | None = None
        self.shell: Shell | None = None
        self.prober: HealthProber | None = None
        self.server: asyncio.Server | None = None
        self.error: str | None = None

    @property
    def listen(self) -> str | None:
        return self.rt.listen if self.rt is not None else None

    async def open(self) -> None:
        """Listen; on failure keep the reason in ``error`` (the worker goes on with its other groups)."""
        from balancedesk.core.proxy.http import HttpClient
        from balancedesk.core.proxy.tcp import TcpClient

        host, port, mode, affinity = socket_key(self.cfg, self.default_bind)
        try:
            sock = listen_socket(host, port, reuseport=self.reuseport)
        except OSError as exc:
            self.error = f"cannot listen on {hostport((host, port))}: {exc.strerror or exc}"
            return
        opts = dataclasses.replace(self.opts, mode=mode, affinity_header=affinity)
        rt = Runtime(self.cfg, mode=mode, affinity_header=affinity, shared=self.shared)
        shell = make_shell(rt, opts)
        proto: type[TcpClient] | type[HttpClient] = TcpClient if mode == "tcp" else HttpClient

        def factory() -> asyncio.Protocol:
            made: asyncio.Protocol = proto(shell)
            return made

        rt.listen = hostport(sock.getsockname())
        if shell.native is not None:
            shell.native.start(sock)
        else:
            self.server = await rt.loop.create_server(factory, sock=sock, backlog=4096)
        shell.start()
        self.rt, self.shell, self.prober, self.error = rt, shell, HealthProber(rt), None

    def stop_accepting(self) -> None:
        """Close the listening socket now (its port is free at once); connections in flight go on."""
        if self.server is not None:
            self.server.close()
        if self.prober is not None:
            self.prober.stop()
        if self.shell is not None:
            self.shell.stop()

    async def drain(self, grace: float) -> None:
        """After :meth:`stop_accepting`: wait up to ``grace`` s for connections in flight, then close the rest."""
        shell, rt = self.shell, self.rt
        if shell is None or rt is None:
            return
        if shell.alive():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shell.drained.wait(), grace)
        shell.close()
        rt.close()


class Groups:
    """Every group this worker serves, by connectorID. ``on_change`` is called after any of them changed."""

    def __init__(self, opts: Options, *, default_bind: str, reuseport: bool,
                 shared: SharedState | None = None) -> None:
        self.opts = opts
        self.shared = shared  # --workers N: the process's shared state, for every group's Runtime
        self.default_bind = default_bind
        self.reuseport = reuseport
        self.items: dict[str, GroupListener] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.on_change: list[Any] = []

    def versions(self) -> dict[str, int]:
        return {gid: g.version for gid, g in self.items.items()}

    async def put(self, cfg: BalancerConfig, version: int) -> bool:
        """Serve ``cfg`` (the server's ``version`` of it). Returns whether anything was (re)applied."""
        gid = group_id(cfg)
        cur = self.items.get(gid)
        if cur is not None and cur.cfg == cfg and (cur.rt is not None or cur.error is not None):
            cur.version = version  # same served config (a resync, a second delivery): nothing to do
            if cur.rt is not None:
                cur.rt.server_version = version
                cur.rt.write_counts()  # --workers N: the version this worker applies, for the snapshot at once
            return False
        if cur is not None and cur.rt is not None and \
                socket_key(cur.cfg, self.default_bind) == socket_key(cfg, self.default_bind):
            cur.rt.server_version = version
            cur.rt.apply(cfg)
            cur.rt.write_counts()
            cur.cfg, cur.version = cfg, version
            self._changed()
            return True
        overrides = dict(cur.rt.overrides) if cur is not None and cur.rt is not None else {}
        if cur is not None:
            self._close(cur)
        new = GroupListener(cfg, version, self.opts, default_bind=self.default_bind, reuseport=self.reuseport,
                            shared=self.shared)
        await new.open()
        if new.rt is not None:
            new.rt.server_version = version
            new.rt.write_counts()
            for mid, (state, weight) in overrides.items():
                if mid in new.rt.endpoints:
                    if weight is not None:
                        new.rt.override_weight(mid, weight)
                    if state is not None:
                        new.rt.override_admin(mid, state)
        self.items[gid] = new
        self._changed()
        return True

    async def sync(self, configs: list[tuple[BalancerConfig, int]]) -> None:
        """Serve exactly these groups: put each, close the ones not listed."""
        keep = {group_id(cfg) for cfg, _ in configs}
        for gid in [g for g in self.items if g not in keep]:
            self.remove(gid)
        for cfg, version in configs:
            await self.put(cfg, version)

    def remove(self, gid: str) -> bool:
        """Close group ``gid``'s listener gracefully (connections in flight finish). False if not served."""
        cur = self.items.pop(gid, None)
        if cur is None:
            return False
        self._close(cur)
        self._changed()
        return True

    def _close(self, g: GroupListener) -> None:
        g.stop_accepting()
        task = asyncio.get_running_loop().create_task(g.drain(self.opts.stop_grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _changed(self) -> None:
        for cb in self.on_change:
            cb()

    async def close_all(self) -> None:
        """The graceful stop of the whole worker: every listener closed, in-flight work given its grace."""
        for gid in list(self.items):
            cur = self.items.pop(gid)
            self._close(cur)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
