"""The management API server (HDP-compatible ``/api/mgmt/connectors…`` plus ``/api/admin``) and its store.

* ``store``   — SQLite (WAL, synchronous=FULL, ``user_version`` migrations); one write transaction per request.
* ``service`` — what each request does: visibility (404/403), ``If-Match`` (412), the model's rules (400);
  reads answered from a cache (listings as JSON bytes) that any commit, by any process, drops.
* ``auth``    — argon2id password hashes, a verified-credentials cache, the failed-login throttle (429).
* ``errors``  — HDP's error envelope and our 9-digit codes.
* ``schemas`` — JSON Schemas of the bodies, for the OpenAPI document.
* ``app``     — the FastAPI application (HTTP in and out only).
* ``server``  — ``balancedesk serve``: first admin, demo data, TLS, the ``serving URL`` line.
* ``cli``     — ``serve``, ``users``, ``connectors``, ``tokens`` subcommands.
* ``conditional`` — ``If-None-Match`` → 304 for every GET that has an ETag.
* The control plane (docs/ARCHITECTURE.md, "The control plane"): ``fleet`` (listener rules across groups,
  what a save records, the pool documents, the feed's wake-up), ``fleetlog`` (the per-pool change log in
  SQLite), ``fleet_routes`` (its routes and the bearer-token authenticator), ``tokens`` (balancer tokens),
  ``registry`` (heartbeating balancers, in memory, pure with ``now``).

Imports: ``balancedesk.core.model``, ``balancedesk.core.fleet``, the standard library,
fastapi/uvicorn/argon2/orjson/platformdirs. Never the balancer (``core.proxy``, ``core.balance``) or the GUI.
"""
