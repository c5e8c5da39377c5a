"""The composition root: ``balancedesk`` with no subcommand runs :func:`run`.

Builds the QApplication (or reuses one), the qasync loop, the theme and the main window with its
collaborators (:func:`compose_window`), then connects the "This computer" profile (which starts the
embedded management server on first use) — or, with ``--url``, a given server (password from
``BALANCEDESK_PASSWORD``, the keyring, or asked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from balancedesk.gui.main_window import MainWindow
    from balancedesk.gui.profiles import ProfileStore

PASSWORD_ENV = "BALANCEDESK_PASSWORD"


def add_app_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The desktop app's options (also listed by ``balancedesk --help``, through the launcher)."""
    parser.add_argument("--theme", choices=("system", "light", "dark"), default="system",
                        help="colour theme (default: follow the system)")
    parser.add_argument("--url", help="connect to this management server instead of the local one")
    parser.add_argument("--user", default="admin", help="user for --url (password: $BALANCEDESK_PASSWORD, "
                                                        "the keyring, or asked)")
    parser.add_argument("--data", type=Path, help="data directory of the local embedded server")
    parser.add_argument("--no-connect", action="store_true", help="open without connecting")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="balancedesk", description="Balance Desk desktop app")
    add_app_options(parser)
    return parser.parse_args(argv)


def compose_window(*, profiles: ProfileStore | None = None, local_data: Path | None = None) -> MainWindow:
    """The main window and its collaborators: the connection (profiles, login, the listing), the editing
    of the open group, and the live opener — each owns its state; the window shows it and asks through
    the narrow :class:`~balancedesk.gui.host.WindowHost` interface. All are children of the window."""
    from balancedesk.gui.connection import ConnectionController
    from balancedesk.gui.editing import EditingController
    from balancedesk.gui.live_opener import LiveOpener
    from balancedesk.gui.main_window import MainWindow
    from balancedesk.gui.profiles import ProfileStore, data_dir

    window = MainWindow()
    connection = ConnectionController(window, profiles=profiles or ProfileStore(), local_data=local_data or data_dir(),
                                      parent=window)
    editing = EditingController(window, connection, parent=window)
    live = LiveOpener(window, connection, editing, parent=window)
    window.attach(connection=connection, editing=editing, live=live)
    return window


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    if "httpx" not in sys.modules:
        # httpx imports its command-line tool (click, rich, pygments: ~0.3 s) when those are installed;
        # the app never uses it, so let that optional import fail and httpx skips it.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    # Startup order (issue 4: window shown and groups listed fast): the client stack (httpx, pydantic) is
    # imported on a worker thread from the very start; the window is built and shown meanwhile; the
    # embedded server's process (local profile) is started before the window is built so that its own
    # start-up overlaps ours; connect_profile awaits the preload instead of importing on the UI thread.
    import PySide6  # noqa: F401  # first: see balancedesk.gui.preload on why the preload starts after it
    from balancedesk.gui.preload import join_preload, preload_client

    if not args.no_connect:
        preload_client()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setApplicationName("Balance Desk")
    app.setOrganizationName("balancedesk")
    app.setDesktopFileName("balancedesk")
    import qasync
    from balancedesk.gui.gc_guard import GuiCollector
    from balancedesk.gui.profiles import Profile, local_profile
    from balancedesk.gui.theme import apply_theme

    apply_theme(app, args.theme)
    collector = GuiCollector(app)  # cycles are collected in this thread only (a Qt object's end must be here)
    collector.start()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    window = compose_window(local_data=args.data)
    if not args.url and not args.no_connect:
        window.launch_local_server()
    if not os.environ.get("BALANCEDESK_BENCH_EXIT"):
        window.restore_geometry()
    window.show()
    if os.environ.get("BALANCEDESK_BENCH_EXIT"):  # for bench/bench_startup.py: the loop runs, the window shows
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: print("balancedesk-gui: window shown", flush=True))

    if args.url:
        profile = Profile(name=args.url, url=args.url, user=args.user)
        password = os.environ.get(PASSWORD_ENV)
    else:
        profile, password = local_profile(), None

    # Every way out only asks (quit_event); main() then shuts down on the running loop (gui/quitting.py).
    from balancedesk.gui.quitting import QuitSignals, finish_tasks

    quit_event = asyncio.Event()
    app.setQuitOnLastWindowClosed(False)
    app.aboutToQuit.connect(quit_event.set)
    app.lastWindowClosed.connect(quit_event.set)
    signals = QuitSignals(quit_event.set)
    window.closed.connect(quit_event.set)
    window.connected.connect(lambda url: print(f"balancedesk: connected to {url}", file=sys.stderr, flush=True))

    async def main() -> None:
        if not args.no_connect:
            task = window.spawn(window.connection.connect_profile(profile, password=password), "Connecting…")
            if os.environ.get("BALANCEDESK_BENCH_EXIT"):
                def failed(text: str) -> None:
                    print(f"balancedesk-gui: failed: {text}", flush=True)
                    quit_event.set()

                window.catalog_loaded.connect(lambda n: quit_event.set())
                window.failed.connect(failed)
            del task
        await quit_event.wait()
        await window.shutdown()
        await finish_tasks()

    try:
        with loop:
            loop.run_until_complete(main())
    finally:
        signals.close()
    window.deleteLater()
    join_preload()
    collector.stop()
    return 0
