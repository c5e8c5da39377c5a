"""Where the balancer's config comes from, and live reload.

* :class:`FileSource` — ``--config FILE``: the group JSON as the management API returns it plus
  ``"endpoints"``; reloaded on SIGHUP and when the file's mtime/size changes (polled about every second).
* :class:`ApiSource` — ``--api URL --group ID``: pulls the group (``GET /api/mgmt/connectors/{id}``) and
  each member's ``endpoint`` (``GET /api/admin/connectors/{id}``), polling with ``If-None-Match``.

A bad new config is refused and logged (and shown as a ``config`` event with ``error``); the old one keeps
serving. A good one is applied with :meth:`Runtime.apply`, which keeps every connection in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig, RuleError, parse_balancer_config

POLL_S = 1.0


def log(msg: str) -> None:
    print(f"balancedesk: {msg}", file=sys.stderr, flush=True)


def parse_config_bytes(raw: bytes) -> BalancerConfig:
    """Bytes of a config file or PUT body → BalancerConfig; raises RuleError naming what is wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        from balancedesk.core.model import Problem

        raise RuleError([Problem("body", f"is not valid JSON: {exc}")]) from None
    return parse_balancer_config(body)


def load_file(path: Path) -> BalancerConfig:
    return parse_config_bytes(path.read_bytes())


class FileSource:
    """Polls a config file; ``apply`` is called with each good new config."""

    def __init__(self, path: Path, runtime: Any) -> None:
        self.path = path
        self.rt = runtime
        self._stamp = self._stat()
        self._task: asyncio.Task[None] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            stamp = self._stat()
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                self.reload()

    def reload(self) -> bool:
        """Read and apply the file now (SIGHUP); False if it was refused."""
        self._stamp = self._stat()
        try:
            cfg = load_file(self.path)
        except (OSError, RuleError) as exc:
            log(f"config {self.path} refused, the old one keeps serving: {exc}")
            self.rt.record_config(str(exc))
            return False
        version = self.rt.apply(cfg)
        log(f"config {self.path} applied (version {version})")
        return True


class ApiSource:
    """Pulls the group and its members' endpoints from the management API, watching with ETags."""

    def __init__(self, url: str, group_id: str, *, user: str, password: str, verify: bool | str = True) -> None:
        self.url = url.rstrip("/")
        self.group_id = group_id
        self.auth = (user, password)
        self.verify = verify
        self.etag: str | None = None
        self.rt: Any = None
        self._task: asyncio.Task[None] | None = None

    async def fetch(self, *, conditional: bool = False) -> BalancerConfig | None:
        """The config now, or None if unchanged (304). Raises RuleError / httpx errors."""
        import httpx

        async with httpx.AsyncClient(auth=self.auth, verify=self.verify, timeout=10) as http:
            headers = {"If-None-Match": self.etag} if conditional and self.etag else {}
            r = await http.get(f"{self.url}/api/mgmt/connectors/{self.group_id}", headers=headers)
            if r.status_code == 304:
                return None
            r.raise_for_status()
            group = r.json()
            members = (group.get("connectorGroup") or {}).get("members") or []
            endpoints: dict[str, str] = {}
            for m in members:
                mid = m.get("memberID") if isinstance(m, dict) else None
                if not mid:
                    continue
                mr = await http.get(f"{self.url}/api/admin/connectors/{mid}")
                mr.raise_for_status()
                ep = mr.json().get("endpoint")
                if ep:
                    endpoints[str(mid)] = str(ep)
            body = {k: v for k, v in group.items() if k in ("connectorID", "owner", "label", "connectorGroup",
                                                              "authUser")}
            body["endpoints"] = endpoints
            cfg = parse_balancer_config(body)
            self.etag = r.headers.get("ETag")
            return cfg

    def start(self, runtime: Any) -> None:
        self.rt = runtime
        self._task = asyncio.get_running_loop().create_task(self._poll())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S * 2)
            await self.reload()

    async def reload(self, *, force: bool = False) -> bool:
        """Poll (``If-None-Match``) or, with ``force`` (SIGHUP), fetch group and endpoints unconditionally."""
        try:
            cfg = await self.fetch(conditional=not force)
        except RuleError as exc:
            log(f"group {self.group_id} from {self.url} refused, the old config keeps serving: {exc}")
            self.rt.record_config(str(exc))
            return False
        except Exception as exc:  # network trouble: keep serving, try again later
            log(f"cannot reach {self.url}: {exc}")
            return False
        if cfg is not None:
            version = self.rt.apply(cfg)
            log(f"group {self.group_id} applied (version {version})")
        return True
