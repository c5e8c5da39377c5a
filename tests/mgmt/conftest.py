"""Fixtures for the management API tests: a real ``balancedesk serve`` process on 127.0.0.1 (via ``spawn``).

Every test that uses ``server``, ``start_server`` or ``shared_server`` runs on both storage engines: the
``engine`` parameter is ``sqlite`` (the data directory's file) and ``postgresql`` (a fresh database on one
PostgreSQL cluster per session, :mod:`pg_cluster`). A test about the SQLite file itself is marked
``sqlite_only``. Restarting a server on the same ``data`` folder reopens the same database on either engine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mgmt_helpers import ADMIN_PASSWORD, SERVE, SERVING_RX, Server
from pg_cluster import Cluster, start_cluster

StartServer = Callable[..., Server]
ENGINES = ("sqlite", "postgresql")
SERVER_FIXTURES = {"server", "start_server", "shared_server"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and not any(
        m.name == "parametrize" and "engine" in str(m.args[0]) for m in metafunc.definition.iter_markers()
    ):
        engines = ("sqlite",) if metafunc.definition.get_closest_marker("sqlite_only") else ENGINES
        metafunc.parametrize("engine", engines, indirect=True, scope="module")


@pytest.fixture(scope="module")
def engine(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One PostgreSQL for the session (stopped by its PID at the end)."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def databases(engine: str, request: pytest.FixtureRequest) -> Callable[[Path], str | None]:
    """``databases(data_folder)`` → the database URL the servers of that folder use (None: SQLite in it)."""
    urls: dict[Path, str] = {}

    def _for(folder: Path) -> str | None:
        if engine != "postgresql":
            return None
        if folder not in urls:
            urls[folder] = request.getfixturevalue("pg_cluster").new_database()
        return urls[folder]

    return _for


def server_args(folder: Path, database: str | None) -> list[str]:
    return ["--data", str(folder), *([] if database is None else ["--database", database])]


@pytest.fixture
def start_server(
    spawn: Callable[..., Any], tmp_path: Path, databases: Callable[[Path], str | None]
) -> Iterator[StartServer]:
    """``start_server(*extra_args, data=None, database=None)`` → a running server (admin / ADMIN_PASSWORD);
    ``database``: a PostgreSQL URL another server already uses (several servers, one database)."""
    servers: list[Server] = []

    def _start(*extra: str, data: Path | None = None, database: str | None = None) -> Server:
        folder = data or tmp_path / "data"
        database = database or databases(folder)
        child = spawn(
            [*SERVE, "--port", "0", *server_args(folder, database), *extra],
            env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
        url = child.wait_for(SERVING_RX, timeout=30).group(1)
        server = Server(url=url, data=folder, child=child, database=database)
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
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, databases: Callable[[Path], str | None]
) -> Iterator[Server]:
    """One server for a whole module whose tests keep to their own users (cheaper than one per test).
    Started like ``spawn`` does and killed by its PID at the end of the module."""
    folder = tmp_path_factory.mktemp("shared") / "data"
    database = databases(folder)
    child = _root_conftest().start_child(
        [*SERVE, "--port", "0", *server_args(folder, database)], env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD}
    )
    try:
        url = child.wait_for(SERVING_RX, timeout=30).group(1)
        server = Server(url=url, data=folder, child=child, database=database)
        yield server
        server.close()
    finally:
        child.kill()
