"""Real mouse drags (QTest) — only on a real X server (Xvfb + xcb); offscreen QDrag.exec() is a no-op."""

from __future__ import annotations

import os
from typing import Any

import pytest
from balancedesk.gui.browser_model import BrowserModel
from balancedesk.gui.editor import GroupEditor
from balancedesk.gui.members_model import MembersModel
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QApplication, QHBoxLayout, QTreeView, QWidget

from tests.gui.editor_support import demo_catalog, demo_doc, member_ids

pytestmark = [
    pytest.mark.xcb,
    pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM") != "xcb", reason="real drag and drop needs xcb (Xvfb)"),
]


def mouse_drag(qtbot: Any, src_vp: QWidget, src: QPoint, dst_vp: QWidget, dst: QPoint) -> None:
    """Press, start the drag, and finish it from inside QDrag's nested loop (see qt-stack.md)."""
    done: list[bool] = []

    def finish() -> None:
        QTest.mouseMove(dst_vp, dst)
        QTest.mouseMove(dst_vp, dst + QPoint(0, 1))
        QTest.mouseRelease(dst_vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, dst)
        done.append(True)

    QTest.mousePress(src_vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, src)
    QTest.mouseMove(src_vp, src + QPoint(1, 1))
    QTimer.singleShot(150, finish)
    far = src + QPoint(QApplication.startDragDistance() + 8, QApplication.startDragDistance() + 8)
    QTest.mouseMove(src_vp, far)  # blocks in QDrag.exec() until finish() drops
    qtbot.waitUntil(lambda: bool(done), timeout=5000)


@pytest.fixture
def scene(qtbot: Any) -> tuple[QWidget, QTreeView, GroupEditor]:
    catalog = demo_catalog()
    doc = demo_doc(catalog)
    host = QWidget()
    qtbot.addWidget(host)
    browser_model = BrowserModel(host)
    browser_model.set_catalog(catalog)
    tree = QTreeView()
    tree.setModel(browser_model)
    tree.setDragEnabled(True)
    tree.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
    editor = GroupEditor(doc, can_change_owner=True)
    doc.setParent(editor)
    lay = QHBoxLayout(host)
    lay.addWidget(tree)
    lay.addWidget(editor, 2)
    host.resize(1200, 700)
    host.show()
    qtbot.waitExposed(host)
    return host, tree, editor


def row_point(view: QAbstractItemView, row: int, column: int, frac: float = 0.5) -> QPoint:
    rect = view.visualRect(view.model().index(row, column))
    return QPoint(rect.center().x(), rect.top() + int(rect.height() * frac))


def test_mouse_drag_reorders_members(scene: Any, qtbot: Any) -> None:
    _, _, editor = scene
    view = editor.view
    src = row_point(view, 0, MembersModel.COL_MEMBER)
    dst = row_point(view, 2, MembersModel.COL_MEMBER, 0.85)  # lower part of the last row: after it
    mouse_drag(qtbot, view.viewport(), src, view.viewport(), dst)
    qtbot.waitUntil(lambda: member_ids(editor.doc) != ["a", "b", "c"], timeout=5000)
    assert member_ids(editor.doc) == ["b", "c", "a"]
    assert [view.model().index(r, MembersModel.COL_SEQ).data() for r in range(3)] == ["1", "2", "3"]
    editor.doc.undo_stack.undo()
    assert member_ids(editor.doc) == ["a", "b", "c"]


def test_mouse_drag_from_the_browser_adds_or_refuses(scene: Any, qtbot: Any) -> None:
    _, tree, editor = scene
    model = tree.model()
    labels = {model.index(r, 0).data(): r for r in range(model.rowCount())}
    dst = row_point(editor.view, 2, MembersModel.COL_MEMBER, 0.85)
    # a free connector is added where it is dropped
    mouse_drag(qtbot, tree.viewport(), row_point(tree, labels["e"], 0), editor.view.viewport(), dst)
    qtbot.waitUntil(lambda: "e" in member_ids(editor.doc), timeout=5000)
    assert member_ids(editor.doc) == ["a", "b", "c", "e"]
    # a group is refused in place, with the reason shown
    with qtbot.waitSignal(editor.view.drag_refused, timeout=5000) as sig:
        mouse_drag(qtbot, tree.viewport(), row_point(tree, labels["G2"], 0), editor.view.viewport(), dst)
    assert "is a connector group" in sig.args[0]
    assert editor.refusal.isVisible()
    assert member_ids(editor.doc) == ["a", "b", "c", "e"]
