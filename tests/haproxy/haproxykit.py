"""Helpers of the HAProxy tests: a real HAProxy in master-worker mode (``-W -S <master socket>``) with a stats
socket at admin level, started by the test and killed by its PID; its config's base part (global, defaults)
is the admin's own, the group arrives through ``core.haproxy.deploy``'s managed section."""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from balancedesk.core.haproxy.deploy import Instance
from lbkit import Spawn, wait_until

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)


def base_config(folder: Path) -> str:
    """The part of the config an admin writes: sockets, defaults. ``expose-fd listeners`` lets a reload hand
    the listening sockets to the new workers (a seamless reload)."""
    return (
        "global\n"
        f"    stats socket {folder}/admin.sock mode 600 level admin expose-fd listeners\n"
        "    stats timeout 30s\n"
        "    nbthread 1\n"
        "\n"
        "defaults\n"
        "    timeout connect 5s\n"
        "    timeout client 1m\n"
        "    timeout server 1m\n"
    )


@dataclass
class RunningHaproxy:
    folder: Path
    child: object
    pid: int

    @property
    def config(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def master(self) -> str:
        return str(self.folder / "master.sock")

    @property
    def stats(self) -> str:
        return str(self.folder / "admin.sock")

    def instance(self, listen: str) -> Instance:
        return Instance(config=self.config, master=self.master, stats=self.stats, listen=listen, name="test")


def start_haproxy(spawn: Spawn, folder: Path, extra: str = "") -> RunningHaproxy:
    """HAProxy in master-worker mode on ``folder/haproxy.cfg`` (base + ``extra``), once its sockets answer."""
    assert HAPROXY is not None
    cfg = folder / "haproxy.cfg"
    cfg.write_text(base_config(folder) + extra)
    child = spawn([HAPROXY, "-W", "-db", "-S", f"{folder}/master.sock", "-f", str(cfg)])

    def ready() -> bool:
        for sock in ("master.sock", "admin.sock"):
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(str(folder / sock))
            except OSError:
                return False
        return True

    wait_until(ready, what="haproxy's master and stats sockets answer", timeout=20)
    return RunningHaproxy(folder, child, child.pid)  # type: ignore[attr-defined]


def check_config_file(path: Path) -> subprocess.CompletedProcess[str]:
    assert HAPROXY is not None
    return subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True)
