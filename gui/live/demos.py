"""Demo members and the traffic generator as child processes of the live view.

* :class:`DemoMembers` — for each member whose endpoint is on this machine and where nothing listens,
  offers a ``balancedesk demo-member``; each one can be started, stopped (killed by its PID), made slow,
  made to refuse, or set ok again through its control endpoint.
* :class:`TrafficGenerator` — a bounded ``balancedesk demo-traffic`` child at a chosen rate, reporting its counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from balancedesk.core.model import parse_endpoint
from balancedesk.gui.live.children import ChildProcess
from PySide6.QtCore import QObject, Signal

DEMO_READY = r"balancedesk: demo member (\S+) on (\S+) control (http://\S+)"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_local(endpoint: str) -> bool:
    try:
        host, _ = parse_endpoint(endpoint)
    except ValueError:
        return False
    return host in LOOPBACK or host.startswith("127.")


async def _listening(endpoint: str) -> bool:
    host, port = parse_endpoint(endpoint)
    try:
        async with asyncio.timeout(0.5):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@dataclass
class DemoSlot:
    member_id: str
    endpoint: str
    status: str = "unknown"  # unknown / free / busy (someone else listens) / starting / ok / slow / refuse / stopped
    child: ChildProcess | None = None
    control: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return self.child is not None and self.child.running


class DemoMembers(QObject):
    """Signals: ``changed(str)`` with the memberID whose demo status changed; ``failed(str, str)``
    with the memberID and a message a person can read."""

    changed = Signal(str)
    failed = Signal(str, str)

    def __init__(self, endpoints: dict[str, str], *, proto: str = "tcp", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.proto = proto
        self.slots = {mid: DemoSlot(mid, ep) for mid, ep in endpoints.items() if is_local(ep)}
        self._http = httpx.AsyncClient(timeout=3.0)

    async def probe(self) -> None:
        """Find which local endpoints are free (a demo can start there) and which are someone else's."""
        for slot in self.slots.values():
            if slot.ours:
                continue
            slot.status = "busy" if await _listening(slot.endpoint) else "free"
            self.changed.emit(slot.member_id)

    def start(self, member_id: str) -> None:
        slot = self.slots[member_id]
        if slot.ours:
            return
        child = ChildProcess(f"demo {member_id}", ready_pattern=DEMO_READY, parent=self)
        slot.child, slot.status, slot.control = child, "starting", None
        child.readied.connect(lambda m, s=slot: self._ready(s, m))
        child.exited.connect(lambda code, asked, s=slot, c=child: self._exited(s, c, code, asked))
        child.start(["demo-member", "--listen", slot.endpoint, "--mode", self.proto, "--name", member_id])
        self.changed.emit(member_id)

    def stop(self, member_id: str) -> None:
        """Kill the demo member's process (by its PID, through its QProcess)."""
        slot = self.slots[member_id]
        if slot.child is not None:
            slot.child.kill()

    async def set_mode(self, member_id: str, mode: str) -> None:
        slot = self.slots[member_id]
        if not slot.ours or slot.control is None:
            self.failed.emit(member_id, f"{member_id}: no demo member of ours is running")
            return
        try:
            resp = await self._http.post(slot.control + "/mode", json={"mode": mode})
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            self.failed.emit(member_id, f"{member_id}: could not set {mode}: {exc}")
            return
        slot.status = str(resp.json().get("mode", mode))
        self.changed.emit(member_id)

    def _ready(self, slot: DemoSlot, match: Any) -> None:
        slot.control = match.group(3)
        slot.status = "ok"
        self.changed.emit(slot.member_id)

    def _exited(self, slot: DemoSlot, child: ChildProcess, code: int, asked: bool) -> None:
        if slot.child is not child:
            return
        slot.log = child.tail(10)
        slot.status = "stopped"
        slot.control = None
        if not asked:
            self.failed.emit(slot.member_id, f"demo {slot.member_id} exited ({code}): " + " | ".join(slot.log[-3:]))
        self.changed.emit(slot.member_id)

    def kill_all(self) -> None:
        for slot in self.slots.values():
            if slot.child is not None:
                slot.child.kill_now()

    async def aclose(self) -> None:
        self.kill_all()
        with contextlib.suppress(Exception):
            await self._http.aclose()


class TrafficGenerator(QObject):
    """A bounded load-generator child (``balancedesk demo-traffic``).

    Signals: ``reported(object)`` with its counters (dict: ok, failed, rate, p50_ms, done);
    ``stopped()`` when the child has exited.
    """

    reported = Signal(object)
    stopped = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._child: ChildProcess | None = None
        self.last: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    def start(self, *, target: str, mode: str, rate: float, affinity_header: str | None = None,
              keys: int = 0, concurrency: int | None = None, duration_s: float = 600.0) -> None:
        self.stop()
        child = ChildProcess("traffic", parent=self)
        child.lined.connect(self._line)
        child.exited.connect(lambda *_: self.stopped.emit())
        conc = concurrency or max(2, min(64, int(rate // 10) + 2))
        args = ["--target", target, "--mode", mode, "--rate", str(rate), "--concurrency", str(conc),
                "--duration", str(duration_s), "--report", "0.5", "--timeout", "3"]
        if affinity_header and keys > 0:
            args += ["--affinity-header", affinity_header, "--keys", str(keys)]
        child.start(["demo-traffic", *args])
        self._child = child
        self.last = {}

    def stop(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child = None

    def kill_now(self) -> None:
        if self._child is not None:
            self._child.kill_now()
            self._child = None

    def _line(self, line: str) -> None:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                self.last = json.loads(line)
                self.reported.emit(self.last)
