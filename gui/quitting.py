"""Quitting the app the same way on every path: File › Quit, closing the last window, Ctrl+C, SIGTERM.

Each path only *asks* to quit (it sets one :class:`asyncio.Event`); the composition root then awaits the
shutdown on the still-running qasync loop — close the client, stop the embedded server and every child a
live window started — and only then leaves the loop. Nothing stops the loop under a running coroutine,
so there is no "Event loop stopped before Future completed" and no ``aclose`` without a loop.

Signals: Python runs a signal handler only when the interpreter next gets control, which inside Qt's C++
loop may be never. :class:`QuitSignals` therefore points ``signal.set_wakeup_fd`` at a socket pair watched
by a ``QSocketNotifier``: a signal writes a byte, Qt wakes and calls into Python, and the handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier

QUIT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FINISH_TASKS_S = 5.0  # how long the quit waits for cancelled tasks to finish


class QuitSignals(QObject):
    """SIGINT and SIGTERM call ``on_quit`` on the UI thread while it lives; :meth:`close` restores the
    previous handlers. No signals of its own."""

    def __init__(self, on_quit: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_quit = on_quit
        self._r, self._w = socket.socketpair()
        for s in (self._r, self._w):
            s.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)
        self._old: dict[int, Any] = {sig: signal.signal(sig, self._handler) for sig in QUIT_SIGNALS}
        self.signalled: int | None = None  # the last quit signal received
        self._notifier = QSocketNotifier(self._r.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self.on_notifier_activated)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = signum
        self._on_quit()

    def on_notifier_activated(self) -> None:
        # Being here is what lets the Python handler run; the bytes themselves carry nothing we need.
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._r.recv(512):
                pass

    def close(self) -> None:
        self._notifier.setEnabled(False)
        for sig, old in self._old.items():
            signal.signal(sig, old)
        signal.set_wakeup_fd(self._old_fd)
        self._r.close()
        self._w.close()


async def finish_tasks() -> None:
    """Cancel every task still on the loop but the caller, and wait until each has finished — what
    ``asyncio.run`` does before it closes a loop. A task cancelled and left (an httpx call inside an anyio
    cancel scope, say) would otherwise still have callbacks queued when the loop stops, and they run with no
    loop: ``RuntimeError: no running event loop`` from anyio's ``_deliver_cancellation``."""
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    for t in others:
        t.cancel()
    if others:  # bounded: a task that swallows its cancellation must not hold the quit forever
        await asyncio.wait(others, timeout=FINISH_TASKS_S)
    await asyncio.get_running_loop().shutdown_asyncgens()
