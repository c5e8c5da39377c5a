"""The main window: profile picker, the connector browser, the group editor, and the async plumbing.

The window is given its collaborators by the composition root (:func:`balancedesk.gui.app.compose_window`)
and shows what they own: the :class:`~balancedesk.gui.connection.ConnectionController` (profiles, login,
server switching, the listing), the :class:`~balancedesk.gui.editing.EditingController` (the open group:
new, save, delete, reload) and the :class:`~balancedesk.gui.live_opener.LiveOpener`. They tell the window
what changed through their signals; the window answers them through the narrow
:class:`~balancedesk.gui.host.WindowHost` interface (prompts, the status line, the editor's problems).

All network work is a coroutine on the qasync loop started through :meth:`MainWindow.spawn`, which shows
the busy state and turns failures into sentences in the status bar — the window never waits.

Startup path: importing this module must stay light — Qt and the browser only. The client stack (httpx,
pydantic) comes from a preload thread (:mod:`balancedesk.gui.preload`); the group
editor (:mod:`~balancedesk.gui.document`, :mod:`~balancedesk.gui.editor`) and the live view are imported
when first opened. ``tests/gui/test_startup.py`` checks this.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import shiboken6
from balancedesk.gui.browser_model import BrowserFilter, BrowserModel
from balancedesk.gui.connection import BENCH_ENV, explain, is_expected
from balancedesk.gui.manage import install_menu as install_manage_menu
from balancedesk.gui.prompts import Prompter
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
    from balancedesk.core.model import Problem
    from balancedesk.gui.catalog import Catalog
    from balancedesk.gui.connection import ConnectionController
    from balancedesk.gui.document import GroupDocument
    from balancedesk.gui.editing import EditingController
    from balancedesk.gui.editor import GroupEditor
    from balancedesk.gui.fleet.window import BalancersWindow
    from balancedesk.gui.live_opener import LiveOpener
    from balancedesk.gui.local_server import LocalServer
    from balancedesk.gui.profiles import Profile

T = TypeVar("T")


class MainWindow(QMainWindow):
    """Balance Desk's one window. Usable once :meth:`attach` has given it its collaborators.

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

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        self.prompter = Prompter(self)
        self.editor: GroupEditor | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._busy = 0
        self._close_ok = False
        self.balancers_window: BalancersWindow | None = None
        self.undo_group = QUndoGroup(self)
        self._build()

    def attach(self, *, connection: ConnectionController, editing: EditingController, live: LiveOpener) -> None:
        """Take the collaborators (once, from the composition root) and follow their signals."""
        self.connection, self.editing, self.live = connection, editing, live
        self._fill_profiles(connection.profiles())
        connection.connected.connect(self.on_connection_connected)
        connection.catalog_changed.connect(self.on_connection_catalog_changed)
        connection.catalog_loaded.connect(self.on_connection_catalog_loaded)
        connection.profiles_changed.connect(self.on_connection_profiles_changed)
        editing.document_changed.connect(self.on_editing_document_changed)
        editing.group_opened.connect(self.on_editing_group_opened)
        editing.saved.connect(self.saved)
        editing.deleted.connect(self.deleted)
        live.availability_changed.connect(self._update_actions)
        self._update_actions()
        self._update_title()

    # what the collaborators hold, read through the window (tests and other views read these) -----------
    @property
    def client(self) -> MgmtClient | None:
        return self.connection.client

    @property
    def whoami(self) -> Whoami | None:
        return self.connection.whoami

    @property
    def profile(self) -> Profile | None:
        return self.connection.profile

    @property
    def catalog(self) -> Catalog:
        return self.connection.catalog

    @property
    def local_server(self) -> LocalServer | None:
        return self.connection.local_server

    @property
    def doc(self) -> GroupDocument | None:
        return self.editing.doc

    def launch_local_server(self) -> None:
        self.connection.launch_local_server()

    async def connect_profile(self, profile: Profile, *, password: str | None = None, remember: bool = False) -> None:
        await self.connection.connect_profile(profile, password=password, remember=remember)

    async def refresh_catalog(self) -> Catalog:
        """List again (e.g. after the Manage window registered a connector)."""
        return await self.connection.refresh_catalog()

    async def new_group(self) -> bool:
        return await self.editing.new_group()

    async def save(self, *, overwrite: bool = False) -> bool:
        return await self.editing.save(overwrite=overwrite)

    async def delete_group(self) -> bool:
        return await self.editing.delete_group()

    def is_dirty(self) -> bool:
        return self.editing.is_dirty()

    # WindowHost (gui/host.py): what the collaborators ask of the window ------------------------------
    def widget(self) -> QWidget:
        return self

    def show_problems(self) -> list[Problem]:
        return self.editor.show_problems() if self.editor is not None else []

    def show_server_problems(self, problems: list[Problem], message: str) -> None:
        if self.editor is not None:
            self.editor.set_server_problems(problems, message)

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
        self.export_action = action("E&xport…", self.on_export_action_triggered, None,
                                    "This group as an nginx or HAProxy config: preview, save, deploy to HAProxy")
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
        group_menu.addAction(self.export_action)
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

    # connecting ------------------------------------------------------------------------------------
    def _fill_profiles(self, profiles: list[Profile]) -> None:
        self.profile_combo.blockSignals(True)
        self.profile_combo.clear()
        for p in profiles:
            self.profile_combo.addItem(p.name, p)
        self.profile_combo.addItem("New connection…", None)
        self.profile_combo.blockSignals(False)

    def on_profile_combo_activated(self, index: int) -> None:
        self.spawn(self.connect_chosen(), "Connecting…")

    def on_connect_action_triggered(self) -> None:
        self.spawn(self.connect_chosen(), "Connecting…")

    async def connect_chosen(self) -> None:
        """Connect the profile chosen in the Server box, once unsaved edits are saved or discarded."""
        profile = self.profile_combo.currentData()
        if not await self.editing.confirm_leave():
            return
        await self.connection.connect_chosen(profile)

    def on_connection_connected(self, url: str) -> None:
        if self.profile is not None:
            self._show_profile(self.profile)
        self._update_title()
        self.connected.emit(url)

    def on_connection_profiles_changed(self, profiles: list[Profile]) -> None:
        self._fill_profiles(profiles)
        if self.profile is not None:
            self._show_profile(self.profile)

    def _show_profile(self, profile: Profile) -> None:
        """The profile box names the server actually connected (adding a ``--url`` one if it is not listed)."""
        combo = self.profile_combo
        for i in range(combo.count()):
            known = combo.itemData(i)
            if known is not None and (known.name == profile.name or (profile.local and known.local)):
                index = i
                break
        else:
            index = max(0, combo.count() - 1)  # before "New connection…"
            combo.insertItem(index, profile.name, profile)
        combo.blockSignals(True)
        combo.setCurrentIndex(index)
        combo.blockSignals(False)

    def on_connection_catalog_changed(self, catalog: Catalog) -> None:
        self.browser_model.set_catalog(catalog)
        self.browser.expandAll()
        if self.doc is not None and self.doc.group_id:
            self.select_in_browser(self.doc.group_id)
        self._update_actions()
        self._update_title()

    def on_connection_catalog_loaded(self, groups: int) -> None:
        self._update_actions()
        self.catalog_loaded.emit(groups)

    def on_reload_action_triggered(self) -> None:
        self.spawn(self.editing.reload(), "Reloading…")

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

    async def open_group(self, connector_id: str) -> None:
        if not await self.editing.open_group(connector_id) and self.doc is not None and self.doc.group_id:
            self.select_in_browser(self.doc.group_id)  # the user kept the open group

    def select_in_browser(self, connector_id: str) -> None:
        row = self.browser_model.group_row(connector_id)
        if row < 0:
            return
        idx = self.browser_filter.mapFromSource(self.browser_model.index(row, 0))
        self.browser.selectionModel().blockSignals(True)
        self.browser.setCurrentIndex(idx)
        self.browser.selectionModel().blockSignals(False)
        self.browser.viewport().update()

    def _clear_browser_selection(self) -> None:
        self.browser.selectionModel().blockSignals(True)
        self.browser.clearSelection()
        self.browser.setCurrentIndex(QModelIndex())
        self.browser.selectionModel().blockSignals(False)

    # the editor ---------------------------------------------------------------------------------------
    def on_new_action_triggered(self) -> None:
        self.spawn(self.editing.new_group(), "")

    def on_save_action_triggered(self) -> None:
        self.spawn(self.editing.save(), "Saving…")

    def on_delete_action_triggered(self) -> None:
        self.spawn(self.editing.delete_group(), "Deleting…")

    def on_editor_add_member_requested(self) -> None:
        self.spawn(self.editing.pick_member(), "")

    def on_editing_document_changed(self, doc: GroupDocument | None) -> None:
        """Show ``doc`` in a new editor (or the placeholder), dropping the previous editor."""
        old_editor, self.editor = self.editor, None
        for stack in list(self.undo_group.stacks()):
            self.undo_group.removeStack(stack)
        if doc is not None:
            from balancedesk.gui.editor import GroupEditor  # the editor's widgets load with the first group

            self.editor = GroupEditor(doc, can_change_owner=self.connection.is_admin)
            self.editor.add_member_requested.connect(self.on_editor_add_member_requested)
            self.stack.addWidget(self.editor)
            self.stack.setCurrentWidget(self.editor)
            self.undo_group.addStack(doc.undo_stack)
            self.undo_group.setActiveStack(doc.undo_stack)
            doc.undo_stack.cleanChanged.connect(self.on_undo_stack_clean_changed)
            doc.field_changed.connect(self.on_doc_field_changed)
            self.editor.show_problems(display=doc.group_id is not None)  # a new form opens without errors
            if doc.group_id is None:
                self._clear_browser_selection()
                self.editor.label_edit.setFocus()
        else:
            self.stack.setCurrentWidget(self.placeholder)
        if old_editor is not None:
            self.stack.removeWidget(old_editor)
            old_editor.deleteLater()
        self._update_actions()
        self._update_title()

    def on_editing_group_opened(self, connector_id: str) -> None:
        if connector_id:
            self.select_in_browser(connector_id)
        self._update_actions()
        self._update_title()
        self.group_opened.emit(connector_id)

    def on_doc_field_changed(self, name: str) -> None:
        if name == "label":
            self._update_title()

    def on_undo_stack_clean_changed(self, clean: bool) -> None:
        self._update_actions()
        self._update_title()

    def _update_title(self) -> None:
        profile = self.connection.profile
        where = profile.name if profile is not None else "not connected"
        doc = self.doc
        if doc is None:
            self.setWindowTitle(f"Balance Desk — {where}")
        else:
            label = doc.fields["label"] or "New group"
            self.setWindowTitle(f"{label}[*] — Balance Desk — {where}")
        self.setWindowModified(doc is not None and self.is_dirty())

    def _update_actions(self) -> None:
        connected = self.client is not None
        saved_group = self.doc is not None and self.doc.group_id is not None
        self.reload_action.setEnabled(connected)
        self.new_action.setEnabled(connected)
        self.save_action.setEnabled(connected and self.is_dirty() and not self.busy)
        self.delete_action.setEnabled(connected and saved_group and not self.busy)
        self.balancers_action.setEnabled(connected)
        live = self.live.can_open()
        self.run_local_action.setEnabled(live)
        self.attach_action.setEnabled(live)
        self.export_action.setEnabled(connected and saved_group)

    # live view (issue 5) ----------------------------------------------------------------------------------
    def on_run_local_action_triggered(self) -> None:
        self.live.open()

    def on_attach_action_triggered(self) -> None:
        self.live.open()

    # export (issue 14) ---------------------------------------------------------------------------
    def on_export_action_triggered(self) -> None:
        self.open_export()

    def open_export(self) -> QWidget | None:
        """The Export… dialog for the saved group (its endpoints from the connector catalog)."""
        from balancedesk.core.model import RuleError, parse_balancer_config
        from balancedesk.gui.export_dialog import ExportDialog

        doc = self.doc
        if doc is None or doc.base is None:
            return None
        body = doc.base.to_json()
        members = doc.base.connector_group.members if doc.base.connector_group is not None else ()
        body["endpoints"] = {m.member_id: self.catalog.endpoint(m.member_id) for m in members
                             if self.catalog.endpoint(m.member_id)}
        try:
            cfg = parse_balancer_config(body)
        except RuleError as exc:
            self.show_message(f"Cannot export this group: {exc}", error=True)
            return None
        dialog = ExportDialog(cfg, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

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
            if await self.editing.confirm_leave():
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
        await self.live.shutdown()
        fleet = self.balancers_window
        if fleet is not None and shiboken6.isValid(fleet):
            await fleet.aclose()
        if "balancedesk.gui.fleet.poller" in sys.modules:  # also the polls of a Balancers window already gone
            from balancedesk.gui.fleet.poller import stop_all

            await stop_all()
        for task in list(self.tasks):
            task.cancel()
        await self.connection.shutdown()
