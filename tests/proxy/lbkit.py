"""Helpers for the black-box balancer tests: upstream/balancer handles, configs, bounded clients.

Waiting is always on a condition with a deadline, never a bare sleep; every client call has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]
Child = Any  # tests/conftest.py's Child: .pid, .wait_for(pattern), .kill(), .lines
UPSTREAMS = Path(__file__).parent / "upstreams"
READY_RX = r"upstream (\S+) listening 127\.0\.0\.1:(\d+)"
BALANCING_RX = r"balancedesk: balancing (127\.0\.0\.1):(\d+) admin (http://127\.0\.0\.1:\d+)"

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")
        time.sleep(every)  # polling interval of a condition wait, not a wait for time to pass


@dataclass
class Upstream:
    name: str
    port: int
    child: Child
    script: str

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Balancer:
    host: str
    port: int
    admin_url: str
    token: str
    config_path: Path
    child: Child

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx.request(method, self.admin_url + path, json=body, timeout=10,
                          headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        try:
            return r.json()
        except ValueError:
            raise AssertionError(f"admin {method} {path}: {r.status_code}, {len(r.content)} bytes, "
                                 f"headers {dict(r.headers)}, not JSON: {r.content[:200]!r}…{r.content[-200:]!r}"
                                 ) from None

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = self.admin("GET", "/admin/snapshot")
        return out

    def events(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        evs: list[dict[str, Any]] = []
        while True:
            page = self.admin("GET", f"/admin/events?after={after}&limit={limit}")
            evs += page["events"]
            if not page["events"] or page["cursor"] == after:
                return evs
            after = page["cursor"]

    def member(self, member_id: str) -> dict[str, Any]:
        return next(m for m in self.snapshot()["members"] if m["memberID"] == member_id)

    def write_config(self, config: dict[str, Any]) -> int:
        """Replace the config file atomically and wait until the balancer serves the new version."""
        before = self.snapshot()["version"]
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config))
        os.replace(tmp, self.config_path)
        return wait_until(lambda: (v := self.snapshot()["version"]) != before and v,
                          timeout=15, what="the balancer to load the edited config file")


def group_config(members: list[tuple[str, str, int]], *, rr: bool = True, connection_timeout: int = 2,
                 retry_delay: int = 2, label: str = "test-group") -> dict[str, Any]:
    """members: (memberID, endpoint, weight); sequence = listing order."""
    group: dict[str, Any] = {
        "connectionTimeout": connection_timeout,
        "retryDelay": retry_delay,
        "members": [{"memberID": m, "sequence": i + 1, "weight": w} for i, (m, _, w) in enumerate(members)],
    }
    if rr:
        group["loadBalancing"] = "Round Robin"
    return {"connectorID": f"{label}-id", "label": label, "connectorGroup": group,
            "endpoints": {m: ep for m, ep, _ in members}}


def free_port() -> int:
    """A port nobody listens on (connects to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])




# --- clients --------------------------------------------------------------------------------


async def ask(addr: tuple[str, int], line: bytes = b"hi\n", *, deadline_s: float = 10.0) -> str | None:
    """One new L4 connection: send a line, read the answering upstream's name. None if the balancer
    closed or reset the connection without an answer."""
    async with asyncio.timeout(deadline_s):
        try:
            reader, writer = await asyncio.open_connection(*addr)
        except OSError:
            return None
        try:
            writer.write(line)
            reply = await reader.readline()
        except OSError:
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return reply.split(b" ", 1)[0].decode() if reply else None


class Held:
    """A long-lived L4 connection through the balancer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.member: str | None = None

    @classmethod
    async def open(cls, addr: tuple[str, int]) -> Held:
        reader, writer = await asyncio.open_connection(*addr)
        held = cls(reader, writer)
        held.member = await held.ask(b"hello\n")
        assert held.member is not None, "a new long-lived connection got no answer"
        return held

    async def ask(self, line: bytes, *, deadline_s: float = 10.0) -> str | None:
        try:
            async with asyncio.timeout(deadline_s):
                self.writer.write(line)
                reply = await self.reader.readline()
        except TimeoutError:
            raise AssertionError(f"no answer and no close within {deadline_s}s on a held connection") from None
        except OSError:
            return None
        if not reply:
            return None
        name, _, echoed = reply.partition(b" ")
        assert echoed == line, (echoed, line)
        return name.decode()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def bounded_gather(n: int, limit: int, make: Callable[[int], Awaitable[T]]) -> list[T]:
    """Run ``make(i)`` for i in range(n), at most ``limit`` at a time."""
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> T:
        async with sem:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def async_wait_until(probe: Callable[[], Awaitable[Any]], *, deadline_s: float, what: str,
                           every: float = 0.05) -> Any:
    deadline = time.monotonic() + deadline_s
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {deadline_s}s: {what} (last: {last!r})")
        await asyncio.sleep(every)  # polling interval of a condition wait
