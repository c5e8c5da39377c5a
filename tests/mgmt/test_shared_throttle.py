"""The shared login throttle without a server: :func:`replay` and the policy's ``note_*`` with explicit clocks,
then :class:`SharedThrottle` on two stores of one database file (two servers' views of one table), with an
explicit monotonic ``now`` and wall clock. The real servers on PostgreSQL: test_shared_login_throttle.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from balancedesk.core.mgmt.shared_throttle import (
    ANNOUNCE_S,
    REPLAY_MAX_ROWS,
    LoginEvent,
    SharedThrottle,
    replay,
)
from balancedesk.core.mgmt.store import Store
from balancedesk.core.mgmt.throttle import FORGET_S, PAIR, SOURCE, Attempt, LoginThrottle, Refused, user_key

WALL = 1_700_000_000.0  # the wall clock at monotonic 0 in these tests
GUESSER = "10.0.0.1"


def budget(make: LoginThrottle, users: list[str], source: str, now: float = 0.0) -> int:
    """Wrong guesses (back to back, at ``now``) one policy admits before its first refusal, cycling ``users``."""
    n = 0
    while n < 1000 and isinstance(v := make.admit(users[n % len(users)], source, now), Attempt):
        make.failed(v, now)
        n += 1
    return n


def event(n: int, *, ok: bool = False, user: str = "alice", source: str = GUESSER, at: float = WALL,
          origin: str = "other") -> LoginEvent:
    return LoginEvent(n, origin, ok, user_key(user), source, at)


def test_replayed_failures_use_up_the_same_budget_as_local_ones() -> None:
    alone = budget(LoginThrottle(), ["alice"], GUESSER)
    assert alone == PAIR.free  # the pair's rule is the one that holds a single guesser of one user
    here = LoginThrottle()
    last = replay(here, [event(i + 1) for i in range(alone)], origin="me", now=0.0, wall=WALL)
    assert last == alone
    held = here.admit("alice", GUESSER, 0.0)
    assert isinstance(held, Refused) and held.by == "pair"
    # one fewer: one more guess is admitted here, then held
    fewer = LoginThrottle()
    replay(fewer, [event(i + 1) for i in range(alone - 1)], origin="me", now=0.0, wall=WALL)
    assert budget(fewer, ["alice"], GUESSER) == 1


def test_own_events_are_skipped_but_their_ids_are_seen() -> None:
    here = LoginThrottle()
    mine = [event(i + 1, origin="me") for i in range(PAIR.free + 5)]
    assert replay(here, mine, origin="me", now=0.0, wall=WALL) == len(mine)
    assert budget(here, ["alice"], GUESSER) == PAIR.free  # nothing was counted twice
    assert replay(LoginThrottle(), [], origin="me", now=0.0, wall=WALL) == 0


def test_wall_clock_ages_become_monotonic_times() -> None:
    # failures 10 s old (by the wall clock) at monotonic 500: their wait runs from 490, not from 500
    here = LoginThrottle()
    replay(here, [event(i + 1, at=WALL - 10) for i in range(PAIR.free)], origin="me", now=500.0, wall=WALL)
    assert here.admit("alice", GUESSER, 500.0) == Attempt(user_key("alice"), GUESSER)  # 1 s wait long over
    # the same failures 0.25 s old: still 0.75 s to wait
    fresh = LoginThrottle()
    replay(fresh, [event(i + 1, at=WALL - 0.25) for i in range(PAIR.free)], origin="me", now=500.0, wall=WALL)
    held = fresh.admit("alice", GUESSER, 500.0)
    assert isinstance(held, Refused) and held.wait_s == pytest.approx(PAIR.delay_s(PAIR.free) - 0.25)
    # a time in the future (a clock ahead) counts as now
    ahead = LoginThrottle()
    replay(ahead, [event(i + 1, at=WALL + 30) for i in range(PAIR.free)], origin="me", now=500.0, wall=WALL)
    held = ahead.admit("alice", GUESSER, 500.0)
    assert isinstance(held, Refused) and held.wait_s == pytest.approx(PAIR.delay_s(PAIR.free))
    # failures older than FORGET_S are not counted at all
    old = LoginThrottle()
    replay(old, [event(i + 1, at=WALL - FORGET_S) for i in range(PAIR.free)], origin="me", now=FORGET_S + 1,
           wall=WALL)
    assert len(old) == 0 and budget(old, ["alice"], GUESSER, FORGET_S + 1) == PAIR.free


def test_a_replayed_success_clears_the_pair_and_trusts_it() -> None:
    here = LoginThrottle()
    events = [event(i + 1, at=WALL - 5) for i in range(PAIR.free)] + [event(PAIR.free + 1, ok=True, at=WALL - 1)]
    replay(here, events, origin="me", now=100.0, wall=WALL)
    assert isinstance(here.admit("alice", GUESSER, 100.0), Attempt)  # the pair was cleared
    # trusted: the source's own budget (used up on other names) does not hold this pair back
    for i in range(SOURCE.free):
        here.note_failed(user_key(f"u{i}"), GUESSER, 100.0, 100.0)
    assert isinstance(here.admit("bob", GUESSER, 100.0), Refused)
    assert isinstance(here.admit("alice", GUESSER, 100.0), Attempt)


def test_events_out_of_order_never_make_the_policy_more_lenient_than_in_order() -> None:
    # a success older than the pair's last failure clears nothing
    late = LoginThrottle()
    replay(late, [event(i + 1, at=WALL - 2) for i in range(PAIR.free)] + [event(9, ok=True, at=WALL - 3)],
           origin="me", now=10.0, wall=WALL - 2)
    assert isinstance(late.admit("alice", GUESSER, 10.0), Refused)
    # a failure older than a success already seen does not count on the pair (the success cleared it) — were
    # they counted, the pair would still wait 0.5 s here ...
    cleared = LoginThrottle()
    replay(cleared, [event(1, ok=True, at=WALL)] + [event(i + 2, at=WALL - 0.5) for i in range(PAIR.free)],
           origin="me", now=10.0, wall=WALL)
    assert isinstance(cleared.admit("alice", GUESSER, 10.0), Attempt)
    # ... as in order it would not: failures, then the success
    in_order = LoginThrottle()
    replay(in_order, [event(i + 2, at=WALL - 0.5) for i in range(PAIR.free)] + [event(1, ok=True, at=WALL)],
           origin="me", now=10.0, wall=WALL)
    assert isinstance(in_order.admit("alice", GUESSER, 10.0), Attempt)


# -- SharedThrottle on one table ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def wall(self) -> float:
        return WALL + self.now


Two = Callable[[], tuple[SharedThrottle, SharedThrottle, Store, Clock]]


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Two]:
    """``two()`` → two servers' throttles on one new database file, the first one's store, their clock."""
    stores: list[Store] = []

    def _two() -> tuple[SharedThrottle, SharedThrottle, Store, Clock]:
        clock = Clock()
        path = tmp_path / f"db{len(stores)}.sqlite3"
        a, b = Store(path), Store(path)
        stores.extend((a, b))
        return SharedThrottle(a, wall=clock.wall), SharedThrottle(b, wall=clock.wall), a, clock

    yield _two
    for store in stores:
        store.close()


def rows(store: Store) -> list[tuple[int, str, bool, bytes, str, float]]:
    return store.logins_after(0, 10**6)


def guess(t: SharedThrottle, user: str, source: str, now: float) -> bool:
    """One wrong guess through ``t``; whether it was admitted."""
    v = t.admit(user, source, now)
    if isinstance(v, Attempt):
        t.failed(v, now)
    return isinstance(v, Attempt)


def test_guesses_alternating_over_two_servers_get_one_servers_budget(two: Two) -> None:
    a, b, store, clock = two()
    alone = budget(LoginThrottle(), ["alice"], GUESSER)
    admitted = [guess((a, b)[i % 2], "alice", GUESSER, clock.now) for i in range(alone + 2)]
    assert admitted == [True] * alone + [False, False]
    assert len(rows(store)) == alone  # one row per failure; refusals record nothing
    # many names from one source, over both: the source's budget, not twice it
    a2, b2, _, _ = two()
    alone = budget(LoginThrottle(), [f"u{i}" for i in range(1000)], GUESSER)
    assert alone == SOURCE.free
    admitted = [guess((a2, b2)[i % 2], f"u{i}", GUESSER, 0.0) for i in range(alone + 1)]
    assert admitted == [True] * alone + [False]


def test_rows_hold_keys_only_and_successes_are_written_when_they_tell_something(two: Two) -> None:
    a, b, store, clock = two()
    assert guess(a, "alice", GUESSER, 0.0)
    ((_, origin, ok, user, source, at),) = rows(store)
    assert (origin, ok, user, source, at) == (a.origin, False, user_key("alice"), GUESSER, WALL)
    # a success that clears the pair's failure is written; one more right away is not (nothing new) ...
    for expect in (2, 2):
        v = a.admit("alice", GUESSER, 1.0)
        assert isinstance(v, Attempt)
        a.succeeded(v, 1.0)
        assert len(rows(store)) == expect
    # ... until ANNOUNCE_S have passed (rows live FORGET_S: a server started later still finds the trust)
    clock.now = 1.0 + ANNOUNCE_S
    v = a.admit("alice", GUESSER, clock.now)
    assert isinstance(v, Attempt)
    a.succeeded(v, clock.now)
    assert [r[2] for r in rows(store)] == [False, True, True]
    # b knows the pair is trusted: the source's budget spent on other names does not hold alice back on b
    for i in range(SOURCE.free):  # (the last ones are refused: alice's failure counted on the source too)
        guess(a, f"u{i}", GUESSER, clock.now)
    assert not guess(b, "nobody", GUESSER, clock.now)  # b never saw a failure itself
    assert isinstance(b.admit("alice", GUESSER, clock.now), Attempt)


def test_rows_are_purged_on_write_and_reads_are_bounded(two: Two) -> None:
    a, b, store, clock = two()
    assert guess(a, "alice", GUESSER, 0.0)
    clock.now = FORGET_S + 1
    assert guess(a, "bob", GUESSER, clock.now)
    assert [r[3] for r in rows(store)] == [user_key("bob")]  # alice's row was older than FORGET_S
    # at most `keep` rows are kept (the oldest go)
    for i in range(5):
        store.record_login("x", False, user_key(f"k{i}"), GUESSER, clock.wall(), forget_before=0.0, keep=3)
    assert [r[3] for r in rows(store)] == [user_key(f"k{i}") for i in (2, 3, 4)]
    # a decision reads at most REPLAY_MAX_ROWS; the next ones catch up
    with store.write(bump=False):  # (many rows at once: one transaction, not one fsync each)
        first = rows(store)[-1][0]
        more = REPLAY_MAX_ROWS + 10
        store.db.executemany(
            "INSERT INTO login_events (id, origin, ok, user_key, source, at) VALUES (?, 'x', 0, ?, ?, ?)",
            [(first + 1 + i, user_key(f"m{i}").hex(), f"10.1.{i // 256}.{i % 256}", clock.wall())
             for i in range(more)],
        )
        store.db.execute("UPDATE login_seq SET n = ?", (first + more,))
    ids = [r[0] for r in rows(store)]
    b.catch_up(clock.now)
    assert b.seen == ids[REPLAY_MAX_ROWS - 1]
    b.catch_up(clock.now)
    assert b.seen == ids[-1]
    b.catch_up(clock.now)
    assert b.seen == ids[-1]
