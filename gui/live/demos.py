"""Demo members and the traffic generator as child processes of the live view — owned by its window.

* :class:`DemoMembers` — for each member whose endpoint is on this machine, offers a ``balancedesk demo-member``;
  each one can be started, stopped (SIGTERM by its PID, SIGKILL after a grace), made slow, made to refuse, or
  set ok again through its control endpoint.
* :class:`TrafficGenerator` — a bounded ``balancedesk demo-traffic`` child at a chosen rate, reporting its counters.

Ownership rules:

* A demo member listens on its member's endpoint when nothing listens there (started again after a stop: where
  it was); when something does (another program, or another window's demo), on a free port the OS picks at
  start — then ``moved`` says the real endpoint, which the window's balancer config uses from then on. No port
  is fixed anywhere.
* Every process started here is recorded in the app's data directory (``core.demo.DemoRegistry``) with its
  PID, start time and owner (this app process and this window); the record goes when the process ends.
* When the window closes (:meth:`DemoMembers.stop_all`, :meth:`TrafficGenerator.stop_now`) its processes get
  SIGTERM, are waited for (``STOP_GRACE_S``), and get SIGKILL if still running.
* At the next start (:meth:`DemoMembers.probe`), processes left by an app that is gone (it crashed or was
  killed) are stopped the same way, if the PID is still really theirs; another live window's demo members
  are shown as such and never stopped from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from balancedesk.core.demo import DEMO_STATE_FILE, STOP_GRACE_S, DemoRecord, DemoRegistry, process_start
from balancedesk.core.model import parse_endpoint
from balancedesk.gui.live.children import ChildProcess, stop_and_wait
from PySide6.QtCore import QObject, Signal

DEMO_READY = r"balancedesk: demo member (\S+) on (\S+) control (http://\S+)"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_local(endpoint: str) -> bool:
    try:
        host, _ = parse_endpoint(endpoint)
    except ValueError:
        return False
    return host in LOOPBACK or host.startswith("127.")


def default_registry() -> DemoRegistry:
    """The registry in the app's data directory (``BALANCEDESK_DATA`` or the platform's)."""
    from balancedesk.gui.profiles import data_dir

    return DemoRegistry(data_dir() / DEMO_STATE_FILE)


class Owner:
    """This app process and one window: what a registry record names as its owner."""

    def __init__(self, registry: DemoRegistry | None) -> None:
        self.registry = registry
        self.pid = os.getpid()
        self.start = process_start(self.pid) or 0
        self.tag = uuid.uuid4().hex[:12]

    def record(self, child: ChildProcess, command: str, *, member_id: str = "", endpoint: str = "",
               control: str = "") -> DemoRecord | None:
        """Record ``child`` (running) as ours; None when there is no registry or its start cannot be read."""
        start = process_start(child.pid) if child.running else None
        if self.registry is None or start is None:
            return None
        rec = DemoRecord(child.pid, start, command, member_id, endpoint, control, self.pid, self.start, self.tag)
        with contextlib.suppress(OSError):
            self.registry.add(rec)
        return rec

    def forget(self, pid: int) -> None:
        if self.registry is not None and pid > 0:
            with contextlib.suppress(OSError):
                self.registry.remove(pid)


def _with_port(endpoint: str, port: int) -> str:
    host, _ = parse_endpoint(endpoint)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    endpoint: str  # where the member is reached: its configured endpoint, or where our demo really listens
    # unknown / free / busy (someone else listens) / other (another window's demo) / starting / ok / slow /
    # refuse / stopped
    status: str = "unknown"
    child: ChildProcess | None = None
    control: str | None = None
    pid: int = 0  # our demo process's PID while it runs (its registry record)
    configured: str = ""  # the member's endpoint in the group
    log: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return self.child is not None and self.child.running


class DemoMembers(QObject):
    """Signals: ``changed(str)`` with the memberID whose demo status changed; ``failed(str, str)``
    with the memberID and a message a person can read; ``moved(str, str)`` with the memberID and the
    endpoint its demo really listens on, when that is not the configured one."""

    changed = Signal(str)
    failed = Signal(str, str)
    moved = Signal(str, str)

    def __init__(self, endpoints: dict[str, str], *, proto: str = "tcp", parent: QObject | None = None,
                 registry: DemoRegistry | None = None) -> None:
        super().__init__(parent)
        self.proto = proto
        self.slots = {mid: DemoSlot(mid, ep, configured=ep) for mid, ep in endpoints.items() if is_local(ep)}
        self.owner = Owner(registry if registry is not None else default_registry())
        self._http = httpx.AsyncClient(timeout=3.0)

    def running_endpoints(self) -> dict[str, str]:
        """memberID → where our running demo listens (for the balancer config)."""
        return {mid: s.endpoint for mid, s in self.slots.items() if s.ours and s.control is not None}

    async def probe(self) -> None:
        """Clean what a gone app left, then find which local endpoints are free (a demo starts there), which
        are another window's demo and which are someone else's (a demo starts on a free port)."""
        others: list[DemoRecord] = []
        reg = self.owner.registry
        if reg is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(reg.clean_orphans)
                others = [r for r in await asyncio.to_thread(reg.records) if r.owner_tag != self.owner.tag]
        for slot in self.slots.values():
            if slot.ours or slot.status == "starting":
                continue
            if any(r.command == "demo-member" and r.endpoint == slot.configured for r in others):
                slot.status = "other"
            else:
                slot.status = "busy" if await _listening(slot.configured) else "free"
            self.changed.emit(slot.member_id)

    def start(self, member_id: str) -> None:
        """Start a demo member: on the member's endpoint if it was free (or where our stopped demo was), else on
        a free port the OS picks now (``moved`` says which)."""
        slot = self.slots[member_id]
        if slot.ours:
            return
        listen = slot.endpoint if slot.status in ("free", "stopped") else _with_port(slot.configured, 0)
        child = ChildProcess(f"demo {member_id}", ready_pattern=DEMO_READY, parent=self)
        slot.child, slot.status, slot.control = child, "starting", None
        child.readied.connect(lambda m, s=slot, c=child: self._ready(s, c, m))
        child.exited.connect(lambda code, asked, s=slot, c=child: self._exited(s, c, code, asked))
        child.start(["demo-member", "--listen", listen, "--mode", self.proto, "--name", member_id])
        self.changed.emit(member_id)

    def stop(self, member_id: str) -> None:
        """Stop the demo member's process: SIGTERM by its PID (through its QProcess), SIGKILL after a grace."""
        slot = self.slots[member_id]
        if slot.child is not None:
            slot.child.stop(grace_ms=int(STOP_GRACE_S * 1000))

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

    def _ready(self, slot: DemoSlot, child: ChildProcess, match: Any) -> None:
        if slot.child is not child:
            return
        slot.control = match.group(3)
        slot.status = "ok"
        slot.pid = child.pid
        real = match.group(2)
        self.owner.record(child, "demo-member", member_id=slot.member_id, endpoint=real, control=slot.control)
        if real != slot.endpoint:
            slot.endpoint = real
            self.moved.emit(slot.member_id, real)
        self.changed.emit(slot.member_id)

    def _exited(self, slot: DemoSlot, child: ChildProcess, code: int, asked: bool) -> None:
        if slot.child is not child:
            return
        self.owner.forget(slot.pid)
        slot.pid = 0
        slot.log = child.tail(10)
        slot.status = "stopped"
        slot.control = None
        if not asked:
            self.failed.emit(slot.member_id, f"demo {slot.member_id} exited ({code}): " + " | ".join(slot.log[-3:]))
        self.changed.emit(slot.member_id)

    def stop_all(self, *, grace_ms: int = int(STOP_GRACE_S * 1000)) -> list[int]:
        """For window close: every demo of ours gets SIGTERM, is waited for, SIGKILL after ``grace_ms``; their
        records go. Returns the PIDs that were running."""
        slots = [s for s in self.slots.values() if s.child is not None]
        pids = stop_and_wait([s.child for s in slots if s.child is not None], grace_ms=grace_ms)
        for s in slots:
            self.owner.forget(s.pid)
            s.pid = 0
        return pids

    async def aclose(self) -> None:
        self.stop_all()
        with contextlib.suppress(Exception):
            await self._http.aclose()


class TrafficGenerator(QObject):
    """A bounded load-generator child (``balancedesk demo-traffic``), recorded like the demo members.

    Signals: ``reported(object)`` with its counters (dict: ok, failed, rate, p50_ms, done);
    ``stopped()`` when the child has exited.
    """

    reported = Signal(object)
    stopped = Signal()

    def __init__(self, parent: QObject | None = None, *, owner: Owner | None = None) -> None:
        super().__init__(parent)
        self._child: ChildProcess | None = None
        self._recorded: dict[ChildProcess, int] = {}  # our children → the PID recorded in the registry
        self.owner = owner
        self.last: dict[str, Any] = {}

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.running

    @property
    def pid(self) -> int:
        """The running generator's PID (0: none)."""
        return self._child.pid if self._child is not None and self._child.running else 0

    def start(self, *, target: str, mode: str, rate: float, affinity_header: str | None = None,
              keys: int = 0, concurrency: int | None = None, duration_s: float = 600.0) -> None:
        self.stop()
        child = ChildProcess("traffic", parent=self)
        child.lined.connect(self._line)
        child.exited.connect(lambda *_a, c=child: self._exited(c))
        conc = concurrency or max(2, min(64, int(rate // 10) + 2))
        args = ["--target", target, "--mode", mode, "--rate", str(rate), "--concurrency", str(conc),
                "--duration", str(duration_s), "--report", "0.5", "--timeout", "3"]
        if affinity_header and keys > 0:
            args += ["--affinity-header", affinity_header, "--keys", str(keys)]
        child.start(["demo-traffic", *args])
        child.began.connect(lambda pid, c=child, t=target: self._began(c, pid, t))
        self._child = child
        self.last = {}

    def _began(self, child: ChildProcess, pid: int, target: str) -> None:
        if self.owner is not None and self.owner.record(child, "demo-traffic", endpoint=target) is not None:
            self._recorded[child] = pid

    def _exited(self, child: ChildProcess) -> None:
        if self.owner is not None:
            self.owner.forget(self._recorded.pop(child, 0))
        self.stopped.emit()

    def stop(self) -> None:
        """Stop the generator (SIGTERM, SIGKILL after a grace); ``stopped`` follows when it has exited."""
        if self._child is not None:
            self._child.stop()
            self._child = None

    def stop_now(self, *, grace_ms: int = int(STOP_GRACE_S * 1000)) -> None:
        """For window close: SIGTERM, wait, SIGKILL after ``grace_ms``; its record goes."""
        child, self._child = self._child, None
        if child is not None:
            stop_and_wait([child], grace_ms=grace_ms)
        if self.owner is not None:
            for pid in self._recorded.values():
                self.owner.forget(pid)
        self._recorded.clear()

    def _line(self, line: str) -> None:
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                self.last = json.loads(line)
                self.reported.emit(self.last)
