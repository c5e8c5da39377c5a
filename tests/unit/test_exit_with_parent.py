"""Children of the GUI end when the GUI is gone: a real ``balancedesk demo-member`` started with
BALANCEDESK_EXIT_WITH_PARENT=1 by a parent process that is then SIGKILLed exits by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PARENT = textwrap.dedent(
    """
    import os, subprocess, sys
    child = subprocess.Popen(
        [sys.executable, "-m", "balancedesk.gui.launcher", "demo-member", "--listen", "127.0.0.1:0",
         "--mode", "tcp", "--name", "orphan-test"],
        env={**os.environ, "BALANCEDESK_EXIT_WITH_PARENT": sys.argv[1], "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, text=True,
    )
    line = child.stdout.readline()
    print(child.pid, line.strip(), flush=True)
    child.wait()
    """
)


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody reaped yet."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def start(flag: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, flag], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid_text, ready = parent.stdout.readline().split(" ", 1)
    assert "demo member orphan-test" in ready
    return parent, int(pid_text)


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)  # polling a condition with a deadline
    return gone(pid)


def test_child_follows_its_killed_parent() -> None:
    parent, child = start("1")
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(10)
    assert wait_gone(child, 20), "the child outlived its parent"


def test_without_the_variable_the_child_stays() -> None:
    parent, child = start("0")
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert not wait_gone(child, 2)  # the mechanism, not luck, ends it in the test above
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)
