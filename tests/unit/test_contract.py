"""``core.proxy.contract``: each value's one serialiser and one parser agree (a round trip is the identity),
the ring's layout is read in one place, and the admin commands parse and refuse as the endpoint answers."""

from __future__ import annotations

import pytest
from balancedesk.core.proxy.contract import (
    AdminEvent,
    Attempt,
    CommandError,
    ConfigEvent,
    HealthEvent,
    MemberSnap,
    RevertOverride,
    RouteEvent,
    SetState,
    SetWeight,
    Snapshot,
    event_from_ring,
    parse_command,
    parse_event,
    ring_route_loud,
)


def test_a_snapshot_round_trips() -> None:
    m = MemberSnap("a", "127.0.0.1:1", 1, 3, "drain", "disabled", 12.0, 2.0, 1, 10, 2, 5, 6, 0.5, 0.9, 0.75, 0.5,
                   check_ok=False, check_detail="refused", check_ago_s=0.2, check_state="down", check_at=11.8,
                   check_passes=0, check_fails=3, label="alpha", status_classes={"2xx": 7, "5xx": 1},
                   down_total_s=4.25)
    plain = MemberSnap("b")
    snap = Snapshot(4, {"connectorID": "g"}, "http", "127.0.0.1:9", "sender-transfer-id", 13.0, 5.0, (m, plain),
                    {"accepted": 3}, "native", {"port": 9}, None,
                    ({"connectorID": "g", "memberID": "a", "weight": 3},), 17, {"state": "connected"})
    assert Snapshot.from_json(snap.to_json()) == snap
    assert plain.to_json()["check"] is None
    assert m.to_json()["check"] == {"state": "down", "ok": False, "detail": "refused", "at": 11.8, "ago_s": 0.2,
                                    "passes": 0, "fails": 3}
    assert m.to_json()["label"] == "alpha" and m.to_json()["downTotal_s"] == 4.25
    assert m.to_json()["statusClasses"] == {"2xx": 7, "5xx": 1} and plain.to_json()["statusClasses"] == {}


def test_status_classes() -> None:
    from balancedesk.core.proxy.contract import STATUS_CLASSES, status_class
    assert [status_class(s) for s in (100, 204, 302, 404, 599)] == list(STATUS_CLASSES)
    assert status_class(99) is None and status_class(600) is None
    assert MemberSnap.from_json({"memberID": "a", "statusClasses": {"2xx": "3", "9xx": 1}}).status_classes == {
        "2xx": 3}


def test_a_one_group_snapshot_has_no_control_plane_fields() -> None:
    snap = Snapshot(1, {}, "tcp", "", None, 0.0, 0.0, ())
    assert "controlPlane" not in snap.to_json() and "serverVersion" not in snap.to_json()


@pytest.mark.parametrize("ring, typed", [
    ((1, 2.0, 0, "route", "127.0.0.1:5", (("a", "refused", 1.5), ("b", "ok", 0.25)), "b", "ok", "k"),
     RouteEvent(1, 2.0, "127.0.0.1:5", (Attempt("a", "refused", 1.5), Attempt("b", "ok", 0.25)), "b", "ok", "k")),
    ((2, 3.0, 0, "health", "a", "disabled", 5.0, "connect failed"), HealthEvent(2, 3.0, "a", "disabled", 5.0,
                                                                              "connect failed")),
    ((3, 4.0, 0, "admin", "a", "drain"), AdminEvent(3, 4.0, "a", "drain")),
    ((4, 5.0, 0, "config", 2, None), ConfigEvent(4, 5.0, 2)),
    ((5, 6.0, 0, "config", 2, "bad"), ConfigEvent(5, 6.0, 2, "bad")),
])
def test_events_from_the_ring_to_json_and_back(ring: tuple[object, ...], typed: object) -> None:
    ev = event_from_ring(ring)
    assert ev == typed
    assert parse_event(ev.to_json()) == ev


def test_a_loud_route() -> None:
    quiet = (1, 0.0, 0, "route", None, (("a", "ok", 1.0),), "a", "ok", None)
    failover = (1, 0.0, 0, "route", None, (("a", "refused", 1.0), ("b", "ok", 1.0)), "b", "ok", None)
    failed = (1, 0.0, 0, "route", None, (("a", "refused", 1.0),), None, "failed", None)
    for ring in (quiet, failover, failed):
        ev = event_from_ring(ring)
        assert isinstance(ev, RouteEvent) and ev.loud == ring_route_loud(ring)
    assert [ring_route_loud(r) for r in (quiet, failover, failed)] == [False, True, True]


def test_commands_parse_and_build_the_same_requests() -> None:
    for cmd in (SetState("m1", "drain"), SetWeight("m1", 7), RevertOverride("m1")):
        assert parse_command(cmd.method, cmd.path.split("/"), cmd.body(), weight_max=100) == cmd
    assert parse_command("GET", ["snapshot"], None, weight_max=100) is None


@pytest.mark.parametrize("method, segments, body, status, field", [
    ("GET", ["members", "m", "state"], None, 405, None),
    ("POST", ["members", "m", "state"], {"state": "off"}, 400, "state"),
    ("POST", ["members", "m", "weight"], {"weight": 0}, 400, "weight"),
    ("POST", ["members", "m", "weight"], {"weight": True}, 400, "weight"),
    ("POST", ["members", "m", "weight"], {"weight": 101}, 400, "weight"),
    ("POST", ["overrides", "m"], None, 405, None),
])
def test_commands_refused(method: str, segments: list[str], body: object, status: int, field: str | None) -> None:
    with pytest.raises(CommandError) as got:
        parse_command(method, segments, body, weight_max=100)
    assert got.value.status == status and got.value.field == field
