"""What the Manage views share (:class:`ManageView`): the calls a view starts, its list, its status line, and
how a refusal is shown. The Connectors and the Users view are both one.

Rules:

* the list is a :func:`~balancedesk.gui.tables.list_table_view` of a
  :class:`~balancedesk.gui.fleet.models.ListTableModel`; one row at a time is chosen (:meth:`~ManageView.chosen`)
  and one column takes the free width, set again after each reset (a reset gives every column the default mode);
* every call a view starts goes through :meth:`ManageView.spawn`: :meth:`~ManageView.shutdown` cancels what
  is still running (the window closed) and :meth:`~ManageView.aclose` also waits until it has ended;
* what was done is said in the status line (``message``, :meth:`~ManageView.say`);
* the form's own checks come first: their problems are shown under their fields, ``failed`` is emitted and
  nothing is sent (:meth:`~ManageView.form_refused`);
* a refusal — the server's, or the view's own ("a member of a group is not deleted") — is shown above the form
  as "Refused — …" (``refusal``, ``QLabel#refusal``), clears the status line and is emitted as ``failed``;
* a refusal of the API whose ``problems`` all name fields of the form is shown under those fields instead
  (:class:`~balancedesk.gui.manage.fields.FieldErrors`), and still clears the status line and emits ``failed``
  (:meth:`~ManageView.show_failure`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from balancedesk.gui.tables import list_table_view
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHeaderView, QLabel, QWidget

if TYPE_CHECKING:
    from balancedesk.core.model import Problem
    from balancedesk.gui.fleet.models import ListTableModel
    from balancedesk.gui.manage.fields import FieldErrors

R = TypeVar("R")


class ManageView(QWidget, Generic[R]):
    """A view of the Manage window listing rows of type ``R``: its running calls, its list (``model`` in
    ``table``, made by :meth:`_list`), its status line and its refusal line (each view places ``table``,
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

    # the list ----------------------------------------------------------------------------------
    def _list(self, model: ListTableModel[R], *, name: str, stretch: int) -> None:
        """Show ``model`` in ``table`` (accessible name ``name``); column ``stretch`` takes the free width."""
        self.model = model
        self._stretch = stretch
        self.table = list_table_view()
        self.table.setModel(model)
        self.table.setAccessibleName(name)
        self.on_model_modelReset()
        model.modelReset.connect(self.on_model_modelReset)

    def on_model_modelReset(self) -> None:
        self.table.horizontalHeader().setSectionResizeMode(self._stretch, QHeaderView.ResizeMode.Stretch)

    def chosen(self) -> R | None:
        """The row chosen in the list, or None."""
        picked = self.table.selectionModel().selectedRows()
        return self.model.row_at(picked[0].row()) if picked else None

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

    def form_refused(self, problems: Sequence[Problem], errors: FieldErrors) -> bool:
        """Show the form's own ``problems`` under their fields in ``errors``; True (and ``failed`` emitted with
        them all) when there is one: then nothing may be sent."""
        errors.show(problems)
        if problems:
            self.failed.emit("; ".join(p.message for p in problems))
        return bool(problems)

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
