"""Quitting the real app from every path: SIGTERM, Ctrl+C (SIGINT) and File › Quit's Ctrl+Q under Xvfb.

Each run starts ``balancedesk`` (the desktop app, which starts its embedded management server as a
child), waits until it has connected, quits it one way, and checks: exit code 0, no traceback in its
output, and every process it started gone (checked by PID).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Child

ADMIN_PASSWORD = "quit-test-pw-1"


def descendants(pid: int) -> set[int]:
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = {int(k) for k in children.read_text().split()}
            except OSError:
                continue
            todo += list(kids - out)
            out |= kids
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_app(spawn: Callable[..., Child], tmp_path: Path, platform: str) -> tuple[Child, set[int]]:
    home = tmp_path / "home"
    home.mkdir()
    child = spawn([sys.executable, "-m", "balancedesk.gui.launcher", "--data", str(tmp_path / "data")],
                  env={"QT_QPA_PLATFORM": platform, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                       "BALANCEDESK_ADMIN_PASSWORD": ADMIN_PASSWORD})
    child.wait_for(r"balancedesk: connected to http://127\.0\.0\.1:\d+", timeout=60)
    kids = descendants(child.pid)
    assert kids, "the app should have started its embedded server"
    return child, kids


def assert_quit_cleanly(child: Child, kids: set[int]) -> None:
    try:
        rc = child.proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("the app did not quit within 30 s:\n" + "\n".join(child.lines[-40:]))
    out = "\n".join(child.lines)
    assert rc == 0, out
    assert "Traceback" not in out and "Event loop stopped" not in out, out
    deadline = time.monotonic() + 10
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if alive(k)], "a child outlived the app"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_quit_signal_shuts_down_cleanly(spawn: Callable[..., Child], tmp_path: Path, sig: int) -> None:
    child, kids = start_app(spawn, tmp_path, "offscreen")
    os.kill(child.pid, sig)
    assert_quit_cleanly(child, kids)


@pytest.mark.xcb
@pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM") != "xcb" or not shutil.which("xdotool"),
                    reason="a real key press needs Xvfb (xcb) and xdotool")
def test_file_quit_by_its_shortcut_shuts_down_cleanly(spawn: Callable[..., Child], tmp_path: Path) -> None:
    child, kids = start_app(spawn, tmp_path, "xcb")
    found = subprocess.run(["xdotool", "search", "--sync", "--pid", str(child.pid), "--name", "Balance Desk"],
                           capture_output=True, text=True, timeout=30, check=True)
    window = found.stdout.split()[0]
    subprocess.run(["xdotool", "windowfocus", "--sync", window], check=True, timeout=30)
    subprocess.run(["xdotool", "key", "ctrl+q"], check=True, timeout=30)
    assert_quit_cleanly(child, kids)
