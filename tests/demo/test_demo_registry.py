"""``core.demo.DemoRegistry``: demo processes left by an app that is gone are stopped (SIGTERM, waited for) and
their records dropped; a live owner's are left alone; a PID that is not (or no longer) the recorded demo process
is never signalled. Real processes on 127.0.0.1, killed by their PID at teardown."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from balancedesk.core.demo import DemoRecord, DemoRegistry, free_ports, process_start

CMD = [sys.executable, "-m", "balancedesk.gui.launcher", "demo-member"]
READY = r"balancedesk: demo member (\S+) on (127\.0\.0\.1):(\d+) control (http://\S+)"


def _gone_owner() -> tuple[int, int]:
    """The PID of a process that ran and ended, and a start time no live process of that PID has."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(p.pid) or 1
    p.wait(10)
    return p.pid, start


def _record(pid: int, owner: tuple[int, int], *, command: str = "demo-member", endpoint: str = "",
            tag: str = "w1") -> DemoRecord:
    start = process_start(pid)
    assert start is not None
    return DemoRecord(pid, start, command, "m1", endpoint, "", owner[0], owner[1], tag)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_an_orphan_is_stopped_and_a_live_owners_demo_and_an_impostor_are_not(
        spawn: Callable[..., Any], tmp_path: Path) -> None:
    reg = DemoRegistry(tmp_path / "demo.json")
    orphan = spawn([*CMD, "--listen", "127.0.0.1:0", "--mode", "tcp", "--name", "m1"])
    port = int(orphan.wait_for(READY).group(3))
    kept = spawn([*CMD, "--listen", "127.0.0.1:0", "--mode", "tcp", "--name", "m2"])
    kept.wait_for(READY)
    impostor = spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    impostor.wait_for("up")
    me = process_start_self()  # a live owner: this test process
    reg.add(_record(orphan.proc.pid, _gone_owner(), endpoint=f"127.0.0.1:{port}"))
    reg.add(_record(kept.proc.pid, me, tag="another window"))
    reg.add(_record(impostor.proc.pid, _gone_owner()))  # its command is not a demo's: never ours
    stopped = reg.clean_orphans(grace_s=5.0)
    assert [r.pid for r in stopped] == [orphan.proc.pid]
    assert orphan.proc.wait(10) == 0  # SIGTERM: the demo member closed its listeners and exited 0
    assert _port_free(port)
    assert kept.proc.poll() is None and impostor.proc.poll() is None
    assert [r.pid for r in reg.records()] == [kept.proc.pid]


def process_start_self() -> tuple[int, int]:
    import os

    pid = os.getpid()
    start = process_start(pid)
    assert start is not None
    return pid, start


def test_a_record_whose_pid_was_reused_or_ended_is_only_dropped(spawn: Callable[..., Any], tmp_path: Path) -> None:
    reg = DemoRegistry(tmp_path / "demo.json")
    other = spawn([*CMD, "--listen", "127.0.0.1:0", "--mode", "tcp"])
    other.wait_for(READY)
    start = process_start(other.proc.pid)
    assert start is not None
    # the same PID with another start time: a process that reused the PID, not the one recorded
    reg.add(DemoRecord(other.proc.pid, start + 1, "demo-member", "m", "", "", *_gone_owner(), "w"))
    ended = _gone_owner()
    reg.add(DemoRecord(ended[0], ended[1], "demo-member", "m", "", "", *_gone_owner(), "w"))
    assert reg.clean_orphans(grace_s=1.0) == []
    assert other.proc.poll() is None and reg.records() == []


def test_free_ports_are_distinct_and_free() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(_port_free(p) for p in ports)
