"""New, save (review, 412 conflict), delete and reload of the group in the editor, mixed into the main window.

:class:`EditingMixin` sends the editor's :class:`~balancedesk.gui.document.GroupDocument` to the server and
keeps the catalog and the browser in step. Imports: Qt and light GUI modules at import time; the document
and the client's errors when first used (they are not on the startup path).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar, cast

from balancedesk.gui.catalog import Catalog
from balancedesk.gui.connection import explain
from balancedesk.gui.prompts import Candidate, Conflict
from PySide6.QtCore import QModelIndex, QObject, SignalInstance
from PySide6.QtWidgets import QTreeView

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient, Whoami
    from balancedesk.gui.browser_model import BrowserModel
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.editor import GroupEditor
    from balancedesk.gui.profiles import Profile
    from balancedesk.gui.prompts import Prompter

T = TypeVar("T")


class EditingMixin:
    """The group editor's server side (the main window provides the widgets and signals below)."""

    group_opened: SignalInstance
    saved: SignalInstance
    deleted: SignalInstance
    prompter: Prompter
    browser_model: BrowserModel
    browser: QTreeView
    whoami: Whoami | None
    profile: Profile | None
    catalog: Catalog
    doc: GroupDocument | None
    editor: GroupEditor | None

    if TYPE_CHECKING:  # the main window's own

        def spawn(self, coro: Awaitable[T], what: str) -> asyncio.Task[T]: ...
        async def confirm_leave(self) -> bool: ...
        def set_document(self, doc: GroupDocument | None) -> None: ...
        def select_in_browser(self, connector_id: str) -> None: ...
        def is_dirty(self) -> bool: ...
        def show_message(self, text: str, *, error: bool = False) -> None: ...
        def _update_actions(self) -> None: ...
        def _update_title(self) -> None: ...
        async def refresh_catalog(self) -> Catalog: ...
        def _client(self) -> MgmtClient: ...
        def _server_url(self) -> str: ...

    def on_new_action_triggered(self) -> None:
        self.spawn(self.new_group(), "")

    async def new_group(self) -> None:
        if not await self.confirm_leave():
            return
        from balancedesk.gui.document import GroupDocument

        owner = self.whoami.user if self.whoami is not None else "admin"
        self.set_document(GroupDocument(base=None, etag=None, catalog=self.catalog, owner=owner,
                                        server=self._server_url(),
                                        parent=cast(QObject, self)))
        self.browser.selectionModel().blockSignals(True)
        self.browser.clearSelection()
        self.browser.setCurrentIndex(QModelIndex())
        self.browser.selectionModel().blockSignals(False)
        if self.editor is not None:
            self.editor.label_edit.setFocus()

    def on_editor_add_member_requested(self) -> None:
        self.spawn(self.pick_member(), "")

    def candidates(self) -> list[Candidate]:
        doc = self.doc
        assert doc is not None
        out = []
        for c in self.catalog.plain:
            assert c.connector_id is not None
            detail = f"{c.owner} · {c.endpoint or 'no endpoint'}"
            out.append(Candidate(c.connector_id, c.label, detail, doc.members_model.refusal(c.connector_id)))
        out.sort(key=lambda c: (c.refusal is not None, c.label.casefold()))
        return out

    async def pick_member(self) -> None:
        if self.doc is None:
            return
        chosen = await self.prompter.pick_connector(self.candidates())
        if chosen is not None and self.doc is not None:
            self.doc.members_model.add_member(chosen)

    def on_reload_action_triggered(self) -> None:
        self.spawn(self.reload(), "Reloading…")

    async def reload(self) -> None:
        await self.refresh_catalog()
        if self.doc is not None and self.doc.group_id and not self.is_dirty():
            await self.open_group_fresh(self.doc.group_id)

    async def open_group_fresh(self, connector_id: str) -> None:
        from balancedesk.gui.document import GroupDocument

        connector, etag = await self._client().get_connector(connector_id)
        self.set_document(GroupDocument(base=connector, etag=etag, catalog=self.catalog,
                                        server=self._server_url(),
                                        owner=connector.owner, parent=cast(QObject, self)))

    # saving -----------------------------------------------------------------------------------------
    def on_save_action_triggered(self) -> None:
        self.spawn(self.save(), "Saving…")

    async def save(self, *, overwrite: bool = False) -> bool:
        """Validate, review, send; True when the server holds the editor's group."""
        doc, editor = self.doc, self.editor
        if doc is None or editor is None:
            return False
        problems = editor.show_problems()
        if problems:
            n = len(problems)
            self.show_message(f"Not saved: fix the {n} problem{'s' if n > 1 else ''} shown in the editor.",
                              error=True)
            return False
        from balancedesk.core.client import ApiError

        if self.profile is None or doc.server != self.profile.url:
            self.show_message(f"Not saved: this group belongs to {doc.server}, and this window is connected to "
                              f"{self.profile.url if self.profile else 'no server'}. Reconnect to that server "
                              "to save it.", error=True)
            return False
        label = doc.fields["label"]
        if not overwrite and not await self.prompter.review(label, doc.changes()):
            return False
        connector = doc.to_connector()
        client = self._client()
        index_at_send = doc.undo_stack.index()
        try:
            if doc.group_id is None:
                saved, etag = await client.create_group(connector)
            else:
                saved, etag = await client.put_connector(connector, if_match=doc.etag)
        except ApiError as exc:
            if exc.status == 412:
                return await self._conflict(doc, label)
            editor.set_server_problems(exc.problems, explain(exc))
            raise
        if doc is not self.doc or doc is None:
            return True
        assert saved.connector_id is not None
        self.catalog = self.catalog.with_connector(saved)
        if doc.undo_stack.index() == index_at_send:
            doc.saved(saved, etag, self.catalog)
        else:  # edited while saving: the new base is the server's; the extra edits stay unsaved
            doc.base, doc.etag, doc.catalog = saved, etag, self.catalog
            doc.undo_stack.resetClean()
        self.browser_model.set_catalog(self.catalog)
        self.browser.expandAll()
        self.select_in_browser(saved.connector_id)
        self.show_message(f"Saved “{saved.label}”.")
        self._update_actions()
        self._update_title()
        self.group_opened.emit(saved.connector_id)
        self.saved.emit(saved.connector_id)
        return True

    async def _conflict(self, doc: GroupDocument, label: str) -> bool:
        choice = await self.prompter.conflict(label)
        if choice is Conflict.RELOAD and doc.group_id:
            await self.refresh_catalog()
            await self.open_group_fresh(doc.group_id)
            self.show_message(f"Reloaded “{label}” from the server; your edits were dropped.")
            return False
        if choice is Conflict.OVERWRITE and doc.group_id:
            _, etag = await self._client().get_connector(doc.group_id)
            doc.etag = etag
            return await self.save(overwrite=True)
        self.show_message("Not saved: the group changed on the server. Reload or overwrite when ready.", error=True)
        return False

    def on_delete_action_triggered(self) -> None:
        self.spawn(self.delete_group(), "Deleting…")

    async def delete_group(self) -> bool:
        doc = self.doc
        if doc is None or doc.group_id is None or doc.base is None:
            return False
        if not await self.prompter.confirm_delete(doc.base.label):
            return False
        from balancedesk.core.client import ApiError

        gid, label = doc.group_id, doc.base.label
        try:
            await self._client().delete_connector(gid, if_match=doc.etag)
        except ApiError as exc:
            if exc.status == 412:
                self.show_message(f"“{label}” changed on the server since you opened it; reload before deleting.",
                                  error=True)
                return False
            raise
        self.set_document(None)
        await self.refresh_catalog()
        self.show_message(f"Deleted “{label}”.")
        self.deleted.emit(gid)
        return True
