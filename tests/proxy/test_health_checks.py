"""Active health checks on real processes: members killed and brought back, on both data planes.

Every wait is on a condition with a deadline. The members are upstream processes killed by their PID.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lbkit import Balancer, StartBalancer, StartUpstream, ask, group_config, wait_until

INTERVAL = 0.2
RETRY = 120  # far longer than any test: a member used again came back through the checks


def with_checks(cfg: dict[str, Any], **check: Any) -> dict[str, Any]:
    spec = {"type": "tcp", "interval": INTERVAL, "timeout": 1.0, "rise": 2, "fall": 2, **check}
    return {**cfg, "listener": {"healthCheck": spec}}


def member(lb: Balancer, mid: str) -> dict[str, Any]:
    return lb.member(mid)


def checked(lb: Balancer, mid: str, *, ok: bool) -> dict[str, Any] | None:
    """The member's snapshot entry once its last check result is ``ok`` (None before)."""
    m = member(lb, mid)
    return m if m["check"] is not None and m["check"]["ok"] is ok else None


def names(lb: Balancer, n: int) -> list[str | None]:
    async def run() -> list[str | None]:
        return [await ask(lb.addr) for _ in range(n)]

    return asyncio.run(run())


def test_a_killed_member_is_disabled_by_checks_without_traffic(
        data_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    lb = balancer(with_checks(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)], retry_delay=RETRY)))
    wait_until(lambda: checked(lb, "a", ok=True), what="a first passing check of a")
    a.child.kill()
    m = wait_until(lambda: (x := member(lb, "a"))["health"] == "disabled" and x, what="the checks to disable a")
    assert m["check"]["state"] == "down" and m["check"]["ok"] is False
    assert m["retryIn_s"] is None and m["disabledUntil"] is None  # no countdown: only checks end the hold
    assert m["check"]["detail"] in ("refused", "reset")
    assert m["failures"] == 0 and lb.snapshot()["totals"]["accepted"] == 0  # no traffic was needed
    flips = [e for e in lb.events() if e["kind"] == "health" and e["memberID"] == "a"]
    assert flips and flips[-1]["state"] == "disabled" and "health check failed" in flips[-1]["reason"]
    assert set(names(lb, 6)) == {"b"}


def test_a_member_brought_back_is_used_before_its_retry_delay(
        data_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    lb = balancer(with_checks(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)], retry_delay=RETRY)))
    wait_until(lambda: checked(lb, "a", ok=True), what="a first passing check of a")
    a.child.kill()
    assert set(names(lb, 4)) == {"b"}  # traffic to a fails over (and marks it for RETRY s, or checks did)
    wait_until(lambda: member(lb, "a")["health"] == "disabled", what="a disabled")
    t_back = time.monotonic()
    upstream("tcp_name", "a", port=a.port)
    wait_until(lambda: member(lb, "a")["health"] == "up", what="the checks to re-enable a", timeout=15)
    assert time.monotonic() - t_back < RETRY
    wait_until(lambda: "a" in names(lb, 4), what="connections to reach a again")
    ups = [e for e in lb.events() if e["kind"] == "health" and e["memberID"] == "a" and e["state"] == "enabled"]
    assert ups and "health check passed" in ups[-1]["reason"]


def test_without_checks_a_member_brought_back_waits_out_its_retry_delay(
        data_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    a, b = upstream("tcp_name", "a"), upstream("tcp_name", "b")
    lb = balancer(group_config([("a", a.endpoint, 1), ("b", b.endpoint, 1)], retry_delay=RETRY))
    a.child.kill()
    assert set(names(lb, 4)) == {"b"}
    assert member(lb, "a")["health"] == "disabled" and member(lb, "a")["check"] is None
    upstream("tcp_name", "a", port=a.port)
    # bounded negative check: for 10 check intervals' worth of time, a stays out (its retryDelay is 120 s)
    deadline = time.monotonic() + 10 * INTERVAL
    while time.monotonic() < deadline:
        assert set(names(lb, 2)) == {"b"}
        assert member(lb, "a")["health"] == "disabled"


def test_an_http_check_disables_a_member_answering_the_wrong_status(
        http_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    good, sick = upstream("http_backend", "good"), upstream("http_status", "sick")
    cfg = group_config([("good", good.endpoint, 1), ("sick", sick.endpoint, 1)], retry_delay=RETRY)
    lb = balancer(with_checks(cfg, type="http", path="/health", expectStatus=200), mode="http")
    m = wait_until(lambda: (x := member(lb, "sick"))["health"] == "disabled" and x,
                   what="the http check to disable the member answering 500")
    assert m["check"]["detail"] == "status 500" and m["check"]["state"] == "down"
    g = wait_until(lambda: checked(lb, "good", ok=True), what="the good member's check to pass")
    assert g["health"] == "up" and g["check"]["detail"] == "ok"


def test_snapshot_fields_and_live_reconfiguration(
        data_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    a = upstream("tcp_name", "a")
    cfg = group_config([("a", a.endpoint, 1)], retry_delay=RETRY)
    lb = balancer(cfg)
    assert member(lb, "a")["check"] is None  # off: no check entry
    lb.write_config(with_checks(cfg, fall=1))  # turned on live
    m = wait_until(lambda: checked(lb, "a", ok=True), what="checks to start after a config change")
    check = m["check"]
    assert set(check) >= {"state", "ok", "detail", "at", "ago_s", "passes", "fails"}
    assert check["state"] == "up" and check["ago_s"] >= 0 and check["passes"] >= 1
    snap = lb.snapshot()
    assert snap["listener"]["healthCheck"]["interval"] == INTERVAL
    a.child.kill()
    wait_until(lambda: member(lb, "a")["health"] == "disabled", what="a held down by the checks")
    lb.write_config(cfg)  # turned off live: the hold is lifted, only passive rules remain
    wait_until(lambda: (x := member(lb, "a"))["health"] == "up" and x["check"] is None,
               what="the hold lifted when checks are turned off")


def test_a_member_whose_probes_time_out_does_not_slow_the_others(
        data_plane: str, balancer: StartBalancer, upstream: StartUpstream) -> None:
    a, hole = upstream("tcp_name", "a"), upstream("blackhole", "hole")
    cfg = group_config([("a", a.endpoint, 1), ("hole", hole.endpoint, 1)], retry_delay=RETRY)
    lb = balancer(with_checks(cfg, timeout=2.0, fall=1))
    m = wait_until(lambda: (x := member(lb, "hole"))["health"] == "disabled" and x, what="the blackhole disabled")
    assert m["check"]["detail"] == "timeout"
    # the healthy member keeps its own rhythm (every INTERVAL), not the blackhole's 2 s timeouts
    wait_until(lambda: (c := member(lb, "a")["check"]) is not None and c["passes"] >= 5,
               what="five passes of a", timeout=2 * 2.0)
