"""Opening a saved group's live view (issue 5) from the main window: "Run locally…" and "Attach…".

:class:`LiveOpener` knows whether this installation has the live view (looked up on disk once, never
imported on the startup path), opens one for the group open in the editor — its *saved* form, with its
members' endpoints from the catalog and, for an Administrator, the pool its balancers follow — and closes
every live window at shutdown (each stops the children it started). It owns no document: it reads the
editing controller's and the connection's state when asked.
"""

from __future__ import annotations

import functools
import importlib.util
import sys

from balancedesk.gui.connection import ConnectionController
from balancedesk.gui.editing import EditingController
from balancedesk.gui.host import WindowHost
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget


class LiveOpener(QObject):
    """Opens live views of the editor's saved group.

    Signals:
        availability_changed(): :meth:`available` changed (the live view failed to import).
    """

    availability_changed = Signal()

    def __init__(self, host: WindowHost, connection: ConnectionController, editing: EditingController,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._host = host
        self._conn = connection
        self._editing = editing
        self._import_failed = False

    def available(self) -> bool:
        """Whether a live view can be opened at all (installed, and not known to fail)."""
        return not self._import_failed and _live_installed()

    def can_open(self) -> bool:
        """Whether the open group can be watched now: connected, a saved group, the live view installed."""
        doc = self._editing.doc
        return self._conn.client is not None and doc is not None and doc.group_id is not None and self.available()

    def open(self) -> QWidget | None:
        """Open a live view of the saved group in the editor (None when there is none to open)."""
        doc, client = self._editing.doc, self._conn.client
        if doc is None or doc.base is None or client is None:
            return None
        try:
            from balancedesk.gui.live import open_live_view
        except ImportError as exc:
            self._import_failed = True
            self.availability_changed.emit()
            self._host.show_message(f"The live view is not available in this installation ({exc}).", error=True)
            return None
        group, catalog = doc.base, self._conn.catalog
        members = group.connector_group.members if group.connector_group is not None else ()
        endpoints = {m.member_id: catalog.endpoint(m.member_id) for m in members if catalog.endpoint(m.member_id)}
        # the pool routes are Administrators' (and tokens')
        pool = group.listener.pool if group.listener is not None and self._conn.is_admin else None
        labels = {m.member_id: catalog.label(m.member_id) for m in members}
        return open_live_view(parent=self._host.widget(), group=group, endpoints=endpoints, mgmt=client, pool=pool,
                              labels=labels)

    async def shutdown(self) -> None:
        """Close every live window (each stops the children it started) and wait for their closing calls."""
        if "balancedesk.gui.live.window" in sys.modules:  # a live view was opened: close every one
            from balancedesk.gui.live.window import close_all_live_windows

            await close_all_live_windows()


@functools.cache
def _live_installed() -> bool:  # asked on every busy change: look on disk once
    try:
        return importlib.util.find_spec("balancedesk.gui.live") is not None
    except (ImportError, ValueError):
        return False
