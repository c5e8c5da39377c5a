"""Where the balancer's config comes from, and live reload.

* :class:`FileSource` — ``--config FILE``: the group JSON as the management API returns it plus
  ``"endpoints"``; reloaded on SIGHUP and when the file's mtime/size changes (polled about every second).
* Several groups, and following the management server: ``core.proxy.fleetserve`` and ``core.proxy.follow``.

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
