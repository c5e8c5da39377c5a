"""GroupBalancer and Selection: failover order, health (retryDelay), the all-disabled rule, admin states.

Time is an explicit ``now`` everywhere; nothing here reads a clock or sleeps.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from balancedesk.core.balance import AdminState, GroupBalancer, Selection
from balancedesk.core.model import ConnectorGroup
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1000.0


def group(
    members: list[tuple[str, int, int]] | list[tuple[str, int]],
    *,
    rr: bool = True,
    retry_delay: int = 10,
    connection_timeout: int = 15,
) -> ConnectorGroup:
    """members: (id, sequence[, weight])."""
    body: dict[str, Any] = {
        "connectionTimeout": connection_timeout,
        "retryDelay": retry_delay,
        "members": [
            {"memberID": m[0], "sequence": m[1], "weight": m[2] if len(m) > 2 else 1}  # type: ignore[misc]
            for m in members
        ],
    }
    if rr:
        body["loadBalancing"] = "Round Robin"
    return ConnectorGroup.model_validate(body)


def walk(sel: Selection, now: float, failing: set[str]) -> tuple[str | None, list[str]]:
    """Run a selection the way the shell does: members in ``failing`` refuse, the first other one answers."""
    while (m := sel.next(now=now)) is not None:
        if m in failing:
            sel.failed(m, now=now)
            continue
        sel.succeeded(m, now=now)
        return m, list(sel.tried)
    return None, list(sel.tried)


def picks(b: GroupBalancer, n: int, now: float, failing: set[str] = frozenset()) -> list[str | None]:  # type: ignore[assignment]
    return [walk(b.begin(now=now), now, failing)[0] for _ in range(n)]


# failover order (sequence groups) --------------------------------------------------------------------


def test_sequence_group_takes_the_lowest_sequence_first_whatever_the_listing_order() -> None:
    b = GroupBalancer(group([("c", 30), ("a", 10), ("b", 20)], rr=False))
    assert picks(b, 5, T0) == ["a"] * 5
    assert b.member_ids() == ["a", "b", "c"]


def test_sequence_group_moves_to_the_next_after_a_failure_each_member_once() -> None:
    b = GroupBalancer(group([("c", 3), ("a", 1), ("b", 2)], rr=False))
    sel = b.begin(now=T0)
    assert sel.next(now=T0) == "a"
    sel.failed("a", now=T0)
    assert sel.next(now=T0) == "b"
    sel.failed("b", now=T0)
    assert sel.next(now=T0) == "c"
    sel.failed("c", now=T0)
    assert sel.next(now=T0) is None
    assert sel.tried == ["a", "b", "c"]
    assert sel.next(now=T0) is None  # stays exhausted


def test_sequence_group_skips_a_failed_member_for_retry_delay_then_returns_to_it() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2), ("c", 3)], rr=False, retry_delay=10))
    assert walk(b.begin(now=T0), T0, {"a"}) == ("b", ["a", "b"])
    # a is disabled: new selections go straight to b, a is not even tried
    for dt in (0.0, 1.0, 9.999):
        assert walk(b.begin(now=T0 + dt), T0 + dt, set()) == ("b", ["b"])
    assert walk(b.begin(now=T0 + 10), T0 + 10, set()) == ("a", ["a"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=7, unique=True),
    st.data(),
)
def test_failover_walk_is_in_sequence_order_and_stops_at_the_first_that_answers(
    sequences: list[int], data: st.DataObject
) -> None:
    ids = [f"m{s}" for s in sequences]
    failing = set(data.draw(st.lists(st.sampled_from(ids), unique=True)))
    b = GroupBalancer(group([(f"m{s}", s) for s in sequences], rr=False))
    chosen, tried = walk(b.begin(now=T0), T0, failing)
    by_seq = [f"m{s}" for s in sorted(sequences)]
    if failing == set(ids):
        assert chosen is None
        assert tried == by_seq
    else:
        first_ok = next(m for m in by_seq if m not in failing)
        assert chosen == first_ok
        assert tried == by_seq[: by_seq.index(first_ok) + 1]
    assert len(tried) == len(set(tried))


def test_round_robin_failover_tries_each_member_at_most_once() -> None:
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 2), ("c", 3, 1)], retry_delay=0))
    for _ in range(12):
        chosen, tried = walk(b.begin(now=T0), T0, {"a", "b", "c"})
        assert chosen is None
        assert sorted(tried) == ["a", "b", "c"]


# health: retryDelay --------------------------------------------------------------------------------


def test_mark_failed_and_succeeded_report_transitions() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2)], retry_delay=10))
    assert b.mark_failed("a", now=T0) is True
    assert b.mark_failed("a", now=T0 + 1) is False  # already disabled: extended, not a new transition
    assert b.members()[0].disabled_until == T0 + 11
    assert b.members()[0].failures == 2
    assert b.next_expiry() == T0 + 11
    assert b.mark_succeeded("a", now=T0 + 2) is True
    assert b.mark_succeeded("a", now=T0 + 2) is False
    assert b.next_expiry() is None
    assert b.mark_failed("nobody", now=T0) is False
    assert b.mark_succeeded("nobody", now=T0) is False


def test_expire_re_enables_exactly_at_the_end_of_retry_delay() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2), ("c", 3)], retry_delay=5))
    b.mark_failed("a", now=T0)
    b.mark_failed("b", now=T0 + 1)
    assert b.expire(now=T0 + 4.999) == []
    assert b.next_expiry() == T0 + 5
    assert b.expire(now=T0 + 5) == ["a"]
    assert b.next_expiry() == T0 + 6
    assert b.expire(now=T0 + 100) == ["b"]
    assert b.next_expiry() is None
    assert all(v.healthy(T0 + 100) and v.disabled_until is None for v in b.members())


def test_retry_delay_zero_never_disables() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2)], rr=False, retry_delay=0))
    for i in range(5):
        now = T0 + i
        assert b.mark_failed("a", now=now) is False
        assert b.next_expiry() is None
        assert all(v.disabled_until is None for v in b.members())
        # a failed, but it is still the first choice of the next connection
        assert walk(b.begin(now=now), now, {"a"}) == ("b", ["a", "b"])
    assert b.members()[0].failures == 10


def test_connection_timeout_zero_means_no_timeout() -> None:
    assert GroupBalancer(group([("a", 1)], connection_timeout=0)).connection_timeout_s is None
    assert GroupBalancer(group([("a", 1)], connection_timeout=7)).connection_timeout_s == 7.0


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=1, max_value=6), min_size=2, max_size=5),
    retry_delay=st.integers(min_value=1, max_value=300),
    victim_index=st.integers(min_value=0, max_value=4),
    offsets=st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=40),
    rr=st.booleans(),
)
def test_a_disabled_member_gets_nothing_until_its_retry_delay_ends(
    weights: list[int], retry_delay: int, victim_index: int, offsets: list[float], rr: bool
) -> None:
    ids = [f"m{i}" for i in range(len(weights))]
    victim = ids[victim_index % len(ids)]
    b = GroupBalancer(group([(m, i, w) for i, (m, w) in enumerate(zip(ids, weights, strict=True))],
                            rr=rr, retry_delay=retry_delay))
    fail_at = T0 + 3.25
    assert b.mark_failed(victim, now=fail_at)
    until = fail_at + retry_delay
    # explicit times during the delay, in order, from the failure to just before its end
    times = sorted(fail_at + o * retry_delay for o in offsets)
    for now in times:
        if now >= until:
            continue
        chosen, tried = walk(b.begin(now=now), now, set())
        assert victim not in tried, (now, until)
        assert chosen is not None and chosen != victim
    # once the delay is over it takes part again: in round robin within one window, in a sequence
    # group at once if it has the lowest sequence
    total = sum(weights)
    after = picks(b, total, until)
    if rr:
        assert Counter(after)[victim] >= 1
    elif victim == ids[0]:
        assert after[0] == victim


# the all-disabled rule -----------------------------------------------------------------------------


@pytest.mark.parametrize("rr", [True, False])
def test_when_every_member_is_disabled_every_member_is_tried_anyway(rr: bool) -> None:
    b = GroupBalancer(group([("a", 1, 2), ("b", 2, 1), ("c", 3, 1)], rr=rr, retry_delay=60))
    for m in ("a", "b", "c"):
        b.mark_failed(m, now=T0)
    chosen, tried = walk(b.begin(now=T0 + 1), T0 + 1, {"a", "b", "c"})
    assert chosen is None
    assert sorted(tried) == ["a", "b", "c"]
    if not rr:
        assert tried == ["a", "b", "c"]


def test_a_member_that_answers_while_all_are_disabled_is_enabled_at_once() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2), ("c", 3)], rr=False, retry_delay=60))
    for m in ("a", "b", "c"):
        b.mark_failed(m, now=T0)
    chosen, tried = walk(b.begin(now=T0 + 1), T0 + 1, {"a"})
    assert (chosen, tried) == ("b", ["a", "b"])
    views = {v.member_id: v for v in b.members()}
    assert views["b"].disabled_until is None
    assert views["a"].disabled_until == T0 + 61  # failed again: its delay starts over
    # b is up now, so the others are skipped again until their delay ends
    assert walk(b.begin(now=T0 + 2), T0 + 2, set()) == ("b", ["b"])


def test_a_member_failing_last_makes_all_disabled_and_the_rest_are_tried() -> None:
    """a and b are already disabled; c (the only one up) fails → now all are disabled → a and b are tried."""
    b = GroupBalancer(group([("a", 1), ("b", 2), ("c", 3)], rr=False, retry_delay=60))
    b.mark_failed("a", now=T0)
    b.mark_failed("b", now=T0)
    chosen, tried = walk(b.begin(now=T0 + 1), T0 + 1, {"c"})
    assert tried == ["c", "a"]
    assert chosen == "a"


def test_while_one_member_is_up_the_disabled_ones_are_not_tried_even_if_it_fails_with_no_delay() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2)], rr=False, retry_delay=60))
    b.mark_failed("a", now=T0)
    # change to retryDelay 0: b's failure does not disable it, so not all are disabled → a is skipped
    b.apply(group([("a", 1), ("b", 2)], rr=False, retry_delay=0))
    assert walk(b.begin(now=T0 + 1), T0 + 1, {"b"}) == (None, ["b"])


# admin states ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [AdminState.DRAIN, AdminState.DISABLED])
@pytest.mark.parametrize("rr", [True, False])
def test_drained_or_disabled_members_get_no_new_picks(state: AdminState, rr: bool) -> None:
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 2), ("c", 3, 1)], rr=rr))
    b.set_admin("a", state)
    got = picks(b, 60, T0)
    assert "a" not in got
    if rr:
        assert Counter(got) == {"b": 40, "c": 20}
    else:
        assert set(got) == {"b"}
    # not even as a failover target, nor under the all-disabled rule
    for m in ("b", "c"):
        b.mark_failed(m, now=T0)
    chosen, tried = walk(b.begin(now=T0 + 1), T0 + 1, {"b", "c"})
    assert chosen is None and "a" not in tried
    b.set_admin("a", AdminState.ENABLED)
    assert walk(b.begin(now=T0 + 1), T0 + 1, set())[0] == "a"


def test_no_enabled_member_means_no_pick_and_health_is_untouched() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2)]))
    b.set_admin("a", AdminState.DRAIN)
    b.set_admin("b", AdminState.DISABLED)
    assert walk(b.begin(now=T0), T0, set()) == (None, [])
    assert [v.admin for v in b.members()] == [AdminState.DRAIN, AdminState.DISABLED]
    assert all(v.disabled_until is None for v in b.members())
    with pytest.raises(KeyError):
        b.set_admin("nobody", AdminState.DRAIN)


def test_drain_with_affinity_falls_to_the_next_ranked_member() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2), ("c", 3)]))
    first = walk(b.begin(now=T0, affinity_key="k-1"), T0, set())[0]
    assert first is not None
    b.set_admin(first, AdminState.DRAIN)
    second = walk(b.begin(now=T0, affinity_key="k-1"), T0, set())[0]
    assert second not in (None, first)
    b.set_admin(first, AdminState.ENABLED)
    assert walk(b.begin(now=T0, affinity_key="k-1"), T0, set())[0] == first


# weights and configuration -------------------------------------------------------------------------


def test_round_robin_shares_follow_weights_and_skip_a_disabled_member() -> None:
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 2), ("c", 3, 1)], retry_delay=30))
    assert Counter(picks(b, 600, T0)) == {"a": 300, "b": 200, "c": 100}
    b.mark_failed("b", now=T0)
    assert Counter(picks(b, 400, T0 + 1)) == {"a": 300, "c": 100}
    assert Counter(picks(b, 600, T0 + 30)) == {"a": 300, "b": 200, "c": 100}


def test_set_weight_changes_the_shares_at_once() -> None:
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 1)]))
    picks(b, 3, T0)  # mid-window
    b.set_weight("b", 3)
    assert Counter(picks(b, 6, T0)) == {"a": 3, "b": 3}
    assert [v.weight for v in b.members()] == [3, 3]
    with pytest.raises(ValueError, match="positive"):
        b.set_weight("a", 0)
    with pytest.raises(KeyError):
        b.set_weight("nobody", 2)


def test_apply_keeps_surviving_health_and_admin_and_follows_new_weights_at_once() -> None:
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 1), ("c", 3, 1)], retry_delay=30))
    b.mark_failed("b", now=T0)
    b.set_admin("c", AdminState.DRAIN)
    picks(b, 5, T0)
    b.apply(group([("a", 1, 1), ("b", 2, 5), ("c", 3, 1), ("d", 4, 2)], retry_delay=30))
    views = {v.member_id: v for v in b.members()}
    assert views["b"].disabled_until == T0 + 30
    assert views["c"].admin is AdminState.DRAIN
    assert views["d"].admin is AdminState.ENABLED and views["d"].disabled_until is None
    assert Counter(picks(b, 3, T0 + 1)) == {"a": 1, "d": 2}
    assert Counter(picks(b, 8, T0 + 30)) == {"a": 1, "b": 5, "d": 2}
    b.apply(group([("d", 1, 1)]))
    assert b.member_ids() == ["d"]
    assert picks(b, 2, T0 + 31) == ["d", "d"]


def test_a_selection_survives_a_config_change_that_removes_its_member() -> None:
    b = GroupBalancer(group([("a", 1), ("b", 2)], rr=False))
    sel = b.begin(now=T0)
    assert sel.next(now=T0) == "a"
    b.apply(group([("b", 2), ("c", 3)], rr=False))
    assert sel.failed("a", now=T0) is False  # gone: nothing to disable
    assert sel.next(now=T0) == "b"


# a model check: random operations against the rules --------------------------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=8.0, allow_nan=False)),
        st.tuples(st.just("fail"), st.integers(min_value=0, max_value=3)),
        st.tuples(st.just("ok"), st.integers(min_value=0, max_value=3)),
        st.tuples(st.just("admin"), st.integers(min_value=0, max_value=3), st.sampled_from(list(AdminState))),
        st.tuples(st.just("select"), st.sets(st.integers(min_value=0, max_value=3)), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, rr=st.booleans(), retry_delay=st.integers(min_value=0, max_value=10))
def test_random_operations_obey_the_rules(ops: list[tuple[Any, ...]], rr: bool, retry_delay: int) -> None:
    ids = ["a", "b", "c", "d"]
    b = GroupBalancer(group([(m, i + 1, i + 1) for i, m in enumerate(ids)], rr=rr, retry_delay=retry_delay))
    now = T0
    for op in ops:
        if op[0] == "advance":
            now += op[1]
        elif op[0] == "fail":
            b.mark_failed(ids[op[1]], now=now)
        elif op[0] == "ok":
            b.mark_succeeded(ids[op[1]], now=now)
        elif op[0] == "admin":
            b.set_admin(ids[op[1]], op[2])
        else:
            failing = {ids[i] for i in op[1]}
            sel = b.begin(now=now, affinity_key="key-1" if op[2] else None)
            while True:
                views = {v.member_id: v for v in b.members()}
                enabled = [m for m in ids if views[m].admin is AdminState.ENABLED]
                any_up = any(views[m].healthy(now) for m in enabled)
                untried_up = [m for m in enabled if m not in sel.tried and views[m].healthy(now)]
                m = sel.next(now=now)
                if m is None:
                    # nothing left: every enabled member was tried, or only disabled ones are left while
                    # some member is up (so the all-disabled rule does not apply)
                    assert not untried_up
                    assert set(enabled) <= set(sel.tried) or any_up
                    break
                assert views[m].admin is AdminState.ENABLED
                assert sel.tried.count(m) == 1
                if not views[m].healthy(now):
                    assert not any_up, "a disabled member was picked while another member was up"
                elif not rr and op[2] is False:
                    assert m == untried_up[0], "sequence groups take the lowest sequence first"
                if m in failing:
                    sel.failed(m, now=now)
                    if retry_delay == 0:
                        assert b.next_expiry() is None
                else:
                    sel.succeeded(m, now=now)
                    assert {v.member_id: v for v in b.members()}[m].disabled_until is None
                    break


def test_a_config_change_mid_window_gives_exact_windows_of_the_new_weights_at_once() -> None:
    """Regression: leftover WRR state of a removed member (a: -3, b: +3 after 7 picks of 3:3) used to skew
    the windows after the change (b got 21 of 60 picks instead of 20)."""
    b = GroupBalancer(group([("a", 1, 3), ("b", 2, 3)]))
    assert Counter(picks(b, 7, T0)) == {"a": 4, "b": 3}
    b.apply(group([("b", 2, 1), ("c", 3, 2)]))
    seq = picks(b, 60, T0)
    assert all(Counter(seq[i : i + 3]) == {"b": 1, "c": 2} for i in range(58)), seq


@settings(max_examples=300, deadline=None)
@given(ops=OPS, rr=st.booleans(), retry_delay=st.integers(min_value=0, max_value=10),
       key=st.one_of(st.none(), st.text(max_size=8)))
def test_the_fast_path_gives_the_same_answers_as_the_full_rules(
    ops: list[tuple[Any, ...]], rr: bool, retry_delay: int, key: str | None
) -> None:
    """The all-clear shortcut in _pick must agree with the filtered path on every fresh pick."""
    import copy

    ids = ["a", "b", "c", "d"]
    b = GroupBalancer(group([(m, i + 1, i + 1) for i, m in enumerate(ids)], rr=rr, retry_delay=retry_delay))
    now = T0
    for op in ops:
        if op[0] == "advance":
            now += op[1]
        elif op[0] == "fail":
            b.mark_failed(ids[op[1]], now=now)
        elif op[0] in ("ok", "select"):
            b.mark_succeeded(ids[op[1] if op[0] == "ok" else 0], now=now)
        else:
            b.set_admin(ids[op[1]], op[2])
        slow = copy.deepcopy(b)
        slow._all_clear = False
        views = b.members()
        clear = all(v.admin is AdminState.ENABLED and v.disabled_until is None for v in views)
        assert b._all_clear == clear
        for _ in range(3):
            assert b.begin(now=now, affinity_key=key).next(now=now) == \
                slow.begin(now=now, affinity_key=key).next(now=now)
