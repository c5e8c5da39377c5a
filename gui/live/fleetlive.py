"""The live view of one group across every balancer instance of its pool that serves it.

:class:`FleetLiveWindow` is the :class:`~balancedesk.gui.live.window.LiveWindow` (same table, topology,
chart, timeline) fed by a :class:`~balancedesk.gui.live.fleetwatch.GroupFleetWatcher` instead of one
watcher: each instance's snapshot re-runs the pure :func:`~balancedesk.gui.live.aggregate.aggregate`, whose
merged snapshot the widgets draw and whose rows fill the per-instance breakdown under the member table.
Events go to the timeline tagged with the instance's short name, on one clock (the uptime of the
longest-running instance).

Acting (the rules):

* Drain / Disable / Enable, Apply weights and Revert go to **every instance not lost** by default, or to
  the one chosen in "Act on"; the status line says what was done where and which instance failed (and why).
* **Revert** drops, on each target instance, that instance's own overrides of the chosen members (all
  overridden members if none is chosen): ``DELETE …/overrides/{memberID}``.
* **Save to the server** saves the live weights of the chosen members (all overridden ones if none is
  chosen) as the group's saved weights — once, on the management server — refusing when the target
  instances run different live weights for one member (it names them). It then waits (up to
  :data:`SAVE_SETTLE_S`) for each instance to apply the new version and drops the weight overrides that now
  equal the saved weight there; a member also drained or disabled keeps its override (runtime-only).
* **Drift** is per instance: its applied version against the saved one, and the differences between its
  snapshot and the saved group. **Apply saved config** pushes only to instances that do not follow the
  server (a following one refuses ``PUT /admin/config`` and catches up by itself) and checks each
  instance's running group ID first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from balancedesk.core.model import Connector
from balancedesk.gui.live.admin import AdminClient, AdminError, AdminUnavailable, EventBatch, Snapshot
from balancedesk.gui.live.aggregate import Aggregate, aggregate
from balancedesk.gui.live.breakdown import BreakdownModel
from balancedesk.gui.live.drift import apply_refusal, balancer_config, differences
from balancedesk.gui.live.fleetwatch import GroupFleetWatcher
from balancedesk.gui.live.models import TimelineEntry, timeline_entries
from balancedesk.gui.live.overrides import overrides, runtime_only_text, with_weights
from balancedesk.gui.live.window import LiveWindow
from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from balancedesk.core.client import MgmtClient

SAVE_SETTLE_S = 10.0  # how long "Save to the server" waits for each instance to apply the saved version
ALL = ""  # the "Act on" choice meaning every instance
BREAKDOWN_ROWS = 5  # instances shown in the breakdown before it scrolls


class FleetLiveWindow(LiveWindow):
    """Live view of ``group`` on every instance of ``pool`` that serves it.

    Signals (besides LiveWindow's): ``aggregated(object)`` with each new
    :class:`~balancedesk.gui.live.aggregate.Aggregate`; ``acted(str)`` with the sentence of an action done.
    """

    aggregated = Signal(object)
    acted = Signal(str)

    def __init__(self, *, group: Connector, endpoints: Mapping[str, str], mgmt: MgmtClient, pool: str,
                 parent: QWidget | None = None, refresh_s: float | None = None) -> None:
        super().__init__(group=group, endpoints=endpoints, parent=parent, mgmt=mgmt, pool=pool)
        assert group.connector_id
        self.agg: Aggregate = Aggregate(None, ())
        self.acted_on: list[str] = []  # the instances the last action succeeded on (their short names)
        self.fleet = GroupFleetWatcher(mgmt, pool=pool, connector_id=group.connector_id, parent=self,
                                       **({"refresh_s": refresh_s} if refresh_s is not None else {}))
        self._build_fleet()
        self.fleet.instancesChanged.connect(self.on_fleet_instancesChanged)
        self.fleet.snapshotted.connect(self.on_fleet_snapshotted)
        self.fleet.evented.connect(self.on_fleet_evented)
        self.fleet.reachabilityChanged.connect(self.on_fleet_reachabilityChanged)
        self.fleet.failed.connect(self.status.setText)
        self._retitle()
        self.fleet.start()

    # construction --------------------------------------------------------------------------------
    def _build_fleet(self) -> None:
        self.run_panel.hide()  # the instances come from the fleet: nothing to run or attach here
        self.demo_panel.hide()
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.fleet_summary = QLabel("Looking for the balancers of the pool…")
        self.fleet_summary.setAccessibleName("Instances summary")
        head.addWidget(self.fleet_summary, 1)
        head.addWidget(QLabel("Act on:"))
        self.act_on = QComboBox()
        self.act_on.setAccessibleName("Act on")
        self.act_on.setToolTip("the instances the buttons below act on: all of them, or one")
        self.act_on.addItem("all instances", ALL)
        head.addWidget(self.act_on)
        lay.addLayout(head)
        self.breakdown = BreakdownModel(self)
        self.breakdown_view = QTableView()
        self.breakdown_view.setModel(self.breakdown)
        self.breakdown_view.setAccessibleName("Instances")
        self.breakdown_view.verticalHeader().hide()
        self.breakdown_view.setWordWrap(False)
        self.breakdown_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.breakdown_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.breakdown_view.horizontalHeader().setStretchLastSection(True)
        self.breakdown_view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._fit_breakdown()
        self.breakdown_view.doubleClicked.connect(
            lambda i: self.choose_instance(self.breakdown.rows[i.row()].instance_id))
        lay.addWidget(self.breakdown_view)
        # under the member table, in whatever box layout holds it
        parent = self.table.parentWidget()
        holder = parent.layout() if parent is not None else None
        if isinstance(holder, QBoxLayout):
            holder.insertWidget(holder.indexOf(self.table) + 1, box)
        else:  # a layout without a box: on top of the window's central widget
            central = self.centralWidget()
            assert central is not None and isinstance(central.layout(), QBoxLayout)
            central.layout().insertWidget(0, box)  # type: ignore[union-attr]

    def _retitle(self) -> None:
        label = self.group.label if self.group is not None else "group"
        n = len(self.fleet.watched)
        self.setWindowTitle(f"Live — {label} on {n} balancer{'' if n == 1 else 's'} (pool {self.pool})")

    # choosing where to act -----------------------------------------------------------------------
    def chosen_instance(self) -> str | None:
        value = self.act_on.currentData()
        return None if not value else str(value)

    def choose_instance(self, instance_id: str | None) -> None:
        i = self.act_on.findData(instance_id or ALL)
        if i >= 0:
            self.act_on.setCurrentIndex(i)

    def _targets(self) -> dict[str, AdminClient]:
        return self.fleet.clients(self.chosen_instance())

    def _name(self, instance_id: str) -> str:
        row = next((r for r in self.agg.instances if r.instance_id == instance_id), None)
        return row.name if row is not None else instance_id

    # what the watchers bring ---------------------------------------------------------------------
    def on_fleet_instancesChanged(self, ids: list[str]) -> None:
        chosen = self.chosen_instance()
        self._merge()
        blocked = self.act_on.blockSignals(True)
        self.act_on.clear()
        self.act_on.addItem("all instances", ALL)
        for i in ids:
            self.act_on.addItem(self._name(i), i)
        self.act_on.blockSignals(blocked)
        self.choose_instance(chosen if chosen in ids else None)
        self._retitle()

    def on_fleet_snapshotted(self, instance_id: str, snap: Snapshot) -> None:
        self._merge()

    def _merge(self) -> None:
        self.agg = aggregate(self.fleet.inputs(), now=time.monotonic(), saved_version=self.saved_version)
        resized = len(self.agg.instances) != self.breakdown.rowCount()
        self.breakdown.set_rows(self.agg.instances)
        if resized:
            self._fit_breakdown()
        n, answering = len(self.agg.instances), self.agg.answering
        behind = sum(r.behind for r in self.agg.instances)
        self.fleet_summary.setText(
            f"{n} instance{'' if n == 1 else 's'} serve this group · {answering} answering"
            + (f" · {n - answering} not" if n - answering else "") + (f" · {behind} behind" if behind else ""))
        for r in self.agg.instances:  # names can change as instances come and go
            i = self.act_on.findData(r.instance_id)
            if i >= 0 and self.act_on.itemText(i) != r.name:
                self.act_on.setItemText(i, r.name)
        if self.agg.snapshot is not None:
            self.on_watcher_snapshotted(self.agg.snapshot)
            self.topology.set_balancer(f"{n} balancer{'' if n == 1 else 's'}",
                                       f"{answering} answering · pool {self.pool}", self._load_text())
        self.aggregated.emit(self.agg)

    def _fit_breakdown(self) -> None:
        """As tall as its rows (up to :data:`BREAKDOWN_ROWS` of them, then it scrolls)."""
        view = self.breakdown_view
        rows = min(max(1, self.breakdown.rowCount()), BREAKDOWN_ROWS)
        header = max(view.horizontalHeader().height(), view.horizontalHeader().sizeHint().height())
        view.setFixedHeight(header + rows * view.verticalHeader().defaultSectionSize() + 2 * view.frameWidth())

    def _load_text(self) -> str:
        snap = self.agg.snapshot
        assert snap is not None
        what = "req/s" if snap.mode == "http" else "conn/s"
        return f"{sum(self.rates.rates.values()):.1f} {what} · active {snap.totals.get('active', 0)}"

    def _clock(self) -> float:
        """The timeline's clock: the uptime of the longest-running instance (one clock for every instance's
        events, so their times can be compared)."""
        return self.agg.snapshot.uptime_s if self.agg.snapshot is not None else 0.0

    def on_fleet_evented(self, instance_id: str, batch: EventBatch) -> None:
        self.topology.add_events(batch.events, batch.dropped, skipped=batch.skipped)
        w = self.fleet.watched.get(instance_id)
        snap = w.last if w is not None else None
        if snap is None:  # events before its first snapshot: on their own clock
            latest = max((float(e.get("t") or 0) for e in batch.events), default=0.0)
            now, up = latest, latest
        else:  # an event ``now - t`` seconds ago on that instance, placed on the shared clock
            now, up = snap.now, max(self._clock(), snap.uptime_s)
        name = self._name(instance_id)
        self.timeline.add([TimelineEntry(e.t, e.ago_base, e.kind, e.member_id, f"{name} · {e.text}")
                           for e in timeline_entries(batch.events, now=now, uptime_s=up)])

    def on_fleet_reachabilityChanged(self, instance_id: str, ok: bool, why: str) -> None:
        name = self._name(instance_id)
        w = self.fleet.watched.get(instance_id)
        if ok and (w is None or w.last is None):  # its first answer: nothing to say "again" about
            self._merge()
            return
        up = self._clock()
        text = f"{name} answers again" if ok else f"{name} not answering: {why}"
        self.timeline.add([TimelineEntry(0, up, "recovered" if ok else "info", None, text)])
        self._merge()

    # drift, per instance -------------------------------------------------------------------------
    def _show_drift(self, snap: Snapshot) -> None:
        if self.group is None:
            return
        lines: list[str] = []
        for r in self.agg.instances:
            w = self.fleet.watched.get(r.instance_id)
            if w is None or w.last is None or not w.reachable:
                continue
            diffs = differences(self.group, self.endpoints, w.last, self.names.name)
            if r.behind:
                diffs.insert(0, f"applied v{r.applied}, saved v{r.saved}")
            lines += [f"{r.name}: {d}" for d in diffs]
        if lines != self.drift:
            self.drift = lines
            more = f" (+{len(lines) - 3} more)" if len(lines) > 3 else ""
            self.drift_label.setText("<b>Instances differ from the saved group:</b> " + "; ".join(lines[:3]) + more)
            self.drift_banner.setVisible(bool(lines))
        following = all(w.last is None or w.last.control_plane is not None for w in self.fleet.watched.values())
        self.apply_config.setVisible(not following)  # followers catch up by themselves

    async def apply_saved_config(self) -> bool:
        """Push the saved group to each target instance that does not follow the server, after checking the
        group it runs. True if every target that could take it did."""
        if self.group is None:
            return False
        try:
            await self.refresh_saved(force=True)
        except Exception as exc:
            from balancedesk.gui.connection import explain

            self._say(f"apply refused: the saved group could not be re-read from the server: {explain(exc)}")
            return False
        group = self.group
        done: list[str] = []
        refused: list[str] = []

        async def one(i: str, client: AdminClient) -> None:
            w = self.fleet.watched[i]
            snap = w.last or await client.snapshot()
            if snap.control_plane is not None:
                done.append(f"{self._name(i)} follows the server (catches up by itself)")
                return
            why = apply_refusal(group, snap)
            if why:
                refused.append(f"{self._name(i)}: {why}")
                return
            version = await client.put_config(balancer_config(group, self.endpoints))
            done.append(f"{self._name(i)} applied (version {version})")

        failed = await self._each(one)
        text = "; ".join(done + refused + failed) or "no instance to apply to"
        if refused or failed:
            self._say(text)
            return False
        self._acted(text)
        return True

    # acting on members, on every instance or one ------------------------------------------------
    async def _each(self, act: Callable[[str, AdminClient], Awaitable[None]]) -> list[str]:
        """Run ``act`` on every target instance at once; the sentences of those that failed. The names of
        the instances it succeeded on are kept in ``self.acted_on`` for :meth:`_where`."""
        targets = self._targets()
        results = await asyncio.gather(*(act(i, c) for i, c in targets.items()), return_exceptions=True)
        self.acted_on = [self._name(i) for i, r in zip(targets, results, strict=True)
                         if not isinstance(r, BaseException)]
        return [f"{self._name(i)} failed: {_why(r)}" for i, r in zip(targets, results, strict=True)
                if isinstance(r, BaseException)]

    def _where(self, failed: list[str]) -> str:
        """`` on a, b; c failed: why`` after the last :meth:`_each`."""
        ok = self.acted_on
        return (f" on {', '.join(ok)}" if ok else "") + ("; " + "; ".join(failed) if failed else "")

    def _acted(self, text: str) -> None:
        self.status.setText(text)
        self.acted.emit(text)

    async def set_state(self, member_ids: list[str], state: str) -> None:
        if not self._targets():
            self._say("no instance to act on")
            return

        async def one(_i: str, client: AdminClient) -> None:
            await asyncio.gather(*(client.set_state(m, state) for m in member_ids))

        failed = await self._each(one)
        text = f"{', '.join(self.names.name(m) for m in member_ids)} → {state}{self._where(failed)}"
        if failed:
            self._say(text)
        else:
            self._acted(text)

    async def apply_weights_live(self) -> None:
        pending = self.members.pending_weights()
        if not pending:
            return

        async def one(_i: str, client: AdminClient) -> None:
            await asyncio.gather(*(client.set_weight(m, w) for m, w in pending.items()))

        failed = await self._each(one)
        text = "weights " + ", ".join(f"{self.names.name(m)} {w}" for m, w in pending.items()) + self._where(failed)
        if failed:
            self._say(text)
        else:
            self._acted(text)
        self.apply_weights.setEnabled(bool(failed))

    async def revert(self, member_ids: list[str]) -> bool:
        """Drop each target instance's own overrides of ``member_ids`` (all its overrides if empty)."""
        if self.group is None:
            return False
        group = self.group
        reverted: dict[str, list[str]] = {}

        async def one(i: str, client: AdminClient) -> None:
            w = self.fleet.watched[i]
            snap = w.last or await client.snapshot()
            mine = [o.member_id for o in overrides(group, snap) if not member_ids or o.member_id in member_ids]
            await asyncio.gather(*(client.revert(m) for m in mine))
            if mine:
                reverted[self._name(i)] = mine

        failed = await self._each(one)
        if not reverted and not failed:
            self._say("nothing to revert: the chosen members run the saved config")
            return False
        done = "; ".join(f"{', '.join(ms)} on {name}" for name, ms in sorted(reverted.items()))
        text = (f"reverted to the saved config: {done}" if done else "nothing reverted") + (
            "; " + "; ".join(failed) if failed else "")
        if failed:
            self._say(text)
            return False
        self._acted(text)
        return True

    async def save_to_server(self, member_ids: list[str]) -> bool:
        """Save the live weights of ``member_ids`` (every overridden member if empty), as the target
        instances run them, as the group's saved weights; then clear those weight overrides where applied."""
        if self.mgmt is None or self.group is None or not self.group.connector_id:
            return False
        group, cid = self.group, self.group.connector_id
        targets = self._targets()
        live: dict[str, dict[str, int]] = {}  # member → instance name → live weight
        found_all = []
        for i in targets:
            w = self.fleet.watched[i]
            if w.last is None or not w.reachable:
                continue
            found = [o for o in overrides(group, w.last) if not member_ids or o.member_id in member_ids]
            found_all += found
            for o in found:
                if o.weight is not None:
                    live.setdefault(o.member_id, {})[self._name(i)] = o.weight
        mixed = {m: ws for m, ws in live.items() if len(set(ws.values())) > 1}
        if mixed:
            said = "; ".join(f"{self.names.name(m)}: " + ", ".join(f"{w} on {n}" for n, w in sorted(ws.items()))
                             for m, ws in mixed.items())
            self._say(f"save to the server refused: the instances run different live weights ({said}); "
                      "choose one instance in “Act on” to save its weights")
            return False
        weights = {m: next(iter(ws.values())) for m, ws in live.items()}
        runtime = runtime_only_text({o.member_id: o for o in found_all if o.state is not None}.values(),
                                    self.names.name)
        if not weights:
            self._say(runtime or "nothing to save: the chosen members run the saved config")
            return False
        from balancedesk.gui.connection import explain

        try:
            current, etag = await self.mgmt.get_connector(cid)
            await self.mgmt.put_connector(with_weights(current, weights), if_match=etag)
            await self.refresh_saved(force=True)
        except Exception as exc:
            self._say(f"save to the server failed: {explain(exc)}")
            return False
        version = self.saved_version
        cleared: list[str] = []
        pending: list[str] = []

        async def settle(i: str, client: AdminClient) -> None:
            deadline = time.monotonic() + SAVE_SETTLE_S
            while True:
                snap = await client.snapshot()
                if version is None or (snap.server_version or 0) >= version:
                    break
                if time.monotonic() > deadline:
                    pending.append(f"{self._name(i)} has not applied v{version} yet (its live weights stay "
                                   "overrides there)")
                    return
                await asyncio.sleep(0.1)
            drop = [m for m, wt in weights.items() if (ms := snap.member(m)) is not None
                    and ms.weight == wt and ms.admin == "enabled"]
            await asyncio.gather(*(client.revert(m) for m in drop))
            cleared.append(self._name(i))

        failed = await self._each(settle)
        saved = ", ".join(f"{self.names.name(m)} weight {w}" for m, w in weights.items())
        text = f"saved to the server: {saved} (version {version})"
        if cleared:
            text += f"; applied on {', '.join(sorted(cleared))}"
        text += "".join(f"; {p}" for p in pending + failed) + (f". {runtime}" if runtime else "")
        if failed or pending:
            self._say(text)
        else:
            self._acted(text)
        if self.last is not None:
            self._show_drift(self.last)
        return True

    # traffic goes to the chosen instance's listener (the first answering one for "all") ----------
    def start_traffic(self, rate: float, *, keys: int | None = None) -> None:
        chosen = self.chosen_instance()
        w = self.fleet.watched.get(chosen) if chosen else next(
            (w for w in self.fleet.watched.values() if w.reachable and w.last is not None), None)
        if w is not None and w.last is not None:
            self.last = w.last
        super().start_traffic(rate, keys=keys)
        if self.agg.snapshot is not None:
            self.last = self.agg.snapshot

    # shown / hidden / closing --------------------------------------------------------------------
    def showEvent(self, event: QShowEvent) -> None:
        self.fleet.set_background(False)
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self.fleet.set_background(True)
        super().hideEvent(event)

    def shutdown(self) -> None:
        if not self._closed:
            self.fleet.cancel()
            from balancedesk.gui.live.window import _CLOSING

            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_event_loop()
                if not loop.is_closed():
                    task = loop.create_task(self.fleet.aclose())
                    _CLOSING.add(task)
                    task.add_done_callback(_CLOSING.discard)
        super().shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


def _why(exc: BaseException) -> str:
    if isinstance(exc, AdminError | AdminUnavailable):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def open_fleet_live_view(*, parent: QWidget | None, group: Connector, endpoints: Mapping[str, str],
                         mgmt: MgmtClient, pool: str) -> FleetLiveWindow:
    """Open (show) and return the aggregated live view of ``group`` on every balancer of ``pool`` serving it
    (its buttons act on all of them until one is chosen). A top-level window even with a parent."""
    from PySide6.QtCore import Qt

    win = FleetLiveWindow(group=group, endpoints=endpoints, mgmt=mgmt, pool=pool, parent=parent)
    if parent is not None:
        win.setWindowFlag(Qt.WindowType.Window, True)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, parent is not None)
    win.show()
    return win


FLEET_BUTTON = "watchFleet"  # the object name of the button :func:`offer_fleet_view` adds


def offer_fleet_view(win: LiveWindow, mgmt: MgmtClient, pool: str) -> asyncio.Task[int]:
    """For a one-balancer live view of a group with a pool (the main window's): ask the server which balancers
    of ``pool`` serve the group and, if any, add "Watch all N balancers of pool P" to its run panel — it opens
    the aggregated view. The task's result is N (0: nothing offered; the server unreachable: said inline)."""

    async def ask() -> int:
        from balancedesk.gui.connection import explain

        group = win.group
        if group is None or not group.connector_id:
            return 0
        try:
            balancers = await mgmt.list_balancers(pool=pool)
        except Exception as exc:  # a refusal or the server down: the one-balancer view still works
            win.status.setText(f"cannot list the balancers of pool {pool}: {explain(exc)}")
            return 0
        n = sum(1 for b in balancers if any(g.connector_id == group.connector_id and not g.error
                                            for g in b.groups))
        if n:
            from PySide6.QtWidgets import QPushButton

            button = QPushButton(f"Watch all {n} balancer{'' if n == 1 else 's'} of pool {pool}")
            button.setObjectName(FLEET_BUTTON)
            button.setToolTip("the live view of this group on every balancer of its pool that serves it: "
                              "summed, per instance, and controls that act on all of them or one")
            button.clicked.connect(lambda: open_fleet_live_view(
                parent=win.parentWidget(), group=win.group or group, endpoints=win.endpoints, mgmt=mgmt, pool=pool))
            layout = win.run_panel.layout()
            if layout is not None:
                layout.addWidget(button)
        return n

    return win._spawn(ask())


__all__ = ["FleetLiveWindow", "offer_fleet_view", "open_fleet_live_view"]
