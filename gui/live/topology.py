"""The topology view: clients → balancer → members, with each routed connection drawn moving to its
member (a failed attempt turns red and ends in ✕), sampled above a rate the eye can follow.

Edge thickness and the rate label on each edge are the aggregate; moving dots are a sample of the
route events (the view says so when it samples). One QTimer (36 fps) runs only while something moves.

Cheap frames, because every CPU-ms the view takes on a busy machine is taken from the balancer it watches
(the animation is most of the view's CPU under load: on the build box 2.7 % of a core without it, 6-7 %
with it, mostly the fixed cost of waking up and painting a frame at all). The dots are not scene items: a
frame computes their positions as plain floats, invalidates only the small rectangles they left and
entered, and ``drawForeground`` draws them with one ``drawPoints`` call per colour (round-capped pens).
Boxes and text are cached as device pixmaps (a frame blits them instead of shaping text again).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from balancedesk.gui.live.admin import MemberSnap, Snapshot
from balancedesk.gui.live.models import STATE_COLORS
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QWidget,
)

MAX_VISIBLE_PER_S = 30.0  # moving dots per second the eye can follow
LEG_S = 0.45  # seconds per leg of a journey
POOL = 160
DOT = 10.0  # dot diameter (scene units)
ANIMATION_OFF = "animation off: routed connections are not drawn; edges, rates and states show the totals"
OK_COLOR = QColor("#1e88e5")
FAIL_COLOR = QColor("#e53935")
IN_COLOR = QColor("#78909c")
NODE_W, NODE_H = 190.0, 74.0
CLIENT_X, BAL_X, MEMBER_X = 10.0, 200.0, 520.0


@dataclass
class _Leg:
    sx: float
    sy: float
    ex: float
    ey: float
    color: int  # QColor.rgba(): the key of the dot's pen
    fail: bool


_PENS: dict[int, QPen] = {}


def _pen(rgba: int) -> QPen:
    pen = _PENS.get(rgba)
    if pen is None:
        pen = _PENS[rgba] = QPen(QColor.fromRgba(rgba), DOT, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
    return pen


@dataclass
class _Journey:
    t0: float
    legs: list[_Leg]
    cross: QGraphicsSimpleTextItem | None = None


def _set_text(item: QGraphicsSimpleTextItem, text: str) -> None:
    """Set a text only when it changed: every setText re-shapes the text and repaints its cache."""
    if item.text() != text:
        item.setText(text)


def _rounded(w: float, h: float, r: float = 10.0) -> QPainterPath:
    path = QPainterPath()
    path.addRoundedRect(QRectF(0, 0, w, h), r, r)
    return path


_CACHE = QGraphicsItem.CacheMode.DeviceCoordinateCache


class _Node:
    def __init__(self, scene: QGraphicsScene, title: str, w: float = NODE_W, h: float = NODE_H) -> None:
        self.box = QGraphicsPathItem(_rounded(w, h))
        self.box.setPen(QPen(QColor("#455a64"), 1.5))
        self.box.setBrush(QBrush(QColor("#eceff1")))
        self.box.setCacheMode(_CACHE)
        scene.addItem(self.box)
        self.w, self.h = w, h
        self.title = QGraphicsSimpleTextItem(title, self.box)
        font = QFont()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setPos(10, 6)
        self.line2 = QGraphicsSimpleTextItem("", self.box)
        self.line2.setPos(10, 27)
        self.line3 = QGraphicsSimpleTextItem("", self.box)
        self.line3.setPos(10, 46)
        self.bar_bg = QGraphicsRectItem(10, h - 8, w - 20, 4, self.box)
        self.bar_bg.setPen(QPen(Qt.PenStyle.NoPen))
        self.bar_bg.setBrush(QBrush(QColor("#ffcdd2")))
        self.bar = QGraphicsRectItem(10, h - 8, w - 20, 4, self.box)
        self.bar.setPen(QPen(Qt.PenStyle.NoPen))
        self.bar.setBrush(QBrush(FAIL_COLOR))
        self.bar_bg.hide()
        self.bar.hide()
        for item in (self.title, self.line2, self.line3):
            item.setCacheMode(_CACHE)
        self._style: tuple[str, str] = ("", "")

    def set_pos(self, x: float, y: float) -> None:
        self.box.setPos(x, y)

    def left(self) -> QPointF:
        p = self.box.pos()
        return QPointF(p.x(), p.y() + self.h / 2)

    def right(self) -> QPointF:
        p = self.box.pos()
        return QPointF(p.x() + self.w, p.y() + self.h / 2)

    def center(self) -> QPointF:
        p = self.box.pos()
        return QPointF(p.x() + self.w / 2, p.y() + self.h / 2)

    def set_style(self, color: QColor, fill: QColor) -> None:
        key = (color.name(), fill.name())
        if key == self._style:  # a new pen repaints (and re-caches) the box even when equal
            return
        self._style = key
        self.box.setPen(QPen(color, 2.5))
        self.box.setBrush(QBrush(fill))

    def set_progress(self, frac: float | None) -> None:
        if frac is None:
            self.bar.hide()
            self.bar_bg.hide()
            return
        frac = min(1.0, max(0.0, frac))
        self.bar.setRect(10, self.h - 8, (self.w - 20) * frac, 4)
        self.bar_bg.show()
        self.bar.show()


class TopologyView(QGraphicsView):
    """The balancer and its members, live. No signals."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self._scene = QGraphicsScene()
        self._scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)  # dots move every frame
        super().__init__(self._scene, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlags(QGraphicsView.OptimizationFlag.DontSavePainterState)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setMinimumSize(420, 260)
        self.frame_times: deque[float] = deque(maxlen=4000)
        self.sampling_note = ""
        self.shown = 0
        self.routed = 0
        self._clients = _Node(self._scene, "clients", 120, NODE_H)
        self._clients.set_pos(CLIENT_X, 0)
        self._balancer = _Node(self._scene, "balancer")
        self._members: dict[str, _Node] = {}
        self._edges: dict[str, QGraphicsLineItem] = {}
        self._edge_labels: dict[str, QGraphicsSimpleTextItem] = {}
        self._in_edge = QGraphicsLineItem()
        self._in_edge.setPen(QPen(QColor("#b0bec5"), 2))
        self._in_edge.setZValue(-1)
        self._scene.addItem(self._in_edge)
        # the texts on the canvas itself follow the theme (the boxes keep their own light fills and dark text)
        pal = self.palette()
        self._label_brush = QBrush(pal.color(QPalette.ColorRole.Text))
        self._note = QGraphicsSimpleTextItem("")
        self._note.setBrush(QBrush(pal.color(QPalette.ColorRole.PlaceholderText)))
        self._note.setCacheMode(_CACHE)
        self._scene.addItem(self._note)
        self._dots: list[tuple[QPen, QPolygonF]] = []  # what drawForeground draws this frame
        self._dot_rects: list[QRectF] = []  # where the dots are: repainted when they move on
        self._crosses: list[QGraphicsSimpleTextItem] = []
        self._journeys: list[_Journey] = []
        self._pending: deque[_Journey] = deque()
        self._snap: Snapshot | None = None
        self._snap_local = 0.0
        self._retry_delay = 0.0
        self._budget = MAX_VISIBLE_PER_S
        self._budget_t = time.monotonic()
        self._edge_style: dict[str, tuple[str, float, bool]] = {}
        self.animated = True  # draw routed connections as moving dots (set_animated)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer may fire 5 % late
        self._timer.setInterval(28)  # 36 fps while something moves: smooth, and a frame every <= 33 ms
        self._timer.timeout.connect(self.on_timer_timeout)
        self._layout([])
        self.set_balancer("balancer", "not running", "")

    # layout --------------------------------------------------------------------------------------
    def _layout(self, ids: Sequence[str]) -> None:
        for mid in list(self._members):
            if mid not in ids:
                self._scene.removeItem(self._members.pop(mid).box)
                self._scene.removeItem(self._edges.pop(mid))
                self._scene.removeItem(self._edge_labels.pop(mid))
        n = max(1, len(ids))
        gap = 22.0
        height = n * NODE_H + (n - 1) * gap
        for i, mid in enumerate(ids):
            node = self._members.get(mid)
            if node is None:
                node = self._members[mid] = _Node(self._scene, mid)
                edge = QGraphicsLineItem()
                edge.setZValue(-1)
                self._scene.addItem(edge)
                self._edges[mid] = edge
                label = QGraphicsSimpleTextItem("")
                label.setBrush(self._label_brush)
                label.setCacheMode(_CACHE)
                self._scene.addItem(label)
                self._edge_labels[mid] = label
            node.set_pos(MEMBER_X, i * (NODE_H + gap))
        mid_y = height / 2 - NODE_H / 2
        self._balancer.set_pos(BAL_X, mid_y)
        self._clients.set_pos(CLIENT_X, mid_y)
        self._in_edge.setLine(self._clients.right().x(), self._clients.right().y(),
                              self._balancer.left().x(), self._balancer.left().y())
        for mid, node in self._members.items():
            a, b = self._balancer.right(), node.left()
            self._edges[mid].setLine(a.x(), a.y(), b.x(), b.y())
            self._edge_labels[mid].setPos((a.x() + b.x()) / 2 - 20, (a.y() + b.y()) / 2 - 18)
        self._note.setPos(CLIENT_X, max(height, NODE_H) + 12)
        self._scene.setSceneRect(QRectF(0, -10, MEMBER_X + NODE_W + 10, max(height, NODE_H) + 50))
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def drawForeground(self, painter: QPainter, rect: QRectF | Any) -> None:
        self.frame_times.append(time.perf_counter())
        for pen, points in self._dots:
            painter.setPen(pen)
            painter.drawPoints(points)

    # state ---------------------------------------------------------------------------------------
    def set_balancer(self, title: str, line2: str, line3: str, *, running: bool = False) -> None:
        _set_text(self._balancer.title, title)
        _set_text(self._balancer.line2, line2)
        _set_text(self._balancer.line3, line3)
        if running:
            self._balancer.set_style(QColor("#1565c0"), QColor("#e3f2fd"))
        else:
            self._balancer.set_style(QColor("#9e9e9e"), QColor("#f5f5f5"))

    def clear(self) -> None:
        self._snap = None
        self._layout([])
        for j in self._journeys:
            self._free(j)
        self._journeys.clear()
        self._pending.clear()
        self._set_dots({}, [])

    def member_node_text(self, member_id: str) -> str:
        node = self._members.get(member_id)
        if node is None:
            return ""
        return "\n".join(t.text() for t in (node.title, node.line2, node.line3))

    def show_snapshot(self, snap: Snapshot, rates: Mapping[str, float], total_rate: float) -> None:
        ids = [m.member_id for m in snap.members]
        if ids != list(self._members):
            self._layout(ids)
        self._snap = snap
        self._snap_local = time.monotonic()
        self._retry_delay = float(snap.group.get("retryDelay") or 0)
        mode = "L7 http" if snap.mode == "http" else "L4 tcp"
        aff = f" · affinity {snap.affinity_header}" if snap.affinity_header else ""
        self.set_balancer(f"balancer {snap.listen}", f"{mode}{aff}",
                          f"{total_rate:.1f}/s · active {snap.totals.get('active', 0)}", running=True)
        top = max(rates.values(), default=0.0)
        for m in snap.members:
            self._style_member(m, rates.get(m.member_id, 0.0))
            width = round(1.0 + (9.0 * rates.get(m.member_id, 0.0) / top if top > 0 else 0.0), 1)
            color = STATE_COLORS.get(m.state, QColor("#90a4ae")) if m.state != "up" else QColor("#90caf9")
            style = (color.name(), width, m.state != "up")
            if self._edge_style.get(m.member_id) != style:  # a new pen repaints the whole edge
                self._edge_style[m.member_id] = style
                pen = QPen(color, width)
                if m.state != "up":
                    pen.setStyle(Qt.PenStyle.DashLine)
                self._edges[m.member_id].setPen(pen)
            _set_text(self._edge_labels[m.member_id], f"{rates.get(m.member_id, 0.0):.1f}/s")
        self._update_note()
        self.tick_countdowns()

    def _style_member(self, m: MemberSnap, rate: float) -> None:
        node = self._members[m.member_id]
        fills = {"up": "#e8f5e9", "down": "#ffebee", "draining": "#fff3e0", "disabled": "#eeeeee"}
        node.set_style(STATE_COLORS.get(m.state, QColor("#9e9e9e")), QColor(fills.get(m.state, "#ffffff")))
        _set_text(node.line3, f"active {m.active} · {rate:.1f}/s · err {m.failures}")

    def tick_countdowns(self) -> None:
        snap = self._snap
        if snap is None:
            return
        elapsed = time.monotonic() - self._snap_local
        for m in snap.members:
            node = self._members.get(m.member_id)
            if node is None:
                continue
            if m.state == "down" and m.retry_in_s is not None:
                left = max(0.0, m.retry_in_s - elapsed)
                _set_text(node.line2, f"DOWN · retry in {left:.1f} s")
                node.set_progress(left / self._retry_delay if self._retry_delay > 0 else None)
            else:
                words = {"up": "up", "down": "down", "draining": "draining (no new)", "disabled": "disabled by admin"}
                _set_text(node.line2, f"{words.get(m.state, m.state)} · weight {m.weight}")
                node.set_progress(None)

    # journeys ------------------------------------------------------------------------------------
    def set_animated(self, on: bool) -> None:
        """Moving dots on or off. Off, the view draws no frames between snapshots: the edges, rates and
        states still show everything, and the view's CPU falls to what the snapshots cost."""
        if on == self.animated:
            return
        self.animated = on
        if not on:
            for j in self._journeys:
                self._free(j)
            self._journeys.clear()
            self._pending.clear()
            self._timer.stop()
            self._set_dots({}, [])
        self.sampling_note = "" if on else ANIMATION_OFF
        self._update_note()

    def add_events(self, events: Sequence[Mapping[str, Any]], dropped: int = 0, *, skipped: int = 0) -> None:
        """Schedule dots for a sample of ``events``' routes. ``dropped``: routes the balancer sampled away;
        ``skipped``: routes it did not send because only the newest were asked for."""
        routes = [e for e in events if e.get("kind") == "route"]
        self.routed += len(routes) + dropped + skipped
        if not self.animated:
            return
        now = time.monotonic()
        self._budget = min(MAX_VISIBLE_PER_S, self._budget + (now - self._budget_t) * MAX_VISIBLE_PER_S)
        self._budget_t = now
        allowed = int(self._budget)
        if len(routes) > allowed:
            failed = [e for e in routes if any(a.get("outcome") != "ok" for a in e.get("attempts") or [])]
            ok = [e for e in routes if e not in failed] if len(failed) < allowed else []
            chosen = failed[:allowed] + random.sample(ok, max(0, min(len(ok), allowed - len(failed))))
            chosen.sort(key=lambda e: float(e.get("t") or 0))
            self.sampling_note = (f"sampled: drawing {len(chosen)} of {len(routes) + dropped + skipped} routed "
                                  f"connections (more than {MAX_VISIBLE_PER_S:.0f}/s); edges show the totals")
        elif skipped:
            chosen = routes
            self.sampling_note = (f"sampled: drawing {len(chosen)} of {len(routes) + dropped + skipped} routed "
                                  "connections; edges show the totals")
        else:
            chosen = routes
            self.sampling_note = (f"balancer sampled away {dropped} route events; edges show the totals"
                                  if dropped else "")
        self._budget -= len(chosen)
        self.shown += len(chosen)
        if chosen:
            t_first = float(chosen[0].get("t") or 0)
            span = max(1e-6, float(chosen[-1].get("t") or 0) - t_first)
            spread = min(0.25, span)
            for e in chosen:
                offset = (float(e.get("t") or 0) - t_first) / span * spread if span > 1e-6 else 0.0
                j = self._journey(e, now + offset)
                if j is not None:
                    self._pending.append(j)
        while len(self._pending) + len(self._journeys) > POOL:
            self._pending.popleft()
        self._update_note()
        if self._pending and not self._timer.isActive():
            self._timer.start()

    def _update_note(self) -> None:
        if self._note.text() != self.sampling_note:
            self._note.setText(self.sampling_note)

    def _journey(self, e: Mapping[str, Any], t0: float) -> _Journey | None:
        cr, bal_in, bal_out = self._clients.right(), self._balancer.left(), self._balancer.right()
        legs = [_Leg(cr.x(), cr.y(), bal_in.x(), bal_in.y(), IN_COLOR.rgba(), False)]
        for a in e.get("attempts") or []:
            node = self._members.get(str(a.get("memberID")))
            if node is None:
                continue
            ok = a.get("outcome") == "ok"
            end = node.left()
            legs.append(_Leg(bal_out.x(), bal_out.y(), end.x(), end.y(), (OK_COLOR if ok else FAIL_COLOR).rgba(),
                             not ok))
        if len(legs) == 1:
            legs[0].color, legs[0].fail = FAIL_COLOR.rgba(), True
        return _Journey(t0, legs)

    def _take_cross(self) -> QGraphicsSimpleTextItem:
        if self._crosses:
            cross = self._crosses.pop()
        else:
            cross = QGraphicsSimpleTextItem("✕")
            font = QFont()
            font.setBold(True)
            font.setPointSize(14)
            cross.setFont(font)
            cross.setBrush(QBrush(FAIL_COLOR))
            cross.setZValue(6)
            self._scene.addItem(cross)
        cross.show()
        return cross

    def _free(self, j: _Journey) -> None:
        if j.cross is not None:
            j.cross.hide()
            self._crosses.append(j.cross)
            j.cross = None

    def _set_dots(self, groups: dict[int, list[QPointF]], rects: list[QRectF]) -> None:
        self._dots = [(_pen(rgba), QPolygonF(points)) for rgba, points in groups.items()]
        dirty = self._dot_rects + rects
        self._dot_rects = rects
        if dirty:
            self.updateScene(dirty)

    def on_timer_timeout(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0].t0 <= now:
            self._journeys.append(self._pending.popleft())
        alive: list[_Journey] = []
        groups: dict[int, list[QPointF]] = {}
        rects: list[QRectF] = []
        r = DOT / 2 + 1.0
        for j in self._journeys:
            age = now - j.t0
            idx = int(age / LEG_S)
            legs = j.legs
            if idx >= len(legs):
                last = legs[-1]
                if last.fail and age < len(legs) * LEG_S + 0.6:  # the ✕ lingers a moment
                    if j.cross is None:
                        j.cross = self._take_cross()
                        j.cross.setPos(last.ex - 22, last.ey - 12)
                    j.cross.setOpacity(1.0 - (age - len(legs) * LEG_S) / 0.6)
                    alive.append(j)
                else:
                    self._free(j)
                continue
            leg = legs[idx]
            frac = (age - idx * LEG_S) / LEG_S
            x, y = leg.sx + (leg.ex - leg.sx) * frac, leg.sy + (leg.ey - leg.sy) * frac
            pts = groups.get(leg.color)
            if pts is None:
                pts = groups[leg.color] = []
            pts.append(QPointF(x, y))
            rects.append(QRectF(x - r, y - r, 2 * r, 2 * r))
            alive.append(j)
        self._journeys = alive
        self._set_dots(groups, rects)
        if not self._journeys and not self._pending:
            self._timer.stop()
