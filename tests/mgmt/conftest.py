"""Fixtures for the management API tests: a real ``balancedesk serve`` process on 127.0.0.1 (via ``spawn``)."""

from __future__ import annotations

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
