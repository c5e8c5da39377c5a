"""Passwords (argon2id, salted) and a verified-credentials cache.

Verifying an argon2 hash costs tens of milliseconds by design, so a successful (user, password) pair is
remembered in memory — keyed by a keyed hash of the password, never the password — for as long as the
stored hash is unchanged. Failed logins are slowed by :mod:`.throttle`; :mod:`.login` puts the two together.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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

    def fingerprint(self, password: str) -> bytes:
        """A keyed hash of a password: what this process remembers instead of the password."""
        return hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()

    def known(self, user: str, password: str, pw_hash: str) -> bool:
        return self._seen.get((user, self.fingerprint(password))) == pw_hash

    def remember(self, user: str, password: str, pw_hash: str) -> None:
        self._seen[(user, self.fingerprint(password))] = pw_hash
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
