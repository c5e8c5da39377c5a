"""The topology canvas: a static layer (boxes, edges, texts) rendered into a pixmap where it changed, and a
moving layer (dots, ✕) drawn as sprites over it, a frame repainting only around the dots.

Checked on the pixels the widget really paints (``grab``), not on internals: a state change shows in the
member's box, a dot is drawn where its journey is and nothing is left behind where it was, a failed
attempt ends in a red ✕, and a frame repaints a small part of the canvas."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from balancedesk.gui.live.admin import MemberSnap, Snapshot
from balancedesk.gui.live.topology import CROSS_S, FAIL_COLOR, LEG_S, OK_COLOR, TopologyView
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage, QPaintEvent
from pytestqt.qtbot import QtBot


class _Spy(TopologyView):
    """Records the rectangle of every paint."""

    def __init__(self) -> None:
        super().__init__()
        self.painted: list[QRect] = []

    def paintEvent(self, event: QPaintEvent) -> None:
        self.painted.append(event.rect())
        super().paintEvent(event)


@pytest.fixture
def view(qtbot: QtBot) -> Iterator[_Spy]:
    v = _Spy()
    qtbot.addWidget(v)
    v.resize(900, 420)
    v.show()
    qtbot.waitExposed(v)
    v.show_snapshot(_snap("up"), {"a": 10.0, "b": 5.0}, 15.0)
    yield v
    v._timer.stop()


def _snap(state_a: str) -> Snapshot:
    a = MemberSnap("a", "127.0.0.1:1", weight=2, health="disabled" if state_a == "down" else "up",
                   retry_in_s=4.0 if state_a == "down" else None)
    return Snapshot(1, {"retryDelay": 5}, "tcp", "127.0.0.1:9", None, 100.0, 10.0,
                    (a, MemberSnap("b", "127.0.0.1:2")), {"active": 1})


def _near(img: QImage, x: int, y: int, color: QColor, radius: int = 3, tol: int = 40) -> bool:
    """A pixel within ``radius`` (logical pixels) of (x, y), in logical coordinates, close to ``color``."""
    dpr = img.devicePixelRatio()
    cx, cy, r = round(x * dpr), round(y * dpr), round(radius * dpr)
    for px in range(cx - r, cx + r + 1):
        for py in range(cy - r, cy + r + 1):
            if 0 <= px < img.width() and 0 <= py < img.height():
                c = img.pixelColor(px, py)
                if abs(c.red() - color.red()) + abs(c.green() - color.green()) + abs(c.blue() - color.blue()) <= tol:
                    return True
    return False


def _on_screen(v: TopologyView) -> QImage | None:
    """The window's pixels as last painted (its backing store), not a fresh render like ``grab``; None where
    the platform's window grab does not cover the window (offscreen with QT_SCALE_FACTOR ≠ 1 returns only
    a corner of it)."""
    img = v.screen().grabWindow(v.winId()).toImage()
    dpr = v.devicePixelRatioF()
    if img.width() < round(v.width() * dpr) or img.height() < round(v.height() * dpr):
        return None
    return img


def _box_point(v: TopologyView, member: str) -> tuple[int, int]:
    """A point inside the member's box, off its texts (the box's lower left, above the countdown bar)."""
    node = v._members[member]
    p = node.box.pos()
    return round(v._ox + v._scale * (p.x() + 4)), round(v._oy + v._scale * (p.y() + node.h - 14))


def test_a_state_change_repaints_the_members_box(view: _Spy, qtbot: QtBot) -> None:
    x, y = _box_point(view, "a")
    assert _near(view.grab().toImage(), x, y, QColor("#e8f5e9"), radius=0, tol=6)  # up: green fill
    view.painted.clear()
    view.show_snapshot(_snap("down"), {"a": 0.0, "b": 5.0}, 5.0)
    qtbot.waitUntil(lambda: bool(view.painted), timeout=3000)
    # only the pieces that changed were repainted, not the canvas
    full = view.width() * view.height()
    assert all(r.width() * r.height() < full for r in view.painted)
    assert _near(view.grab().toImage(), x, y, QColor("#ffebee"), radius=0, tol=6)  # down: red fill
    assert "retry in" in view.member_node_text("a")


def test_a_dot_moves_along_its_edge_and_leaves_nothing_behind(view: _Spy, qtbot: QtBot) -> None:
    t0 = time.monotonic()
    view.add_events([{"kind": "route", "t": 1.0, "attempts": [{"memberID": "b", "outcome": "ok", "ms": 1.0}]}])
    assert view.shown == 1
    journey = view._pending[0] if view._pending else view._journeys[0]
    leg = journey.legs[1]  # balancer → b
    # half-way along the second leg
    qtbot.waitUntil(lambda: time.monotonic() - journey.t0 >= 1.5 * LEG_S, timeout=5000)
    view._timer.stop()
    view.on_timer_timeout()
    frac = (time.monotonic() - journey.t0) / LEG_S - 1
    img = view.grab().toImage()
    x = round(view._ox + view._scale * (leg.sx + (leg.ex - leg.sx) * frac))
    y = round(view._oy + view._scale * (leg.sy + (leg.ey - leg.sy) * frac))
    assert _near(img, x, y, OK_COLOR, radius=4), f"no dot near ({x}, {y}) after {time.monotonic() - t0:.2f} s"
    # the next frame repaints a part of the canvas, not all of it
    view.painted.clear()
    view.on_timer_timeout()
    qtbot.waitUntil(lambda: bool(view.painted), timeout=3000)
    assert max(r.width() * r.height() for r in view.painted) < 0.6 * view.width() * view.height()
    sprite, sx, sy = view._dots[0]
    half = round(sprite.width() / sprite.devicePixelRatio() / 2)
    x, y = sx + half, sy + half
    # once the journey is over, the pixels where the dot was are the edge's again (on screen: no trail)
    qtbot.waitUntil(lambda: time.monotonic() - journey.t0 > 2 * LEG_S + 0.05, timeout=5000)
    shown = _on_screen(view)
    assert shown is None or _near(shown, x, y, OK_COLOR, radius=2)  # what the window shows, not a fresh render
    view.painted.clear()
    view.on_timer_timeout()
    assert not view._journeys and not view._timer.isActive()
    qtbot.waitUntil(lambda: bool(view.painted), timeout=3000)
    shown = _on_screen(view)
    assert shown is None or not _near(shown, x, y, OK_COLOR, radius=6)


def test_a_failed_attempt_ends_in_a_red_cross(view: _Spy, qtbot: QtBot) -> None:
    view.add_events([{"kind": "route", "t": 2.0, "attempts": [{"memberID": "a", "outcome": "timeout", "ms": 1.0}]}])
    journey = view._pending[-1] if view._pending else view._journeys[-1]
    assert journey.legs[-1].fail
    qtbot.waitUntil(lambda: time.monotonic() - journey.t0 > 2 * LEG_S + 0.05, timeout=5000)
    view._timer.stop()
    view.on_timer_timeout()
    assert view._marks, "a ✕ lingers where the failed attempt ended"
    _, mx, my = view._marks[0]
    cross = view._cross_sprite()
    size = round(cross.width() / cross.devicePixelRatio())
    img = view.grab().toImage()
    assert any(_near(img, mx + dx, my + dy, FAIL_COLOR, radius=0, tol=90)
               for dx in range(size) for dy in range(size))
    # and it fades away: after CROSS_S nothing is drawn there any more
    qtbot.waitUntil(lambda: time.monotonic() - journey.t0 > 2 * LEG_S + CROSS_S + 0.05, timeout=5000)
    view.on_timer_timeout()
    assert not view._marks and not view._journeys
    img = view.grab().toImage()
    assert not any(_near(img, mx + dx, my + dy, FAIL_COLOR, radius=0, tol=60)
                   for dx in range(size) for dy in range(size))


def test_a_new_screen_density_renders_the_layers_again(view: _Spy, qtbot: QtBot) -> None:
    view.grab()
    assert view._static is not None and view._static.devicePixelRatio() == view.devicePixelRatioF()
    dpr = view.devicePixelRatioF() * 2
    view.devicePixelRatioF = lambda: dpr  # type: ignore[method-assign]  # as if dragged to a denser screen
    sprite = view._sprite(OK_COLOR.rgba())
    view.grab()
    assert view._static.devicePixelRatio() == dpr  # re-rendered at the new density, not scaled up
    assert view._static.width() == round(view.width() * dpr)
    again = view._sprite(OK_COLOR.rgba())
    assert again is not sprite and again.devicePixelRatio() == dpr
