"""Fixtures for the management API tests: a real ``balancedesk serve`` process on 127.0.0.1 (via ``spawn``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mgmt_helpers import ADMIN_PASSWORD, SERVE, SERVING_RX, Server

StartServer = Callable[..., Server]


@pytest.fixture
def start_server(spawn: Callable[..., Any], tmp_path: Path) -> Iterator[StartServer]:
    """``start_server(data=None, *extra_args)`` → a running server (admin / ADMIN_PASSWORD)."""
    servers: list[Server] = []

    def _start(*extra: str, data: Path | None = None) -> Server:
        folder = data or tmp_path / "data"
        child = spawn(
            [*SERVE, "--port", "0", "--data", str(folder), *extra],
            env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        url = child.wait_for(SERVING_RX, timeout=30).group(1)
        server = Server(url=url, data=folder, child=child)
        servers.append(server)
        return server

    yield _start
    for s in servers:
        s.close()


@pytest.fixture
def server(start_server: StartServer) -> Server:
    return start_server()


def _root_conftest() -> Any:
    """tests/conftest.py, loaded under its own name, for its ``start_child`` (``spawn`` is per test)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("balancedesk_tests_root_conftest", path)
    assert spec and spec.loader
    module = sys.modules.get(spec.name)
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up here
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a whole module whose tests keep to their own users (cheaper than one per test).
    Started like ``spawn`` does and killed by its PID at the end of the module."""
    folder = tmp_path_factory.mktemp("shared") / "data"
    child = _root_conftest().start_child(
        [*SERVE, "--port", "0", "--data", str(folder)], env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        url = child.wait_for(SERVING_RX, timeout=30).group(1)
        server = Server(url=url, data=folder, child=child)
        yield server
        server.close()
    finally:
        child.kill()
