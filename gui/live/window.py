"""The LiveWindow: one running balancer, watched and poked.

Composition: a :class:`LiveWatcher` polls the admin endpoint; snapshots feed the member table, the
topology, the rate chart and the drift banner; events feed the topology's moving dots and the timeline.
"Run locally" starts ``balancedesk balance`` as a child; "Attach…" watches one elsewhere — same code,
another URL. Every network call is awaited on the qasync loop; children are QProcesses.

The saved group comes from the management server, never a frozen copy: with a management client
(``mgmt``) the window re-reads the group every :data:`SAVED_REFRESH_S` (a conditional GET: an unchanged
group costs a 304) and again right before "Apply saved config". Apply first checks the group's ID
against the one the balancer runs (the snapshot's ``group.connectorID``) and refuses, inline, a balancer
that runs another group (or does not say which).

Layout rules (a laptop at 1280×800, or 200 % on a 2560×1600 screen): the window's minimum size stays
inside 1280×800 whatever it is told — status texts are :class:`ElidedLabel`s; banners ("the balancer
differs", "the balancer exited") appear in a strip whose height is reserved from the start, so showing
one never moves a button under the pointer; the member table's columns grow to their texts when a text
outgrows them (``columnWidened``), and columns can be shown or hidden from the header's context menu
(the member ID is hidden at first; the L7 status classes while the group is tcp).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from balancedesk.core.engines import Engine
from balancedesk.core.model import Connector
from balancedesk.gui.elided import ElidedLabel
from balancedesk.gui.live.admin import AdminClient, AdminError, AdminUnavailable, EventBatch, Snapshot
from balancedesk.gui.live.chart import RateChart
from balancedesk.gui.live.children import ChildProcess
from balancedesk.gui.live.demos import DemoMembers, TrafficGenerator
from balancedesk.gui.live.drift import apply_refusal, balancer_config, differences
from balancedesk.gui.live.models import (
    COL_MEMBER,
    COL_STATE,
    COLUMNS,
    HIDDEN_AT_FIRST,
    L7_ONLY,
    MemberTableModel,
    TimelineEntry,
    TimelineModel,
    timeline_entries,
)
from balancedesk.gui.live.names import MemberNames
from balancedesk.gui.live.overrides import MemberOverride, overrides, runtime_only_text, with_weights
from balancedesk.gui.live.panels import AttachDialog, DemoPanel, RunPanel, TrafficPanel
from balancedesk.gui.live.rates import RateTracker
from balancedesk.gui.live.topology import TopologyView
from balancedesk.gui.live.watcher import LiveWatcher
from PySide6.QtCore import QEvent, QItemSelectionModel, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient

_CLOSING: set[asyncio.Task[Any]] = set()  # closing calls still running after a window has gone
TABLE_HZ = 2.0  # member table refreshes per second while only counters change
BALANCER_READY = r"balancedesk: balancing (\S+) admin (http://\S+)"
SAVED_REFRESH_S = 2.0  # how often the saved group is re-read from the management server while watching


def _banner(color: str, title: str) -> tuple[QFrame, ElidedLabel, QHBoxLayout]:
    """A one-line banner: a bold title, the message (cut to fit, whole on hover), room for buttons. Its
    text is dark on its light colour in either theme."""
    frame = QFrame()
    frame.setObjectName("banner")
    frame.setStyleSheet(f"QFrame#banner {{ background: {color}; border-radius: 4px; }} "
                        "QFrame#banner QLabel { color: #1f2328; }")
    lay = QHBoxLayout(frame)
    lay.setContentsMargins(8, 2, 8, 2)
    head = QLabel(f"<b>{title}</b>")
    lay.addWidget(head)
    label = ElidedLabel()
    lay.addWidget(label, 1)
    return frame, label, lay


class LiveWindow(QMainWindow):
    """Live view of one balancer.

    Signals: ``attached(str)`` with the admin URL once watching; ``snapshotted(object)`` per snapshot
    shown; ``balancerExited(int)`` when a balancer we started dies unasked (exit code);
    ``actionFailed(str)`` with a message for a person.
    """

    attached = Signal(str)
    snapshotted = Signal(object)
    balancerExited = Signal(int)
    actionFailed = Signal(str)

    def __init__(self, *, group: Connector | None = None, endpoints: Mapping[str, str] | None = None,
                 parent: QWidget | None = None, mgmt: MgmtClient | None = None, pool: str | None = None,
                 instance: str | None = None, labels: Mapping[str, str] | None = None) -> None:
        super().__init__(parent)
        self.group = group
        self.endpoints = dict(endpoints or {})
        self.labels = dict(labels or {})  # memberID → the connector's label, as the management server has it
        self.mgmt = mgmt
        self.pool = pool
        self.saved_version: int | None = None  # the group's version in ``pool`` when read from it
        self._saved_etag = ""
        self._saved_at = -SAVED_REFRESH_S
        self._saved_task: asyncio.Task[Any] | None = None
        self.client: Engine | None = None  # core.engines: our balancer's admin endpoint or an HAProxy
        self.watcher: LiveWatcher | None = None
        self.balancer: ChildProcess | None = None
        self.last: Snapshot | None = None
        self.drift: list[str] = []
        self.rates = RateTracker()
        self._owned_client = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tmp = Path(tempfile.mkdtemp(prefix="balancedesk-live-"))
        self._closed = False
        label = group.label if group is not None else "balancer"
        self.setWindowTitle(f"Live — {label}" + (f" on {instance}" if instance else ""))
        self.resize(1280, 860)

        self.members = MemberTableModel(self)
        self.timeline = TimelineModel(self)
        self.names = MemberNames.build(saved=self._saved_order(), labels=self.labels)
        self._dead = False  # the balancer we started exited unasked: its banner shows
        self._hidden_columns = set(HIDDEN_AT_FIRST)  # chosen from the header's menu
        self.demos = DemoMembers(self.endpoints, parent=self)
        self.traffic = TrafficGenerator(self, owner=self.demos.owner)  # recorded as this window's, like the demos
        self._build()
        self._wire()
        self._table_shape: list[tuple[str, str, int]] = []  # members, states, weights the table last showed
        self._table_at = 0.0
        # the re-enable countdowns move between snapshots; the timer runs only while one is shown (an idle
        # timer would wake the UI 10×/s for nothing, and each wake-up is CPU the balancer may be short of)
        self._countdown = QTimer(self)
        self._countdown.setInterval(100)
        self._countdown.timeout.connect(self.on_countdown_timeout)
        self._spawn(self.demos.probe())

    # construction --------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)
        self.run_panel = RunPanel()
        outer.addWidget(self.run_panel)
        # the banners' strip: its height is reserved from the start, so a banner appearing moves nothing
        self.banners = QStackedWidget()
        self.in_sync = ElidedLabel("")  # the strip when there is nothing to warn about
        self.in_sync.setObjectName("caption")
        self.quiet = QWidget()
        quiet_lay = QHBoxLayout(self.quiet)
        quiet_lay.setContentsMargins(8, 2, 8, 2)
        quiet_lay.addWidget(self.in_sync)
        self.banners.addWidget(self.quiet)
        self.death, self.death_label, death_lay = _banner("#ffcdd2", "The balancer exited unexpectedly.")
        self.show_log = QPushButton("Show its log…")
        death_lay.addWidget(self.show_log)
        self.death_log = QPlainTextEdit()
        self.death_log.setReadOnly(True)
        self.death_dialog = QDialog(self)
        self.death_dialog.setWindowTitle("The balancer's last log lines")
        QVBoxLayout(self.death_dialog).addWidget(self.death_log)
        self.death_dialog.resize(720, 320)
        self.banners.addWidget(self.death)
        self.drift_banner, self.drift_label, drift_lay = _banner(
            "#fff3cd", "The running balancer differs from the saved group:")
        self.apply_config = QPushButton("Apply saved config")
        drift_lay.addWidget(self.apply_config)
        self.banners.addWidget(self.drift_banner)
        self.banners.setFixedHeight(max(self.death.sizeHint().height(), self.drift_banner.sizeHint().height()))
        outer.addWidget(self.banners)

        top = QSplitter(Qt.Orientation.Horizontal)
        self.topology = TopologyView()
        self.animate = QCheckBox("animate routed connections")
        self.animate.setChecked(True)
        self.animate.setToolTip(
            "Draw each routed connection moving to its member (a sample above 30/s).\n"
            "Off: no frames between snapshots. On a machine that also runs the balancer at full load the\n"
            "animation takes a few % of a core from it; edges, rates, states and the timeline stay live."
        )
        left = QWidget()
        llay = QVBoxLayout(left)
        llay.setContentsMargins(0, 0, 0, 0)
        llay.addWidget(self.animate)
        llay.addWidget(self.topology, 1)
        top.addWidget(left)
        self.chart = RateChart()
        top.addWidget(self.chart)
        top.setSizes([620, 640])
        # the member table has the window's whole width: its columns (L7: 2xx..5xx) fit at 1280 px
        middle = QWidget()
        rlay = QVBoxLayout(middle)
        rlay.setContentsMargins(0, 0, 0, 0)
        self.table = QTableView()
        self.table.setModel(self.members)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # an endpoint keeps its port
        header = self.table.horizontalHeader()
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self.on_header_customContextMenuRequested)
        header.setToolTip("right-click to show or hide columns (the member ID, …)")
        for c in self._hidden_columns:
            self.table.setColumnHidden(c, True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().hide()
        # Interactive, sized once per member set: ResizeToContents re-measures every cell on every update
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.members.modelReset.connect(self.on_members_modelReset)
        self.members.columnWidened.connect(self.on_members_columnWidened)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        rlay.addWidget(self.table, 1)
        actions = QHBoxLayout()
        self.drain = QPushButton("Drain")
        self.disable = QPushButton("Disable")
        self.enable = QPushButton("Enable")
        self.apply_weights = QPushButton("Apply weights")
        self.apply_weights.setEnabled(False)
        self.save_overrides = QPushButton("Save to the server")
        self.revert_overrides = QPushButton("Revert")
        for b, tip in ((self.drain, "no new connections; existing ones finish"),
                       (self.disable, "no new connections"), (self.enable, "back in rotation"),
                       (self.apply_weights, "send the edited weights to the running balancer"),
                       (self.save_overrides, "make the live weights of the chosen members (all, if none is "
                                             "chosen) the group's saved weights on the management server"),
                       (self.revert_overrides, "set the chosen members (all, if none is chosen) back to the "
                                               "saved config: enabled, saved weight")):
            b.setToolTip(tip)
            actions.addWidget(b)
        actions.addStretch(1)
        rlay.addLayout(actions)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        self.demo_panel = DemoPanel(self.demos, self.names)
        demo_scroll = QScrollArea()  # many local members scroll; they never make the window taller
        demo_scroll.setWidget(self.demo_panel)
        demo_scroll.setWidgetResizable(True)
        demo_scroll.setFrameShape(QFrame.Shape.NoFrame)
        bottom.addWidget(demo_scroll)
        self.timeline_view = QListView()
        self.timeline_view.setModel(self.timeline)
        self.timeline_view.setUniformItemSizes(True)
        bottom.addWidget(self.timeline_view)
        bottom.setSizes([720, 540])

        split = QSplitter(Qt.Orientation.Vertical)
        split.setChildrenCollapsible(False)
        for part in (top, middle, bottom):
            split.addWidget(part)
        split.setSizes([300, 170, 150])
        outer.addWidget(split, 1)
        self.traffic_panel = TrafficPanel()
        outer.addWidget(self.traffic_panel)
        self.setCentralWidget(central)
        self.status = ElidedLabel("")
        self.statusBar().addWidget(self.status, 1)
        self._rename()
        self._apply_hidden_columns()

    def _wire(self) -> None:
        rp = self.run_panel
        rp.run.clicked.connect(self.on_run_clicked)
        rp.stop.clicked.connect(self.on_stop_clicked)
        rp.attach.clicked.connect(self.on_attach_clicked)
        rp.mode.currentIndexChanged.connect(lambda _i: setattr(self.demos, "proto", rp.mode_value()))
        self.drain.clicked.connect(lambda: self.set_selected_state("drain"))
        self.disable.clicked.connect(lambda: self.set_selected_state("disabled"))
        self.enable.clicked.connect(lambda: self.set_selected_state("enabled"))
        self.apply_weights.clicked.connect(self.on_apply_weights_clicked)
        self.save_overrides.clicked.connect(lambda: self._spawn(self.save_to_server(self.selected_member_ids())))
        self.revert_overrides.clicked.connect(lambda: self._spawn(self.revert(self.selected_member_ids())))
        self.apply_config.clicked.connect(self.on_apply_config_clicked)
        self.show_log.clicked.connect(self.death_dialog.show)
        self.animate.toggled.connect(self.topology.set_animated)
        self.members.weightEdited.connect(
            lambda *_: self.apply_weights.setEnabled(bool(self.members.pending_weights()))
        )
        for mid, (_label, buttons) in self.demo_panel.rows.items():
            buttons["start"].clicked.connect(lambda _=False, m=mid: self.demos.start(m))
            buttons["stop"].clicked.connect(lambda _=False, m=mid: self.demos.stop(m))
            for mode in ("slow", "refuse", "ok"):
                buttons[mode].clicked.connect(lambda _=False, m=mid, md=mode: self._spawn(self.demos.set_mode(m, md)))
        self.demos.failed.connect(lambda _m, msg: self._say(msg))
        self.demos.moved.connect(self.on_demos_moved)
        tp = self.traffic_panel
        tp.start.clicked.connect(self.on_traffic_start_clicked)
        tp.stop.clicked.connect(self.on_traffic_stop_clicked)
        tp.rate.valueChanged.connect(self.on_traffic_rate_valueChanged)
        self.traffic.reported.connect(self.on_traffic_reported)
        self.traffic.stopped.connect(self.on_traffic_stopped)

    # helpers -------------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._say(f"{exc.__class__.__name__}: {exc}")

    def _say(self, message: str) -> None:
        self.status.setText(message)
        self.actionFailed.emit(message)

    def _saved_order(self) -> list[str]:
        """The saved group's memberIDs in sequence order (what the editor letters A, B, C…)."""
        if self.group is None or self.group.connector_group is None:
            return []
        return [m.member_id for m in sorted(self.group.connector_group.members, key=lambda m: m.sequence)]

    def _rename(self, snap: Snapshot | None = None) -> None:
        """Name every member as the editor does, in every panel: the saved group's order and the
        catalog's labels, with the balancer's own labels (and any member it runs that the group lacks)."""
        running = [(m.member_id, m.label) for m in sorted(snap.members, key=lambda m: m.sequence)] if snap else []
        self.names = names = MemberNames.build(saved=self._saved_order(), running=running, labels=self.labels)
        self.members.set_names(names)
        self.topology.set_names(names)
        self.chart.set_names(names)
        self.demo_panel.set_names(names)
        self.timeline.names = names

    def _update_banners(self) -> None:
        """Show the banner there is to show (a death first) in the reserved strip, or an empty strip."""
        page = self.death if self._dead else self.drift_banner if self.drift else self.quiet
        self.banners.setCurrentWidget(page)
        quiet = "the running balancer runs the saved group" if self.last is not None and self.group is not None \
            and self.client is not None else ""
        if self.in_sync.text() != quiet:
            self.in_sync.setText(quiet)

    def on_header_customContextMenuRequested(self, pos: QPoint) -> None:
        menu = self.column_menu()
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.table.horizontalHeader().mapToGlobal(pos))

    def column_menu(self) -> QMenu:
        """The header's menu: a check per column (the member's own column always shows)."""
        menu = QMenu(self)
        l7 = self.last is not None and self.last.mode == "http"
        for c, title in enumerate(COLUMNS):
            if c == COL_MEMBER:
                continue
            act = menu.addAction(title)
            act.setCheckable(True)
            act.setChecked(not self.table.isColumnHidden(c))
            if c in L7_ONLY and not l7:
                act.setEnabled(False)
                act.setToolTip("L7 (http) groups only")
            act.toggled.connect(lambda on, col=c: self.set_column_shown(col, on))
        return menu

    def set_column_shown(self, column: int, shown: bool) -> None:
        if shown:
            self._hidden_columns.discard(column)
        else:
            self._hidden_columns.add(column)
        self._apply_hidden_columns()
        if shown:
            self.table.resizeColumnToContents(column)

    def _apply_hidden_columns(self) -> None:
        l7 = self.last is not None and self.last.mode == "http"
        for c in range(len(COLUMNS)):
            hide = c in self._hidden_columns or (c in L7_ONLY and not l7)
            if self.table.isColumnHidden(c) != hide:
                self.table.setColumnHidden(c, hide)
                if not hide:  # sized while hidden, it would show its texts cut ("…")
                    self.table.resizeColumnToContents(c)

    def selected_member_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        ids = self.members.member_ids()
        return [ids[r] for r in rows if r < len(ids)]

    def select_members(self, member_ids: list[str]) -> None:
        sel = self.table.selectionModel()
        sel.clearSelection()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for r, mid in enumerate(self.members.member_ids()):
            if mid in member_ids:
                sel.select(self.members.index(r, 0), flags)

    # run locally / attach ------------------------------------------------------------------------
    def on_run_clicked(self) -> None:
        self.run_local(port=self.run_panel.port.value(), mode=self.run_panel.mode_value(),
                       affinity_header=self.run_panel.affinity_header())

    def run_local(self, *, port: int = 0, mode: str = "tcp", affinity_header: str | None = None) -> None:
        """Start ``balancedesk balance`` for the saved group as our child, then watch it."""
        if self.group is None:
            self._say("no saved group to run: attach to a running balancer instead")
            return
        self._spawn(self._run_local(port, mode, affinity_header))

    async def _run_local(self, port: int, mode: str, affinity_header: str | None) -> None:
        await self._detach()
        if self.balancer is not None:
            self.balancer.kill()
        assert self.group is not None
        config = balancer_config(self.group, self.endpoints, self.labels)
        token = secrets.token_urlsafe(24)
        cfg_path, token_path = self._tmp / "balancer.json", self._tmp / "admin.token"
        await asyncio.to_thread(_write_private, cfg_path, _json(config))
        await asyncio.to_thread(_write_private, token_path, token)
        args = ["balance", "--config", str(cfg_path), "--listen", f"127.0.0.1:{port}", "--mode", mode,
                "--admin", "127.0.0.1:0", "--admin-token-file", str(token_path)]
        args += ["--affinity-header", affinity_header] if affinity_header else ["--no-affinity"]
        child = ChildProcess("balancer", ready_pattern=BALANCER_READY, parent=self)
        child.readied.connect(lambda m: self._balancer_ready(m, token))
        child.exited.connect(lambda code, asked, c=child: self._balancer_exited(c, code, asked))
        self.balancer = child
        self.demos.proto = mode
        self._dead = False
        self._update_banners()
        self.run_panel.status.setText("starting…")
        self.run_panel.run.setEnabled(False)
        self.run_panel.stop.setEnabled(True)
        child.start(args)

    def _balancer_ready(self, match: re.Match[str], token: str) -> None:
        pid = self.balancer.pid if self.balancer else "?"
        self.run_panel.status.setText(f"running on {match.group(1)} (pid {pid})")
        self.attach_client(AdminClient(match.group(2), token), owned=True)

    def _balancer_exited(self, child: ChildProcess, code: int, asked: bool) -> None:
        if child is not self.balancer:
            return
        self.balancer = None
        self.run_panel.run.setEnabled(True)
        self.run_panel.stop.setEnabled(False)
        self._spawn(self._detach())
        if asked:
            self.run_panel.status.setText("stopped")
            self.topology.set_balancer("balancer", "stopped", "")
            return
        self.run_panel.status.setText(f"exited ({code})")
        tail = child.tail(20)
        self.death_label.setText(f"exit code {code}" + (f"; its last line: {tail[-1]}" if tail else ""))
        self.death_log.setPlainText("\n".join(tail) or "(no output)")
        self._dead = True
        self._update_banners()
        self.topology.set_balancer("balancer", f"EXITED ({code})", "see its log (banner above)")
        self.balancerExited.emit(code)

    def on_stop_clicked(self) -> None:
        self.stop_balancer()

    def stop_balancer(self) -> None:
        self.traffic.stop()  # it would only hit a balancer that is going away
        if self.balancer is not None:
            self.balancer.stop()
        else:
            self._spawn(self._detach())
            self.run_panel.status.setText("detached")
            self.run_panel.stop.setEnabled(False)
            self.run_panel.run.setEnabled(self.group is not None)

    def on_attach_clicked(self) -> None:
        dialog = AttachDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._spawn(self._attach_from(dialog.values())) if dialog.haproxy() is None
                                else self.attach_haproxy(*dialog.haproxy() or ("", "")))
        dialog.open()

    async def _attach_from(self, values: tuple[str, str, Path | None, str | None]) -> None:
        url, token, file, ca = values
        if not token and file is not None:
            try:
                token = (await asyncio.to_thread(file.read_text)).strip()
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or exc
                self.run_panel.status.setText(f"cannot attach: token file {file}: {why}")
                return
        self.attach(url, token, verify=ca)

    def attach(self, url: str, token: str, *, verify: str | None = None) -> None:
        """Watch a balancer running elsewhere (same view; stops a local one we started). ``verify``: the CA
        bundle for an https admin URL. A URL that cannot be an admin endpoint is said inline; nothing stops."""
        try:
            client = AdminClient(url, token, verify=verify)
        except (ValueError, OSError) as exc:  # a bad URL, an unreadable CA file
            self.run_panel.status.setText(f"cannot attach: {exc}")
            return
        if self.balancer is not None:
            self.balancer.stop()
        self._dead = False
        self._update_banners()
        self.attach_client(client, owned=True)
        self.run_panel.status.setText(f"attached to {url}")
        self.run_panel.stop.setEnabled(True)

    def attach_haproxy(self, address: str, backend: str) -> None:
        """Watch one backend of an HAProxy through its stats socket (the same view, another engine)."""
        from balancedesk.core.haproxy.engine import HaproxyEngine

        if self.balancer is not None:
            self.balancer.stop()
        self.attach_client(HaproxyEngine(address, backend), owned=True)
        self.run_panel.status.setText(f"attached to HAProxy {address}, backend {backend}")
        self.run_panel.stop.setEnabled(True)

    def attach_client(self, client: Engine, *, owned: bool = False) -> None:
        self._spawn(self._attach_client(client, owned))

    async def _attach_client(self, client: Engine, owned: bool) -> None:
        await self._detach()
        self.traffic.stop()  # it targets the previous balancer
        self.timeline.clear()  # the previous balancer's events are not this one's
        self.last = None
        self.client, self._owned_client = client, owned
        self.rates = RateTracker()
        self.watcher = LiveWatcher(client, parent=self)
        self.watcher.snapshotted.connect(self.on_watcher_snapshotted)
        self.watcher.evented.connect(self.on_watcher_evented)
        self.watcher.reachabilityChanged.connect(self.on_watcher_reachabilityChanged)
        self.watcher.background = self._in_background()
        self.watcher.start()
        self.attached.emit(client.base_url)

    async def _detach(self) -> None:
        watcher, self.watcher = self.watcher, None
        client, self.client = self.client, None
        if watcher is not None:
            await watcher.stop()
            watcher.deleteLater()
        if client is not None and self._owned_client:
            await client.aclose()

    # what the watcher brings ---------------------------------------------------------------------
    def on_watcher_snapshotted(self, snap: Snapshot) -> None:
        l7_changed = self.last is None or (self.last.mode == "http") != (snap.mode == "http")
        self.last = snap
        if l7_changed:
            self._apply_hidden_columns()
        rates = self.rates.update(snap)
        # the counters in the table and on the topology refresh at most TABLE_HZ times a second (each refresh
        # repaints cells and re-renders texts); a change of state, admin state, weight or the member set shows
        # at once. Countdowns tick on their own timer from the last snapshot shown.
        now = time.monotonic()
        shape = [(m.member_id, m.state, m.weight) for m in snap.members]
        if shape != self._table_shape or now - self._table_at >= 1.0 / TABLE_HZ:
            self._table_shape, self._table_at = shape, now
            self._rename(snap)
            self.members.update(snap.members, rates)
            self.topology.show_snapshot(snap, rates, self.rates.total_rate)
        counting = any(m.retry_in_s is not None or m.check_ago_s is not None for m in snap.members)
        if counting != self._countdown.isActive():
            if counting:
                self._countdown.start()
            else:
                self._countdown.stop()
        self.chart.set_unit(snap.mode)
        self.chart.show_history(self.rates.history, snap.now)
        self._check_drift(snap)
        self.snapshotted.emit(snap)

    def on_watcher_evented(self, batch: EventBatch) -> None:
        self.topology.add_events(batch.events, batch.dropped, skipped=batch.skipped)
        snap = self.last
        if snap is None:  # the first batch can come before the first snapshot: use its own clock
            latest = max((float(e.get("t") or 0) for e in batch.events), default=0.0)
            self.timeline.add(timeline_entries(batch.events, now=latest, uptime_s=latest, name=self.names.name))
        else:
            self.timeline.add(timeline_entries(batch.events, now=snap.now, uptime_s=snap.uptime_s,
                                               name=self.names.name))

    def on_watcher_reachabilityChanged(self, ok: bool, why: str) -> None:
        url = self.client.base_url if self.client else "?"
        self.status.setText(f"watching {url}" if ok else f"admin endpoint unreachable: {why}")
        if not ok:
            self.timeline.add([TimelineEntry(0, self.last.uptime_s if self.last else 0, "info", None,
                                             f"admin endpoint unreachable: {why}")])

    def on_members_modelReset(self) -> None:
        self.table.resizeColumnsToContents()
        header = self.table.horizontalHeader()
        header.resizeSection(COL_STATE, max(header.sectionSize(COL_STATE), self.fontMetrics().horizontalAdvance(
            "down · retry in 120.0 s") + 12))

    def on_members_columnWidened(self, column: int) -> None:
        """A cell outgrew its column (a counter's fifth digit): size that column to its contents again."""
        if column != COL_STATE:  # the state column is sized for its longest countdown already
            self.table.resizeColumnToContents(column)

    def on_countdown_timeout(self) -> None:
        self.members.tick()
        self.topology.tick_countdowns()

    # drift ---------------------------------------------------------------------------------------
    def _check_drift(self, snap: Snapshot) -> None:
        if self.mgmt is not None and self.group is not None and self._saved_task is None \
                and time.monotonic() - self._saved_at >= SAVED_REFRESH_S:
            self._saved_task = self._spawn(self._refresh_saved_then_check())
        self._show_drift(snap)

    async def _refresh_saved_then_check(self) -> None:
        try:
            await self.refresh_saved()
        except Exception as exc:  # the server down or a refusal: say it, keep the last saved group
            from balancedesk.gui.connection import explain

            self.status.setText(f"cannot re-read the saved group: {explain(exc)}")
        finally:
            self._saved_task = None
            self._saved_at = time.monotonic()
        if self.last is not None:
            self._show_drift(self.last)

    async def refresh_saved(self, *, force: bool = False) -> bool:
        """Re-read the saved group (and, with a pool, its endpoints as the pool serves them) from the
        management server. True if it changed. ``force``: without If-None-Match (before Apply)."""
        if self.mgmt is None or self.group is None or not self.group.connector_id:
            return False
        cid = self.group.connector_id
        etag = None if force else (self._saved_etag or None)
        if self.pool:
            answer = await self.mgmt.pool_group(self.pool, cid, if_none_match=etag)
            if answer is None:
                return False
            pg, self._saved_etag = answer
            cfg = pg.config
            group = Connector(connector_id=cid, owner=cfg.owner or self.group.owner, label=cfg.label,
                              connector_group=cfg.connector_group, listener=cfg.listener)
            changed = group != self.group or dict(cfg.endpoints) != self.endpoints
            # our demo members listen where they really do (DemoMembers.moved)
            endpoints = {**cfg.endpoints, **self.demos.running_endpoints()}
            self.group, self.endpoints, self.saved_version = group, endpoints, pg.version
            return changed
        got = (await self.mgmt.get_connector(cid)) if etag is None else (
            await self.mgmt.get_connector_if_changed(cid, etag))
        if got is None:
            return False
        group, self._saved_etag = got
        changed = group != self.group
        self.group = group
        return changed

    def _show_drift(self, snap: Snapshot) -> None:
        if self.group is None:
            return
        diffs = differences(self.group, self.endpoints, snap, self.names.name)
        if diffs != self.drift:
            self.drift = diffs
            more = f" (+{len(diffs) - 3} more)" if len(diffs) > 3 else ""
            self.drift_label.setText("; ".join(diffs[:3]) + more)
        self._update_banners()

    def on_apply_config_clicked(self) -> None:
        self._spawn(self.apply_saved_config())

    async def apply_saved_config(self) -> bool:
        """Push the saved group (re-read from the server first) to the watched balancer — only if it runs
        that group. False, with a sentence in the status bar, when refused or failed."""
        if self.group is None or self.client is None:
            self._say("apply refused: not watching a balancer")
            return False
        snap = self.last or await self.client.snapshot()
        refusal = apply_refusal(self.group, snap)
        if refusal:
            self._say(refusal)
            return False
        if self.mgmt is not None:
            try:
                await self.refresh_saved(force=True)
            except Exception as exc:
                from balancedesk.gui.connection import explain

                self._say(f"apply refused: the saved group could not be re-read from the server: {explain(exc)}")
                return False
        if not isinstance(self.client, AdminClient):
            self._say("apply refused: this engine takes a config by deploy (balancedesk haproxy deploy)")
            return False
        try:
            version = await self.client.put_config(balancer_config(self.group, self.endpoints, self.labels))
        except (AdminError, AdminUnavailable) as exc:
            self._say(f"apply failed: {exc}")
            return False
        self.status.setText(f"applied the saved config (version {version})")
        return True

    # acting on members ---------------------------------------------------------------------------
    def set_selected_state(self, state: str) -> None:
        ids = self.selected_member_ids()
        if not ids:
            self._say("select one or more members first")
            return
        self._spawn(self.set_state(ids, state))

    async def set_state(self, member_ids: list[str], state: str) -> None:
        if self.client is None:
            self._say("not watching a balancer")
            return
        client = self.client
        results = await asyncio.gather(*(client.set_state(m, state) for m in member_ids), return_exceptions=True)
        bad = [f"{self.names.name(m)}: {r}" for m, r in zip(member_ids, results, strict=True)
               if isinstance(r, Exception)]
        if bad:
            self._say(f"{state} failed for " + "; ".join(bad))
        else:
            self.status.setText(f"{', '.join(self.names.name(m) for m in member_ids)} → {state}")

    def on_apply_weights_clicked(self) -> None:
        self._spawn(self.apply_weights_live())

    async def apply_weights_live(self) -> None:
        if self.client is None:
            return
        client = self.client
        pending = self.members.pending_weights()
        results = await asyncio.gather(*(client.set_weight(m, w) for m, w in pending.items()),
                                       return_exceptions=True)
        bad = [f"{self.names.name(m)}: {r}" for m, r in zip(pending, results, strict=True) if isinstance(r, Exception)]
        if bad:
            self._say("weight failed for " + "; ".join(bad))
        self.apply_weights.setEnabled(bool(bad))

    # overrides: save to the server or revert -----------------------------------------------------
    def _overrides(self, member_ids: list[str]) -> list[MemberOverride]:
        if self.group is None or self.last is None:
            return []
        found = overrides(self.group, self.last)
        return [o for o in found if o.member_id in member_ids] if member_ids else found

    async def save_to_server(self, member_ids: list[str]) -> bool:
        """Save the live weights of ``member_ids`` (all overrides if empty) as the group's weights on the
        management server; drain/disabled are explained as runtime-only. True if something was saved."""
        if self.mgmt is None or self.group is None or not self.group.connector_id:
            self._say("save to the server: this view has no management server (open it from the main window "
                      "or the Balancers view)")
            return False
        found = self._overrides(member_ids)
        weights = {o.member_id: o.weight for o in found if o.weight is not None}
        runtime = runtime_only_text(found, self.names.name)
        if not weights:
            self._say(runtime or "nothing to save: the chosen members run the saved config")
            return False
        from balancedesk.gui.connection import explain

        try:
            current, etag = await self.mgmt.get_connector(self.group.connector_id)
            await self.mgmt.put_connector(with_weights(current, weights), if_match=etag)
            await self.refresh_saved(force=True)
        except Exception as exc:
            self._say(f"save to the server failed: {explain(exc)}")
            return False
        saved = ", ".join(f"{self.names.name(m)} weight {w}" for m, w in weights.items())
        self.status.setText(f"saved to the server: {saved}" + (f". {runtime}" if runtime else ""))
        if self.last is not None:
            self._show_drift(self.last)
        return True

    async def revert(self, member_ids: list[str]) -> bool:
        """Set ``member_ids`` (all overrides if empty) back to the saved config's state and weight on the
        balancer. True if every call succeeded."""
        if self.client is None:
            self._say("not watching a balancer")
            return False
        found = self._overrides(member_ids)
        if not found:
            self._say("nothing to revert: the chosen members run the saved config")
            return False
        client = self.client
        calls = [client.set_state(o.member_id, "enabled") for o in found if o.state is not None]
        calls += [client.set_weight(o.member_id, o.saved_weight) for o in found if o.weight is not None]
        results = await asyncio.gather(*calls, return_exceptions=True)
        bad = [str(r) for r in results if isinstance(r, Exception)]
        if bad:
            self._say("revert failed: " + "; ".join(bad))
            return False
        self.status.setText("reverted to the saved config: "
                            + ", ".join(self.names.name(o.member_id) for o in found))
        return True

    def on_demos_moved(self, member_id: str, endpoint: str) -> None:
        """A demo member of ours listens elsewhere than the member's endpoint: the config uses where it is, and a
        balancer we run gets it at once."""
        self.endpoints[member_id] = endpoint
        if self.balancer is not None and isinstance(self.client, AdminClient) and self.group is not None:
            client, config = self.client, balancer_config(self.group, self.endpoints, self.labels)
            self._spawn(client.put_config(config))

    # traffic -------------------------------------------------------------------------------------
    def on_traffic_start_clicked(self) -> None:
        self.start_traffic(self.traffic_panel.rate.value())

    def start_traffic(self, rate: float, *, keys: int | None = None) -> None:
        snap = self.last
        if snap is None:
            self._say("start or attach a balancer first")
            return
        keys = self.traffic_panel.keys.value() if keys is None else keys
        spin = self.traffic_panel.rate
        if spin.value() != round(rate):  # a rate from elsewhere (--traffic, a script) shows in the panel
            blocked = spin.blockSignals(True)
            spin.setValue(round(rate))
            spin.blockSignals(blocked)
        self.traffic.start(target=snap.listen, mode=snap.mode, rate=rate,
                           affinity_header=snap.affinity_header, keys=keys)
        self.traffic_panel.start.setEnabled(False)
        self.traffic_panel.stop.setEnabled(True)

    def on_traffic_stop_clicked(self) -> None:
        self.traffic.stop()

    def on_traffic_rate_valueChanged(self, rate: int) -> None:
        if self.traffic.running:
            self.start_traffic(rate)

    def on_traffic_reported(self, stats: dict[str, Any]) -> None:
        p50 = stats.get("p50_ms")
        lat = f" · p50 {p50:.1f} ms" if isinstance(p50, int | float) else ""
        self.traffic_panel.stats.setText(f"{stats.get('rate', 0):.0f}/s · ok {stats.get('ok', 0)} · "
                                         f"failed {stats.get('failed', 0)}{lat}")

    def on_traffic_stopped(self) -> None:
        if not self.traffic.running:
            self.traffic_panel.start.setEnabled(True)
            self.traffic_panel.stop.setEnabled(False)

    # closing -------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every child we started (by its PID) and the watcher. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._countdown.stop()
        if self.watcher is not None:
            self.watcher.cancel()
        self.traffic.stop_now()  # SIGTERM, waited for, SIGKILL after a grace (demos.py's ownership rules)
        if self.balancer is not None:
            self.balancer.kill_now()
            self.balancer = None
        self.demos.stop_all()
        for task in list(self._tasks):
            task.cancel()
        client = self.client
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_event_loop()
            if not loop.is_closed():
                if client is not None:
                    _CLOSING.add(loop.create_task(client.aclose()))
                _CLOSING.add(loop.create_task(self.demos.aclose()))
                for task in _CLOSING:
                    task.add_done_callback(_CLOSING.discard)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _in_background(self) -> bool:
        return not self.isVisible() or self.isMinimized()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.WindowStateChange and self.watcher is not None:
            self.watcher.background = self._in_background()  # minimised: poll slowly
        super().changeEvent(event)

    def showEvent(self, event: QShowEvent) -> None:
        if self.watcher is not None:
            self.watcher.background = False
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        if self.watcher is not None:
            self.watcher.background = True
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


async def close_all_live_windows() -> None:
    """Close every open live window (each kills the children it started, by PID) and wait for the calls
    their closing left running (client and demo-control ``aclose``), so none outlives the loop."""
    from PySide6.QtWidgets import QApplication

    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, LiveWindow):
            widget.shutdown()
            widget.close()
    if _CLOSING:
        await asyncio.gather(*list(_CLOSING), return_exceptions=True)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, indent=2)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


