"""The last active health check of a member in the live view: the members table's State cell and the
member's box on the topology, from the snapshot's ``check`` object."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from balancedesk.gui.live.admin import MemberSnap, Snapshot
from balancedesk.gui.live.models import COL_STATE, MemberTableModel
from balancedesk.gui.live.topology import TopologyView
from pytestqt.qtbot import QtBot


def _member(mid: str, check: dict[str, object] | None, **kw: object) -> MemberSnap:
    return MemberSnap.from_json({"memberID": mid, "endpoint": "127.0.0.1:1", "check": check, **kw})


PASSED = {"state": "up", "ok": True, "detail": "ok", "at": 99.7, "ago_s": 0.3, "passes": 4, "fails": 0}
FAILED = {"state": "down", "ok": False, "detail": "refused", "at": 99.9, "ago_s": 0.1, "passes": 0, "fails": 3}


def test_check_text_from_the_snapshot() -> None:
    assert _member("a", PASSED).check_text() == "check ok 0.3 s ago"
    assert _member("a", PASSED).check_text(1.0) == "check ok 1.3 s ago"
    assert _member("a", FAILED).check_text() == "check failed: refused"
    assert _member("a", None).check_text() == ""  # checks off
    assert _member("a", {**PASSED, "ok": None, "at": None, "ago_s": None}).check_text() == ""  # no result yet


def test_the_state_cell_shows_the_last_check(qtbot: QtBot) -> None:
    model = MemberTableModel()
    model.update([_member("a", PASSED), _member("b", FAILED, health="disabled"), _member("c", None)], {})
    cell = [str(model.data(model.index(r, COL_STATE))) for r in range(3)]
    assert cell[0].startswith("up · check ok ") and cell[0].endswith(" s ago")
    assert cell[1] == "down · check failed: refused"
    assert cell[2] == "up"


@pytest.fixture
def view(qtbot: QtBot) -> Iterator[TopologyView]:
    v = TopologyView()
    qtbot.addWidget(v)
    v.resize(900, 420)
    yield v
    v._timer.stop()


def test_the_topology_box_shows_the_last_check(view: TopologyView) -> None:
    snap = Snapshot(1, {"retryDelay": 120}, "tcp", "127.0.0.1:9", None, 100.0, 10.0,
                    (_member("a", PASSED), _member("b", FAILED, health="disabled", retryIn_s=100.0)),
                    {"active": 0})
    view.show_snapshot(snap, {}, 0.0)
    assert "check ok " in view.member_node_text("a")
    assert "retry in" in view.member_node_text("b") and "check failed: refused" in view.member_node_text("b")
