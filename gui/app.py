"""The composition root: ``balancedesk`` with no subcommand runs :func:`run`.

Builds the QApplication (or reuses one), the qasync loop, the theme and the main window, then connects
the "This computer" profile (which starts the embedded management server on first use) — or, with
``--url``, a given server (password from ``BALANCEDESK_PASSWORD``, the keyring, or asked).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

PASSWORD_ENV = "BALANCEDESK_PASSWORD"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="balancedesk", description="Balance Desk desktop app")
    parser.add_argument("--theme", choices=("system", "light", "dark"), default="system",
                        help="colour theme (default: follow the system)")
    parser.add_argument("--url", help="connect to this management server instead of the local one")
    parser.add_argument("--user", default="admin", help="user for --url (password: $BALANCEDESK_PASSWORD, "
                                                        "the keyring, or asked)")
    parser.add_argument("--data", type=Path, help="data directory of the local embedded server")
    parser.add_argument("--no-connect", action="store_true", help="open without connecting")
    return parser.parse_args(argv)


def _preload() -> None:
    """Import the network and model stack while Qt builds the window (imports release nothing, but Qt's
    C++ start-up work — fonts, platform plugin, first paint — runs without the GIL)."""
    import balancedesk.core.client  # noqa: F401


def run(argv: list[str]) -> int:
    args = parse_args(argv)
    if "httpx" not in sys.modules:
        # httpx imports its command-line tool (click, rich, pygments: ~0.3 s) when those are installed;
        # the app never uses it, so let that optional import fail and httpx skips it.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import threading

    preload = threading.Thread(target=_preload, name="preload", daemon=True)
    preload.start()
    import qasync
    from balancedesk.gui.main_window import MainWindow
    from balancedesk.gui.profiles import Profile, local_profile
    from balancedesk.gui.theme import apply_theme
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setApplicationName("Balance Desk")
    app.setOrganizationName("balancedesk")
    app.setDesktopFileName("balancedesk")
    apply_theme(app, args.theme)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    preload.join()
    window = MainWindow(local_data=args.data)
    if not os.environ.get("BALANCEDESK_BENCH_EXIT"):
        window.restore_geometry()
    window.show()

    if args.url:
        profile = Profile(name=args.url, url=args.url, user=args.user)
        password = os.environ.get(PASSWORD_ENV)
    else:
        profile, password = local_profile(), None

    quit_event = asyncio.Event()
    app.aboutToQuit.connect(quit_event.set)
    app.lastWindowClosed.connect(quit_event.set)

    async def main() -> None:
        if not args.no_connect:
            task = window.spawn(window.connect_profile(profile, password=password), "Connecting…")
            if os.environ.get("BALANCEDESK_BENCH_EXIT"):
                window.catalog_loaded.connect(lambda n: quit_event.set())
                window.failed.connect(lambda text: quit_event.set())
            del task
        await quit_event.wait()
        await window.shutdown()

    with loop:
        loop.run_until_complete(main())
    window.deleteLater()
    return 0
