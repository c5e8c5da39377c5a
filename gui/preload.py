"""Import the client stack (:mod:`balancedesk.core.client`: httpx, pydantic) on a worker thread at app start.

It is the slowest part of importing the app and the window does not need it to show, so the app calls
:func:`preload_client` first thing, and :func:`client_stack` lets a coroutine await it without blocking the
UI thread. Standard library only: importing this module must not import Qt or the client.

Start it only *after* ``import PySide6``: that import installs PySide6's ``__import__`` hook, which reads
the source of each newly imported module; installed while pydantic is half imported on the worker, the hook
trips pydantic's module ``__getattr__`` into a circular import (``ImportError: cannot import name
'import_string' from partially initialized module 'pydantic._internal._validators'``) — seen about once in
seven starts when the preload began before PySide6.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import threading
from types import ModuleType

CLIENT_MODULE = "balancedesk.core.client"
# httpx imports httpcore (and httpcore anyio's asyncio backend) only when the first client is made, which
# would be on the UI thread; warm them too. Optional ones may be missing.
_WARM = ("httpcore", "anyio._backends._asyncio")

_future: concurrent.futures.Future[ModuleType] | None = None
_thread: threading.Thread | None = None


def preload_client() -> None:
    """Start importing the client stack on a worker thread (once)."""
    global _future, _thread
    if _future is not None:
        return
    fut: concurrent.futures.Future[ModuleType] = concurrent.futures.Future()

    def work() -> None:
        try:
            module = importlib.import_module(CLIENT_MODULE)
            for name in _WARM:
                with contextlib.suppress(ImportError):
                    importlib.import_module(name)
        except BaseException as exc:  # handed to whoever awaits it
            fut.set_exception(exc)
        else:
            fut.set_result(module)

    _future = fut
    _thread = threading.Thread(target=work, name="preload-client", daemon=True)
    _thread.start()


def join_preload() -> None:
    """Wait for the worker (at exit, so that no import is cut off by interpreter shutdown)."""
    if _thread is not None:
        _thread.join()


async def client_stack() -> ModuleType:
    """:mod:`balancedesk.core.client`: awaits the preload when one was started, else imports it here."""
    if _future is not None:
        return await asyncio.wrap_future(_future)
    return importlib.import_module(CLIENT_MODULE)
