"""Deploy a group to HAProxy instances: a managed section, ``haproxy -c`` on a copy, a master-worker reload.

An instance (:class:`Instance`) is an HAProxy config file plus how to reach the running process: its master
CLI socket (``-S``; reloads it and says which workers run), its stats socket (``stats socket … level admin``;
the live view, and the check that the new backend is running), and optionally the ``listen`` address the
group's frontend binds on that instance (default: the group's listener).

The rules, in order, for each instance:

1. The group's ``frontend`` + ``backend`` (``core.export.haproxy_sections``) go between two marker lines
   naming the group, ``# BEGIN balancedesk group <ID> version <N> [pool <P> saved <V>]`` … ``# END
   balancedesk group <ID>``; an existing section of that group is replaced in place, otherwise it is
   appended. Nothing outside the markers changes (byte for byte). ``N`` rises by one when the section's text
   changes; ``pool``/``saved`` (a group read from the management API) name the group's pool and its saved
   version there — the version the fleet view compares, as it does a balancer's applied version.
2. The new text is written to a temporary file beside the config and checked with ``haproxy -c -f``. If
   HAProxy refuses it, nothing is written and :class:`DeployError` carries HAProxy's own message (the temp
   file's name replaced by the config's). With several instances, every one is checked before any is written.
3. The config is replaced atomically (a rename), then the master is told ``reload``. HAProxy's master-worker
   reload starts new workers and lets the old ones finish their connections, so nothing is cut.
4. The reload is confirmed when ``show proc`` lists a worker that was not there before (and the master's
   reload count rose), and, with a stats socket, when ``show servers state`` of the backend names the
   group's servers. Without a master socket, the instance's ``reload_command`` (e.g. ``systemctl reload
   haproxy``) runs instead and only step 4's stats check confirms.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from balancedesk.core.export import haproxy_names, haproxy_sections, server_names, settings_for, write_atomically
from balancedesk.core.haproxy.runtime import RuntimeClient, RuntimeRefused, RuntimeUnavailable
from balancedesk.core.model import BalancerConfig

BEGIN_RE = re.compile(r"^# BEGIN balancedesk group (?P<id>\S+) version (?P<version>\d+)"
                      r"(?: pool (?P<pool>\S+) saved (?P<saved>\d+))?\s*$", re.M)
RELOAD_DEADLINE_S = 20.0
CHECK_DEADLINE_S = 30.0


class DeployError(Exception):
    """A deploy that changed nothing on ``instance`` (or could not confirm); the message says why."""


@dataclass(frozen=True)
class Instance:
    """One HAProxy: its config file and how to reach it (see the module docstring)."""

    config: Path
    master: str | None = None
    stats: str | None = None
    listen: str | None = None
    name: str = ""
    reload_command: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return self.name or str(self.config)


@dataclass(frozen=True)
class Section:
    group_id: str
    version: int
    text: str  # between the markers
    pool: str | None = None  # deployed from the management API: the group's pool …
    saved: int | None = None  # … and its saved version there (what the fleet view compares)


@dataclass(frozen=True)
class Origin:
    """Where a deployed group came from: its pool and saved version (from the management API), if known."""

    pool: str
    saved: int


@dataclass
class Result:
    instance: Instance
    version: int
    changed: bool
    workers: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise DeployError("haproxy is not installed (no haproxy on PATH nor /usr/sbin/haproxy)")
    return found


def _end(group_id: str) -> str:
    return f"# END balancedesk group {group_id}"


def sections(text: str) -> list[Section]:
    """The managed sections in a config's text."""
    out = []
    for m in BEGIN_RE.finditer(text):
        end = text.find("\n" + _end(m["id"]), m.end())
        if end >= 0:
            out.append(Section(m["id"], int(m["version"]), text[m.end() + 1:end + 1], m["pool"],
                               None if m["saved"] is None else int(m["saved"])))
    return out


def with_section(text: str, group_id: str, body: str, origin: Origin | None = None) -> tuple[str, int, bool]:
    """``text`` with the group's managed section set to ``body``: (new text, its version, whether it changed)."""
    body = body if body.endswith("\n") else body + "\n"
    old = next((s for s in sections(text) if s.group_id == group_id), None)
    same_origin = old is not None and (origin is None or (old.pool, old.saved) == (origin.pool, origin.saved))
    if old is not None and old.text == body and same_origin:
        return text, old.version, False
    version = old.version + 1 if old is not None else 1
    where = f" pool {origin.pool} saved {origin.saved}" if origin is not None else ""
    block = f"# BEGIN balancedesk group {group_id} version {version}{where}\n{body}{_end(group_id)}\n"
    if old is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return text + sep + block, version, True
    m = next(m for m in BEGIN_RE.finditer(text) if m["id"] == group_id)
    end = text.index("\n" + _end(group_id), m.end()) + 1 + len(_end(group_id))
    end += 1 if text[end:end + 1] == "\n" else 0
    return text[:m.start()] + block + text[end:], version, True


def check_config(text: str, beside: Path, binary: str | None = None) -> None:
    """``haproxy -c`` on ``text`` written to a temp file next to ``beside``; DeployError with HAProxy's words."""
    binary = binary or haproxy_binary()
    fd, tmp = tempfile.mkstemp(dir=beside.parent, prefix=f".{beside.name}.check.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        run = subprocess.run([binary, "-c", "-f", tmp], capture_output=True, text=True, timeout=CHECK_DEADLINE_S)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if run.returncode != 0:
        said = (run.stdout + run.stderr).replace(tmp, str(beside)).strip()
        lines = [ln for ln in said.splitlines() if "ALERT" in ln or "[ALERT]" in ln] or said.splitlines()
        raise DeployError(f"haproxy -c refused the new {beside}: " + " | ".join(lines[-6:]))


def section_for(cfg: BalancerConfig, instance: Instance) -> str:
    s = settings_for(cfg, listen=instance.listen)
    return haproxy_sections(cfg, mode=s.mode, listen=s.listen, affinity_header=s.affinity_header)


@dataclass(frozen=True)
class Proc:
    pid: int
    kind: str  # master / worker
    reloads: int
    uptime: str
    version: str
    old: bool
    failed: int = 0  # the master: reloads that failed (the new config did not start; the old workers run on)


_PROC_RE = re.compile(r"^(?P<pid>\d+)\s+(?P<kind>\S+)\s+(?P<reloads>\d+)(?:\s+\[failed:\s*(?P<failed>\d+)\])?"
                      r"\s+(?P<uptime>\S+)\s*(?P<version>\S*)")


def parse_show_proc(text: str) -> list[Proc]:
    """The master CLI's ``show proc``: the master (its reloads, and failed ones), workers, and old workers
    (still finishing their connections)."""
    out, old = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            old = "old" in line
            continue
        m = _PROC_RE.match(line)
        if m:
            out.append(Proc(int(m["pid"]), m["kind"], int(m["reloads"]), m["uptime"], m["version"],
                            old and m["kind"] == "worker", int(m["failed"] or 0)))
    return out


async def show_proc(master: str) -> list[Proc]:
    return parse_show_proc(await RuntimeClient(master).call("show proc"))


async def reload(instance: Instance, *, deadline_s: float = RELOAD_DEADLINE_S) -> tuple[int, ...]:
    """Reload ``instance`` and wait until new workers run: their PIDs (DeployError past the deadline)."""
    if instance.master is None:
        if not instance.reload_command:
            raise DeployError(f"{instance.title}: no master socket and no reload command: cannot reload")
        run = await asyncio.create_subprocess_exec(*instance.reload_command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
        out, _ = await run.communicate()
        if run.returncode != 0:
            raise DeployError(f"{instance.title}: {' '.join(instance.reload_command)} failed: {out.decode()[-400:]}")
        return ()
    try:
        before = await show_proc(instance.master)
        master_before = next(p for p in before if p.kind == "master")
        seen = {p.pid for p in before}
        # the master re-executes itself and may close the CLI connection before answering
        with contextlib.suppress(RuntimeUnavailable):
            await RuntimeClient(instance.master, timeout=deadline_s).call("reload")
        give_up = time.monotonic() + deadline_s
        while True:
            try:
                now = await show_proc(instance.master)
            except RuntimeUnavailable:
                now = []  # the master is between re-exec and listening again
            master = next((p for p in now if p.kind == "master"), None)
            fresh = tuple(p.pid for p in now if p.kind == "worker" and not p.old and p.pid not in seen)
            if master is not None and master.reloads > master_before.reloads and fresh:
                return fresh
            if master is not None and master.failed > master_before.failed:
                raise DeployError(f"{instance.title}: HAProxy could not start the new config (its log says why); "
                                  "the old workers keep running")
            if time.monotonic() > give_up:
                raise DeployError(f"{instance.title}: reloaded, but no new worker within {deadline_s:g} s "
                                  "(HAProxy's log says why; the old workers keep running)")
            await asyncio.sleep(0.1)  # polling show proc until the deadline
    except (RuntimeUnavailable, RuntimeRefused, StopIteration) as exc:
        raise DeployError(f"{instance.title}: master CLI {instance.master}: {exc or 'no master in show proc'}") from exc


async def confirm_backend(instance: Instance, cfg: BalancerConfig, *, deadline_s: float = RELOAD_DEADLINE_S) -> None:
    """With a stats socket: wait until the running HAProxy serves the group's backend with its servers."""
    if instance.stats is None:
        return
    backend = haproxy_names(cfg).backend
    want = set(server_names(cfg.connector_group.ordered()))
    give_up = time.monotonic() + deadline_s
    last = ""
    while True:
        try:
            rows = await RuntimeClient(instance.stats).show_servers_state(backend)
            got = {r.get("srv_name", "") for r in rows}
            if got == want:
                return
            last = f"servers {sorted(got)}, want {sorted(want)}"
        except (RuntimeUnavailable, RuntimeRefused) as exc:
            last = str(exc)
        if time.monotonic() > give_up:
            raise DeployError(f"{instance.title}: the running HAProxy does not serve {backend} as deployed: {last}")
        await asyncio.sleep(0.1)  # polling the stats socket until the deadline


async def deploy(cfg: BalancerConfig, instances: list[Instance], *, binary: str | None = None,
                 origin: Origin | None = None) -> list[Result]:
    """Deploy ``cfg`` to every instance: all checked first (nothing written if one fails), then each
    written, reloaded and confirmed in turn. A section already as deployed is neither written nor reloaded."""
    if cfg.connector_id is None:
        raise DeployError("the group has no connectorID: save it first (the managed section is named by it)")
    binary = binary or haproxy_binary()
    plans = []
    for inst in instances:
        try:
            text = inst.config.read_text()
        except OSError as exc:
            raise DeployError(f"{inst.title}: cannot read {inst.config}: {exc.strerror}") from None
        new, version, changed = with_section(text, cfg.connector_id, section_for(cfg, inst), origin)
        if changed:
            check_config(new, inst.config, binary)
        plans.append((inst, new, version, changed))
    results = []
    for inst, new, version, changed in plans:
        result = Result(inst, version, changed)
        if changed:
            write_atomically(inst.config, new)
            result.workers = await reload(inst)
        else:
            result.notes.append("already deployed: not reloaded")
        await confirm_backend(inst, cfg)
        results.append(result)
    return results


def fingerprint(text: str) -> str:
    """A short digest of a section (shown beside its version, so two instances can be compared at a glance)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
