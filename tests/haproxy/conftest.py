"""Fixtures of the HAProxy tests: the helpers of tests/proxy (``lbkit``: upstream processes, waits) and a real
HAProxy per test (:mod:`haproxykit`). Skipped where HAProxy is not installed (./dev.sh test installs it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib
import functools
import os
import signal
import socket
from collections.abc import Callable, Iterator

import pytest
from balancedesk.core.haproxy.deploy import parse_show_proc
from haproxykit import HAPROXY, RunningHaproxy, start_haproxy
from lbkit import Spawn, StartUpstream, start_upstream


@pytest.fixture
def upstream(spawn: Spawn) -> StartUpstream:
    """``upstream(kind, name)``: an upstream process from tests/proxy/upstreams, killed by PID at teardown."""
    return functools.partial(start_upstream, spawn)


@pytest.fixture
def haproxy(spawn: Spawn, tmp_path: Path) -> Iterator[Callable[..., RunningHaproxy]]:
    """``haproxy(extra="")``: a real HAProxy (master-worker) in its own folder. At teardown the master gets
    SIGTERM (it stops its workers), then every worker it ever listed is killed by PID if still there."""
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (./dev.sh test installs it)")
    started: list[RunningHaproxy] = []
    workers: set[int] = set()

    def _start(extra: str = "") -> RunningHaproxy:
        folder = tmp_path / f"haproxy{len(started)}"
        folder.mkdir()
        h = start_haproxy(spawn, folder, extra)
        started.append(h)
        return h

    def note_workers(h: RunningHaproxy) -> None:  # plain sockets: a test's event loop may still be running
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(h.master)
            s.sendall(b"show proc\n")
            s.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            workers.update(p.pid for p in parse_show_proc(answer.decode()) if p.kind == "worker")

    yield _start
    for h in started:
        note_workers(h)
        h.child.kill(signal.SIGTERM)  # type: ignore[attr-defined]
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
