"""CLI commands that would ask on a terminal say what to do instead when there is none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_users_add_without_a_terminal_names_the_option_and_adds_nothing(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "balancedesk.gui.launcher", "users"]
    r = subprocess.run([*cmd, "add", "bob", "--data", str(tmp_path)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--password-env" in r.stderr and "Traceback" not in r.stderr
    listed = subprocess.run([*cmd, "list", "--data", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "bob" not in listed.stdout
