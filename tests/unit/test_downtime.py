"""``core.balance.health.Downtime``: the total time a member was out, with explicit ``now`` — a passive mark ends
by itself at its deadline, a check hold only when the member comes up, marks while out extend one outage, and
a current outage counts up to now."""

from __future__ import annotations

from balancedesk.core.balance import Downtime


def test_a_passive_mark_ends_by_itself_at_its_deadline() -> None:
    d = Downtime()
    d.went_down("a", now=10.0, until=40.0)
    assert d.total("a", now=25.0) == 15.0  # a current outage, up to now
    assert d.total("a", now=100.0) == 30.0  # ended at 40 though nobody said so
    d.came_up("a", now=120.0)  # the expiry timer, late: changes nothing
    assert d.total("a", now=200.0) == 30.0
    assert d.total("b", now=200.0) == 0.0  # never out


def test_marks_while_out_extend_one_outage_and_a_hold_wins() -> None:
    d = Downtime()
    d.went_down("a", now=0.0, until=30.0)
    d.went_down("a", now=20.0, until=50.0)  # tried again (every member was out) and failed again
    assert d.total("a", now=60.0) == 50.0
    d.went_down("a", now=70.0, until=80.0)
    d.went_down("a", now=75.0, until=None)  # the checks hold it: no deadline any more
    d.went_down("a", now=76.0, until=90.0)  # a passive mark does not end a hold
    assert d.total("a", now=200.0) == 50.0 + 130.0
    d.came_up("a", now=200.0)
    assert d.total("a", now=1000.0) == 180.0


def test_up_early_and_outages_add_up() -> None:
    d = Downtime()
    d.went_down("a", now=5.0, until=65.0)
    d.came_up("a", now=7.5)  # a successful connect or passing checks lifted the mark early
    d.went_down("a", now=100.0, until=None)
    d.came_up("a", now=104.0)
    assert d.total("a", now=500.0) == 6.5
    d.came_up("a", now=600.0)  # up while up: nothing
    assert d.total("a", now=700.0) == 6.5


def test_a_member_that_left_is_forgotten() -> None:
    d = Downtime()
    d.went_down("a", now=0.0, until=None)
    d.went_down("b", now=0.0, until=None)
    d.forget({"b"})
    assert d.total("a", now=10.0) == 0.0 and d.total("b", now=10.0) == 10.0
