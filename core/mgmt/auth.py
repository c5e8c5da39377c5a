"""Passwords (argon2id, salted), a verified-credentials cache, and the failed-login throttle.

Verifying an argon2 hash costs tens of milliseconds by design, so a successful (user, password) pair is
remembered in memory — keyed by a keyed hash of the password, never the password — for as long as the
stored hash is unchanged. The throttle is per client address: after :data:`FREE_FAILURES` failures in a row
each further failure locks that client out for twice as long as the last (1 s, 2 s, 4 s … up to
:data:`MAX_LOCK_S`), answering 429 with ``Retry-After``; a success resets it. All in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

FREE_FAILURES = 5
MAX_LOCK_S = 300.0
MAX_CLIENTS = 10_000
PASSWORD_MIN = 8

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): strong, and ~0.1-0.2 s per hash on a
# small server. Verification reads the parameters from each stored hash, so these can be raised later.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(pw_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(pw_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class CredentialCache:
    """Remembers (user, password) pairs already verified against a given stored hash."""

    def __init__(self, size: int = 4096) -> None:
        self._key = secrets.token_bytes(32)
        self._seen: OrderedDict[tuple[str, bytes], str] = OrderedDict()
        self._size = size

    def _fp(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def known(self, user: str, password: str, pw_hash: str) -> bool:
        return self._seen.get((user, self._fp(password))) == pw_hash

    def remember(self, user: str, password: str, pw_hash: str) -> None:
        self._seen[(user, self._fp(password))] = pw_hash
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)


@dataclass
class _Client:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Per-client exponential lockout after repeated failed logins."""

    def __init__(self, *, free_failures: int = FREE_FAILURES, max_lock_s: float = MAX_LOCK_S) -> None:
        self.free_failures = free_failures
        self.max_lock_s = max_lock_s
        self._clients: OrderedDict[str, _Client] = OrderedDict()

    def retry_after(self, client: str, now: float) -> float:
        """Seconds this client must still wait (0 if it may try now)."""
        state = self._clients.get(client)
        return max(0.0, state.locked_until - now) if state else 0.0

    def failed(self, client: str, now: float) -> None:
        state = self._clients.pop(client, None) or _Client()
        state.failures += 1
        extra = state.failures - self.free_failures
        if extra >= 0:
            state.locked_until = now + min(self.max_lock_s, 2.0**extra)
        self._clients[client] = state
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
