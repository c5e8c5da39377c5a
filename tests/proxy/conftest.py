"""Fixtures for the proxy tests: in-process members, upstream processes and ``balancedesk balance`` children.

Everything listens on 127.0.0.1; every child is killed by its PID at teardown (via ``spawn``).
Helpers live in :mod:`lbkit`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from lbkit import Balancer, Members, Spawn, StartBalancer, StartUpstream, start_balancer, start_upstream


@pytest.fixture(params=["native", "asyncio"])
def data_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run an L4 test on each data plane: the balancers it starts inherit BALANCEDESK_L4 (``native``
    insists on the C engine, so a build that silently failed fails these tests instead of passing on
    the asyncio shell)."""
    plane: str = request.param
    monkeypatch.setenv("BALANCEDESK_L4", plane)
    return plane


@pytest.fixture(params=["native", "asyncio"])
def http_plane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run an L7 test on each data plane: the engine's fast path (which hands the unusual request to
    http.py) and http.py alone, through BALANCEDESK_L7."""
    plane: str = request.param
    monkeypatch.setenv("BALANCEDESK_L7", plane)
    return plane


@pytest.fixture
def members() -> Iterator[Members]:
    """In-process member servers (TCP echo, HTTP) on 127.0.0.1."""
    m = Members()
    yield m
    m.close()


@pytest.fixture
def upstream(spawn: Spawn) -> StartUpstream:
    """``upstream(kind, name, port=0)`` with kind tcp_name / http_backend / blackhole."""
    return functools.partial(start_upstream, spawn)


@pytest.fixture
def balancer(spawn: Spawn, tmp_path: Path) -> StartBalancer:
    """``balancer(config or source args, mode="tcp", args=(), admin=True, env=None, timeout=20)`` → a running
    ``balancedesk balance`` child (see :func:`lbkit.start_balancer`); each keeps its files in its own folder."""
    count = itertools.count(1)

    def start(source: dict[str, Any] | Sequence[str], **kw: Any) -> Balancer:
        folder = tmp_path / f"balancer{next(count)}"
        folder.mkdir()
        return start_balancer(spawn, folder, source, **kw)

    return start
