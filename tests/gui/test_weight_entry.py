"""Typing a weight: Tab applies it, an out-of-range one is refused in place with the bound named, and shares
read as percentages that sum to 100 (one decimal where a share would read 0 %)."""

from __future__ import annotations

from typing import Any

import pytest
from balancedesk.core.model import WEIGHT_MAX
from balancedesk.gui.document import GroupDocument
from balancedesk.gui.editor import GroupEditor
from balancedesk.gui.members_model import MembersModel
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.gui.editor_support import demo_catalog, group


def make_editor(qtbot: Any, weights: list[int]) -> GroupEditor:
    catalog = demo_catalog()
    base = group("g9", [(m, w) for m, w in zip(("a", "b", "c"), weights, strict=False)])
    catalog = catalog.with_connector(base)
    doc = GroupDocument(base=base, etag='"1"', catalog=catalog, owner="admin", server="http://127.0.0.1:1")
    editor = GroupEditor(doc, can_change_owner=True)
    qtbot.addWidget(editor)
    doc.setParent(editor)
    editor.resize(1000, 700)
    editor.show()
    qtbot.waitExposed(editor)
    return editor


def type_weight(qtbot: Any, editor: GroupEditor, row: int, text: str, key: Qt.Key) -> None:
    we = editor._weight_editor(row)
    assert we is not None
    we.spin.setFocus()
    qtbot.waitUntil(lambda: (QApplication.focusWidget() is not None and we.spin.isAncestorOf(
        QApplication.focusWidget())) or QApplication.focusWidget() is we.spin, timeout=3000)
    we.spin.selectAll()
    qtbot.keyClicks(we.spin.lineEdit(), text)
    qtbot.keyClick(QApplication.focusWidget(), key)


def test_tab_applies_a_typed_weight(qtbot: Any) -> None:
    editor = make_editor(qtbot, [3, 2, 1])
    type_weight(qtbot, editor, 0, "5", Qt.Key.Key_Tab)
    assert [m.weight for m in editor.doc.members] == [5, 2, 1]
    assert editor.doc.undo_stack.count() == 1


@pytest.mark.parametrize("typed", ["0", str(WEIGHT_MAX + 1), "999999"])
def test_an_out_of_range_weight_is_refused_in_place_and_changes_nothing(qtbot: Any, typed: str) -> None:
    editor = make_editor(qtbot, [3, 2, 1])
    type_weight(qtbot, editor, 1, typed, Qt.Key.Key_Return)
    assert [m.weight for m in editor.doc.members] == [3, 2, 1]
    assert editor.doc.undo_stack.count() == 0
    assert editor.refusal.isVisible()
    assert f"from 1 to {WEIGHT_MAX}" in editor.refusal.text()
    we = editor._weight_editor(1)
    assert we is not None and we.spin.value() == 2  # the member's weight again, beside the message


def test_shares_that_would_round_to_zero_get_a_decimal_and_sum_to_100(qtbot: Any) -> None:
    editor = make_editor(qtbot, [WEIGHT_MAX, 1, 1])
    texts = [editor.model.index(r, MembersModel.COL_SHARE).data() for r in range(3)]
    assert texts == ["99.2%", "0.4%", "0.4%"]
    assert "B 0.4%" in editor.share_bar.accessibleDescription()
