"""Shared test fixtures: real child processes that announce readiness on stdout.

``spawn`` starts a command (e.g. ``balancedesk serve --port 0 …``), waits — with a deadline, never a
sleep — for a stdout line matching a pattern, and kills exactly that process (by PID) at teardown.
The Qt platform defaults to offscreen; CI may override it with QT_QPA_PLATFORM=xcb under Xvfb.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

BALANCEDESK = [sys.executable, "-m", "balancedesk.gui.launcher"]


@dataclass
class Child:
    """A child process with its stdout collected by a reader thread."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Wait until a stdout line matches ``pattern``; fail with the output so far on deadline or exit."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if m := rx.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.proc.poll() is not None and seen == len(self.lines):
                    raise AssertionError(f"process exited ({self.proc.returncode}) before {pattern!r}:\n"
                                         + "\n".join(self.lines[-40:]))
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s:\n"
                                         + "\n".join(self.lines[-40:]))
                self._cond.wait(min(left, 0.2))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_child(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        cwd=cwd,
    )
    child = Child(proc)
    threading.Thread(target=child._pump, daemon=True).start()
    return child


@pytest.fixture
def spawn() -> Iterator[object]:
    """``spawn(cmd, env=None)`` → Child; every child is killed (by its PID) at teardown."""
    children: list[Child] = []

    def _spawn(cmd: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
        child = start_child(cmd, env=env, cwd=cwd)
        children.append(child)
        return child

    yield _spawn
    for child in children:
        child.kill()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A one-day self-signed certificate for 127.0.0.1 (cert.pem, key.pem) made with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
