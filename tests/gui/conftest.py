"""Qt fixtures for the GUI tests: a qasync loop sharing pytest-qt's QApplication, and a real
management server (``balancedesk serve --demo``) on 127.0.0.1 for the GUI to talk to.

The ``qloop`` teardown never calls ``loop.stop()``: on a loop made with ``already_running=True`` that
calls ``QApplication.exit()`` and every later ``qtbot.wait*`` returns at once (see qt-stack.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from tests.gui.fleet_support import HEARTBEAT_S, Fleet, Heartbeats

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient

ADMIN_PASSWORD = "admin-test-pw-1"


@pytest.fixture(autouse=True)
def own_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test reads and writes its own QSettings (window geometry, the attach dialog's last values),
    never the user's ~/.config/balancedesk."""
    where = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(where))
    yield where


@pytest.fixture(autouse=True)
def own_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test has its own app data directory (``BALANCEDESK_DATA``: the live view's record of the demo
    processes it started lives there), never the user's."""
    where = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("BALANCEDESK_DATA", str(where))
    return where


@pytest.fixture(scope="session", autouse=True)
def gui_thread_gc(qapp: QApplication) -> Iterator[None]:
    """As the app does (gui/gc_guard.py): garbage is collected in the GUI thread only, for the whole run."""
    from balancedesk.gui.gc_guard import GuiCollector

    collector = GuiCollector()
    collector.start()
    yield
    collector.stop()


@pytest.fixture
def qloop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    with contextlib.suppress(RuntimeError, TypeError):
        qapp.aboutToQuit.disconnect(loop._after_run_forever)
    loop._after_run_forever()
    loop._QEventLoop__is_running = False  # type: ignore[attr-defined]
    asyncio.events._set_running_loop(None)
    loop.close()
    asyncio.set_event_loop(None)
    _release_timers(loop)


def _release_timers(loop: Any) -> None:
    """Kill a closed qasync loop's Qt timers and delete its timer object here, in the GUI thread.

    ``QEventLoop.close()`` only marks its timer object stopped; its timers (every pending ``call_later``: a
    backoff, a timeout) stay registered with Qt until they fire. If the loop is then freed by a garbage
    collection that happens to run in another thread (a child's output pump, the installation's watcher),
    the QObject's destructor runs there, and Qt cannot unregister timers from another thread: the next test's
    event processing fires a timer at freed memory — the segfault in ``QTimerInfoList::activateTimers`` seen
    in long GUI runs. Deleting it now, and collecting what the test left, keeps every Qt object's end here."""
    import gc

    import shiboken6

    timer = loop._timer
    if shiboken6.isValid(timer):
        for timer_id in list(timer._SimpleTimer__callbacks):
            timer.killTimer(timer_id)
        timer._SimpleTimer__callbacks.clear()
        shiboken6.delete(timer)
    gc.collect()


@dataclass
class Server:
    url: str
    data: Path
    user: str
    password: str
    child: object  # tests.conftest.Child


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster for the session (tests/gui/installation.py), stopped by its PID at the end."""
    from tests.mgmt.pg_cluster import start_cluster

    cluster = start_cluster()
    yield cluster
    cluster.stop()


INSTALLATION = os.environ.get("BALANCEDESK_TEST_INSTALLATION") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses ``mgmt_server`` is marked ``installation`` (``-m installation`` selects them)."""
    for item in items:
        if "mgmt_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.installation)


KILLS: list[tuple[str, bool]] = []  # installation mode: (test, whether its first server was killed mid-test)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if KILLS:
        missed = [test for test, killed in KILLS if not killed]
        terminalreporter.write_line(
            f"installation: the first management server was killed mid-test in {len(KILLS) - len(missed)} of "
            f"{len(KILLS)} tests" + (f" (too few requests in: {', '.join(missed)})" if missed else ""))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if INSTALLATION and item.get_closest_marker("single_server"):
        pytest.skip("kills the one management server; in an installation the other one answers "
                    "(tests/gui/test_installation.py kills a server mid-save)")


@pytest.fixture
def mgmt_server(spawn: Callable[..., object], tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    """A real embedded management server with the demo data set, admin/ADMIN_PASSWORD. With
    BALANCEDESK_TEST_INSTALLATION=1: two servers on PostgreSQL behind a balancer, one killed mid-test."""
    if INSTALLATION:
        from tests.gui.installation import start_installation

        inst = start_installation(spawn, tmp_path / "installation", request.getfixturevalue("pg_cluster"),
                                  ADMIN_PASSWORD)
        inst.kill_after(int(os.environ.get("BALANCEDESK_TEST_KILL_AFTER", "3")))

        def close() -> None:
            inst.close()
            KILLS.append((request.node.nodeid, inst.killed.is_set()))

        request.addfinalizer(close)
        return Server(url=inst.url, data=tmp_path / "installation" / "mgmt2", user="admin",
                      password=ADMIN_PASSWORD, child=inst.servers[1])
    data = tmp_path / "mgmt"
    child = spawn(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(data), "--demo"],
        env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    match = child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30)  # type: ignore[attr-defined]
    return Server(url=match.group(1), data=data, user="admin", password=ADMIN_PASSWORD, child=child)


# --- live view (issue 5) -----------------------------------------------------------------------------


@dataclass
class LiveGroup:
    """A saved group of demo members on free 127.0.0.1 ports: ``group`` (a Connector), ``endpoints``,
    and ``config`` (the ``balancedesk balance --config`` body)."""

    group: object  # balancedesk.core.model.Connector
    endpoints: dict[str, str]
    config: dict[str, object]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_group() -> Callable[..., LiveGroup]:
    """``live_group(ids=("a", "b"), weights=None, retry_delay=2)`` → a round-robin LiveGroup."""
    from balancedesk.core.model import Connector

    def make(ids: tuple[str, ...] = ("a", "b"), weights: tuple[int, ...] | None = None,
             retry_delay: int = 2) -> LiveGroup:
        weights = weights or (1,) * len(ids)
        endpoints = {mid: f"127.0.0.1:{_free_port()}" for mid in ids}
        body = {
            "connectorID": "live-group", "owner": "tester", "label": "live test group",
            "connectorGroup": {
                "connectionTimeout": 2, "retryDelay": retry_delay, "loadBalancing": "Round Robin",
                "members": [{"memberID": m, "sequence": i + 1, "weight": w}
                            for i, (m, w) in enumerate(zip(ids, weights, strict=True))],
            },
        }
        group = Connector.model_validate(body)
        return LiveGroup(group=group, endpoints=endpoints, config={**body, "endpoints": endpoints})

    return make


# --- group editor (issue 4) fixtures: added, nothing above changed -----------------------------------


@pytest.fixture
def arun(qloop: asyncio.AbstractEventLoop, qtbot: object) -> Callable[..., object]:
    """``arun(coro, timeout_ms=15000)``: run a coroutine on the qasync loop, Qt events flowing, and return
    its result (or raise its exception). Waits on the task with a deadline, never a sleep."""

    def _run(coro: object, timeout_ms: int = 15000) -> object:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        qtbot.waitUntil(task.done, timeout=timeout_ms)  # type: ignore[attr-defined]
        return task.result()

    return _run


@pytest.fixture
def window(qtbot: Any, arun: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The main window, shown, with its own config folder and canned answers to every question
    (``tests.gui.editor_support.CannedPrompter``); shut down (children stopped) at teardown."""
    from balancedesk.gui.app import compose_window
    from balancedesk.gui.profiles import ProfileStore

    from tests.gui.editor_support import CannedPrompter

    monkeypatch.setenv("BALANCEDESK_CONFIG", str(tmp_path / "config"))
    w = compose_window(profiles=ProfileStore(tmp_path / "config"), local_data=tmp_path / "local")
    w.prompter = CannedPrompter()  # type: ignore[assignment]
    qtbot.addWidget(w)
    w.show()
    yield w
    arun(w.shutdown())


# --- the fleet (issue 11): a real server with a short heartbeat interval, balancer imitations ---------


@pytest.fixture
def fleet(spawn: Callable[..., Any], tmp_path: Path) -> Iterator[Fleet]:
    """A real ``balancedesk serve`` (no demo data) whose balancers heartbeat every HEARTBEAT_S."""
    child = spawn([sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0",
                   "--data", str(tmp_path / "mgmt"), "--heartbeat-interval", str(HEARTBEAT_S)],
                  env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    url = child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30).group(1)
    import httpx

    f = Fleet(url, httpx.Client(base_url=url, auth=("admin", ADMIN_PASSWORD), timeout=30.0))
    yield f
    f.admin.close()


@pytest.fixture
def beats(fleet: Fleet) -> Iterator[Heartbeats]:
    hb = Heartbeats(fleet.url).start()
    yield hb
    hb.close()


@pytest.fixture
def admin_client(fleet: Fleet, arun: Callable[..., Any]) -> Iterator[MgmtClient]:
    from balancedesk.core.client import MgmtClient

    client = MgmtClient(fleet.url, "admin", ADMIN_PASSWORD)
    yield client
    arun(client.aclose())
