"""``balancedesk --help`` lists the subcommands and the desktop app's own options."""

from __future__ import annotations

import subprocess
import sys


def test_help_lists_subcommands_and_the_app_options() -> None:
    out = subprocess.run([sys.executable, "-m", "balancedesk.gui.launcher", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ("serve", "balance", "export", "--theme", "--url", "--user", "--data", "--no-connect"):
        assert word in out.stdout, word
    assert "PySide6" not in out.stderr
