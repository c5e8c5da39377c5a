"""The failed-login throttle as a pure policy: explicit ``now`` values, no server, no clock."""

from __future__ import annotations

import math

from balancedesk.core.mgmt.throttle import (
    FORGET_S,
    PAIR,
    SOURCE,
    USER,
    Attempt,
    LoginThrottle,
    Refused,
    Rule,
    source_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ATTACKERS = [f"10.0.0.{i}" for i in range(1, 9)]
REAL = "192.168.1.10"


def fail(t: LoginThrottle, user: str, source: str, now: float) -> Attempt | Refused:
    verdict = t.admit(user, source, now)
    if isinstance(verdict, Attempt):
        t.failed(verdict, now)
    return verdict


def succeed(t: LoginThrottle, user: str, source: str, now: float) -> Attempt | Refused:
    verdict = t.admit(user, source, now)
    if isinstance(verdict, Attempt):
        t.succeeded(verdict, now)
    return verdict


def test_one_source_guessing_one_user_waits_longer_after_each_failure() -> None:
    t = LoginThrottle()
    now = 0.0
    for _ in range(PAIR.free):
        assert isinstance(fail(t, "admin", "10.0.0.1", now), Attempt)
    for expected in (1.0, 2.0, 4.0, 8.0):
        refused = t.admit("admin", "10.0.0.1", now)
        assert refused == Refused(expected, "pair")
        assert isinstance(t.admit("admin", "10.0.0.1", now + expected - 0.01), Refused)
        now += expected
        assert isinstance(fail(t, "admin", "10.0.0.1", now), Attempt)
    # the doubling stops at max_s
    for _ in range(20):
        verdict = t.admit("admin", "10.0.0.1", now)
        assert isinstance(verdict, Refused) and verdict.wait_s <= PAIR.max_s
        now += verdict.wait_s
        fail(t, "admin", "10.0.0.1", now)
    assert t.admit("admin", "10.0.0.1", now) == Refused(PAIR.max_s, "pair")


def test_the_right_password_from_another_source_is_not_held_up() -> None:
    t = LoginThrottle()
    for i in range(200):
        fail(t, "admin", ATTACKERS[i % len(ATTACKERS)], float(i))
    # the user key is far past its budget, yet a source that has not guessed wrong itself gets in
    assert isinstance(succeed(t, "admin", REAL, 200.0), Attempt)
    # and after that success its own few typing mistakes do not bring the user key upon it
    for _ in range(PAIR.free):
        assert isinstance(fail(t, "admin", REAL, 201.0), Attempt)
    assert succeed(t, "admin", REAL, 201.5) == Refused(0.5, "pair")  # its own pair: a fourth wrong in a row
    assert isinstance(succeed(t, "admin", REAL, 202.0), Attempt)


def test_many_sources_guessing_one_user_are_slowed_after_their_first_guess() -> None:
    t = LoginThrottle()
    sources = [f"10.1.{i // 250}.{i % 250}" for i in range(USER.free + 5)]
    for s in sources:
        assert isinstance(fail(t, "admin", s, 0.0), Attempt)  # each one's first guess
    # a second guess from any of them now waits on the user key (the pair itself is still in budget)
    verdict = t.admit("admin", sources[0], 0.0)
    assert isinstance(verdict, Refused) and verdict.by == "user"
    # a fresh source still gets its first guess — one: a second one in parallel waits on the user key
    assert isinstance(t.admit("admin", "10.9.9.9", 0.0), Attempt)
    verdict = t.admit("admin", "10.9.9.9", 0.0)
    assert isinstance(verdict, Refused) and verdict.by == "user"


def test_one_source_guessing_many_users_is_slowed_by_the_source_key() -> None:
    t = LoginThrottle()
    for i in range(SOURCE.free):
        assert isinstance(fail(t, f"user{i}", "10.0.0.1", 0.0), Attempt)
    verdict = t.admit("someone-else", "10.0.0.1", 0.0)
    assert verdict == Refused(SOURCE.base_s, "source")
    # another source is not affected, nor is a pair this source had logged in with before
    assert isinstance(t.admit("someone-else", "10.0.0.2", 0.0), Attempt)


def test_a_trusted_pair_is_exempt_from_the_source_key() -> None:
    t = LoginThrottle()
    assert isinstance(succeed(t, "alice", "10.0.0.1", 0.0), Attempt)
    for i in range(SOURCE.free + 5):
        fail(t, f"user{i}", "10.0.0.1", 1.0)
    assert isinstance(t.admit("bob", "10.0.0.1", 1.0), Refused)
    assert isinstance(succeed(t, "alice", "10.0.0.1", 1.0), Attempt)


def test_parallel_attempts_count_while_pending() -> None:
    t = LoginThrottle()
    pending = [t.admit("admin", "10.0.0.1", 0.0) for _ in range(PAIR.free)]
    assert all(isinstance(p, Attempt) for p in pending)
    assert isinstance(t.admit("admin", "10.0.0.1", 0.0), Refused)  # no fourth in flight
    for p in pending:
        assert isinstance(p, Attempt)
        t.failed(p, 0.1)
    assert t.admit("admin", "10.0.0.1", 0.1) == Refused(PAIR.base_s, "pair")


def test_success_clears_the_pair_but_not_the_user_or_the_source() -> None:
    t = LoginThrottle()
    for _ in range(PAIR.free):
        fail(t, "alice", "10.0.0.1", 0.0)
    assert isinstance(t.admit("alice", "10.0.0.1", 0.0), Refused)
    assert isinstance(succeed(t, "alice", "10.0.0.1", 1.0), Attempt)
    for _ in range(PAIR.free):
        assert isinstance(fail(t, "alice", "10.0.0.1", 1.0), Attempt)
    # the source's failures were kept: six so far
    for i in range(SOURCE.free - 2 * PAIR.free):
        assert isinstance(fail(t, f"other{i}", "10.0.0.2", 1.0), Attempt)
        fail(t, f"x{i}", "10.0.0.1", 1.0)
    assert isinstance(t.admit("nobody", "10.0.0.1", 1.0), Refused)


def test_failures_are_forgotten_after_quiet_and_trust_expires() -> None:
    for quiet, free_again in ((99.0, 0), (100.0, PAIR.free)):
        t = LoginThrottle(forget_s=100.0)
        for _ in range(PAIR.free + 3):
            fail(t, "alice", "10.0.0.1", 0.0)
        admitted = 0
        while isinstance(fail(t, "alice", "10.0.0.1", quiet), Attempt):
            admitted += 1
        # before forget_s the key is where it was (one more attempt, its wait over); after it, fresh
        assert admitted == max(1, free_again)
    t2 = LoginThrottle(trust_s=1000.0)
    succeed(t2, "alice", "10.0.0.1", 0.0)
    for i in range(SOURCE.free):
        fail(t2, f"u{i}", "10.0.0.1", 999.0)
    assert isinstance(t2.admit("alice", "10.0.0.1", 999.5), Attempt)  # still its own source
    t3 = LoginThrottle(trust_s=1000.0)
    succeed(t3, "alice", "10.0.0.1", 0.0)
    for i in range(SOURCE.free):
        fail(t3, f"u{i}", "10.0.0.1", 1000.0)
    assert isinstance(t3.admit("alice", "10.0.0.1", 1000.5), Refused)  # trust ran out


def test_unknown_and_known_names_are_throttled_alike() -> None:
    # the policy does not know which users exist: any name is a key
    t = LoginThrottle()
    for name in ("admin", "no-such-user"):
        for _ in range(PAIR.free):
            fail(t, name, "10.0.0.1", 0.0)
        assert t.admit(name, "10.0.0.1", 0.0) == Refused(PAIR.base_s, "pair")


def test_source_key_groups_an_ipv6_host_by_its_64() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert source_key("127.0.0.1") == "127.0.0.1"
    assert source_key("fe80::1%eth0") == "fe80::/64"


# -- properties ---------------------------------------------------------------------------------------

attack_ops = st.lists(
    st.tuples(
        st.sampled_from(["admin", "alice", "ghost", "x" * 300]),
        st.sampled_from(ATTACKERS),
        st.floats(min_value=0.0, max_value=30.0),
        st.booleans(),  # finish the attempt as failed (True) or leave it pending (False)
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(ops=attack_ops, real_logins=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=10))
def test_property_the_real_user_is_never_refused_because_of_others(
    ops: list[tuple[str, str, float, bool]], real_logins: list[float]
) -> None:
    """Whatever other sources do (any users, any pace, attempts left pending), the right password from a
    source with no failures of its own is admitted every time."""
    t = LoginThrottle()
    now = 0.0
    logins = iter(sorted(real_logins))
    next_login = next(logins, None)
    for user, source, step, finish in ops:
        now += step
        while next_login is not None and next_login <= now:
            assert isinstance(succeed(t, "admin", REAL, now), Attempt)
            next_login = next(logins, None)
        verdict = t.admit(user, source, now)
        if isinstance(verdict, Attempt) and finish:
            t.failed(verdict, now)
    assert isinstance(succeed(t, "admin", REAL, now + 0.001), Attempt)


def _bound(rule: Rule, window_s: float) -> int:
    """Most attempts one key admits in ``window_s`` to a client that retries the moment it may."""
    ramp = math.ceil(math.log2(rule.max_s / rule.base_s)) + 1  # 1, 2, 4 … until max_s
    return rule.free + ramp + math.ceil(window_s / rule.max_s) + 1


@settings(max_examples=60, deadline=None)
@given(window=st.floats(min_value=1.0, max_value=7200.0), n_sources=st.integers(min_value=1, max_value=40))
def test_property_guessing_is_slow(window: float, n_sources: int) -> None:
    """Sources that retry the moment they are allowed get, within ``window`` seconds, at most one guess each
    past the user key's budget (their first) plus what the user key's own pace allows."""
    t = LoginThrottle()
    sources = [f"10.2.{i // 250}.{i % 250}" for i in range(n_sources)]
    ready = dict.fromkeys(sources, 0.0)
    guesses = 0
    for _ in range(5000):
        source = min(ready, key=lambda s: ready[s])
        now = ready[source]
        if now > window:
            break
        verdict = t.admit("admin", source, now)
        if isinstance(verdict, Refused):
            ready[source] = now + verdict.wait_s
            continue
        guesses += 1
        t.failed(verdict, now)
    single = _bound(PAIR, window)
    # a source held back for FORGET_S is fresh again: one more first guess per source and FORGET_S
    firsts = n_sources * (1 + math.floor(window / FORGET_S))
    assert guesses <= max(single, firsts + _bound(USER, window))
    if n_sources == 1:
        assert guesses <= single


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.text(max_size=20), st.integers(min_value=0, max_value=500), st.booleans(), st.booleans()),
        max_size=400,
    )
)
def test_property_memory_is_bounded(ops: list[tuple[str, int, bool, bool]]) -> None:
    t = LoginThrottle(max_entries=16)
    now = 0.0
    for user, source, ok, finish in ops:
        now += 0.5
        verdict = t.admit(user, f"10.3.{source // 250}.{source % 250}", now)
        if isinstance(verdict, Attempt) and finish:
            (t.succeeded if ok else t.failed)(verdict, now)
        assert len(t) <= 4 * 16
