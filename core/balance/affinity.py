"""Weighted rendezvous (highest random weight) hashing of an affinity key over members.

Every member gets a score ``-weight / ln(u)`` where ``u`` in (0, 1) comes from a keyed hash of
(key, memberID). The highest score wins; the ranking is the failover order for that key. Two balancers
with the same members rank every key the same way with no shared state; adding or removing a member only
moves the keys that member wins (its weight's share).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from functools import lru_cache

_SCALE = float(1 << 64)
_BELOW_ONE = math.nextafter(1.0, 0.0)


def unit_of(n: int) -> float:
    """A 64-bit hash value as a float strictly inside (0, 1)."""
    u = (n + 0.5) / _SCALE
    # the top 2**10 values round to exactly 1.0 in a float; log(1.0) == 0 would divide by zero
    return u if u < 1.0 else _BELOW_ONE


def _unit(key: str, member_id: str) -> float:
    digest = hashlib.blake2b(f"{member_id}\x00{key}".encode(), digest_size=8).digest()
    return unit_of(int.from_bytes(digest, "big"))


def score(key: str, member_id: str, weight: int) -> float:
    return -weight / math.log(_unit(key, member_id))


@lru_cache(maxsize=65536)
def _rank(key: str, members: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    scored = sorted(members, key=lambda mw: (-score(key, mw[0], mw[1]), mw[0]))
    return tuple(m for m, _ in scored)


def rendezvous_rank(key: str, members: Sequence[tuple[str, int]]) -> tuple[str, ...]:
    """Members (memberID, weight) ranked for ``key``, best first. Cached: keys of one transfer repeat."""
    return _rank(key, tuple(members))
