"""Balancer tokens: the least-privilege credential a balancer host holds instead of a password.

A token is ``bdt_<id>_<secret>``: ``id`` (12 hex digits) names its row, ``secret`` is 32 random bytes
(URL-safe base64). Only SHA-256 of the secret is stored — a 256-bit random secret needs no slow hash (no
dictionary can guess it), and a balancer asks every few seconds, so argon2's ~0.1 s per check would cost a
core. The whole token is shown once, when it is created; listing shows its id, pool, label and times.

With a token a caller may, for the token's pool only: read the pool's groups with their members' endpoints,
follow the change feed, and send heartbeats (:mod:`.fleet_routes`). Everything else answers 403. A revoked
token answers 401, like a wrong one. Tokens are made by an Administrator (``POST /api/admin/tokens``) or on
the command line (``balancedesk tokens add --pool P``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from balancedesk.core.fleet import BALANCER_TOKEN_PREFIX
from balancedesk.core.mgmt.errors import ApiFailure, rule_failure
from balancedesk.core.mgmt.store import Store
from balancedesk.core.model import LABEL_MAX, POOL_RE, Problem

MAX_TOKENS = 1000  # active (unrevoked) tokens a store keeps
_TOKEN_RE = re.compile(rf"^{BALANCER_TOKEN_PREFIX}([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


@dataclass(frozen=True)
class TokenRow:
    token_id: str
    pool: str
    label: str
    created: float
    revoked: float | None

    def as_json(self) -> dict[str, Any]:
        return {"tokenID": self.token_id, "pool": self.pool, "label": self.label, "created": self.created,
                "revoked": self.revoked}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def is_token(header_value: str) -> bool:
    return header_value.startswith(BALANCER_TOKEN_PREFIX)


def token_id_of(token: str) -> str:
    """The ID part of a well-formed token, else ``"?"`` (the throttle's key for malformed guesses)."""
    match = _TOKEN_RE.match(token)
    return match[1] if match else "?"


def verify(store: Store, token: str) -> TokenRow | None:
    """The token's row if the token is well formed, known, matches and is not revoked; else None."""
    match = _TOKEN_RE.match(token)
    if match is None:
        return None
    row = store.db.execute(
        "SELECT id, secret_hash, pool, label, created, revoked FROM tokens WHERE id=?", (match[1],)
    ).fetchone()
    if row is None or row[5] is not None or not hmac.compare_digest(row[1], _digest(match[2])):
        return None
    return TokenRow(row[0], row[2], row[3], row[4], row[5])


def _rows(store: Store) -> list[TokenRow]:
    return [
        TokenRow(r[0], r[1], r[2], r[3], r[4])
        for r in store.db.execute("SELECT id, pool, label, created, revoked FROM tokens ORDER BY created, id")
    ]


def create(store: Store, body: Any) -> dict[str, Any]:
    """``{"pool": P, "label": L?}`` → the new token's row plus ``"token"`` (shown this once). In a write
    transaction. 400 naming the field; 409 past :data:`MAX_TOKENS` active tokens."""
    if not isinstance(body, dict):
        raise rule_failure([Problem("body", "must be a JSON object")])
    problems = [Problem(k, "is not a known field") for k in body if k not in {"pool", "label"}]
    pool, label = body.get("pool"), body.get("label", "")
    if not isinstance(pool, str) or not POOL_RE.match(pool):
        problems.append(Problem("pool", "is required: 1-64 letters, digits or _ . - (the pool this token serves)"))
    if not isinstance(label, str) or len(label) > LABEL_MAX:
        problems.append(Problem("label", f"must be a string of at most {LABEL_MAX} characters"))
    if problems:
        raise rule_failure(problems)
    assert isinstance(pool, str) and isinstance(label, str)
    active = int(store.db.execute("SELECT COUNT(*) FROM tokens WHERE revoked IS NULL").fetchone()[0])
    if active >= MAX_TOKENS:
        raise ApiFailure(409, f"There are already {MAX_TOKENS} active balancer tokens; revoke some first.")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    created = time.time()
    store.db.execute(
        "INSERT INTO tokens (id, secret_hash, pool, label, created) VALUES (?, ?, ?, ?, ?)",
        (token_id, _digest(secret), pool, label, created),
    )
    row = TokenRow(token_id, pool, label, created, None)
    return {**row.as_json(), "token": f"{BALANCER_TOKEN_PREFIX}{token_id}_{secret}"}


def listing(store: Store) -> dict[str, Any]:
    return {"tokens": [t.as_json() for t in _rows(store)]}


def revoke(store: Store, token_id: str) -> dict[str, Any]:
    """Revoke a token (it answers 401 from now on); 404 if unknown. Revoking twice keeps the first time."""
    row = next((t for t in _rows(store) if t.token_id == token_id), None)
    if row is None:
        raise ApiFailure(404, f"There is no balancer token with ID {token_id}.")
    if row.revoked is None:
        store.db.execute("UPDATE tokens SET revoked=? WHERE id=?", (time.time(), token_id))
    updated = next(t for t in _rows(store) if t.token_id == token_id)
    return updated.as_json()
