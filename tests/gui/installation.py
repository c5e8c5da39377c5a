"""A load-balancer installation for the GUI tests: two management servers on one PostgreSQL database behind a
Balance Desk L7 balancer, the GUI talking to the balancer (README, "A load-balancer installation").

:func:`start_installation` starts it all on 127.0.0.1 (the PostgreSQL cluster from tests/mgmt/pg_cluster.py, a
fresh database, ``serve --demo`` twice, ``balance --config … --mode http`` in front, with its admin endpoint).
:meth:`Installation.kill_after` kills the first server (SIGKILL, by its PID) once the front balancer has
forwarded ``n`` more requests — from a watcher thread reading the balancer's snapshot, so the kill lands in
the middle of whatever the test is doing. ``BALANCEDESK_TEST_INSTALLATION=1`` makes the ``mgmt_server``
fixture such an installation, with the kill armed, for the whole GUI suite.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from balancedesk.core.mgmt.installation import front_config

from tests.mgmt.pg_cluster import Cluster

SERVE = [sys.executable, "-m", "balancedesk.gui.launcher", "serve"]
BALANCE = [sys.executable, "-m", "balancedesk.gui.launcher", "balance"]


@dataclass
class Installation:
    url: str  # the front balancer: what the GUI is given
    servers: list[Any]  # tests/conftest.py Child of each ``serve``
    server_urls: list[str]
    front: Any
    front_admin: str
    front_token: str
    database: str
    killed: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def members(self) -> dict[str, dict[str, Any]]:
        """The front balancer's snapshot of each server (``mgmt-1``, ``mgmt-2``)."""
        snap = httpx.get(f"{self.front_admin}/admin/snapshot", timeout=10,
                         headers={"Authorization": f"Bearer {self.front_token}"}).json()
        return {str(m["memberID"]): m for m in snap["members"]}

    def forwarded(self) -> int:
        """Requests the front balancer has sent to the servers so far."""
        return sum(int(m["total"]) for m in self.members().values())

    def kill_after(self, n: int) -> None:
        """Kill the first server once ``n`` more requests went through the front (watcher thread)."""
        start = self.forwarded()

        def watch() -> None:
            while not self._stop.is_set():
                if self.forwarded() >= start + n:
                    self.servers[0].kill()
                    self.killed.set()
                    return
                self._stop.wait(0.02)  # polling interval of the watcher

        self._watcher = threading.Thread(target=watch, name="installation-kill", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the watcher (before the processes are stopped: it reads the front balancer)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(30)


def start_installation(spawn: Callable[..., Any], folder: Path, cluster: Cluster, password: str, *,
                       failover: bool = False) -> Installation:
    database = cluster.new_database()
    servers, urls = [], []
    for i in range(2):
        child = spawn([*SERVE, "--port", "0", "--data", str(folder / f"mgmt{i + 1}"), "--database", database,
                       "--demo"], env={"BALANCEDESK_ADMIN_PASSWORD": password})
        urls.append(child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30).group(1))
        servers.append(child)
    config = folder / "mgmt.json"
    config.write_text(json.dumps(front_config(urls, failover=failover)))  # as `balancedesk front-config` prints it
    token_file = folder / "front-admin.token"
    front = spawn([*BALANCE, "--config", str(config), "--listen", "127.0.0.1:0", "--mode", "http",
                   "--data-plane", "asyncio",  # it replays a PUT whose server died mid-request (README)
                   "--admin", "127.0.0.1:0", "--admin-token-file", str(token_file)])
    m = front.wait_for(r"balancedesk: balancing (127\.0\.0\.1:\d+) admin (http://\S+)", timeout=30)
    deadline = time.monotonic() + 10
    while not token_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the token file is written before the ready line; a condition wait all the same
    return Installation(url=f"http://{m[1]}", servers=servers, server_urls=urls, front=front, front_admin=m[2],
                        front_token=token_file.read_text().strip(), database=database)
