"""Every limit of the balancer, named once (the table with the reasons is in docs/ARCHITECTURE.md).

The data planes (``http.py``, ``tcp.py``, ``upstream.py`` and the C engine), the admin endpoint and the
command line's defaults import these; nothing else spells a limit's value. The C engine gets the runtime
limits as arguments of ``Engine(...)`` and has no defaults of its own for them; the values C needs at
compile time (its I/O chunk, the size of a buffer inside the engine, and the header lines its fast path
takes) are exposed by the engine as module constants of the same names and checked against this module by
the tests (``test_bounds.py``, ``test_framing.py``).

Timing rules, the same on both planes and on the admin endpoint:

* a request head must be complete within its head timeout, counted **from the accept** for a
  connection's first request and from its first byte for later requests on a kept-alive connection;
  a started head that runs out of time is answered 408, a connection that sent nothing at all is closed
  without an answer (as nginx does);
* between two requests on a kept-alive connection the idle timeout applies;
* a head over its byte limit is refused (431) as soon as that many bytes are read, never buffered whole;
  a body over its byte limit is refused (413) from its ``Content-Length`` before it is read, or while a
  chunked one is read.
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

# data plane: client side --------------------------------------------------------------------------------
MAX_CONNECTIONS: Final = 10_000
"""Concurrent client connections per worker (``--max-connections``; kept below RLIMIT_NOFILE/2)."""
REQUEST_HEAD_MAX_BYTES: Final = 32 * KIB
"""L7 request head, request line included (``--max-header-bytes``): more → 431. nginx: 4 × 8 KiB."""
REQUEST_HEADERS_MAX: Final = 100
"""Header lines in an L7 request head: more → 431 (``framing.decide``; the engine hands such a head over)."""
REQUEST_HEAD_MIN_BYTES: Final = 64
"""The smallest ``--max-header-bytes`` accepted (a request line and a Host header)."""
HEAD_TIMEOUT_S: Final = 15.0
"""L7 request head complete within this, from the accept (``--header-timeout``): 408 / close."""
IDLE_TIMEOUT_S: Final = 300.0
"""No byte either way for this long (``--idle-timeout``): the connection is closed (L4, and L7 between
requests); a member that has not answered within it → 504."""
LINGER_S: Final = 2.0
"""After an error answer the client's further bytes are read and dropped for at most this long, so the
answer is not destroyed by a reset."""
PENDING_BODY_BYTES: Final = 256 * KIB
"""Client bytes held while no member connection takes them yet (L7 body, L4 stream): reading pauses."""
REPLAY_BODY_BYTES: Final = 64 * KIB
"""An idempotent request's body kept to send it again after a pooled connection died (nginx's rule)."""

# data plane: member side --------------------------------------------------------------------------------
ANSWER_HEAD_MAX_BYTES: Final = 64 * KIB
"""A member's answer head (status line and headers): more → 502 to the client, the member counted as
failed for that request, its connection closed."""
POOL_PER_MEMBER: Final = 64
"""Idle keep-alive connections kept per member (asyncio plane)."""

# the C engine's compile-time size, checked against ``_engine.IO_CHUNK_BYTES`` --------------------------
IO_CHUNK_BYTES: Final = 64 * KIB
"""The most the engine reads in one ``recv`` when it relays (its scratch buffer)."""

# access logs and health checks (listener.accessLog / listener.healthCheck) -----------------------------
ACCESS_LOG_REQUEST_LINE_BYTES: Final = 160
"""An L7 request line kept in an access log record, cut past it (compile-time in the engine as
LOG_REQ_MAX; checked when native.py is imported)."""
ACCESS_LOG_BATCH_RECORDS: Final = 1024
"""Access log records per batch handed to the writer thread."""
ACCESS_LOG_QUEUE_BATCHES: Final = 64
"""Batches waiting for the writer at most; past it a whole batch is dropped and counted."""
ACCESS_LOG_ENGINE_RECORDS: Final = 16 * KIB
"""Records the native engine keeps between two drains (232 bytes each); past it they are counted as
dropped."""
ACCESS_LOG_FLUSH_S: Final = 0.1
"""How often the current batch and the engine's records go to the writer."""
HEALTH_STATUS_LINE_BYTES: Final = 256
"""What an HTTP health check reads of the answer at most (its status line)."""

# admin endpoint -------------------------------------------------------------------------------------------
ADMIN_HEAD_MAX_BYTES: Final = 16 * KIB
"""Admin request head: more → 431 (before the bearer token is looked at)."""
ADMIN_BODY_MAX_BYTES: Final = 1 * MIB
"""Admin request body (a config for ``PUT /admin/config``): more → 413, from Content-Length before the
body is read, or while a chunked one is read."""
ADMIN_HEAD_TIMEOUT_S: Final = 10.0
"""Admin request head complete within this, from the accept (first request) or its first byte: 408."""
ADMIN_BODY_TIMEOUT_S: Final = 30.0
"""Admin request body complete within this from the end of its head: 408."""
ADMIN_IDLE_TIMEOUT_S: Final = 120.0
"""An admin connection with no request for this long is closed (viewers poll several times a second)."""
ADMIN_MAX_CONNECTIONS: Final = 64
"""Open admin connections: more are answered 503 and closed at once."""
ADMIN_WRITE_HIGH_BYTES: Final = 1 * MIB
"""Answers not yet taken by an admin client: above this, its requests are not read until it reads."""

# stopping -----------------------------------------------------------------------------------------------
STOP_GRACE_S: Final = 10.0
"""SIGTERM: in-flight work gets this long to finish."""

# memory -------------------------------------------------------------------------------------------------
TRIM_AFTER_PEAK: Final = 256
"""A burst of at least this many client connections, once it has shrunk to a quarter, gives the heap pages
it freed back to the system (``malloc_trim``; glibc keeps them otherwise, and RSS stays at the peak)."""

# sticky affinity and the state the workers of one balancer process share ------------------------------
STICKY_ENTRIES: Final = 65_536
"""Sticky affinity entries per group (keys displaced from their rendezvous choice, ``core/balance/sticky.py``);
past it the entry idle longest is evicted (counted). With ``--workers N`` the table is shared: one per
process, in shared memory, ``STICKY_WAYS``-way set associative (an eviction takes the oldest of a set)."""
STICKY_WAYS: Final = 8
"""Entries of one set of the shared sticky table: a key is looked for in its set alone (a bounded probe)."""
STICKY_IDLE_S: Final = 900.0
"""A sticky entry not used for this long is forgotten (the key follows the rendezvous order again)."""
STICKY_SWEEP_SLOTS: Final = 4096
"""Shared sticky slots a worker's sweep looks at per tick (a bounded amount of work on the data plane's loop)."""
SHARED_MEMBER_SLOTS: Final = 4096
"""Slots of the state the workers of one balancer process share (``shared.py``): one per (group, member) pair
and one per group (its totals), for every group the process serves, made before the fork and given back when a
group or member goes. A pair past it keeps its health marks and overrides to the worker that has them
(counted as ``unsharedMembers`` in the snapshot's ``shared``). E.g. 100 groups of up to 39 members."""
SHARED_COUNTS_PERIOD_S: Final = 0.5
"""How often each worker of ``--workers N`` writes its counters to the shared state (the snapshot sums them:
another worker's part is at most this old)."""
STICKY_SWEEP_PERIOD_S: Final = 1.0
"""How often a worker sweeps idle sticky entries (its own table whole; the shared one ``STICKY_SWEEP_SLOTS`` at
a time)."""
