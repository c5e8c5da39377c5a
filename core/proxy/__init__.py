"""The asyncio shell around :mod:`balancedesk.core.balance`: it carries out, the balance core decides.

* ``runtime``  — one worker's live state: GroupBalancer, endpoints, per-member counters and latency
  reservoir, the event ring (sampled route events), the retryDelay re-enable timer, config apply.
* ``tcp``      — L4: per-connection pick, connect with ``connectionTimeout``, byte-exact relay with flow
  control and half-close.
* ``http`` / ``upstream`` — L7 HTTP/1.1 (httptools): per-request pick, pooled keep-alive members,
  streamed bodies, retries before the first answer byte, 400/408/431/502/503/504 answers.
* ``contract`` — what a balancer says (snapshot, events, admin commands) as typed values, read by the GUI too.
* ``admin``    — the admin endpoint (snapshot, events, member state/weight, PUT config, /metrics).
* ``healthcheck`` — active health checks (opt-in): the probing task; ``core.balance.health`` decides.
* ``accesslog`` — access logs (opt-in): the line formats, bounded batches and the writer thread, SIGUSR1
  reopen; the native engine's completion records are read here.
* ``config``   — the one-group config file source and live reload.
* ``groups``   — many groups in one worker: one listener per group, opened, changed and closed on its own.
* ``follow``   — following a pool of the management server (change feed, no timer) and the heartbeat.
* ``fleetserve`` — a process serving many groups (``--api URL --token-file F``, ``{"groups": …}`` files):
  its workers, its admin routes (``/admin/groups``, ``/groups/{id}/…``).
* ``shell``    — what one listener's connections share (runtime, limits, pool, idle sweeper), whatever
  the plane.
* ``server``   — composes a shell with its plane; listener, signals, graceful stop, ``--workers``
  (SO_REUSEPORT; ``supervise``, the one worker parent), fd-aware connection cap.
* ``shared``   — the state the workers of one process share, for every group: health marks, sticky
  entries, runtime overrides, the counters the snapshot sums (bounded slots, given back).
* ``cli``      — ``balancedesk balance``.

The arrows: ``cli → fleetserve → follow → groups → server``;
``cli → server → planes (tcp, http, native) → shell, upstream, runtime``; a plane imports nothing
of the server and there is no circle (tests/unit/test_architecture.py checks both).

Imports: asyncio, httptools, uvloop (optional), httpx (``--api`` only, through ``core.client``),
``core.fleet``, ``core.balance``, ``core.model``.
"""
