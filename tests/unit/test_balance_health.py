"""ActiveChecks: rise/fall over probe results, and how check holds and passive marks combine in routing.

Time is an explicit ``now`` everywhere; nothing here reads a clock or sleeps.
"""

from __future__ import annotations

from typing import Any

from balancedesk.core.balance import ActiveChecks, CheckState, GroupBalancer
from balancedesk.core.model import ConnectorGroup, HealthCheck
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1000.0
RETRY = 120


def group(ids: list[str], *, retry_delay: int = RETRY) -> ConnectorGroup:
    body: dict[str, Any] = {"retryDelay": retry_delay, "loadBalancing": "Round Robin",
                            "members": [{"memberID": m, "sequence": i + 1, "weight": 1} for i, m in enumerate(ids)]}
    return ConnectorGroup.model_validate(body)


def setup(ids: list[str] | None = None, *, rise: int = 2, fall: int = 3) -> tuple[GroupBalancer, ActiveChecks]:
    b = GroupBalancer(group(ids or ["a", "b"]))
    return b, ActiveChecks(HealthCheck(rise=rise, fall=fall), b)


def picks(b: GroupBalancer, now: float, n: int = 20) -> set[str]:
    out = set()
    for _ in range(n):
        mid = b.begin(now=now).next(now=now)
        assert mid is not None
        out.add(mid)
    return out


def healthy(b: GroupBalancer, mid: str, now: float) -> bool:
    return next(v for v in b.members() if v.member_id == mid).healthy(now)


def test_fall_failures_in_a_row_disable_and_routing_skips_it() -> None:
    b, c = setup(fall=3)
    assert c.record("a", ok=False, detail="refused", now=T0) is None
    assert c.record("a", ok=False, detail="refused", now=T0 + 1) is None
    assert healthy(b, "a", T0 + 1)
    flip = c.record("a", ok=False, detail="refused", now=T0 + 2)
    assert flip is not None and flip.state == "disabled" and "refused" in flip.reason
    assert not healthy(b, "a", T0 + 2)
    assert b.first_pick(now=T0) is None  # the hot path gives way to the filtering walk
    assert picks(b, T0 + 2) == {"b"}
    view = c.view("a")
    assert view is not None and view.state is CheckState.DOWN and view.fails == 3 and view.last_ok is False


def test_a_pass_between_failures_resets_the_count() -> None:
    b, c = setup(fall=2)
    c.record("a", ok=False, detail="timeout", now=T0)
    c.record("a", ok=True, detail="ok", now=T0 + 1)
    assert c.record("a", ok=False, detail="timeout", now=T0 + 2) is None
    assert healthy(b, "a", T0 + 2)


def test_rise_passes_re_enable_a_member_the_checks_took_down() -> None:
    b, c = setup(rise=2, fall=1)
    c.record("a", ok=False, detail="refused", now=T0)
    assert c.record("a", ok=True, detail="ok", now=T0 + 1) is None
    assert not healthy(b, "a", T0 + 1)
    flip = c.record("a", ok=True, detail="ok", now=T0 + 2)
    assert flip is not None and flip.state == "enabled"
    assert picks(b, T0 + 2) == {"a", "b"}
    assert b.first_pick(now=T0) is not None  # back on the hot path


def test_a_member_held_down_stays_down_after_its_retry_delay() -> None:
    b, c = setup(fall=1)
    b.mark_failed("a", now=T0)  # traffic disabled it for RETRY s
    c.record("a", ok=False, detail="refused", now=T0 + 1)
    later = T0 + RETRY + 10
    assert b.expire(now=later) == []  # the retryDelay ended, but no "enabled" for a held member
    assert not healthy(b, "a", later)
    assert picks(b, later) == {"b"}


def test_a_successful_connect_does_not_lift_a_check_hold() -> None:
    b, c = setup(["a"], fall=1)
    c.record("a", ok=False, detail="refused", now=T0)
    sel = b.begin(now=T0)
    assert sel.next(now=T0) == "a"  # every member disabled: tried anyway
    assert sel.succeeded("a", now=T0) is False
    assert not healthy(b, "a", T0)


def test_rise_passes_end_a_passive_mark_before_its_retry_delay() -> None:
    b, c = setup(rise=2)
    c.record("a", ok=True, detail="ok", now=T0)
    c.record("a", ok=True, detail="ok", now=T0 + 1)
    assert b.mark_failed("a", now=T0 + 2)
    c.traffic_failed("a")  # the passes before the failure no longer count
    assert c.record("a", ok=True, detail="ok", now=T0 + 3) is None
    assert not healthy(b, "a", T0 + 3)
    flip = c.record("a", ok=True, detail="ok", now=T0 + 4)
    assert flip is not None and flip.state == "enabled"
    assert healthy(b, "a", T0 + 4)  # 116 s before its retryDelay would have ended


def test_passes_alone_never_flip_an_up_member() -> None:
    _, c = setup(rise=1)
    assert all(c.record("a", ok=True, detail="ok", now=T0 + i) is None for i in range(5))


def test_without_checks_the_passive_rule_is_untouched() -> None:
    b = GroupBalancer(group(["a", "b"]))
    b.mark_failed("a", now=T0)
    assert not healthy(b, "a", T0 + RETRY - 1)
    assert b.expire(now=T0 + RETRY) == ["a"]
    assert healthy(b, "a", T0 + RETRY)


def test_release_all_lifts_every_hold() -> None:
    b, c = setup(fall=1)
    c.record("a", ok=False, detail="refused", now=T0)
    assert c.release_all(now=T0 + 1) == ["a"]
    assert healthy(b, "a", T0 + 1) and c.view("a") is None


def test_config_apply_keeps_survivors_and_forgets_leavers() -> None:
    b, c = setup(["a", "b"], fall=1)
    c.record("a", ok=False, detail="refused", now=T0)
    b.apply(group(["a", "c"]))
    c.apply(HealthCheck(rise=1, fall=1))
    assert c.view("b") is None
    va, vc = c.view("a"), c.view("c")
    assert va is not None and va.state is CheckState.DOWN and not healthy(b, "a", T0)
    assert vc is not None and vc.last_ok is None
    assert c.record("b", ok=False, detail="refused", now=T0) is None  # a probe that outlived its member


@settings(max_examples=200, deadline=None)
@given(results=st.lists(st.booleans(), min_size=1, max_size=60), rise=st.integers(1, 5), fall=st.integers(1, 5))
def test_the_state_follows_the_last_run_of_results(results: list[bool], rise: int, fall: int) -> None:
    """Property: after any sequence, the member is held down exactly when the checks' state machine (up until
    ``fall`` failures in a row, down until ``rise`` passes in a row) says so — and routing agrees."""
    b, c = setup(["a", "b"], rise=rise, fall=fall)
    down = False
    run_ok, run_fail = 0, 0
    for i, ok in enumerate(results):
        c.record("a", ok=ok, detail="x", now=T0 + i)
        run_ok, run_fail = (run_ok + 1, 0) if ok else (0, run_fail + 1)
        if not down and run_fail >= fall:
            down = True
        elif down and run_ok >= rise:
            down = False
        now = T0 + i
        assert healthy(b, "a", now) is (not down)
        assert ("a" in picks(b, now, 4)) is (not down)
