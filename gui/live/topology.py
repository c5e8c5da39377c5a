"""The topology view: clients → balancer → members, with each routed connection drawn moving to its
member (a failed attempt turns red and ends in ✕), sampled above a rate the eye can follow.

Edge thickness and the rate label on each edge are the aggregate; moving dots are a sample of the
route events (the view says so when it samples). One QTimer (36 fps) runs only while something moves.

Cheap frames, because every CPU-ms the view takes on a busy machine is taken from the balancer it watches.
The picture has two layers:

* the static layer — boxes, edges, texts: the items of a QGraphicsScene that no view shows. It is
  rendered into a pixmap, and only where the scene says it changed (a snapshot, ≤ 5×/s, changes a few
  texts);
* the moving layer — dots and ✕ marks: plain floats, drawn as pre-rendered sprites over the pixmap.

A frame moves the dots and repaints one rectangle: around where its dots were and where they are now. That
is a blit from the pixmap and one sprite per dot; no scene item moves, nothing is re-shaped or stroked. One
rectangle rather than a region of small ones: under a many-rectangle clip each sprite took ~37 µs instead of
~7 µs.

Measured on the build box (``bench/bench_live_view.py``, balancer flat out): the view's CPU fell from ~6.7 %
to ~5 % of a core; a frame with ~25 dots costs ~0.5 ms of CPU on an idle box instead of ~1.3 ms.

Members are drawn as the editor draws them: their badge (letter on colour) and their label
(:class:`~balancedesk.gui.live.names.MemberNames`); every text in a box is cut with "…" to the box's
width, never past its edge, and hovering a box shows the member's label, ID, endpoint and its whole texts.
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
from balancedesk.gui.live.names import MemberNames
from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, QTimer
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QHelpEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
    QTransform,
)
from PySide6.QtWidgets import (
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QToolTip,
    QWidget,
)

MAX_VISIBLE_PER_S = 30.0  # moving dots per second the eye can follow
LEG_S = 0.45  # seconds per leg of a journey
POOL = 160
DOT = 10.0  # dot diameter (scene units)
CROSS_S = 0.6  # seconds a ✕ lingers where a failed attempt ended
ANIMATION_OFF = "animation off: routed connections are not drawn; edges, rates and states show the totals"
OK_COLOR = QColor("#1e88e5")
FAIL_COLOR = QColor("#e53935")
IN_COLOR = QColor("#78909c")
NODE_W, NODE_H = 230.0, 74.0
CLIENT_X, BAL_X, MEMBER_X = 10.0, 170.0, 500.0
CHIP = 18  # the badge in a member's box (scene units)
CHIP_DPR = 3.0  # drawn at 3× so it stays sharp when the view scales the scene up


@dataclass
class _Leg:
    sx: float  # scene coordinates
    sy: float
    ex: float
    ey: float
    color: int  # QColor.rgba(): the key of the dot's sprite
    fail: bool
    # bound to the widget's current scale (TopologyView._bind): a dot's sprite top-left at the start of
    # the leg and its travel, and the sprite
    gen: int = -1
    x0: float = 0.0
    y0: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    sprite: QPixmap | None = None


@dataclass
class _Journey:
    t0: float
    legs: list[_Leg]


def _set_text(item: QGraphicsSimpleTextItem, text: str) -> None:
    """Set a text only when it changed: every setText re-shapes the text and repaints its cache."""
    if item.text() != text:
        item.setText(text)


FULL_TEXT = 0  # QGraphicsItem.data key: a box text's whole text, before it was cut to the box


def full_text(item: QGraphicsSimpleTextItem) -> str:
    full = item.data(FULL_TEXT)
    return str(full) if full is not None else item.text()


def _rounded(w: float, h: float, r: float = 10.0) -> QPainterPath:
    path = QPainterPath()
    path.addRoundedRect(QRectF(0, 0, w, h), r, r)
    return path


class _Node:
    def __init__(self, scene: QGraphicsScene, title: str, w: float = NODE_W, h: float = NODE_H) -> None:
        self.box = QGraphicsPathItem(_rounded(w, h))
        self.box.setPen(QPen(QColor("#455a64"), 1.5))
        self.box.setBrush(QBrush(QColor("#eceff1")))
        scene.addItem(self.box)
        self.w, self.h = w, h
        self.title = QGraphicsSimpleTextItem("", self.box)
        font = QFont()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setPos(10, 6)
        self.chip: QGraphicsPixmapItem | None = None
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
        self._style: tuple[str, str] = ("", "")

        self.put(self.title, title)

    def put(self, item: QGraphicsSimpleTextItem, text: str) -> None:
        """Show ``text`` in ``item``, cut with "…" where it would pass the box's right edge."""
        if item.data(FULL_TEXT) == text:
            return
        item.setData(FULL_TEXT, text)
        room = self.w - item.pos().x() - 8
        _set_text(item, QFontMetricsF(item.font()).elidedText(text, Qt.TextElideMode.ElideRight, room))

    def set_chip(self, pixmap: QPixmap | None) -> None:
        """The member's badge left of the title (None: no badge, the title starts at the edge)."""
        if pixmap is None:
            if self.chip is not None:
                self.chip.hide()
            x = 10.0
        else:
            if self.chip is None:
                self.chip = QGraphicsPixmapItem(self.box)
                self.chip.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
                self.chip.setPos(10, 5)
            self.chip.setPixmap(pixmap)
            self.chip.show()
            x = 10.0 + pixmap.width() / pixmap.devicePixelRatio() + 6
        if self.title.pos().x() != x:
            self.title.setPos(x, 6)
            full = full_text(self.title)
            self.title.setData(FULL_TEXT, None)
            self.put(self.title, full)

    def texts(self) -> str:
        return "\n".join(full_text(t) for t in (self.title, self.line2, self.line3))

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
        if key == self._style:  # a new pen repaints the box even when equal
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


class TopologyView(QWidget):
    """The balancer and its members, live. No signals."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # every pixel comes from the pixmap
        self.setMinimumSize(360, 200)  # the scene is scaled to fit: small stays legible
        self._scene = QGraphicsScene(self)  # the static layer's items; no QGraphicsView shows them
        self._scene.changed.connect(self._on_scene_changed)
        self._static: QPixmap | None = None  # the static layer, rendered
        self._stale: list[QRect] = []  # where it is out of date (widget coordinates)
        self._scale, self._ox, self._oy = 1.0, 0.0, 0.0  # scene → widget: x * scale + ox
        self._sprites: dict[int, QPixmap] = {}  # a dot per colour (QColor.rgba()) at the current scale
        self._cross: QPixmap | None = None
        self._gen = 0  # bumped by every new scale: legs bound to an older one are bound again
        self.frame_times: deque[float] = deque(maxlen=4000)
        self.sampling_note = ""
        self.shown = 0
        self.routed = 0
        self.names = MemberNames()
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
        self._scene.addItem(self._note)
        # the moving layer, in widget coordinates: what paintEvent draws this frame
        self._dots: list[tuple[QPixmap, int, int]] = []
        self._marks: list[tuple[float, int, int]] = []  # ✕: opacity, x, y
        self._dirty: tuple[int, int, int, int] | None = None  # the box the moving layer is in this frame
        self._journeys: list[_Journey] = []
        self._pending: deque[_Journey] = deque()
        self._snap: Snapshot | None = None
        self._snap_local = 0.0
        self._retry_delay = 0.0
        self._budget = MAX_VISIBLE_PER_S
        self._budget_t = time.monotonic()
        self._edge_style: dict[str, tuple[str, float, bool]] = {}
        self.animated = True  # draw routed connections as moving dots (set_animated)
        self._routed_what = "connections"  # L7: "requests" (each request is routed)
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
                node = self._members[mid] = _Node(self._scene, "")
                self._name_node(mid, node)
                edge = QGraphicsLineItem()
                edge.setZValue(-1)
                self._scene.addItem(edge)
                self._edges[mid] = edge
                label = QGraphicsSimpleTextItem("")
                label.setBrush(self._label_brush)
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
        self._fit()

    def _fit(self) -> None:
        """Scene → widget transform (the scene rect fitted, aspect kept, centred); the static layer is
        rendered again and the moving layer's sprites follow the new scale."""
        sr = self._scene.sceneRect()
        w, h = max(1, self.width()), max(1, self.height())
        scale = min(w / sr.width(), h / sr.height()) if sr.width() > 0 and sr.height() > 0 else 1.0
        self._scale = scale
        self._ox = (w - sr.width() * scale) / 2 - sr.left() * scale
        self._oy = (h - sr.height() * scale) / 2 - sr.top() * scale
        self._drop_caches()
        self.update()

    def _drop_caches(self) -> None:
        """Forget everything drawn at the old scale or device pixel ratio: it is made again when needed."""
        self._static = None
        self._stale.clear()
        self._sprites.clear()
        self._cross = None
        self._gen += 1

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _to_widget(self, r: QRectF) -> QRect:
        s = self._scale
        return QRectF(r.x() * s + self._ox, r.y() * s + self._oy, r.width() * s, r.height() * s) \
            .toAlignedRect().adjusted(-2, -2, 2, 2)

    def _on_scene_changed(self, rects: Sequence[QRectF]) -> None:
        if self._static is None:
            return  # rendered whole at the next paint
        for r in rects:
            wr = self._to_widget(r).intersected(self.rect())
            if not wr.isEmpty():
                self._stale.append(wr)
                self.update(wr)

    def _render_static(self) -> QPixmap:
        """The static layer, brought up to date: whole after a resize, else only the stale pieces."""
        dpr = self.devicePixelRatioF()
        pm = self._static
        if pm is not None and pm.devicePixelRatio() != dpr:  # the window moved to a screen of another density
            self._drop_caches()
            pm = None
        if pm is None:
            pm = QPixmap(round(self.width() * dpr), round(self.height() * dpr))
            pm.setDevicePixelRatio(dpr)
            self._stale = [self.rect()]
            self._static = pm
        if self._stale:
            painter = QPainter(pm)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            base = self.palette().color(QPalette.ColorRole.Base)
            s = self._scale
            for r in self._stale:
                painter.setClipRect(r)
                painter.fillRect(r, base)
                painter.setTransform(QTransform.fromTranslate(self._ox, self._oy).scale(s, s))
                src = QRectF((r.x() - self._ox) / s, (r.y() - self._oy) / s, r.width() / s, r.height() / s)
                self._scene.render(painter, src, src)
                painter.resetTransform()
            painter.end()
            self._stale = []
        return pm

    def paintEvent(self, event: QPaintEvent) -> None:
        static = self._render_static()
        painter = QPainter(self)
        painter.drawPixmap(0, 0, static)  # clipped to what needs repainting: a blit of those pieces
        draw = painter.drawPixmap
        for sprite, x, y in self._dots:
            draw(x, y, sprite)
        if self._marks:
            cross = self._cross_sprite()
            for opacity, x, y in self._marks:
                painter.setOpacity(opacity)
                painter.drawPixmap(x, y, cross)
        painter.end()
        self.frame_times.append(time.perf_counter())

    # sprites -------------------------------------------------------------------------------------
    def _sprite(self, rgba: int) -> QPixmap:
        pm = self._sprites.get(rgba)
        if pm is None:
            d = DOT * self._scale
            pm = self._sprites[rgba] = self._pixmap(round(d) + 2)
            painter = QPainter(pm)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor.fromRgba(rgba))
            painter.drawEllipse(QRectF(1, 1, d, d))
            painter.end()
        return pm

    def _cross_sprite(self) -> QPixmap:
        if self._cross is None:
            font = QFont()
            font.setBold(True)
            font.setPixelSize(max(8, round(19 * self._scale)))
            pm = self._cross = self._pixmap(round(26 * self._scale) + 2)
            painter = QPainter(pm)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            painter.setFont(font)
            painter.setPen(FAIL_COLOR)
            painter.drawText(QRectF(0, 0, pm.width() / pm.devicePixelRatio(), pm.height() / pm.devicePixelRatio()),
                             Qt.AlignmentFlag.AlignCenter, "✕")
            painter.end()
        return self._cross

    def _pixmap(self, size: int) -> QPixmap:
        dpr = self.devicePixelRatioF()
        pm = QPixmap(round(size * dpr), round(size * dpr))
        pm.setDevicePixelRatio(dpr)
        pm.fill(Qt.GlobalColor.transparent)
        return pm

    # state ---------------------------------------------------------------------------------------
    def set_balancer(self, title: str, line2: str, line3: str, *, running: bool = False) -> None:
        b = self._balancer
        b.put(b.title, title)
        b.put(b.line2, line2)
        b.put(b.line3, line3)
        if running:
            self._balancer.set_style(QColor("#1565c0"), QColor("#e3f2fd"))
        else:
            self._balancer.set_style(QColor("#9e9e9e"), QColor("#f5f5f5"))

    def clear(self) -> None:
        self._snap = None
        self._layout([])
        self._journeys.clear()
        self._pending.clear()
        self._set_dots([], [], None)

    def balancer_node_text(self) -> str:
        return self._balancer.texts()

    def member_node_text(self, member_id: str) -> str:
        """A member box's texts, whole (as said, before any was cut to the box)."""
        node = self._members.get(member_id)
        return "" if node is None else node.texts()

    def member_node_shown(self, member_id: str) -> list[str]:
        """A member box's texts as drawn (cut to the box where too long)."""
        node = self._members.get(member_id)
        return [] if node is None else [t.text() for t in (node.title, node.line2, node.line3)]

    def member_box_fits(self, member_id: str) -> bool:
        """Every text of the member's box (and its badge) ends inside the box."""
        node = self._members.get(member_id)
        if node is None:
            return False
        items = [node.title, node.line2, node.line3, *([node.chip] if node.chip is not None else [])]
        return all(i.mapRectToParent(i.boundingRect()).right() <= node.w for i in items)

    def set_names(self, names: MemberNames) -> None:
        """Title each member's box with its badge and label, as ``names`` says."""
        if names == self.names:
            return
        self.names = names
        for mid, node in self._members.items():
            self._name_node(mid, node)

    def _name_node(self, mid: str, node: _Node) -> None:
        node.set_chip(self.names.chip(mid, CHIP, dpr=CHIP_DPR))
        node.put(node.title, self.names.name(mid))

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            tip = self.tooltip_at(QPointF(event.pos()))
            if tip:
                QToolTip.showText(event.globalPos(), tip, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def tooltip_at(self, pos: QPointF) -> str:
        """The hover text at widget position ``pos``: a member box's label, ID, endpoint and whole texts."""
        if self._scale <= 0:
            return ""
        at = QPointF((pos.x() - self._ox) / self._scale, (pos.y() - self._oy) / self._scale)
        for mid, node in self._members.items():
            if node.box.sceneBoundingRect().contains(at):
                m = self._snap.member(mid) if self._snap is not None else None
                lines = [full_text(t) for t in (node.line2, node.line3) if full_text(t)]
                return "\n".join([self.names.tooltip(mid, m.endpoint if m is not None else ""), *lines])
        if self._balancer.box.sceneBoundingRect().contains(at):
            return self._balancer.texts()
        return ""

    def show_snapshot(self, snap: Snapshot, rates: Mapping[str, float], total_rate: float) -> None:
        ids = [m.member_id for m in snap.members]
        if ids != list(self._members):
            self._layout(ids)
        self._snap = snap
        self._snap_local = time.monotonic()
        self._retry_delay = float(snap.group.get("retryDelay") or 0)
        mode = "L7 http" if snap.mode == "http" else "L4 tcp"
        self._routed_what = "requests" if snap.mode == "http" else "connections"
        if snap.data_plane:
            mode += f" ({snap.data_plane})"
        aff = f" · affinity {snap.affinity_header}" if snap.affinity_header else ""
        active = snap.totals.get("active", 0)
        if snap.mode == "http":  # keep-alive: requests, not connections, are what moves
            load = f"{sum(rates.values()):.1f} req/s · {active} connections"
        else:
            load = f"{total_rate:.1f} conn/s · active {active}"
        self.set_balancer(f"balancer {snap.listen}", f"{mode}{aff}", load, running=True)
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
        node.put(node.line3, f"active {m.active} · {rate:.1f}/s · err {m.failures}")

    def tick_countdowns(self) -> None:
        snap = self._snap
        if snap is None:
            return
        elapsed = time.monotonic() - self._snap_local
        for m in snap.members:
            node = self._members.get(m.member_id)
            if node is None:
                continue
            check = m.check_text(elapsed)
            tail = f" · {check}" if check else ""
            if m.state == "down" and m.retry_in_s is not None:
                left = max(0.0, m.retry_in_s - elapsed)
                node.put(node.line2, f"DOWN · retry in {left:.1f} s{tail}")
                node.set_progress(left / self._retry_delay if self._retry_delay > 0 else None)
            else:
                words = {"up": "up", "down": "down", "draining": "draining (no new)", "disabled": "disabled by admin"}
                node.put(node.line2, f"{words.get(m.state, m.state)} · weight {m.weight}{tail}")
                node.set_progress(None)

    # journeys ------------------------------------------------------------------------------------
    def set_animated(self, on: bool) -> None:
        """Moving dots on or off. Off, the view draws no frames between snapshots: the edges, rates and
        states still show everything, and the view's CPU falls to what the snapshots cost."""
        if on == self.animated:
            return
        self.animated = on
        if not on:
            self._journeys.clear()
            self._pending.clear()
            self._timer.stop()
            self._set_dots([], [], None)
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
                                  f"{self._routed_what} (more than {MAX_VISIBLE_PER_S:.0f}/s); edges show the totals")
        elif skipped:
            chosen = routes
            self.sampling_note = (f"sampled: drawing {len(chosen)} of {len(routes) + dropped + skipped} routed "
                                  f"{self._routed_what}; edges show the totals")
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

    def _bind(self, leg: _Leg) -> None:
        """Widget coordinates for ``leg`` at the current scale, and its sprite."""
        sc, ox, oy = self._scale, self._ox, self._oy
        half = DOT * sc / 2 + 1  # a sprite's top-left from the dot's centre
        leg.x0, leg.y0 = ox + sc * leg.sx - half, oy + sc * leg.sy - half
        leg.dx, leg.dy = sc * (leg.ex - leg.sx), sc * (leg.ey - leg.sy)
        leg.sprite = self._sprite(leg.color)
        leg.gen = self._gen

    def _set_dots(self, dots: list[tuple[QPixmap, int, int]], marks: list[tuple[float, int, int]],
                  box: tuple[int, int, int, int] | None) -> None:
        """What the next paint draws, and where: one rectangle around where the moving layer was (the last
        frame's ``box``) and where it is now."""
        self._dots, self._marks = dots, marks
        old, self._dirty = self._dirty, box
        if old is not None:
            box = old if box is None else (min(box[0], old[0]), min(box[1], old[1]),
                                           max(box[2], old[2]), max(box[3], old[3]))
        if box is not None:
            self.update(box[0], box[1], box[2] - box[0], box[3] - box[1])

    def on_timer_timeout(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0].t0 <= now:
            self._journeys.append(self._pending.popleft())
        alive: list[_Journey] = []
        dots: list[tuple[QPixmap, int, int]] = []
        marks: list[tuple[float, int, int]] = []
        gen = self._gen
        size = round(DOT * self._scale) + 2  # a dot's sprite, in logical pixels
        left = top = 1 << 30
        right = bottom = -(1 << 30)
        for j in self._journeys:
            legs = j.legs
            pos = (now - j.t0) / LEG_S  # legs travelled
            idx = int(pos)
            if idx >= len(legs):
                last = legs[-1]
                linger = (pos - len(legs)) * LEG_S
                if last.fail and linger < CROSS_S:  # the ✕ lingers a moment where the attempt failed, fading
                    cross = self._cross_sprite()
                    csize = int(cross.width() / cross.devicePixelRatio()) + 1
                    x = int(self._ox + self._scale * (last.ex - 12) - csize / 2)
                    y = int(self._oy + self._scale * last.ey - csize / 2)
                    marks.append((1.0 - linger / CROSS_S, x, y))
                    left, top = min(left, x), min(top, y)
                    right, bottom = max(right, x + csize), max(bottom, y + csize)
                    alive.append(j)
                continue  # a journey that is over is simply not kept
            leg = legs[idx]
            if leg.gen != gen:
                self._bind(leg)
            frac = pos - idx
            x, y = int(leg.x0 + leg.dx * frac), int(leg.y0 + leg.dy * frac)
            dots.append((leg.sprite, x, y))  # type: ignore[arg-type]
            if x < left:
                left = x
            if y < top:
                top = y
            if x > right:
                right = x
            if y > bottom:
                bottom = y
            alive.append(j)
        self._journeys = alive
        # the box holds every sprite's top-left; one sprite more (and a pixel of antialiasing) to the right
        self._set_dots(dots, marks, (left - 1, top - 1, right + size + 1, bottom + size + 1) if right >= left else None)
        if not self._journeys and not self._pending:
            self._timer.stop()
