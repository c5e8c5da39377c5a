"""Fixtures of the HAProxy tests: the helpers of tests/proxy (``lbkit``: upstream processes, waits) and a real
HAProxy per test (:mod:`haproxykit`). Skipped where HAProxy is not installed (./dev.sh test installs it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proxy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402

import pytest  # noqa: E402
from haproxykit import HAPROXY, RunningHaproxy, start_haproxy  # noqa: E402
from lbkit import Spawn, StartUpstream, start_upstream  # noqa: E402

from balancedesk.core.haproxy.deploy import show_proc  # noqa: E402


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

    def note_workers(h: RunningHaproxy) -> None:
        with contextlib.suppress(Exception):
            workers.update(p.pid for p in asyncio.run(show_proc(h.master)) if p.kind == "worker")

    yield _start
    for h in started:
        note_workers(h)
        h.child.kill(signal.SIGTERM)  # type: ignore[attr-defined]
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
