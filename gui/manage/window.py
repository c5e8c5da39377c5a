"""The Manage window: the Connectors and the Users views of one management server, as two tabs.

One per main window and server (:meth:`ManageWindow.open_for` raises it; it closes when the main window
connects elsewhere, whose client it used). What it changes is what the main window's browser lists, so a connector
registered, saved or deleted here reloads that listing too. Closing it cancels what it started.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import shiboken6
from balancedesk.gui.manage import CONNECTORS, USERS
from balancedesk.gui.manage.connectors import ConnectorsView
from balancedesk.gui.manage.users import UsersView
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox, QTabWidget, QWidget

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient


class ManageWindow(QMainWindow):
    """Connectors and users of one server. Signals: those of its two views (``connectors``, ``users``)."""

    def __init__(self, *, client: MgmtClient, user: str, is_admin: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ManageWindow")
        self.setWindowTitle(f"Manage — {client.base_url}")
        self.client = client
        self.connectors = ConnectorsView(client=client, user=user, is_admin=is_admin, confirm=self.confirm_delete)
        self.users = UsersView(client=client, user=user, is_admin=is_admin)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.connectors, "Connectors")
        self.tabs.addTab(self.users, "Users and roles")
        self.setCentralWidget(self.tabs)
        self.resize(1180, 720)
        self._started: set[str] = set()
        self.tabs.currentChanged.connect(self.on_tabs_currentChanged)

    @classmethod
    def open_for(cls, main: Any, tab: str = CONNECTORS) -> ManageWindow | None:
        """Show the Manage window of ``main``'s connected server on ``tab``; None (and the main window's
        status sentence) when it is not connected."""
        client, who = getattr(main, "client", None), getattr(main, "whoami", None)
        if client is None or who is None:
            main.show_message("Connect to a server first: connectors and users belong to one.", error=True)
            return None
        win: ManageWindow | None = main.findChild(ManageWindow)
        if win is not None and (not shiboken6.isValid(win) or win.client is not client):
            win.shutdown()
            win.close()
            win.deleteLater()
            win = None
        if win is None:
            win = cls(client=client, user=who.user, is_admin=who.is_admin, parent=main)
            win.setWindowFlag(Qt.WindowType.Window, True)
            win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            if hasattr(main, "refresh_catalog") and hasattr(main, "spawn"):
                for signal in (win.connectors.registered, win.connectors.saved, win.connectors.deleted):
                    signal.connect(lambda _cid, m=main: m.spawn(m.refresh_catalog(), "Reloading the list…"))
            if hasattr(main, "closed"):
                main.closed.connect(win.shutdown)
            if hasattr(main, "connected"):  # connected elsewhere: this window's server (and client) is gone
                main.connected.connect(lambda _url, w=win, m=main: w.close()
                                       if shiboken6.isValid(w) and w.client is not m.client else None)
        win.show_tab(tab)
        win.show()
        win.raise_()
        win.activateWindow()
        return win

    def show_tab(self, tab: str) -> None:
        self.tabs.setCurrentWidget(self.users if tab == USERS else self.connectors)
        self.on_tabs_currentChanged(self.tabs.currentIndex())

    def on_tabs_currentChanged(self, index: int) -> None:
        """Read a view the first time it is shown (Reload reads it again)."""
        view = self.tabs.widget(index)
        name = USERS if view is self.users else CONNECTORS
        if name in self._started:
            return
        self._started.add(name)
        self._spawn_view(view)

    def _spawn_view(self, view: QWidget | None) -> None:
        if view is self.users:
            self.users.spawn(self.users.refresh())
        else:
            self.connectors.spawn(self.connectors.refresh())

    async def confirm_delete(self, label: str, endpoint: str) -> bool:
        from balancedesk.gui.prompts import ask_message_box

        box = QMessageBox(QMessageBox.Icon.Warning, "Delete connector",
                          f"Delete the connector “{label}” ({endpoint})?", parent=self)
        box.setInformativeText("Balancers stop reaching it through this server. This cannot be undone; "
                               "registering it again gives it a new connectorID.")
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        return await ask_message_box(box) == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel what the views started. Safe to call twice."""
        self.connectors.shutdown()
        self.users.shutdown()

    async def aclose(self) -> None:
        """:meth:`shutdown`, and wait until the cancelled calls have ended."""
        await asyncio.gather(self.connectors.aclose(), self.users.aclose())
