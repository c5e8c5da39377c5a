"""What the snapshot and the metrics say per member, alike on both L7 data planes: the answers relayed from each
member by class (``statusClasses``; a 502 the balancer makes itself is not the member's), the member's label
(from ``memberLabels``, escaped in the metrics), and the seconds it was out (``downTotal_s``), counting a
current outage up to now."""

from __future__ import annotations

import pytest
from lbkit import Members, StartBalancer, connect, group_config, refused_endpoint, request, wait_until

pytestmark = pytest.mark.usefixtures("http_plane")  # each test on both L7 data planes


def _member(snap: dict[str, object], mid: str) -> dict[str, object]:
    members = snap["members"]
    assert isinstance(members, list)
    return next(m for m in members if m["memberID"] == mid)


def test_answers_counted_by_class_and_the_balancers_own_502_is_not(balancer: StartBalancer,
                                                                    members: Members) -> None:
    a = members.http("a")
    cfg = group_config([("a", a.endpoint, 1)], retry_delay=60)
    cfg["memberLabels"] = {"a": 'Alpha "A" \\ one'}
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    for path, n in (("/status/200", 3), ("/status/204", 1), ("/status/302", 1), ("/status/404", 2),
                    ("/status/503", 1)):
        for _ in range(n):
            assert request(s, "GET", path)[0] == int(path[-3:])
    snap = bal.snapshot()
    m = _member(snap, "a")
    assert m["label"] == 'Alpha "A" \\ one'
    assert m["statusClasses"] == {"1xx": 0, "2xx": 4, "3xx": 1, "4xx": 2, "5xx": 1}
    assert m["failures"] == 0
    # an answer that is not HTTP: the balancer answers 502 itself — not the member's answer
    s2 = connect(bal.addr)
    assert request(s2, "GET", "/garbage")[0] == 502
    m = _member(bal.snapshot(), "a")
    assert m["statusClasses"] == {"1xx": 0, "2xx": 4, "3xx": 1, "4xx": 2, "5xx": 1}
    text = bal.admin("GET", "/metrics").text
    ids = 'member="a",label="Alpha \\"A\\" \\\\ one"'
    assert f'balancedesk_member_responses_total{{{ids},code="4xx"}} 2' in text
    assert f'balancedesk_member_responses_total{{{ids},code="5xx"}} 1' in text
    assert f"balancedesk_member_requests_total{{{ids}}} " in text


def test_a_tcp_group_has_no_status_classes_and_labels_default_empty(balancer: StartBalancer,
                                                                    members: Members) -> None:
    bal = balancer(group_config([("e", members.echo(), 1)]))
    m = _member(bal.snapshot(), "e")
    assert m["statusClasses"] == {} and m["label"] == "" and m["downTotal_s"] == 0
    assert "balancedesk_member_responses_total" not in bal.admin("GET", "/metrics").text


def test_down_time_grows_while_out_and_stays_zero_for_a_healthy_member(balancer: StartBalancer,
                                                                        members: Members) -> None:
    a = members.http("a")
    cfg = group_config([("dead", refused_endpoint(), 1), ("a", a.endpoint, 1)], retry_delay=60, round_robin=False)
    bal = balancer(cfg, mode="http")
    s = connect(bal.addr)
    assert request(s, "GET", "/")[0] == 200  # "dead" (sequence 1) refused, failed over to "a"
    first = wait_until(lambda: (d := _member(bal.snapshot(), "dead"))["health"] == "disabled" and d,
                       what="dead disabled")
    later = wait_until(lambda: (d := _member(bal.snapshot(), "dead"))["downTotal_s"] > first["downTotal_s"] and d,
                       what="dead's down time grows while it is out")
    assert 0 < later["downTotal_s"] <= 60
    assert _member(bal.snapshot(), "a")["downTotal_s"] == 0
    assert "balancedesk_member_down_seconds_total{member=\"dead\"" in bal.admin("GET", "/metrics").text
