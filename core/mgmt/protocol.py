"""The HTTP/1.1 protocol ``balancedesk serve`` runs under uvicorn: uvicorn's httptools protocol, bounded.

uvicorn is told to use this class (``http=BoundedHttpProtocol``), so which parser runs is explicit: httptools
(llhttp), which by itself takes a head of any size and any duration. The bounds of :mod:`.limits`, all
before the application (and so before authentication) sees the request:

* the head (request line and headers) is counted as its bytes arrive: past ``HEAD_MAX_BYTES`` → 431;
* it must be complete ``HEAD_TIMEOUT_S`` after the accept (a connection's first request) or after its own
  first byte (a later one on a kept-alive connection, whose idle wait uvicorn's keep-alive timeout bounds),
  however its bytes trickle in → 408 (or a plain close if not a byte of it came);
* a ``Content-Length`` over ``BODY_MAX_BYTES`` → 413 at the end of the head, before the body is read;
* a request llhttp cannot parse → 400 (uvicorn's own answer would be text).

Each of these answers is HDP's JSON envelope with ``Connection: close``. After it — and after any answer the
application gave before the request's body had arrived whole (a 413 of a chunked body, a 401 ahead of an
unread body) — the connection *lingers*: the server half-closes, reads and throws away at most
``LINGER_MAX_BYTES`` (then stops reading), and closes once the client does or ``LINGER_S`` has passed. So
the client reads the answer rather than a reset, and the server never reads the rest of a large request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from balancedesk.core.mgmt.errors import CODES, envelope
from balancedesk.core.mgmt.limits import (
    BODY_MAX_BYTES,
    HEAD_MAX_BYTES,
    HEAD_TIMEOUT_S,
    LINGER_MAX_BYTES,
    LINGER_S,
)
from balancedesk.core.mgmt.service import json_bytes
from balancedesk.core.model import Problem
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

HEAD_TOO_LARGE = (431, f"The request head is larger than {HEAD_MAX_BYTES} bytes.", "head", "too large")


def refusal(status: int, message: str, problems: Iterable[Problem] = (), *, extra: bytes = b"") -> bytes:
    """A whole HTTP/1.1 answer: ``status``, HDP's envelope as its body, ``Connection: close``."""
    body = json_bytes(envelope(CODES[status], message, problems))
    return b"".join(
        [
            STATUS_LINE[status],
            extra,
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with the bounds of the module docstring."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._awaiting_head = True  # from the end of one request message to the end of the next head
        self._head_bytes = 0  # bytes received since then
        self._head_before = 0  # ... before the chunk being parsed
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused: tuple[int, str, str, str] | None = None  # decided inside a parser callback
        self._lingering = False
        self._linger_left = LINGER_MAX_BYTES
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._linger_timer = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._lingering:
            return
        if self._head_bytes == 0:
            self.transport.close()
            return
        self._refuse(408, f"The request head was not complete within {HEAD_TIMEOUT_S:g} s.", "head", "too slow")

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._linger_left -= len(data)
            if self._linger_left <= 0:
                self.transport.pause_reading()
            return
        self._head_before = self._head_bytes
        if self._awaiting_head:
            if self._head_timer is None and self._head_bytes == 0 and data:
                self._arm_head_timer()  # a later request's head: timed from its first byte
            self._head_bytes += len(data)
        super().data_received(data)
        if self._lingering or self.transport.is_closing():
            return
        if self._refused is not None:
            self._refuse(*self._refused)
        elif self._awaiting_head and self._head_bytes > HEAD_MAX_BYTES:
            self._refuse(*HEAD_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "The request is not valid HTTP/1.1.", "request", "is not valid HTTP/1.1")

    # -- parser callbacks ---------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        if self._refused is not None or self._lingering:
            return
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers) + 16
        if max(size, self._head_before) > HEAD_MAX_BYTES:
            self._refused = HEAD_TOO_LARGE
            return
        for name, value in self.headers:
            if name == b"content-length" and value.strip().isdigit() and int(value) > BODY_MAX_BYTES:
                self._refused = (
                    413,
                    f"The request body ({int(value)} bytes) is larger than {BODY_MAX_BYTES} bytes.",
                    "body",
                    "too large",
                )
                return
        self._awaiting_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None:
            send = cycle.send

            async def send_saying_close(message: Any) -> None:
                # answered before the body arrived whole (a 401/403 ahead of it): the connection will linger
                # and close, so the answer says ``Connection: close`` and no client sends a next request on it
                if message["type"] == "http.response.start" and cycle.more_body:
                    cycle.keep_alive = False
                await send(message)

            cycle.send = send_saying_close  # type: ignore[method-assign]

    def on_body(self, body: bytes) -> None:
        if self._refused is None and not self._lingering:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused is None and not self._lingering:
            super().on_message_complete()
            self._awaiting_head = True  # what comes next is the next head (pipelined or not): counted
            self._head_bytes = self._head_before = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._lingering:
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body:
            self._linger()  # answered before the request's body had arrived whole: read no more of it

    # -- refusing and lingering ---------------------------------------------------------------------

    def _refuse(self, status: int, message: str, field: str, problem: str) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined head went wrong while an earlier request is still being answered: no answer can
            # be put in order, so the connection just ends
            self.transport.close()
            return
        extra = b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        self.transport.write(refusal(status, message, [Problem(field, problem)], extra=extra))
        self._linger()

    def _linger(self) -> None:
        self._lingering = True
        self._unset_keepalive_if_required()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)
