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
