"""The embedded management server behind the "This computer" profile, run as a child via QProcess.

``balancedesk serve --port 0 --data DIR --demo`` prints ``balancedesk: serving http://HOST:PORT`` once it
listens; :meth:`LocalServer.start` awaits that line (with a deadline). On an empty store the server
creates ``admin`` with the password from ``BALANCEDESK_ADMIN_PASSWORD`` or writes a generated one to
``DIR/admin-password.txt`` (mode 0600), which :func:`admin_password` reads.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from balancedesk.core.command import EXIT_WITH_PARENT_ENV, balancedesk_argv
from PySide6.QtCore import QObject, QProcess, Signal

ADMIN_PASSWORD_ENV = "BALANCEDESK_ADMIN_PASSWORD"
ADMIN_PASSWORD_FILE = "admin-password.txt"
_SERVING = re.compile(r"balancedesk: serving (https?://\S+)")


def admin_password(folder: Path) -> str | None:
    env = os.environ.get(ADMIN_PASSWORD_ENV)
    if env:
        return env
    try:
        return (folder / ADMIN_PASSWORD_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class LocalServerError(Exception):
    """The embedded server did not start; ``str()`` says why, with its last output."""


class LocalServer(QObject):
    """One ``balancedesk serve`` child process.

    Signals:
        exited(int): the child ended (exit code), whether asked to or not.
    """

    exited = Signal(int)

    def __init__(self, folder: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder = folder
        self.url: str | None = None
        self.output: list[str] = []
        self._buffer = b""
        self._ready: asyncio.Future[str] | None = None
        self._pending: asyncio.Future[str] | None = None  # launched, not yet awaited by start()
        self._password_file_existed = True
        self.password_shown = False  # the generated admin password was shown to the user (first start)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self.on_process_ready_read_standard_output)
        self.process.finished.connect(self.on_process_finished)
        self.process.errorOccurred.connect(self.on_process_error_occurred)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def launch(self) -> None:
        """Start the child now without waiting for it (the app does this before building its window);
        :meth:`start` then awaits its URL. Does nothing when a launch is pending or the server runs."""
        if self._pending is not None or (self.url is not None and self.running):
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._password_file_existed = (self.folder / ADMIN_PASSWORD_FILE).exists()
        argv = balancedesk_argv("serve", "--host", "127.0.0.1", "--port", "0", "--data", str(self.folder), "--demo")
        self._ready = self._pending = asyncio.get_event_loop().create_future()
        # retrieved here so that a child dying before anyone awaits it is not "never retrieved"
        self._ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        env = self.process.processEnvironment()
        if env.isEmpty():
            from PySide6.QtCore import QProcessEnvironment

            env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert(EXIT_WITH_PARENT_ENV, "1")  # a GUI that dies takes its server with it
        from balancedesk.core.mgmt.serve_config import CONFIG_ENV, DATABASE_ENV

        for name in (CONFIG_ENV, DATABASE_ENV):  # "This computer" keeps its own store, whatever serve is set to here
            env.remove(name)
        self.process.setProcessEnvironment(env)
        self.process.start(argv[0], argv[1:])

    async def start(self, deadline_s: float = 30.0) -> str:
        """Start the server (if not already, or not yet :meth:`launch`-ed) and return its URL."""
        if self.url is not None and self.running:
            return self.url
        self.launch()
        ready, self._pending = self._ready, None
        assert ready is not None
        try:
            async with asyncio.timeout(deadline_s):
                self.url = await ready
        except TimeoutError:
            self.stop()
            raise LocalServerError(
                f"The local management server did not start within {deadline_s:.0f} s."
                + self._tail()
            ) from None
        return self.url

    def generated_password(self) -> str | None:
        """The admin password this launch generated (the server wrote its file just now), else None."""
        path = self.folder / ADMIN_PASSWORD_FILE
        if self._password_file_existed or not path.exists():
            return None
        return admin_password(self.folder)

    def _tail(self) -> str:
        return ("\nIts last output:\n" + "\n".join(self.output[-8:])) if self.output else ""

    def on_process_ready_read_standard_output(self) -> None:
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            del self.output[:-200]
            m = _SERVING.search(line)
            if m and self._ready is not None and not self._ready.done():
                self._ready.set_result(m.group(1))

    def on_process_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self.url = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                LocalServerError(f"The local management server stopped (exit code {code})." + self._tail())
            )
        self.exited.emit(code)

    def on_process_error_occurred(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                LocalServerError(f"Could not start the local management server: {self.process.errorString()}")
            )

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 3 s). Blocks at most that long; used at exit."""
        if not self.running:
            return
        self.process.terminate()
        if not self.process.waitForFinished(3000):
            self.process.kill()
            self.process.waitForFinished(3000)
