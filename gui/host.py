"""What the main window's collaborators may ask of the window: the narrow interface they are given.

The connection controller (:mod:`balancedesk.gui.connection`), the editing controller
(:mod:`balancedesk.gui.editing`) and the live opener (:mod:`balancedesk.gui.live_opener`) own their state
and tell the window what happened through their Qt signals. Only what needs an answer or a widget goes
the other way, through :class:`WindowHost`: the window's :class:`~balancedesk.gui.prompts.Prompter` (read
at each question, so a test may replace it), the status line, and the open editor's problem display.
Imports: the standard library only (the types are for checking).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from balancedesk.core.model import Problem
    from balancedesk.gui.prompts import Prompter
    from PySide6.QtWidgets import QWidget


class WindowHost(Protocol):
    """The window as its collaborators see it."""

    prompter: Prompter

    def show_message(self, text: str, *, error: bool = False) -> None:
        """Say ``text`` in the status line (``error``: as a failure)."""

    def show_problems(self) -> list[Problem]:
        """Show the open editor's problems at their fields; return them (empty: a save may be tried)."""

    def show_server_problems(self, problems: list[Problem], message: str) -> None:
        """Show a refused save's problems at the fields they name (``message`` when none is named)."""

    def widget(self) -> QWidget:
        """The window itself, as the parent of the windows a collaborator opens."""
