"""Idempotency keys: a write sent twice with one key is applied once.

The header follows the IETF draft *The Idempotency-Key HTTP Header Field* (draft-ietf-httpapi-idempotency-key-
header). A client sends ``Idempotency-Key: <key>`` with a write and, when it cannot know whether the write
arrived — the connection broke, or a balancer in front of several management servers answered 502/503/504
because the server it had chosen died mid-request — sends the *same request with the same key* again.
:mod:`balancedesk.core.client` does that for every POST, PUT and DELETE (:data:`RETRY_STATUSES`,
:data:`RETRY_ATTEMPTS`). The rules, as the server keeps them (:meth:`.service.Service.once`):

* A key is 1 to :data:`KEY_MAX` visible ASCII characters (``!`` to ``~``); anything else is a 400 that names the
  header (:func:`key_of`). A request without the header runs as it always did.
* A key belongs to who sent it (:func:`principal`: the user, or the balancer token): another caller's equal key
  is another key.
* The first request with a key runs as it would without one. If it succeeds (2xx), its answer — status, JSON
  body, ETag — is stored **in the same transaction as its write**, so both are committed or neither: after a
  crash the retry finds the answer, or finds nothing and runs the write.
* A later request with the same key and the same request (method, path and query, ``If-Match``, JSON body:
  :func:`fingerprint`) gets the stored answer with ``Idempotent-Replayed: true`` and changes nothing.
* The same key with a different request is refused, 422, naming the header (:func:`check_replay`): a client bug,
  never a silent replay of something else.
* A refusal (4xx/5xx) is not stored: a refused write changed nothing, so running it again is safe and answers
  what is true now.
* Concurrent requests with one key cannot both run: writes are serialised on either engine (one writer at a
  time, :mod:`.database`), and the second looks the key up inside its own write transaction, after the first
  committed.
* A key is kept :data:`KEEP_S` after its first use (:func:`expired`), then forgotten: later writes purge it.

Not covered, on purpose (:data:`NOT_KEYED`): creating a balancer token (its answer holds the token's secret,
which the server never stores in clear), heartbeats (an upsert: sending one twice is harmless) and forgetting
a balancer.

Everything here is pure (no clock, no I/O); the table is ``idempotency`` (:mod:`.store`, schema 4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from balancedesk.core.mgmt.errors import ApiFailure
from balancedesk.core.model import Problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX = 255
KEEP_S = 24 * 3600.0
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

NOT_KEYED = frozenset({
    ("POST", "/api/admin/tokens"),  # its answer holds the token's secret, never stored in clear
    ("POST", "/api/admin/balancers/heartbeat"),  # an upsert: twice is harmless
    ("DELETE", "/api/admin/balancers/{instance_id}"),
})
"""The writes that take no key (method, route path as the OpenAPI document writes it); every other POST, PUT
and DELETE of the API does."""

OPENAPI_PARAMETER = {
    "name": HEADER, "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX, "pattern": "^[!-~]+$"},
    "description": "Sent again with the same request, the write is applied once: the first answer is returned "
                   f"({REPLAYED_HEADER}: true), on any server. Another request with the key: 422. Kept "
                   f"{int(KEEP_S // 3600)} h.",
}

RETRY_STATUSES = frozenset({502, 503, 504})
"""Answers after which a client may send the same keyed request again: a gateway's "the server I chose failed"
(502, 504) and the server's own "the database is away for a moment" (503, with ``Retry-After``)."""
RETRY_ATTEMPTS = 3
"""How many times in all a client sends one request (the first try and two more)."""
RETRY_PAUSES_S = (0.1, 0.4)
"""The pause before each further attempt (a ``Retry-After`` in the answer lengthens it, up to RETRY_AFTER_MAX_S)."""
RETRY_AFTER_MAX_S = 2.0


@dataclass(frozen=True)
class Answer:
    """A write's answer as stored and replayed."""

    status: int
    body: bytes
    etag: str | None = None


@dataclass(frozen=True)
class Remembered:
    """A stored key: the request it was first used for, and that request's answer."""

    fingerprint: str
    answer: Answer
    created: float


def key_of(headers: Mapping[str, str]) -> str | None:
    """The request's key, None without the header; a malformed key is a 400 naming the header."""
    key = headers.get(HEADER.lower())
    if key is None:
        return None
    if not 1 <= len(key) <= KEY_MAX or not all("!" <= ch <= "~" for ch in key):
        raise ApiFailure(
            400,
            f"The {HEADER} header must be 1 to {KEY_MAX} visible ASCII characters (no spaces).",
            [Problem(HEADER, f"must be 1 to {KEY_MAX} visible ASCII characters")],
        )
    return key


def principal(name: str, token_id: str | None) -> str:
    """Whose key it is: ``user:NAME``, or ``token:ID`` for a balancer token."""
    return f"token:{token_id}" if token_id is not None else f"user:{name}"


def fingerprint(method: str, path: str, query: str, if_match: str | None, body: Any) -> str:
    """What makes two requests the same: method, path, query, ``If-Match``, and the JSON body (its value, so
    key order and white space do not matter)."""
    text = json.dumps([method.upper(), path, query, if_match, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def expired(remembered: Remembered, now: float) -> bool:
    """A key older than :data:`KEEP_S` (``now``: wall-clock seconds) is forgotten."""
    return now - remembered.created >= KEEP_S


def check_replay(remembered: Remembered, fingerprint_now: str) -> Answer:
    """The stored answer, if this request is the one the key was first used for; else a 422."""
    if remembered.fingerprint != fingerprint_now:
        raise ApiFailure(
            422,
            f"This {HEADER} was already used for a different request; use a new key for a new request.",
            [Problem(HEADER, "was used for a different request")],
        )
    return remembered.answer


def storable(answer: Answer) -> bool:
    """Only a success is stored (see the module text: a refusal changed nothing)."""
    return 200 <= answer.status < 300
