"""The Balancers window: every balancer of the management server, its groups (applied vs saved), its
overrides, and the balancer tokens — opened from the main window's Fleet menu.

Only for Administrators (the fleet routes are theirs): anyone else sees a sentence saying so, and nothing is
read. The fleet is read by a :class:`~balancedesk.gui.fleet.poller.FleetPoller` while the window is shown
(stopped when hidden or minimised). "Open live view" opens the chosen group's live view aggregated over
every balancer of the instance's pool that serves it (``gui/live/fleetlive.py``); each instance's admin URL
and token come from the server (``GET /api/admin/balancers/{id}/admin``) straight into that view's clients
and are never shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from balancedesk.gui.fleet.models import INSTANCE_COL_DRIFT, groups_model, instances_model
from balancedesk.gui.fleet.poller import FleetPoller
from balancedesk.gui.fleet.rows import InstanceRow
from balancedesk.gui.fleet.tokens import TokenPanel, TokenShownDialog
from balancedesk.gui.haproxy_fleet import choose_instances_file, is_haproxy_row
from balancedesk.gui.tables import list_table_view
from PySide6.QtCore import QEvent, QItemSelection, Qt, Signal
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient


class BalancersWindow(QMainWindow):
    """The fleet of one management server.

    Signals:
        refreshed(int): the view shows a fresh read (the number of instances).
        token_created(str): a token was made (its tokenID); the dialog showing it is ``token_dialog``.
        token_revoked(str): a token was revoked (its tokenID).
        live_opened(object): a live view was opened on an instance (the LiveWindow).
        failed(str): something failed; the sentence shown.
    """

    refreshed = Signal(int)
    token_created = Signal(str)
    token_revoked = Signal(str)
    live_opened = Signal(object)
    failed = Signal(str)

    def __init__(self, *, client: MgmtClient, is_admin: bool, user: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("BalancersWindow")
        self.setWindowTitle(f"Balancers — {client.base_url}")
        self.client = client
        self.is_admin = is_admin
        self.rows: list[InstanceRow] = []
        self.token_dialog: TokenShownDialog | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.poller = FleetPoller(client, self)
        self.poller.refreshed.connect(self.on_poller_refreshed)
        self.poller.failed.connect(self.on_poller_failed)
        self._build(user)
        self.resize(1280, 800)

    # construction --------------------------------------------------------------------------------
    def _build(self, user: str) -> None:
        self.stack = QStackedWidget()
        self.not_admin = QLabel(f"The Balancers view is for Administrators: “{user}” is not one. Ask an "
                                "Administrator to watch the fleet or to make a balancer token.")
        self.not_admin.setWordWrap(True)
        self.not_admin.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.not_admin.setAccessibleName("Not allowed")
        self.stack.addWidget(self.not_admin)

        self.tabs = QTabWidget()
        inst = QWidget()
        lay = QVBoxLayout(inst)
        self.summary = QLabel("Reading the fleet…")
        self.summary.setAccessibleName("Fleet summary")
        lay.addWidget(self.summary)
        self.instances = instances_model(self)
        self.table = list_table_view()
        self.table.setModel(self.instances)
        self.table.horizontalHeader().setSectionResizeMode(INSTANCE_COL_DRIFT, QHeaderView.ResizeMode.Interactive)
        self.table.selectionModel().selectionChanged.connect(self.on_table_selectionChanged)
        self.table.doubleClicked.connect(lambda _i: self.on_open_live_clicked())
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        detail = QWidget()
        dlay = QHBoxLayout(detail)
        dlay.setContentsMargins(0, 0, 0, 0)
        left = QVBoxLayout()
        self.detail_title = QLabel("Choose an instance to see its groups and overrides.")
        left.addWidget(self.detail_title)
        self.groups = groups_model(self)
        self.groups_table = list_table_view()
        self.groups_table.setModel(self.groups)
        left.addWidget(self.groups_table, 1)
        dlay.addLayout(left, 3)
        right = QVBoxLayout()
        right.addWidget(QLabel("Overrides set live on this balancer:"))
        self.overrides = QListWidget()
        self.overrides.setAccessibleName("Overrides")
        right.addWidget(self.overrides, 1)
        buttons = QHBoxLayout()
        self.open_live = QPushButton("Open live view")
        self.open_live.setToolTip("watch the chosen group on every balancer of this pool that serves it "
                                  "(admin endpoints reached through the management server: no token to paste)")
        self.open_live.setEnabled(False)
        self.open_live.clicked.connect(self.on_open_live_clicked)
        self.haproxy_file = QPushButton("HAProxy instances…")  # gui.haproxy_fleet: list them beside the balancers
        self.haproxy_file.setToolTip("choose the instances file (as for 'balancedesk haproxy status --instances')")
        self.haproxy_file.clicked.connect(lambda: choose_instances_file(self))
        buttons.addWidget(self.haproxy_file)
        buttons.addStretch(1)
        buttons.addWidget(self.open_live)
        right.addLayout(buttons)
        dlay.addLayout(right, 2)
        split.addWidget(detail)
        split.setSizes([430, 300])
        lay.addWidget(split, 1)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("Balancers message")
        lay.addWidget(self.message)
        self.tabs.addTab(inst, "Instances")

        self.token_panel = TokenPanel()
        self.token_panel.create_requested.connect(self.on_token_panel_create_requested)
        self.token_panel.revoke_requested.connect(self.on_token_panel_revoke_requested)
        self.tabs.addTab(self.token_panel, "Tokens")
        self.stack.addWidget(self.tabs)
        self.stack.setCurrentWidget(self.tabs if self.is_admin else self.not_admin)
        self.setCentralWidget(self.stack)

    # async plumbing ------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _explain(self, exc: BaseException) -> str:
        from balancedesk.core.client import ApiError
        from balancedesk.gui.connection import explain

        if isinstance(exc, ApiError) and exc.status == 403:
            self.stack.setCurrentWidget(self.not_admin)
            self.poller.stop()
        return explain(exc)

    def say(self, text: str, *, error: bool = False) -> None:
        self.message.setText(("⚠ " if error else "") + text)
        if error:
            self.failed.emit(text)

    # the fleet -----------------------------------------------------------------------------------
    def on_poller_refreshed(self, rows: list[InstanceRow]) -> None:
        chosen = self.chosen()
        self.rows = rows
        self.instances.set_rows(rows)
        lost = sum(r.lost for r in rows)
        drifting = sum(bool(r.drifting) for r in rows)
        pools = len({r.info.pool for r in rows})
        self.summary.setText(
            f"{len(rows)} balancer{'' if len(rows) == 1 else 's'} in {pools} pool{'' if pools == 1 else 's'} · "
            f"{len(rows) - lost} alive · {lost} lost · {drifting} behind the saved config")
        if chosen is not None:
            row = next((i for i, r in enumerate(rows) if r.instance_id == chosen), -1)
            if row >= 0 and self.table.currentIndex().row() != row:
                self.table.selectRow(row)
        self._show_detail()
        if self.message.text().startswith("⚠ Cannot read the fleet"):
            self.message.clear()
        self.refreshed.emit(len(rows))

    def on_poller_failed(self, exc: BaseException) -> None:
        self.say(f"Cannot read the fleet: {self._explain(exc)}", error=True)

    def chosen(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        row = self.instances.row_at(rows[0].row()) if rows else None
        return row.instance_id if row is not None else None

    def select_instance(self, instance_id: str) -> None:
        row = next((i for i, r in enumerate(self.instances.rows) if r.instance_id == instance_id), -1)
        if row >= 0:
            self.table.selectRow(row)

    def on_table_selectionChanged(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        cid = self.chosen()
        row = next((r for r in self.rows if r.instance_id == cid), None)
        self.open_live.setEnabled(row is not None and not row.lost and (
            row.info.has_admin_token or is_haproxy_row(row.instance_id)))  # HAProxy: its stats socket
        if row is None:
            self.groups.set_rows([])
            self.overrides.clear()
            self.detail_title.setText("Choose an instance to see its groups and overrides.")
            return
        reach = "" if row.info.has_admin_token else " · no admin endpoint in its heartbeat (no live view)"
        self.detail_title.setText(f"Groups of {row.instance_id} (pool {row.info.pool}) — applied vs saved{reach}:")
        self.groups.set_rows(row.groups)
        texts = row.override_texts() or ["none"]
        if [self.overrides.item(i).text() for i in range(self.overrides.count())] != texts:
            self.overrides.clear()
            self.overrides.addItems(texts)

    # reaching a balancer -------------------------------------------------------------------------
    def on_open_live_clicked(self) -> None:
        self._spawn(self.open_live_view())

    async def open_live_view(self, connector_id: str | None = None) -> QWidget | None:
        """Open the live view of ``connector_id`` (else the chosen group, else the chosen instance's first
        served group) aggregated over every balancer of the instance's pool that serves it. Each balancer's
        admin URL and token come from the server; None (and a sentence) if there is nothing to watch."""
        from balancedesk.core.client import ApiError, ApiUnavailable
        from balancedesk.gui.live.fleetlive import open_fleet_live_view

        cid = self.chosen()
        row = next((r for r in self.rows if r.instance_id == cid), None)
        if row is None:
            self.say("Choose an instance first.", error=True)
            return None
        if connector_id is None:
            picked = self.groups_table.selectionModel().selectedRows()
            group_row = self.groups.row_at(picked[0].row()) if picked else None
            served = [g for g in row.groups if g.applied is not None]
            group_row = group_row if group_row is not None and group_row.applied is not None else (
                served[0] if served else None)
            if group_row is None:
                self.say(f"{row.instance_id} serves no group yet: nothing to watch.", error=True)
                return None
            connector_id = group_row.connector_id
        if is_haproxy_row(row.instance_id):
            return await self._open_haproxy_live(row.instance_id, connector_id)
        if not row.info.has_admin_token:
            self.say(f"{row.instance_id} did not send its admin endpoint in its heartbeat (started without "
                     "--admin?): there is nothing to watch.", error=True)
            return None
        try:
            group, _etag = await self.client.get_connector(connector_id)
            answer = await self.client.pool_group(row.info.pool, connector_id)
        except (ApiError, ApiUnavailable) as exc:
            self.say(f"Cannot open the live view of {connector_id}: {self._explain(exc)}", error=True)
            return None
        endpoints = dict(answer[0].config.endpoints) if answer is not None else {}
        win = open_fleet_live_view(parent=self, group=group, endpoints=endpoints, mgmt=self.client,
                                   pool=row.info.pool)
        serving = sum(1 for r in self.rows if r.info.pool == row.info.pool
                      and any(g.connector_id == connector_id and g.applied is not None for g in r.groups))
        self.say(f"Live view of {group.label or connector_id} on the {serving} balancer"
                 f"{'' if serving == 1 else 's'} of pool {row.info.pool} that serve it opened.")
        self.live_opened.emit(win)
        return win

    async def _open_haproxy_live(self, instance_id: str, connector_id: str) -> QWidget | None:
        from balancedesk.gui.haproxy_fleet import open_haproxy_live

        win = await open_haproxy_live(self, self.client, instance_id, connector_id)
        if isinstance(win, str):
            self.say(win, error=True)
            return None
        self.say(f"Live view of {connector_id} on {instance_id} opened.")
        self.live_opened.emit(win)
        return win

    # tokens --------------------------------------------------------------------------------------
    def on_token_panel_create_requested(self, pool: str, label: str) -> None:
        self._spawn(self.create_token(pool, label))

    async def create_token(self, pool: str, label: str = "") -> str | None:
        from balancedesk.core.client import ApiError, ApiUnavailable

        try:
            token, info = await self.client.create_token(pool, label=label)
        except (ApiError, ApiUnavailable) as exc:
            self.token_panel.say(self._explain(exc), error=True)
            self.failed.emit(self.token_panel.message.text())
            return None
        self.token_panel.say(f"Token {info.token_id} made for pool {info.pool}: copy it now, it is not shown again.")
        self.token_dialog = TokenShownDialog(token=token, pool=info.pool, api_url=self.client.base_url, parent=self)
        self.token_dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.token_dialog.destroyed.connect(lambda _o=None: setattr(self, "token_dialog", None))
        self.token_dialog.open()
        await self.refresh_tokens()
        self.token_created.emit(info.token_id)
        return info.token_id

    def on_token_panel_revoke_requested(self, token_id: str) -> None:
        self._spawn(self.revoke_token(token_id))

    async def revoke_token(self, token_id: str) -> bool:
        from balancedesk.core.client import ApiError, ApiUnavailable

        try:
            info = await self.client.revoke_token(token_id)
        except (ApiError, ApiUnavailable) as exc:
            self.token_panel.say(self._explain(exc), error=True)
            self.failed.emit(self.token_panel.message.text())
            return False
        self.token_panel.say(f"Token {info.token_id} (pool {info.pool}) revoked: it is refused (401) from now on.")
        await self.refresh_tokens()
        self.token_revoked.emit(token_id)
        return True

    async def refresh_tokens(self) -> None:
        from balancedesk.core.client import ApiError, ApiUnavailable

        try:
            tokens = await self.client.list_tokens()
        except (ApiError, ApiUnavailable) as exc:
            self.token_panel.say(self._explain(exc), error=True)
            return
        self.token_panel.model.set_rows(sorted(tokens, key=lambda t: (t.revoked is not None, -t.created)))

    # shown / hidden ------------------------------------------------------------------------------
    def _in_background(self) -> bool:
        return not self.isVisible() or self.isMinimized()

    def _follow(self) -> None:
        if (self.is_admin and not self._closed and self.stack.currentWidget() is self.tabs
                and not self._in_background()):
            if not self.poller.running:
                self.poller.start()
                self._spawn(self.refresh_tokens())
        else:
            self.poller.stop()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._follow()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.poller.stop()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.WindowStateChange:
            self._follow()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop polling for good and cancel what this window started. Safe to call twice."""
        self._closed = True
        self.poller.stop()
        for task in list(self._tasks):
            task.cancel()

    async def aclose(self) -> None:
        """:meth:`shutdown`, then wait until the cancelled calls have ended (before the loop closes)."""
        pending = list(self._tasks)
        self.shutdown()
        await self.poller.stopped()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
