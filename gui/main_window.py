"""The main window: profile picker, the connector browser, the group editor, and every network call.

All network work is a coroutine on the qasync loop started through :meth:`MainWindow.spawn`, which shows
the busy state and turns failures into sentences in the status bar — the window never waits. Connecting
and listing live in :mod:`balancedesk.gui.connection`, new/save/delete in :mod:`balancedesk.gui.editing`
(both mixed in).

Startup path: importing this module must stay light — Qt and the browser only. The client stack (httpx,
pydantic) comes from a preload thread (:mod:`balancedesk.gui.preload`); the group
editor (:mod:`~balancedesk.gui.document`, :mod:`~balancedesk.gui.editor`) and the live view are imported
when first opened. ``tests/gui/test_startup.py`` checks this.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import importlib.util
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import shiboken6
from balancedesk.gui.browser_model import BrowserFilter, BrowserModel
from balancedesk.gui.catalog import Catalog
from balancedesk.gui.connection import BENCH_ENV, ConnectionMixin, explain, is_expected
from balancedesk.gui.editing import EditingMixin
from balancedesk.gui.local_server import LocalServer
from balancedesk.gui.manage import install_menu as install_manage_menu
from balancedesk.gui.profiles import Profile, ProfileStore, data_dir
from balancedesk.gui.prompts import Prompter, Unsaved
from balancedesk.gui.settings import app_settings
from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence, QUndoGroup
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient, Whoami
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.editor import GroupEditor
    from balancedesk.gui.fleet.window import BalancersWindow

T = TypeVar("T")


class MainWindow(ConnectionMixin, EditingMixin, QMainWindow):
    """Balance Desk's one window.

    Signals:
        connected(str): a profile is connected; the argument is the server URL.
        catalog_loaded(int): the browser shows a fresh listing; the argument is the number of groups.
        group_opened(str): a group is in the editor (its connectorID, "" for a new group).
        saved(str): a group was saved (its connectorID).
        deleted(str): a group was deleted (its connectorID).
        failed(str): something failed; the argument is the sentence shown to the user.
        closed(): the window accepted a close (File › Quit or the window's close button): the app quits.
    """

    connected = Signal(str)
    catalog_loaded = Signal(int)
    group_opened = Signal(str)
    saved = Signal(str)
    deleted = Signal(str)
    failed = Signal(str)
    closed = Signal()

    def __init__(self, *, profiles: ProfileStore | None = None, local_data: Path | None = None) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        self.prompter = Prompter(self)
        self.profile_store = profiles or ProfileStore()
        self.local_data = local_data or data_dir()
        self.local_server: LocalServer | None = None
        self.client: MgmtClient | None = None
        self.whoami: Whoami | None = None
        self.profile: Profile | None = None
        self.catalog = Catalog()
        self.doc: GroupDocument | None = None
        self.editor: GroupEditor | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._busy = 0
        self._close_ok = False
        self._live_import_failed = False
        self.balancers_window: BalancersWindow | None = None
        self.undo_group = QUndoGroup(self)
        self._build()
        self._update_actions()
        self._update_title()

    # construction -----------------------------------------------------------------------------------
    def _build(self) -> None:
        icon_path = Path(str(importlib.resources.files("balancedesk.resources") / "balancedesk.svg"))
        if icon_path.exists():
            self.setWindowIcon(QIcon(str(icon_path)))
        tb = QToolBar("Main", self)
        tb.setObjectName("mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(tb)
        self.profile_combo = QComboBox()
        self.profile_combo.setAccessibleName("Connection profile")
        self.profile_combo.setMinimumContentsLength(14)
        self._fill_profiles(self.profile_store.load())
        tb.addWidget(QLabel(" Server: "))
        tb.addWidget(self.profile_combo)

        def action(text: str, slot: Callable[[], object],
                   shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
                   tip: str = "") -> QAction:
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.setToolTip(tip or text.replace("&", "").rstrip("…"))
            a.triggered.connect(slot)
            return a

        self.connect_action = action("&Connect", self.on_connect_action_triggered, None, "Connect to the chosen server")
        self.reload_action = action("&Reload", self.on_reload_action_triggered, QKeySequence.StandardKey.Refresh)
        self.new_action = action("&New group", self.on_new_action_triggered, QKeySequence.StandardKey.New)
        self.save_action = action("&Save", self.on_save_action_triggered, QKeySequence.StandardKey.Save)
        self.delete_action = action("&Delete group…", self.on_delete_action_triggered, "Ctrl+Shift+Delete")
        self.undo_action = self.undo_group.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_group.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        self.run_local_action = action("Run &locally…", self.on_run_local_action_triggered, None,
                                       "Run this group in a local balancer and watch it live")
        self.attach_action = action("A&ttach…", self.on_attach_action_triggered, None,
                                    "Watch a running balancer for this group")
        self.balancers_action = action("&Balancers…", self.on_balancers_action_triggered, "Ctrl+B",
                                       "Every balancer of this server: alive/lost, applied vs saved versions, "
                                       "overrides, tokens")
        self.quit_action = action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        for a in (self.connect_action, self.reload_action):
            tb.addAction(a)
        tb.addSeparator()
        for a in (self.new_action, self.save_action, self.undo_action, self.redo_action, self.delete_action):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.run_local_action)
        tb.addAction(self.attach_action)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.connect_action, self.reload_action, self.new_action, self.save_action, self.delete_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = menu.addMenu("&Edit")
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        group_menu = menu.addMenu("&Group")
        group_menu.addAction(self.run_local_action)
        group_menu.addAction(self.attach_action)
        fleet_menu = menu.addMenu("F&leet")
        fleet_menu.addAction(self.balancers_action)
        self.manage_actions = install_manage_menu(self, menu)  # issue 13: connectors, users and roles

        # browser
        self.browser_model = BrowserModel(self)
        self.browser_filter = BrowserFilter(self)
        self.browser_filter.setSourceModel(self.browser_model)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by label, owner, endpoint, group or ID  (Ctrl+F)")
        self.filter_edit.setAccessibleName("Filter connectors")
        self.filter_edit.setClearButtonEnabled(True)
        find = QAction(self)
        find.setShortcut(QKeySequence.StandardKey.Find)
        find.triggered.connect(self.filter_edit.setFocus)
        self.addAction(find)
        self.browser = QTreeView()
        self.browser.setModel(self.browser_filter)
        self.browser.setAccessibleName("Groups and connectors")
        self.browser.setDragEnabled(True)
        self.browser.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.browser.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.browser.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.browser.setAlternatingRowColors(True)
        self.browser.setUniformRowHeights(True)
        self.browser.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.browser.header().resizeSection(BrowserModel.COL_LABEL, 190)
        self.browser.header().resizeSection(BrowserModel.COL_OWNER, 70)
        self.browser.header().resizeSection(BrowserModel.COL_ENDPOINT, 115)
        self.browser.setColumnHidden(BrowserModel.COL_ID, True)
        self.filter_edit.textChanged.connect(self.on_filter_edit_text_changed)
        self.browser.selectionModel().currentChanged.connect(self.on_browser_current_changed)
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(6, 6, 0, 6)
        llay.addWidget(self.filter_edit)
        llay.addWidget(self.browser)

        self.stack = QStackedWidget()
        self.placeholder = QLabel("Choose a group on the left, or create one with New group (Ctrl+N).")
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack.addWidget(self.placeholder)
        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([520, 760])
        self.setCentralWidget(self.splitter)

        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.setAccessibleName("Working")
        self.busy_bar.hide()
        self.status_label = QLabel()
        self.status_label.setAccessibleName("Status")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.busy_bar)
        self.profile_combo.activated.connect(self.on_profile_combo_activated)
        self.resize(1280, 800)

    # async plumbing ---------------------------------------------------------------------------------
    def spawn(self, coro: Awaitable[T], what: str) -> asyncio.Task[T]:
        """Run ``coro`` on the loop with the busy state shown; failures become a status sentence."""

        async def wrapped() -> T:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.show_error(exc)
                raise
            finally:
                self._set_busy(-1, "")

        self._set_busy(+1, what)
        task = asyncio.ensure_future(wrapped())
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: already shown

    def _set_busy(self, delta: int, what: str) -> None:
        self._busy = max(0, self._busy + delta)
        self.busy_bar.setVisible(self._busy > 0)
        if what:
            self.status_label.setText(what)
        elif self._busy == 0 and self.status_label.text().endswith("…"):
            self.status_label.setText("Ready.")
        self._update_actions()

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def show_error(self, exc: BaseException) -> None:
        text = explain(exc)
        if not is_expected(exc):
            traceback.print_exception(exc, file=sys.stderr)
        self.show_message(text, error=True)
        self.failed.emit(text)

    def show_message(self, text: str, *, error: bool = False) -> None:
        self.status_label.setText(("⚠ " if error else "") + text)

    # browsing and opening ----------------------------------------------------------------------------
    def on_filter_edit_text_changed(self, text: str) -> None:
        self.browser_filter.setFilterFixedString(text)
        if text:
            self.browser.expandAll()

    def on_browser_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        src = self.browser_filter.mapToSource(current)
        cid = self.browser_model.connector_id(src)
        if cid is None or src.parent().isValid():
            return
        c = self.catalog.connectors.get(cid)
        if c is None or not c.is_group or (self.doc is not None and self.doc.group_id == cid):
            return
        self.spawn(self.open_group(cid), f"Opening {c.label}…")

    def select_in_browser(self, connector_id: str) -> None:
        row = self.browser_model.group_row(connector_id)
        if row < 0:
            return
        idx = self.browser_filter.mapFromSource(self.browser_model.index(row, 0))
        self.browser.selectionModel().blockSignals(True)
        self.browser.setCurrentIndex(idx)
        self.browser.selectionModel().blockSignals(False)
        self.browser.viewport().update()

    async def confirm_leave(self) -> bool:
        """True when the editor may be replaced (nothing unsaved, saved now, or discarded)."""
        doc = self.doc
        if doc is None or not self.is_dirty():
            return True
        answer = await self.prompter.unsaved(doc.fields["label"] or "The new group")
        if answer is Unsaved.CANCEL:
            return False
        if answer is Unsaved.SAVE:
            return await self.save()
        return True

    async def open_group(self, connector_id: str) -> None:
        if not await self.confirm_leave():
            if self.doc is not None and self.doc.group_id:
                self.select_in_browser(self.doc.group_id)
            return
        from balancedesk.gui.document import GroupDocument

        connector, etag = await self._client().get_connector(connector_id)
        self.set_document(GroupDocument(base=connector, etag=etag, catalog=self.catalog,
                                        server=self._server_url(),
                                        owner=connector.owner, parent=self))

    def set_document(self, doc: GroupDocument | None) -> None:
        old_doc, old_editor = self.doc, self.editor
        self.doc, self.editor = doc, None
        if doc is not None:
            from balancedesk.gui.editor import GroupEditor  # the editor's widgets load with the first group

            is_admin = self.whoami is not None and self.whoami.is_admin
            self.editor = GroupEditor(doc, can_change_owner=is_admin)
            self.editor.add_member_requested.connect(self.on_editor_add_member_requested)
            self.stack.addWidget(self.editor)
            self.stack.setCurrentWidget(self.editor)
            self.undo_group.addStack(doc.undo_stack)
            self.undo_group.setActiveStack(doc.undo_stack)
            doc.undo_stack.cleanChanged.connect(self.on_undo_stack_clean_changed)
            doc.field_changed.connect(self.on_doc_field_changed)
            self.editor.show_problems(display=doc.group_id is not None)  # a new form opens without errors
            if doc.group_id:
                self.select_in_browser(doc.group_id)
            self.group_opened.emit(doc.group_id or "")
        else:
            self.stack.setCurrentWidget(self.placeholder)
        if old_editor is not None:
            self.stack.removeWidget(old_editor)
            old_editor.deleteLater()
        if old_doc is not None:
            self.undo_group.removeStack(old_doc.undo_stack)
            old_doc.deleteLater()
        self._update_actions()
        self._update_title()

    def on_doc_field_changed(self, name: str) -> None:
        if name == "label":
            self._update_title()

    def on_undo_stack_clean_changed(self, clean: bool) -> None:
        self._update_actions()
        self._update_title()

    def is_dirty(self) -> bool:
        return self.doc is not None and (self.doc.base is None or not self.doc.undo_stack.isClean())

    def _update_title(self) -> None:
        where = self.profile.name if self.profile is not None else "not connected"
        if self.doc is None:
            self.setWindowTitle(f"Balance Desk — {where}")
        else:
            label = self.doc.fields["label"] or "New group"
            self.setWindowTitle(f"{label}[*] — Balance Desk — {where}")
        self.setWindowModified(self.is_dirty())

    def _update_actions(self) -> None:
        connected = self.client is not None
        has_doc = self.doc is not None
        saved_group = has_doc and self.doc is not None and self.doc.group_id is not None
        self.reload_action.setEnabled(connected)
        self.new_action.setEnabled(connected)
        self.save_action.setEnabled(connected and self.is_dirty() and not self.busy)
        self.delete_action.setEnabled(connected and saved_group and not self.busy)
        live = connected and saved_group and not self._live_import_failed and self._live_available()
        self.balancers_action.setEnabled(connected)
        self.run_local_action.setEnabled(live)
        self.attach_action.setEnabled(live)

    @staticmethod
    @functools.cache
    def _live_available() -> bool:  # asked on every busy change: look on disk once
        try:
            return importlib.util.find_spec("balancedesk.gui.live") is not None
        except (ImportError, ValueError):
            return False

    # live view (issue 5) ----------------------------------------------------------------------------------
    def on_run_local_action_triggered(self) -> None:
        self._open_live()

    def on_attach_action_triggered(self) -> None:
        self._open_live()

    def _open_live(self) -> None:
        doc = self.doc
        if doc is None or doc.base is None or self.client is None:
            return
        try:
            from balancedesk.gui.live import open_live_view
        except ImportError as exc:
            self._live_import_failed = True
            self._update_actions()
            self.show_message(f"The live view is not available in this installation ({exc}).", error=True)
            return
        group = doc.base
        members = group.connector_group.members if group.connector_group is not None else ()
        endpoints = {m.member_id: self.catalog.endpoint(m.member_id) for m in members
                     if self.catalog.endpoint(m.member_id)}
        is_admin = self.whoami is not None and self.whoami.is_admin  # the pool routes are Administrators' (and tokens')
        pool = group.listener.pool if group.listener is not None and is_admin else None
        open_live_view(parent=self, group=group, endpoints=endpoints, mgmt=self.client, pool=pool)

    # the fleet (issue 11) -------------------------------------------------------------------------
    def on_balancers_action_triggered(self) -> None:
        self.open_balancers()

    def open_balancers(self) -> QWidget | None:
        """Show the Balancers window of the connected server (one per server; raised if open)."""
        if self.client is None:
            return None
        from balancedesk.gui.fleet.window import BalancersWindow

        win = self.balancers_window
        if win is None or not shiboken6.isValid(win) or win.client is not self.client:
            if win is not None and shiboken6.isValid(win):
                win.shutdown()
                win.close()
            who = self.whoami
            win = BalancersWindow(client=self.client, is_admin=who is not None and who.is_admin,
                                  user=who.user if who is not None else "?", parent=self)
            win.setWindowFlag(Qt.WindowType.Window, True)
            win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
            self.balancers_window = win
        win.show()
        win.raise_()
        return win

    # closing ----------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self._close_ok or not self.is_dirty():
            self._save_geometry()
            event.accept()
            self.closed.emit()
            return
        event.ignore()

        async def ask() -> None:
            if await self.confirm_leave():
                self._close_ok = True
                self.close()

        self.spawn(ask(), "")

    def _save_geometry(self) -> None:
        if os.environ.get(BENCH_ENV):
            return
        settings = app_settings()
        settings.setValue("main/geometry", self.saveGeometry())
        settings.setValue("main/splitter", self.splitter.saveState())

    def restore_geometry(self) -> None:
        settings = app_settings()
        geo = settings.value("main/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        state = settings.value("main/splitter")
        if state is not None:
            self.splitter.restoreState(state)

    async def shutdown(self) -> None:
        """Close the live windows (each stops the children it started), close the client, cancel work,
        stop the embedded server (SIGTERM, waited for). Awaited on the running loop before the app ends."""
        if "balancedesk.gui.live.window" in sys.modules:  # a live view was opened: close every one
            from balancedesk.gui.live.window import close_all_live_windows

            await close_all_live_windows()
        fleet = self.balancers_window
        if fleet is not None and shiboken6.isValid(fleet):
            await fleet.aclose()
        if "balancedesk.gui.fleet.poller" in sys.modules:  # also the polls of a Balancers window already gone
            from balancedesk.gui.fleet.poller import stop_all

            await stop_all()
        for task in list(self.tasks):
            task.cancel()
        await self.disconnect_client()
        server, self.local_server = self.local_server, None
        if server is not None and shiboken6.isValid(server):
            server.stop()
