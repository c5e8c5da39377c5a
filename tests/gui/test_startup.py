"""The startup path stays light (issue 4: window shown and groups listed fast).

Structural checks, no timings: a fresh interpreter that imports the app's startup modules — and one that
builds and shows the main window — must not have imported the live view's plotting stack, the server, or
the client stack (httpx/pydantic come from the preload thread, the editor when a group is opened). The
embedded server may be launched before the window exists and is then awaited, not started twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from balancedesk.gui.app import compose_window
from balancedesk.gui.main_window import MainWindow
from balancedesk.gui.profiles import ProfileStore, local_profile

# never on the startup path: other processes (server, balancer) or opened on demand (live view)
NEVER = ("pyqtgraph", "numpy", "fastapi", "uvicorn", "starlette", "argon2", "balancedesk.core.mgmt",
         "balancedesk.core.proxy", "balancedesk.gui.live")
# not before the window is shown: the preload thread or the first opened group brings these
DEFERRED = ("httpx", "httpcore", "pydantic", "balancedesk.core.client", "balancedesk.core.model",
            "balancedesk.gui.document", "balancedesk.gui.editor", "balancedesk.gui.members_model")


def imported_after(code: str) -> set[str]:
    """Which of NEVER and DEFERRED are in ``sys.modules`` after a fresh interpreter ran ``code``."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m in {list(NEVER + DEFERRED)!r})))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_the_startup_modules_stays_light() -> None:
    loaded = imported_after("import balancedesk.gui.app, balancedesk.gui.main_window, qasync")
    assert not loaded, f"imported at startup: {sorted(loaded)}"


def test_the_preload_module_imports_neither_qt_nor_the_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, balancedesk.gui.preload as p; "
                               "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'httpx', "
                               "'pydantic', 'balancedesk.core'))))"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert out.stdout.strip() == "[]"


def test_building_and_showing_the_window_stays_light(tmp_path: Path) -> None:
    loaded = imported_after(
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from balancedesk.gui.app import compose_window\n"
        "from balancedesk.gui.profiles import ProfileStore\n"
        "from pathlib import Path\n"
        f"w = compose_window(profiles=ProfileStore(Path({str(tmp_path)!r})), local_data=Path({str(tmp_path)!r}))\n"
        "w.show()\n"
        "app.processEvents()\n"
        "w.close()\n"
        "del w\n"
    )
    assert not loaded, f"imported while building the window: {sorted(loaded)}"


Run = Callable[..., Any]


@pytest.fixture
def window(qtbot: Any, arun: Run, tmp_path: Path) -> Any:
    w = compose_window(profiles=ProfileStore(tmp_path / "config"), local_data=tmp_path / "local")
    qtbot.addWidget(w)
    yield w
    arun(w.shutdown())


def test_launched_local_server_is_awaited_not_started_again(window: MainWindow, arun: Run,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALANCEDESK_ADMIN_PASSWORD", "startup-test-pw-1")
    window.launch_local_server()  # what the app does before it builds its window
    server = window.local_server
    assert server is not None and server.running
    pid = server.process.processId()
    window.launch_local_server()  # a pending launch is not repeated
    assert server.process.processId() == pid
    arun(window.connect_profile(local_profile()), timeout_ms=40000)
    assert window.local_server is server and server.process.processId() == pid
    assert window.client is not None and window.client.base_url == server.url
    assert len(window.catalog.groups) == 1


def test_client_stack_awaits_the_preload(arun: Run) -> None:
    from balancedesk.gui import preload

    preload.preload_client()
    module = arun(preload.client_stack())
    preload.join_preload()
    assert module.__name__ == "balancedesk.core.client" and hasattr(module, "MgmtClient")
