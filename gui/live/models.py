"""Qt item models of the live view. A plain Python list is the truth; the models adapt it.

* :class:`MemberTableModel` — one row per member of the running balancer: the member by label with its
  badge (the ID on hover and in a column that can be shown), state (with the countdown to re-enable),
  weight (editable: a pending live weight), active / total, rate, errors, L7 answers by status class,
  the total time the member was out, p50/p99, actual vs configured share.
* :class:`TimelineModel` — failover, health, admin and config events, newest first, bounded.

Members are named by :class:`~balancedesk.gui.live.names.MemberNames` — the same object the topology,
the chart and the demo panel ask — so every panel of the window calls a member the same.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from balancedesk.core.model import WEIGHT_MAX
from balancedesk.core.proxy.contract import STATUS_CLASSES
from balancedesk.gui.badges import app_dpr
from balancedesk.gui.live.admin import MemberSnap
from balancedesk.gui.live.names import MemberNames
from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

_Index = QModelIndex | QPersistentModelIndex

STATE_COLORS = {
    "up": QColor("#2e7d32"),
    "down": QColor("#c62828"),
    "draining": QColor("#ef6c00"),
    "disabled": QColor("#616161"),
}
L7_CLASSES = tuple(k for k in STATUS_CLASSES if k != "1xx")  # the columns an http group shows (2xx..5xx)
COLUMNS = ("Member", "ID", "Endpoint", "State", "Weight", "Active", "Total", "Rate/s", "Errors",
           *L7_CLASSES, "Down for", "p50 ms", "p99 ms", "Share act / cfg")
(COL_MEMBER, COL_ID, COL_ENDPOINT, COL_STATE, COL_WEIGHT, COL_ACTIVE, COL_TOTAL, COL_RATE,
 COL_ERRORS) = range(9)
COL_CLASSES = {k: COLUMNS.index(k) for k in L7_CLASSES}  # "2xx" → its column
COL_DOWN, COL_P50, COL_P99, COL_SHARE = (COLUMNS.index(c) for c in ("Down for", "p50 ms", "p99 ms",
                                                                      "Share act / cfg"))
HIDDEN_AT_FIRST = (COL_ID,)  # shown from the header's context menu
L7_ONLY = tuple(COL_CLASSES.values())  # hidden while the balancer runs a tcp group
HEADER_TIPS = {
    COL_MEMBER: "the member's label and badge, as in the editor; its ID on hover",
    COL_ID: "the member's connector ID",
    COL_ERRORS: "connects or requests to this member that failed (the balancer failed over or answered 502/504)",
    COL_DOWN: "total time this member was out since the balancer started, a current outage included",
    COL_SHARE: "share of new connections: actual (so far) / configured (by weight or sequence)",
    **{c: f"answers this member sent with a {k} status (L7)" for k, c in COL_CLASSES.items()},
}
def state_text(m: MemberSnap, retry_in_s: float | None, elapsed: float = 0.0) -> str:
    """The State cell: the state, a retry countdown while one runs, the last health check if any."""
    state = m.state
    text = state
    if state == "down" and retry_in_s is not None:
        text = f"down · retry in {max(0.0, retry_in_s):.1f} s"
    check = m.check_text(elapsed)
    return f"{text} · {check}" if check else text


def _percent(share: float) -> str:
    """A share as a percentage; one decimal where a share that is not 0 would read "0 %"."""
    return f"{share * 100:.1f} %" if 0 < share < 0.005 else f"{share * 100:.0f} %"


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def downtime_text(seconds: float) -> str:
    """Total time out, as HAProxy's stats page counts it: "–" never, "4.2 s", "3m 07s", "2h 05m", "3d 04h"."""
    if seconds <= 0:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s // 60 % 60:02d}m"
    return f"{s // 86400}d {s // 3600 % 24:02d}h"


class MemberTableModel(QAbstractTableModel):
    """Members of the running balancer.

    Signals: ``weightEdited(str, int)`` when a person types a new weight (pending until applied);
    ``columnWidened(int)`` when a column got a text longer than any it showed before (the view sizes that
    column to its contents again, so "1234" never shows as "12…").
    """

    weightEdited = Signal(str, int)
    columnWidened = Signal(int)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[MemberSnap] = []
        self._rates: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self._received = time.monotonic()
        self._cells: list[list[str]] = []  # what the view was last told, per row and column
        self._widest = [0] * len(COLUMNS)  # the longest text each column showed, in characters
        self.names = MemberNames()

    # the truth -----------------------------------------------------------------------------------
    def members(self) -> list[MemberSnap]:
        return list(self._rows)

    def member_ids(self) -> list[str]:
        return [m.member_id for m in self._rows]

    def pending_weights(self) -> dict[str, int]:
        return dict(self._pending)

    def clear_pending(self) -> None:
        self._pending.clear()
        if self._rows:
            self._changed(COL_WEIGHT, COL_WEIGHT)

    def set_names(self, names: MemberNames) -> None:
        """Name (and badge) the members as ``names`` says; repaints the member column if that changed."""
        if names == self.names:
            return
        self.names = names
        if self._rows:
            self._changed(COL_MEMBER, COL_MEMBER)

    def retry_in(self, m: MemberSnap) -> float | None:
        """Seconds until ``m`` is tried again, counted down locally since the snapshot arrived."""
        if m.retry_in_s is None:
            return None
        return max(0.0, m.retry_in_s - (time.monotonic() - self._received))

    def update(self, members: Iterable[MemberSnap], rates: Mapping[str, float]) -> None:
        rows = list(members)
        self._received = time.monotonic()
        self._rates = dict(rates)
        if [m.member_id for m in rows] != [m.member_id for m in self._rows]:
            self.beginResetModel()
            self._rows = rows
            self._pending = {k: v for k, v in self._pending.items() if k in self.member_ids()}
            self._cells = [[self._display(m, c) for c in range(len(COLUMNS))] for m in rows]
            self.endResetModel()
            for row in self._cells:
                for c, text in enumerate(row):
                    self._widest[c] = max(self._widest[c], len(text))
            return
        old = self._rows
        self._rows = rows
        for mid, w in list(self._pending.items()):
            m = next(r for r in rows if r.member_id == mid)
            if m.weight == w:  # applied
                del self._pending[mid]
        for r, (was, now) in enumerate(zip(old, rows, strict=True)):
            self._refresh_row(r, force_state=was.state != now.state)

    def tick(self) -> None:
        """Repaint the countdowns between snapshots (only the cells whose text changed)."""
        for r, m in enumerate(self._rows):
            if m.retry_in_s is not None or m.check_ago_s is not None:
                self._refresh_row(r, columns=(COL_STATE,))

    def _refresh_row(self, r: int, *, columns: Iterable[int] = range(len(COLUMNS)), force_state: bool = False) -> None:
        """Tell the view about the cells of row ``r`` whose text changed, one ``dataChanged`` per run of
        adjacent columns, so it repaints those cells and nothing else."""
        m, cells = self._rows[r], self._cells[r]
        run: list[int] = []
        wider: list[int] = []
        for c in columns:
            text = self._display(m, c)
            if text != cells[c] or (force_state and c == COL_STATE):  # the state's colour may change alone
                cells[c] = text
                if len(text) > self._widest[c]:
                    self._widest[c] = len(text)
                    wider.append(c)
                if run and run[-1] != c - 1:
                    self.dataChanged.emit(self.index(r, run[0]), self.index(r, run[-1]))
                    run = []
                run.append(c)
        if run:
            self.dataChanged.emit(self.index(r, run[0]), self.index(r, run[-1]))
        for c in wider:
            self.columnWidened.emit(c)

    def _changed(self, c0: int, c1: int) -> None:
        for r, m in enumerate(self._rows):
            for c in range(c0, c1 + 1):
                self._cells[r][c] = self._display(m, c)
        if self._rows:
            self.dataChanged.emit(self.index(0, c0), self.index(len(self._rows) - 1, c1))
        for c in range(c0, c1 + 1):
            widest = max((len(row[c]) for row in self._cells), default=0)
            if widest > self._widest[c]:
                self._widest[c] = widest
                self.columnWidened.emit(c)

    # Qt model API --------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        horizontal = orientation == Qt.Orientation.Horizontal
        if role == Qt.ItemDataRole.DisplayRole and horizontal and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and horizontal:
            return HEADER_TIPS.get(section)
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == COL_WEIGHT:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:  # the common case on every repaint: the text already made
            return self._cells[index.row()][col]
        m = self._rows[index.row()]
        if role == Qt.ItemDataRole.EditRole and col == COL_WEIGHT:
            return self._pending.get(m.member_id, m.weight)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATE:
            return QBrush(STATE_COLORS.get(m.state, QColor("black")))
        if role == Qt.ItemDataRole.DecorationRole and col == COL_MEMBER:
            return self.names.chip(m.member_id, 18, dpr=app_dpr())
        if role == Qt.ItemDataRole.FontRole and col == COL_WEIGHT and m.member_id in self._pending:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_WEIGHT and m.member_id in self._pending:
                return f"pending: running weight is {m.weight}; press Apply weights"
            if col in (COL_MEMBER, COL_ID, COL_ENDPOINT):
                return self.names.tooltip(m.member_id, m.endpoint)
            return None
        if role == Qt.ItemDataRole.AccessibleTextRole and col == COL_MEMBER:
            return f"member {self.names.letter(m.member_id)}: {self.names.name(m.member_id)}, {m.state}"
        if role == Qt.ItemDataRole.UserRole:
            return m.member_id
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= COL_WEIGHT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, m: MemberSnap, col: int) -> str:
        return _CELLS[col](self, m)

    def _weight_text(self, m: MemberSnap) -> str:
        pend = self._pending.get(m.member_id)
        return f"{m.weight} → {pend}" if pend is not None else str(m.weight)

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() != COL_WEIGHT:
            return False
        try:
            weight = int(value)
        except (TypeError, ValueError):
            return False
        if not 1 <= weight <= WEIGHT_MAX:
            return False
        m = self._rows[index.row()]
        if weight == m.weight:
            self._pending.pop(m.member_id, None)
        else:
            self._pending[m.member_id] = weight
        self._cells[index.row()][COL_WEIGHT] = self._display(m, COL_WEIGHT)
        self.dataChanged.emit(index, index)
        self.weightEdited.emit(m.member_id, weight)
        return True


def _class_cell(key: str) -> Callable[[MemberTableModel, MemberSnap], str]:
    return lambda _t, m: str(m.status_classes.get(key, 0)) if m.status_classes else "–"


# each column's text, in COLUMNS' order (a test checks that every column has one)
_CELLS: tuple[Callable[[MemberTableModel, MemberSnap], str], ...] = (
    lambda t, m: t.names.name(m.member_id),
    lambda _t, m: m.member_id,
    lambda _t, m: m.endpoint,
    lambda t, m: state_text(m, t.retry_in(m), time.monotonic() - t._received),
    lambda t, m: t._weight_text(m),
    lambda _t, m: str(m.active),
    lambda _t, m: str(m.total),
    lambda t, m: f"{t._rates.get(m.member_id, 0.0):.1f}",
    lambda _t, m: str(m.failures),
    *(_class_cell(k) for k in L7_CLASSES),
    lambda _t, m: downtime_text(m.down_total_s),
    lambda _t, m: _ms(m.latency_p50_ms),
    lambda _t, m: _ms(m.latency_p99_ms),
    lambda _t, m: f"{_percent(m.actual_share)} / {_percent(m.configured_share)}",
)


@dataclass(frozen=True)
class TimelineEntry:
    t: float  # the balancer's monotonic seconds
    ago_base: float  # uptime at t, for display
    kind: str  # health / admin / config / failover / info
    member_id: str | None
    text: str


TIMELINE_COLORS = {"health": "#c62828", "failover": "#ef6c00", "admin": "#1565c0", "config": "#6a1b9a",
                   "info": "#424242", "recovered": "#2e7d32"}
TIMELINE_COLORS_DARK = {"health": "#ef5350", "failover": "#ffa726", "admin": "#64b5f6", "config": "#ce93d8",
                        "info": "#bdbdbd", "recovered": "#66bb6a"}  # the same hues, readable on a dark base


class TimelineModel(QAbstractListModel):
    """Failover and health events, newest first, at most ``limit``."""

    def __init__(self, parent: Any = None, *, limit: int = 500) -> None:
        super().__init__(parent)
        self._rows: deque[TimelineEntry] = deque()
        self.limit = limit
        dark = QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128
        self._brushes = {k: QBrush(QColor(v)) for k, v in (TIMELINE_COLORS_DARK if dark else TIMELINE_COLORS).items()}
        self._default = QBrush(QApplication.palette().color(QPalette.ColorRole.Text))
        self.names = MemberNames()  # for the hover text: the member's letter, label and ID

    def entries(self) -> list[TimelineEntry]:
        return list(self._rows)

    def clear(self) -> None:
        """No entries (another balancer is watched from now on)."""
        self.beginResetModel()
        self._rows.clear()
        self.endResetModel()

    def add(self, entries: list[TimelineEntry]) -> None:
        if not entries:
            return
        entries = entries[-self.limit :]
        self.beginInsertRows(QModelIndex(), 0, len(entries) - 1)
        for e in entries:
            self._rows.appendleft(e)
        self.endInsertRows()
        extra = len(self._rows) - self.limit
        if extra > 0:
            self.beginRemoveRows(QModelIndex(), self.limit, len(self._rows) - 1)
            for _ in range(extra):
                self._rows.pop()
            self.endRemoveRows()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        e = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{_clock(e.ago_base)}  {e.text}"
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._brushes.get(e.kind, self._default)
        if role == Qt.ItemDataRole.ToolTipRole and e.member_id:
            return self.names.tooltip(e.member_id)
        if role == Qt.ItemDataRole.DecorationRole:  # the member's badge; a blank one keeps the texts aligned
            dpr = app_dpr()
            return self.names.chip(e.member_id, 14, dpr=dpr) if e.member_id else _blank(14, dpr)
        if role == Qt.ItemDataRole.UserRole:
            return e.kind
        return None


_BLANKS: dict[tuple[int, float], QPixmap] = {}


def _blank(size: int, dpr: float) -> QPixmap:
    if (size, dpr) not in _BLANKS:
        pm = QPixmap(round(size * dpr), round(size * dpr))
        pm.setDevicePixelRatio(dpr)
        pm.fill(Qt.GlobalColor.transparent)
        _BLANKS[size, dpr] = pm
    return _BLANKS[size, dpr]


def _clock(uptime_s: float) -> str:
    s = max(0, int(uptime_s))
    return f"+{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}.{int((uptime_s % 1) * 10)}"


def timeline_entries(events: Iterable[Mapping[str, Any]], *, now: float, uptime_s: float,
                     name: Callable[[str], str] = str) -> list[TimelineEntry]:
    """The events a person wants in the timeline (not every routed connection: those go to the
    topology): health changes, admin changes, config versions, and routes that failed over. ``name``
    turns a memberID into what the window calls that member (:meth:`MemberNames.badged`)."""
    out: list[TimelineEntry] = []

    def called(mid: Any) -> str:
        return name(str(mid)) if mid is not None else "?"

    for ev in events:
        kind = ev.get("kind")
        t = float(ev.get("t") or now)
        up = uptime_s - (now - t)
        mid = ev.get("memberID")
        if kind == "health":
            state = ev.get("state")
            reason = f" ({ev['reason']})" if ev.get("reason") else ""
            if state == "disabled":
                until = ev.get("until")
                wait = f" for {float(until) - t:.1f} s" if until is not None else ""
                out.append(TimelineEntry(t, up, "health", mid, f"{called(mid)} disabled{wait}{reason}"))
            else:
                out.append(TimelineEntry(t, up, "recovered", mid, f"{called(mid)} enabled again{reason}"))
        elif kind == "admin":
            out.append(TimelineEntry(t, up, "admin", mid, f"{called(mid)} set to {ev.get('state')} by an admin"))
        elif kind == "config":
            err = f": {ev['error']}" if ev.get("error") else ""
            out.append(TimelineEntry(t, up, "config", None, f"config version {ev.get('version')}{err}"))
        elif kind == "route":
            attempts = ev.get("attempts") or []
            bad = [a for a in attempts if a.get("outcome") != "ok"]
            if not bad:
                continue
            tried = ", ".join(f"{called(a.get('memberID'))} {a.get('outcome')}" for a in bad)
            if ev.get("outcome") == "ok":
                text = f"failover: {tried} → {called(ev.get('memberID'))}"
            else:
                text = f"connection failed: {tried}"
            out.append(TimelineEntry(t, up, "failover", ev.get("memberID"), text))
    return out
