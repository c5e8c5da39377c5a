"""Active health checks, the asyncio shell: probes each member every ``interval`` and hands the results to
:meth:`Runtime.check_done` (the decisions are :class:`~balancedesk.core.balance.ActiveChecks`').

* One task per worker (each worker of ``--workers N`` probes for itself, as it balances for itself); in it
  every member has its own rhythm: a probe starts ``interval`` seconds after its last one started (later if
  that one took longer), so a member whose probes time out delays nobody else's.
* A probe is bounded by ``timeout`` as a whole. ``tcp``: a connect. ``http``: a connect, ``GET path
  HTTP/1.1`` with ``Host`` (the member's endpoint) and ``Connection: close``; only the status line is read
  (at most :data:`STATUS_LINE_MAX` bytes) and its code must be ``expectStatus``.
* The results are the probe's detail: ``ok``, ``refused``, ``timeout``, ``reset``, ``unreachable``,
  ``status 500``, ``bad status line``.
* Applied live: :meth:`Runtime.apply` keeps ``rt.checks`` in step with the config, and the task here is
  started, restarted with the new settings or members (a probe of each at once) or stopped from
  ``Runtime.on_config``.

Works for both data planes: the native engine asks Python (Runtime's balancer) for every routing decision,
so the holds the checks put on members apply there too.
"""

from __future__ import annotations

import asyncio
import contextlib

from balancedesk.core.model import HealthCheck
from balancedesk.core.proxy.limits import HEALTH_STATUS_LINE_BYTES
from balancedesk.core.proxy.runtime import Runtime, classify

STATUS_LINE_MAX = HEALTH_STATUS_LINE_BYTES  # bytes of the answer a probe reads at most (limits.py)


def probe_request(path: str, host: str, port: int) -> bytes:
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n"
            "User-Agent: balancedesk-health\r\n\r\n").encode("ascii")


def status_of(line: bytes) -> int | None:
    """The status code of an HTTP/1.x status line, or None if it is not one."""
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    code = parts[1].strip()
    if len(code) != 3 or not code.isdigit():
        return None
    return int(code)


async def probe(spec: HealthCheck, host: str, port: int) -> tuple[bool, str]:
    """One check of one member, within ``spec.timeout``: (passed, detail)."""
    try:
        async with asyncio.timeout(spec.timeout):
            return await _probe(spec, host, port)
    except TimeoutError:
        return False, "timeout"
    except OSError as exc:
        return False, classify(exc)


async def _probe(spec: HealthCheck, host: str, port: int) -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        if spec.type == "tcp":
            return True, "ok"
        writer.write(probe_request(spec.path, host, port))
        await writer.drain()
        line = b""
        while b"\n" not in line and len(line) < STATUS_LINE_MAX:
            chunk = await reader.read(STATUS_LINE_MAX - len(line))
            if not chunk:
                break
            line += chunk
        code = status_of(line.split(b"\n", 1)[0].rstrip(b"\r"))
        if code is None:
            return False, "bad status line" if line else "closed without answering"
        if code != spec.expect_status:
            return False, f"status {code}"
        return True, "ok"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


class HealthProber:
    """The probing task of one worker; follows the config (``rt.cfg.listener.healthCheck``, the members)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._task: asyncio.Task[None] | None = None
        self._spec: HealthCheck | None = None
        self._members: dict[str, tuple[str, int]] = {}
        rt.on_config.append(self._config_applied)
        self._config_applied()

    def _config_applied(self) -> None:
        spec = self.rt.cfg.listener.health_check
        members = dict(self.rt.endpoints)
        if spec == self._spec and members == self._members and (spec is None or self._task is not None):
            return  # unchanged: the probes go on at their pace
        self.stop()
        self._spec, self._members = spec, members
        if spec is not None:
            self._task = self.rt.loop.create_task(self._run(spec, members))

    async def _run(self, spec: HealthCheck, members: dict[str, tuple[str, int]]) -> None:
        await asyncio.gather(*(self._probe_member(spec, mid, ep) for mid, ep in members.items()))

    async def _probe_member(self, spec: HealthCheck, mid: str, ep: tuple[str, int]) -> None:
        """One member's rhythm: a probe every ``interval`` (later if one took longer), so a member whose
        probes time out does not slow the checks of the others."""
        loop = self.rt.loop
        while True:
            started = loop.time()
            ok, detail = await probe(spec, *ep)
            self.rt.check_done(mid, ok=ok, detail=detail, now=loop.time())
            await asyncio.sleep(max(0.0, started + spec.interval - loop.time()))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
