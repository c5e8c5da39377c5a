"""How to start another ``balancedesk`` process (the management server, a balancer, a demo member).

From a source or pip install that is ``python -m balancedesk.gui.launcher SUBCOMMAND …``; from the
frozen installer (PyInstaller) it is the executable itself. Children are always started this way so the
GUI runs exactly what an admin would run on a server.
"""

from __future__ import annotations

import sys


def balancedesk_argv(*args: str) -> list[str]:
    """The argv that runs ``balancedesk *args`` with this installation."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "balancedesk.gui.launcher", *args]


EXIT_WITH_PARENT_ENV = "BALANCEDESK_EXIT_WITH_PARENT"


def watch_parent(*, interval_s: float = 0.5, grace_s: float = 15.0) -> None:
    """End this process when the process that started it is gone (``BALANCEDESK_EXIT_WITH_PARENT=1``).

    The GUI sets that variable for its children (the embedded server, balancers, demo members), so a GUI
    that crashes or is killed leaves nothing running. Polls the parent PID from a daemon thread (portable;
    Linux's PR_SET_PDEATHSIG is not on macOS), asks for a graceful stop with SIGTERM, and kills after
    ``grace_s`` if the process is still there.
    """
    import os
    import signal
    import threading
    import time

    parent = os.getppid()
    if parent <= 1:
        return  # started by init or already orphaned: nothing to follow

    def follow() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=follow, name="exit-with-parent", daemon=True).start()
