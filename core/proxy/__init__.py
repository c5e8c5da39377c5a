"""The asyncio shell around :mod:`balancedesk.core.balance`: it carries out, the balance core decides.

* ``runtime``  — one worker's live state: GroupBalancer, endpoints, per-member counters and latency
  reservoir, the event ring (sampled route events), the retryDelay re-enable timer, config apply.
* ``tcp``      — L4: per-connection pick, connect with ``connectionTimeout``, byte-exact relay with flow
  control and half-close.
* ``http`` / ``upstream`` — L7 HTTP/1.1 (httptools): per-request pick, pooled keep-alive members,
  streamed bodies, retries before the first answer byte, 400/408/431/502/503/504 answers.
* ``admin``    — the admin endpoint (snapshot, events, member state/weight, PUT config, /metrics).
* ``healthcheck`` — active health checks (opt-in): the probing task; ``core.balance.health`` decides.
* ``accesslog`` — access logs (opt-in): the line formats, bounded batches and the writer thread, SIGUSR1
  reopen; the native engine's completion records are read here.
* ``config``   — config file / management API sources and live reload.
* ``shell``    — what one listener's connections share (runtime, limits, pool, idle sweeper), whatever
  the plane.
* ``server``   — composes a shell with its plane; listener, signals, graceful stop, ``--workers``
  (SO_REUSEPORT), fd-aware connection cap.
* ``cli``      — ``balancedesk balance``.

The arrows: ``cli → server → planes (tcp, http, native) → shell, upstream, runtime``; a plane imports nothing
of the server and there is no circle (tests/unit/test_architecture.py checks both).

Imports: asyncio, httptools, uvloop (optional), httpx (``--api`` only), ``core.balance``, ``core.model``.
"""
