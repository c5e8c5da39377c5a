"""The group editor's server side: new, open, save (review, 412 conflict), delete and reload of one group.

:class:`EditingController` owns the open :class:`~balancedesk.gui.document.GroupDocument` (there is at most
one) and sends it to the server of the :class:`~balancedesk.gui.connection.ConnectionController` it was
loaded from. It never touches a widget: the window shows the document it announces (``document_changed``)
and, through :class:`~balancedesk.gui.host.WindowHost`, shows the problems a save finds.

Contract:

* a document belongs to the server it was loaded from (``doc.server``): a save to any other is refused;
* leaving a dirty document (open another, new, switch server, quit) asks first (:meth:`confirm_leave`);
  when the connection leaves its server, the document is closed;
* after a save, the server's answer is the document's base and clean state; edits made while the save was
  on its way stay as unsaved edits on top.

Imports: Qt and light GUI modules at import time; the document and the client's errors when first used
(they are not on the startup path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from balancedesk.gui.catalog import Catalog
from balancedesk.gui.connection import ConnectionController, explain
from balancedesk.gui.prompts import Candidate, Conflict, Unsaved
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from balancedesk.core.model import Connector
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.host import WindowHost


class EditingController(QObject):
    """New/open/save/delete of the group being edited.

    Signals:
        document_changed(object): the open document is another one (a ``GroupDocument``, or None).
        group_opened(str): a group is in the editor (its connectorID, "" for a new group); also after a save.
        saved(str): a group was saved (its connectorID).
        deleted(str): a group was deleted (its connectorID).
    """

    document_changed = Signal(object)
    group_opened = Signal(str)
    saved = Signal(str)
    deleted = Signal(str)

    def __init__(self, host: WindowHost, connection: ConnectionController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._host = host
        self._conn = connection
        self.doc: GroupDocument | None = None
        connection.server_left.connect(self.on_connection_server_left)
        connection.catalog_changed.connect(self.on_connection_catalog_changed)

    # the document --------------------------------------------------------------------------------
    def is_dirty(self) -> bool:
        return self.doc is not None and (self.doc.base is None or not self.doc.undo_stack.isClean())

    def set_document(self, doc: GroupDocument | None) -> None:
        """Make ``doc`` the open document (the previous one is deleted after the views let go of it)."""
        old = self.doc
        self.doc = doc
        self.document_changed.emit(doc)
        if doc is not None:
            self.group_opened.emit(doc.group_id or "")
        if old is not None:
            old.deleteLater()

    def _document(self, connector: Connector | None, etag: str | None, owner: str) -> GroupDocument:
        from balancedesk.gui.document import GroupDocument

        return GroupDocument(base=connector, etag=etag, catalog=self._conn.catalog, owner=owner,
                             server=self._conn.server_url(), parent=self)

    def on_connection_server_left(self) -> None:
        if self.doc is not None:
            self.set_document(None)

    def on_connection_catalog_changed(self, catalog: Catalog) -> None:
        if self.doc is not None and self.doc.catalog is not catalog:
            self.doc.catalog = catalog
            self.doc.members_model.refresh()

    async def confirm_leave(self) -> bool:
        """True when the document may be replaced (nothing unsaved, saved now, or discarded)."""
        doc = self.doc
        if doc is None or not self.is_dirty():
            return True
        answer = await self._host.prompter.unsaved(doc.fields["label"] or "The new group")
        if answer is Unsaved.CANCEL:
            return False
        if answer is Unsaved.SAVE:
            return await self.save()
        return True

    async def open_group(self, connector_id: str) -> bool:
        """Open a saved group (asking about unsaved edits first); False when the user kept the open one."""
        if not await self.confirm_leave():
            return False
        await self.open_group_fresh(connector_id)
        return True

    async def open_group_fresh(self, connector_id: str) -> None:
        connector, etag = await self._conn.require_client().get_connector(connector_id)
        self.set_document(self._document(connector, etag, connector.owner))

    async def new_group(self) -> bool:
        """Open an empty group owned by the logged-in user; False when the user kept the open one."""
        if not await self.confirm_leave():
            return False
        self.set_document(self._document(None, None, self._conn.user))
        return True

    async def reload(self) -> None:
        await self._conn.refresh_catalog()
        if self.doc is not None and self.doc.group_id and not self.is_dirty():
            await self.open_group_fresh(self.doc.group_id)

    # members ------------------------------------------------------------------------------------------
    def candidates(self) -> list[Candidate]:
        doc = self.doc
        assert doc is not None
        out = []
        for c in self._conn.catalog.plain:
            assert c.connector_id is not None
            detail = f"{c.owner} · {c.endpoint or 'no endpoint'}"
            out.append(Candidate(c.connector_id, c.label, detail, doc.members_model.refusal(c.connector_id)))
        out.sort(key=lambda c: (c.refusal is not None, c.label.casefold()))
        return out

    async def pick_member(self) -> None:
        if self.doc is None:
            return
        chosen = await self._host.prompter.pick_connector(self.candidates())
        if chosen is not None and self.doc is not None:
            self.doc.members_model.add_member(chosen)

    # saving -----------------------------------------------------------------------------------------
    async def save(self, *, overwrite: bool = False) -> bool:
        """Validate, review, send; True when the server holds the editor's group."""
        doc = self.doc
        if doc is None:
            return False
        host = self._host
        problems = host.show_problems()
        if problems:
            n = len(problems)
            host.show_message(f"Not saved: fix the {n} problem{'s' if n > 1 else ''} shown in the editor.",
                              error=True)
            return False
        from balancedesk.core.client import ApiError

        profile = self._conn.profile
        if profile is None or doc.server != profile.url:
            host.show_message(f"Not saved: this group belongs to {doc.server}, and this window is connected to "
                              f"{profile.url if profile else 'no server'}. Reconnect to that server "
                              "to save it.", error=True)
            return False
        label = doc.fields["label"]
        if not overwrite and not await host.prompter.review(label, doc.changes()):
            return False
        connector = doc.to_connector()
        client = self._conn.require_client()
        index_at_send = doc.undo_stack.index()
        try:
            if doc.group_id is None:
                saved, etag = await client.create_group(connector)
            else:
                saved, etag = await client.put_connector(connector, if_match=doc.etag,
                                                         drop_listener=doc.drops_listener)
        except ApiError as exc:
            if exc.status == 412:
                return await self._conflict(doc, label)
            if doc is self.doc:
                host.show_server_problems(exc.problems, explain(exc))
            raise
        if doc is not self.doc:
            return True
        assert saved.connector_id is not None
        catalog = self._conn.catalog.with_connector(saved)
        if doc.undo_stack.index() == index_at_send:
            doc.saved(saved, etag, catalog)
        else:  # edited while saving: the new base is the server's; the extra edits stay unsaved
            doc.base, doc.etag, doc.catalog = saved, etag, catalog
            doc.undo_stack.resetClean()
        self._conn.set_catalog(catalog)
        host.show_message(f"Saved “{saved.label}”.")
        self.group_opened.emit(saved.connector_id)
        self.saved.emit(saved.connector_id)
        return True

    async def _conflict(self, doc: GroupDocument, label: str) -> bool:
        choice = await self._host.prompter.conflict(label)
        if choice is Conflict.RELOAD and doc.group_id:
            await self._conn.refresh_catalog()
            await self.open_group_fresh(doc.group_id)
            self._host.show_message(f"Reloaded “{label}” from the server; your edits were dropped.")
            return False
        if choice is Conflict.OVERWRITE and doc.group_id:
            _, etag = await self._conn.require_client().get_connector(doc.group_id)
            doc.etag = etag
            return await self.save(overwrite=True)
        self._host.show_message("Not saved: the group changed on the server. Reload or overwrite when ready.",
                                error=True)
        return False

    async def delete_group(self) -> bool:
        doc = self.doc
        if doc is None or doc.group_id is None or doc.base is None:
            return False
        if not await self._host.prompter.confirm_delete(doc.base.label):
            return False
        from balancedesk.core.client import ApiError

        gid, label = doc.group_id, doc.base.label
        try:
            await self._conn.require_client().delete_connector(gid, if_match=doc.etag)
        except ApiError as exc:
            if exc.status == 412:
                self._host.show_message(f"“{label}” changed on the server since you opened it; "
                                        "reload before deleting.", error=True)
                return False
            raise
        self.set_document(None)
        await self._conn.refresh_catalog()
        self._host.show_message(f"Deleted “{label}”.")
        self.deleted.emit(gid)
        return True
