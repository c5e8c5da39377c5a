"""Sticky affinity: a key stays on the member that last served it while that member is up.

Rendezvous hashing alone (:mod:`.affinity`) sends a key back to its first-ranked member as soon as that member
is healthy again — so a transfer that moved to B while C was down returns to C when C's retryDelay ends,
and the part of it already on B is lost (HAProxy's stick tables keep such a key where it is). The rules:

* A key's **rendezvous choice** is ``rendezvous_rank(key, weights of every configured member)[0]``: what a
  new key gets while everyone is up, whatever their health or admin state.
* A key with **no entry** goes where rendezvous hashing sends it among the candidates (the first-ranked
  healthy, enabled, untried member): new keys are routed exactly as before, so two balancers agree on them.
* A key **with an entry** goes to the entry's member while it is a candidate (enabled, healthy, untried);
  when it is not, the key falls to the rendezvous order as a new key does.
* An entry is made only for a key **displaced** from its rendezvous choice: whenever a walk picks a member for
  a key, that member is remembered if it is not the key's rendezvous choice, and the key's entry is dropped if
  it is (no entry already means that member). So every key stays on the member that last served it while
  that member is up, and the table holds only the keys an outage (or a drain) moved — few, and the only
  ones another worker or instance cannot work out for itself.
* The table is **bounded** (``capacity``): a new entry past it evicts the entry idle longest (counted in
  ``evictions``). An entry not used for ``idle_s`` seconds is forgotten (counted in ``expiries``) when next
  looked up or swept. A forgotten key follows the rendezvous order again.
* Not kept: a live weight change or a config change re-ranks keys without entries (as rendezvous hashing
  does); keys with entries stay.

Storage is a :class:`StickyStore`: :class:`StickyTable` here (one process), or a table in shared memory
that every worker of a balancer process reads and writes (``core/proxy/shared.py``). The store only stores;
the rules above are :class:`~balancedesk.core.balance.group.GroupBalancer`'s. Calling protocol (``now`` is
monotonic seconds)::

    held = store.get(key, now=now)       # the member an entry names (its idle clock restarts), or None
    store.put(key, member_id, now=now)   # remember (may evict the entry idle longest)
    store.discard(key)                   # forget
    store.sweep(now=now)                 # forget entries idle past idle_s (a bounded amount of work)
    store.counts()                       # StickyCounts(entries, evictions, expiries)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class StickyCounts:
    """What the snapshot shows of a sticky table."""

    entries: int
    capacity: int
    idle_s: float
    evictions: int
    expiries: int


class StickyStore(Protocol):
    capacity: int
    idle_s: float

    def get(self, key: str, *, now: float) -> str | None: ...
    def put(self, key: str, member_id: str, *, now: float) -> None: ...
    def discard(self, key: str) -> None: ...
    def sweep(self, *, now: float) -> int: ...
    def counts(self) -> StickyCounts: ...


class StickyTable:
    """A :class:`StickyStore` in this process: an ordered dict, least recently used first."""

    def __init__(self, *, capacity: int, idle_s: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if idle_s <= 0:
            raise ValueError("idle_s must be positive")
        self.capacity = capacity
        self.idle_s = idle_s
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.evictions = 0
        self.expiries = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, *, now: float) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        member_id, last = entry
        if now - last >= self.idle_s:
            del self._entries[key]
            self.expiries += 1
            return None
        self._entries[key] = (member_id, now)
        self._entries.move_to_end(key)
        return member_id

    def put(self, key: str, member_id: str, *, now: float) -> None:
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        elif len(entries) >= self.capacity:
            self.sweep(now=now)
            if len(entries) >= self.capacity:
                entries.popitem(last=False)
                self.evictions += 1
        entries[key] = (member_id, now)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)

    def sweep(self, *, now: float) -> int:
        """Forget the entries idle for ``idle_s`` or more (oldest first: stops at the first fresh one)."""
        n = 0
        entries = self._entries
        while entries:
            key, (_, last) = next(iter(entries.items()))
            if now - last < self.idle_s:
                break
            del entries[key]
            n += 1
        self.expiries += n
        return n

    def counts(self) -> StickyCounts:
        return StickyCounts(len(self._entries), self.capacity, self.idle_s, self.evictions, self.expiries)
