"""Qt fixtures for the GUI tests: a qasync loop sharing pytest-qt's QApplication, and a real
management server (``balancedesk serve --demo``) on 127.0.0.1 for the GUI to talk to.

The ``qloop`` teardown never calls ``loop.stop()``: on a loop made with ``already_running=True`` that
calls ``QApplication.exit()`` and every later ``qtbot.wait*`` returns at once (see qt-stack.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import qasync
from PySide6.QtWidgets import QApplication

ADMIN_PASSWORD = "admin-test-pw-1"


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


@dataclass
class Server:
    url: str
    data: Path
    user: str
    password: str
    child: object  # tests.conftest.Child


@pytest.fixture
def mgmt_server(spawn: Callable[..., object], tmp_path: Path) -> Server:
    """A real embedded management server with the demo data set, admin/ADMIN_PASSWORD."""
    data = tmp_path / "mgmt"
    child = spawn(
        [sys.executable, "-m", "balancedesk.gui.launcher", "serve", "--port", "0", "--data", str(data), "--demo"],
        env={"BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    match = child.wait_for(r"balancedesk: serving (https?://\S+)", timeout=30)  # type: ignore[attr-defined]
    return Server(url=match.group(1), data=data, user="admin", password=ADMIN_PASSWORD, child=child)
