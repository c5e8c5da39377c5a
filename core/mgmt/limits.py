"""The management API's bounds on what a client may send, in one place.

Every one applies before authentication: the HTTP protocol (:mod:`.protocol`) enforces the head's size and
time, and a ``Content-Length`` over the body limit; :mod:`.inputs` counts a body of unknown length while it
reads it. Each refusal is a 4xx with HDP's JSON envelope, after which the connection is closed (see
:data:`LINGER_S`).
"""

from __future__ import annotations

HEAD_MAX_BYTES = 16 * 1024
"""Request line plus headers. Over it: 431, read no further (h11's default; nginx allows 1 KiB + 4 x 8 KiB)."""

HEAD_TIMEOUT_S = 10.0
"""A request head must be complete this long after the accept (or, on a kept-alive connection, after the
head's first byte), however slowly its bytes trickle in. Then: 408 if a head had begun, else a plain close.
The same rule and values as the balancer's admin endpoint (``core/proxy/limits.py``)."""

BODY_MAX_BYTES = 1 << 20
"""The largest request body. A larger ``Content-Length``: 413 before a byte of the body is read; a chunked
body: 413 as soon as the bytes read pass it."""

LINGER_S = 2.0
"""After an answer sent before the request was read whole (413, 431, 408, 400, or a 401 ahead of an unread
body) the server half-closes and waits this long for the client to close, so the client can read the answer
instead of being reset; then it closes."""

LINGER_MAX_BYTES = 256 * 1024
"""What the server reads (and throws away) while it lingers; past that it stops reading altogether."""
