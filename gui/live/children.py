"""Child processes the live view starts (the balancer, demo members, the load generator), via QProcess.

QProcess never blocks the UI thread: output arrives by signal, readiness is a regex on a stdout line, and
the last lines are kept to show when a child dies. Only our own children are signalled, by their handle.
The one bounded wait is a window's close (:func:`stop_and_wait`): SIGTERM to all, a grace to exit, then SIGKILL.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence

from balancedesk.core.command import EXIT_WITH_PARENT_ENV, balancedesk_argv
from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal


class ChildProcess(QObject):
    """One child process with a readiness line.

    Signals: ``began(int)`` with its PID once it runs; ``readied(object)`` with the ``re.Match`` of the
    readiness line; ``lined(str)`` per output line; ``exited(int, bool)`` with the exit code and whether we
    asked it to stop.
    """

    began = Signal(int)
    readied = Signal(object)
    lined = Signal(str)
    exited = Signal(int, bool)

    def __init__(self, name: str, *, ready_pattern: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.lines: deque[str] = deque(maxlen=200)
        self.ready_match: re.Match[str] | None = None
        self._ready_rx = re.compile(ready_pattern) if ready_pattern else None
        self._stopping = False
        self._buf = b""
        self._proc = QProcess(self)
        self._proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert(EXIT_WITH_PARENT_ENV, "1")  # a GUI that dies takes its children with it
        self._proc.setProcessEnvironment(env)
        self._proc.readyReadStandardOutput.connect(self.on_proc_readyRead)
        self._proc.finished.connect(self.on_proc_finished)
        self._proc.started.connect(self.on_proc_started)
        self._proc.errorOccurred.connect(self.on_proc_errorOccurred)

    @property
    def running(self) -> bool:
        return self._proc.state() != QProcess.ProcessState.NotRunning

    @property
    def pid(self) -> int:
        return int(self._proc.processId())

    def start(self, args: Sequence[str]) -> None:
        """Start ``balancedesk *args`` (the same command an admin runs; frozen-aware)."""
        self._stopping = False
        self.ready_match = None
        argv = balancedesk_argv(*args)
        self._proc.start(argv[0], argv[1:])

    def stop(self, *, grace_ms: int = 1500) -> None:
        """SIGTERM, then SIGKILL after ``grace_ms`` if it is still running."""
        if not self.running:
            return
        self._stopping = True
        self._proc.terminate()
        QTimer.singleShot(grace_ms, self._kill_if_running)

    def terminate(self) -> None:
        """SIGTERM, nothing more (see :func:`stop_and_wait`)."""
        if self.running:
            self._stopping = True
            self._proc.terminate()

    def wait(self, ms: int) -> bool:
        """Block up to ``ms`` for the child to end (for window close: bounded). True once it is not running."""
        return not self.running or self._proc.waitForFinished(max(0, ms)) or not self.running

    def kill(self) -> None:
        if self.running:
            self._stopping = True
            self._proc.kill()

    def kill_now(self) -> None:
        """For window close: SIGKILL and reap (a killed child is reaped in milliseconds)."""
        if self.running:
            self._stopping = True
            self._proc.kill()
            self._proc.waitForFinished(2000)

    def _kill_if_running(self) -> None:
        if self.running:
            self._proc.kill()

    def tail(self, n: int = 20) -> list[str]:
        return list(self.lines)[-n:]

    # slots ---------------------------------------------------------------------------------------
    def on_proc_readyRead(self) -> None:
        self._buf += bytes(self._proc.readAllStandardOutput().data())
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(line)
            if self.ready_match is None and self._ready_rx and (m := self._ready_rx.search(line)):
                self.ready_match = m
                self.readied.emit(m)
            self.lined.emit(line)

    def on_proc_started(self) -> None:
        self.began.emit(self.pid)

    def on_proc_finished(self, code: int, _status: QProcess.ExitStatus) -> None:
        if self._buf:
            self.lines.append(self._buf.decode("utf-8", "replace"))
            self._buf = b""
        self.exited.emit(int(code), self._stopping)

    def on_proc_errorOccurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.lines.append(f"failed to start: {self._proc.errorString()}")
            self.exited.emit(-1, self._stopping)


def stop_and_wait(children: Sequence[ChildProcess], *, grace_ms: int = 3000) -> list[int]:
    """Stop ``children`` gracefully and wait for them (for a window that closes): SIGTERM to every one at once,
    wait for each until ``grace_ms`` from now, SIGKILL those still running and reap them. Returns the PIDs
    that were running."""
    import time

    running = [c for c in children if c.running]
    pids = [c.pid for c in running]
    for c in running:
        c.terminate()
    deadline = time.monotonic() + grace_ms / 1000.0
    for c in running:
        c.wait(int(max(0.0, deadline - time.monotonic()) * 1000))
    for c in running:
        if c.running:
            c.kill_now()
    return pids
