"""What the Manage views share (:class:`ManageView`): the calls a view starts, its status line, and how a
refusal is shown. The Connectors and the Users view are both one.

Rules:

* every call a view starts goes through :meth:`ManageView.spawn`: :meth:`~ManageView.shutdown` cancels what
  is still running (the window closed) and :meth:`~ManageView.aclose` also waits until it has ended;
* what was done is said in the status line (``message``, :meth:`~ManageView.say`);
* a refusal — the server's, or the view's own ("a member of a group is not deleted") — is shown above the form
  as "Refused — …" (``refusal``, ``QLabel#refusal``), clears the status line and is emitted as ``failed``;
* a refusal of the API whose ``problems`` all name fields of the form is shown under those fields instead
  (:class:`~balancedesk.gui.manage.fields.FieldErrors`), and still clears the status line and emits ``failed``
  (:meth:`~ManageView.show_failure`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QWidget

if TYPE_CHECKING:
    from balancedesk.gui.manage.fields import FieldErrors


class ManageView(QWidget):
    """A view of the Manage window: its running calls, its status line and its refusal line (each view places
    ``message`` and ``refusal`` in its own layout).

    Signals:
        failed(str): something was refused or failed; the sentence shown.
    """

    failed = Signal(str)

    def __init__(self, *, message_name: str, refusal_name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName(message_name)
        self.refusal = QLabel()
        self.refusal.setObjectName("refusal")
        self.refusal.setWordWrap(True)
        if refusal_name:
            self.refusal.setAccessibleName(refusal_name)
        self.refusal.hide()

    # the calls it starts -------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this view keeps until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def shutdown(self) -> None:
        """Cancel what is still running. Safe to call twice."""
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        """:meth:`shutdown`, and wait until the cancelled calls have ended."""
        pending = list(self._tasks)
        self.shutdown()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # messages ------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.message.setText(text)

    def refuse(self, text: str) -> None:
        """Show ``text`` above the form as a refusal; the status line is cleared, ``failed`` emitted."""
        self.refusal.setText(f"Refused — {text}")
        self.refusal.show()
        self.message.clear()
        self.failed.emit(text)

    def clear_refusal(self) -> None:
        self.refusal.clear()
        self.refusal.hide()

    def show_failure(self, exc: BaseException, errors: FieldErrors) -> None:
        """A refused or failed call: the API's problems under their fields in ``errors``; anything else (no
        problems, a problem of a field not in ``errors``, a failure that is not the API's answer) above the
        form (:meth:`refuse`). Either way the status line is cleared and ``failed`` emitted."""
        from balancedesk.core.client import ApiError
        from balancedesk.gui.connection import explain

        rest = errors.show(exc.problems) if isinstance(exc, ApiError) else []
        if not isinstance(exc, ApiError) or rest or not exc.problems:
            self.refuse(explain(exc))
        else:
            self.message.clear()
            self.failed.emit(explain(exc))
