"""The failed-login throttle: a sans-io policy. No clock, no I/O: ``now`` (monotonic seconds) is an argument.

A login attempt is counted against three keys: the pair (user, source), the source alone and the user alone.
Each key lets :attr:`Rule.free` failures through; past them an attempt on that key must wait
``base_s * 2**(failures - free)`` (at most ``max_s``) after the key's last failure, and only one attempt at a
time is in flight on it. An attempt that is admitted counts as pending until it fails or succeeds, so a burst
of parallel guesses is held to the same budget as guesses one after another. A refusal records nothing.

Which keys may hold an attempt back (all three always count it):

* the pair, always: one source guessing one user is slowed after :data:`PAIR`'s few failures;
* the source, unless this pair is *trusted*: one source guessing many users (or unknown names) is slowed;
* the user, unless the pair is trusted, and only once this pair has itself failed (or has an attempt in
  flight): many sources guessing one user are slowed, each after its first guess.

A pair is trusted for :data:`TRUST_S` after a successful login (that source is the user's own). So the
right password from a source that has not itself guessed wrong is never held up by anyone else's guesses,
and from the user's own source it gets through even after a few typing mistakes of its own.

A success clears the pair (not the user or the source: a login to one's own account must not buy guesses at
another). A key with no failure for :data:`FORGET_S` is forgotten. Memory is bounded: each table keeps at most
``max_entries`` keys (the least recently used go first, which can only make the throttle more lenient), a
user is keyed by a 16-byte hash of the name, an IPv6 source by its /64 (:func:`source_key`).

Other servers' logins (several servers on one database, :mod:`.shared_throttle`) are told to the policy with
:meth:`LoginThrottle.note_failed` and :meth:`~LoginThrottle.note_succeeded`: they count as :meth:`failed` and
:meth:`succeeded` do, except that they were never pending here, and that they may arrive late and out of
order — so a failure moves a key's last failure only forward, and a success clears the pair only if the pair
has not failed since (when in doubt the stricter answer).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(frozen=True)
class Rule:
    """How one kind of key is slowed: ``free`` failures, then a delay doubling from ``base_s`` to ``max_s``."""

    free: int
    base_s: float = 1.0
    max_s: float = 60.0

    def delay_s(self, failures: int) -> float:
        """The wait after the last of ``failures`` failures before this key admits another attempt."""
        if failures < self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(failures - self.free, 64))


PAIR = Rule(free=3)
USER = Rule(free=10)
SOURCE = Rule(free=20)
FORGET_S = 3600.0
TRUST_S = 30 * 86_400.0
MAX_ENTRIES = 10_000


def user_key(name: str) -> bytes:
    """A fixed-size key for a user name (any length, any text; names that exist and names that do not)."""
    return hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def source_key(host: str) -> str:
    """The source an address counts as: an IPv4 address (IPv4-mapped IPv6 included) or an IPv6 /64 — one
    host's share of a network, since a host can pick any address inside its /64."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass
class _Count:
    failures: int = 0
    pending: int = 0
    last_s: float = 0.0  # time of the last failure

    def wait_s(self, rule: Rule, now: float) -> float:
        if self.failures + self.pending < rule.free:
            return 0.0
        if self.pending:
            return max(rule.base_s, rule.delay_s(self.failures + self.pending))
        return max(0.0, self.last_s + rule.delay_s(self.failures) - now)

    def idle(self, now: float, forget_s: float) -> bool:
        return self.pending == 0 and (self.failures == 0 or now - self.last_s >= forget_s)


class _Table(Generic[K]):
    """Counts by key, least recently used first; at most ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.rows: OrderedDict[K, _Count] = OrderedDict()

    def get(self, key: K, now: float, forget_s: float) -> _Count | None:
        row = self.rows.get(key)
        if row is not None and row.idle(now, forget_s):
            del self.rows[key]
            return None
        return row

    def touch(self, key: K) -> _Count:
        row = self.rows.pop(key, None) or _Count()
        self.rows[key] = row
        while len(self.rows) > self.max_entries:
            self.rows.popitem(last=False)
        return row

    def sweep(self, now: float, forget_s: float) -> None:
        while self.rows:
            key, row = next(iter(self.rows.items()))
            if not row.idle(now, forget_s):
                return
            del self.rows[key]


@dataclass(frozen=True)
class Attempt:
    """An admitted attempt: report how it ended with :meth:`LoginThrottle.failed` or ``succeeded``."""

    user: bytes
    source: str


@dataclass(frozen=True)
class Refused:
    """Not admitted: try again in ``wait_s``; ``by`` says which key held it back (pair, source or user)."""

    wait_s: float
    by: str


class LoginThrottle:
    """The policy; see the module docstring. One object per server, used from the event loop's thread."""

    def __init__(
        self,
        *,
        pair: Rule = PAIR,
        user: Rule = USER,
        source: Rule = SOURCE,
        forget_s: float = FORGET_S,
        trust_s: float = TRUST_S,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.rules = {"pair": pair, "user": user, "source": source}
        self.forget_s = forget_s
        self.trust_s = trust_s
        self._pairs: _Table[tuple[bytes, str]] = _Table(max_entries)
        self._users: _Table[bytes] = _Table(max_entries)
        self._sources: _Table[str] = _Table(max_entries)
        self._trusted: OrderedDict[tuple[bytes, str], float] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        """Keys held in all tables (bounded by 4 x ``max_entries``)."""
        return len(self._pairs.rows) + len(self._users.rows) + len(self._sources.rows) + len(self._trusted)

    def _is_trusted(self, pair: tuple[bytes, str], now: float) -> bool:
        since = self._trusted.get(pair)
        if since is not None and now - since >= self.trust_s:
            del self._trusted[pair]
            return False
        return since is not None

    def admit(self, user: str, source: str, now: float) -> Attempt | Refused:
        """May this attempt be verified now? If so it is pending until ``failed``/``succeeded``."""
        for table in (self._pairs, self._users, self._sources):
            table.sweep(now, self.forget_s)
        u = user_key(user)
        pair = (u, source)
        pair_row = self._pairs.get(pair, now, self.forget_s)
        holding: list[tuple[str, _Count | None]] = [("pair", pair_row)]
        if not self._is_trusted(pair, now):
            holding.append(("source", self._sources.get(source, now, self.forget_s)))
            if pair_row is not None and pair_row.failures + pair_row.pending > 0:
                holding.append(("user", self._users.get(u, now, self.forget_s)))
        waits = [(row.wait_s(self.rules[name], now), name) for name, row in holding if row is not None]
        worst = max(waits, key=lambda w: w[0], default=(0.0, ""))  # on a tie the first: the pair
        if worst[0] > 0:
            return Refused(worst[0], worst[1])
        for row in self._rows_of(u, source):
            row.pending += 1
        return Attempt(u, source)

    def _rows_of(self, u: bytes, source: str) -> tuple[_Count, _Count, _Count]:
        return self._pairs.touch((u, source)), self._users.touch(u), self._sources.touch(source)

    def failed(self, attempt: Attempt, now: float) -> None:
        for row in self._rows_of(attempt.user, attempt.source):
            row.pending = max(0, row.pending - 1)
            row.failures += 1
            row.last_s = now

    def succeeded(self, attempt: Attempt, now: float) -> None:
        pair = (attempt.user, attempt.source)
        pair_row, user_row, source_row = self._rows_of(attempt.user, attempt.source)
        for row in (user_row, source_row):
            row.pending = max(0, row.pending - 1)
        pair_row.pending = max(0, pair_row.pending - 1)
        pair_row.failures = 0
        # drop the rows that are left with nothing in them
        self._pairs.get(pair, now, self.forget_s)
        self._users.get(attempt.user, now, self.forget_s)
        self._sources.get(attempt.source, now, self.forget_s)
        self._trusted.pop(pair, None)
        self._trusted[pair] = now
        while len(self._trusted) > self._max_entries:
            self._trusted.popitem(last=False)

    def has_failures(self, user: bytes, source: str, now: float) -> bool:
        """The pair (user key, source) has failures counted (a success would clear them)."""
        row = self._pairs.get((user, source), now, self.forget_s)
        return row is not None and row.failures > 0

    def note_failed(self, user: bytes, source: str, at: float, now: float) -> None:
        """Another server's failed attempt, at ``at`` (on this policy's clock, ``at <= now``): counted on the
        three keys like :meth:`failed`, no pending taken off; a key's last failure only moves forward. Not on
        the pair if the pair succeeded at or after ``at`` (that success cleared it). One older than
        ``forget_s`` is ignored (it would be forgotten at once)."""
        if now - at >= self.forget_s:
            return
        pair_row, user_row, source_row = self._rows_of(user, source)
        cleared = self._trusted.get((user, source), -math.inf) >= at
        for row in (user_row, source_row) if cleared else (pair_row, user_row, source_row):
            row.failures += 1
            row.last_s = max(row.last_s, at)
        if cleared:
            self._pairs.get((user, source), now, self.forget_s)  # dropped if nothing is left in it

    def note_succeeded(self, user: bytes, source: str, at: float, now: float) -> None:
        """Another server's successful login, at ``at`` (``at <= now``): the pair is trusted from ``at`` (or
        from its later trust here) and its failures are cleared — unless the pair failed after ``at`` (a
        failure at the same moment as the success counts as before it)."""
        pair = (user, source)
        row = self._pairs.get(pair, now, self.forget_s)
        if row is not None and row.last_s <= at:
            row.failures = 0
            self._pairs.get(pair, now, self.forget_s)  # dropped if nothing is left in it
        if now - at >= self.trust_s:
            return
        since = max(at, self._trusted.pop(pair, at))
        self._trusted[pair] = since
        while len(self._trusted) > self._max_entries:
            self._trusted.popitem(last=False)
