"""The management API server (HDP-compatible ``/api/mgmt/connectors…`` plus ``/api/admin``) and its store.

* ``store``   — SQLite (WAL, synchronous=FULL, ``user_version`` migrations); one write transaction per request.
* ``service`` — what each request does: visibility (404/403), ``If-Match`` (412), the model's rules (400);
  reads answered from a cache (listings as JSON bytes) that any commit, by any process, drops.
* ``auth``    — argon2id password hashes and a verified-credentials cache.
* ``throttle``— the failed-login throttle, a sans-io policy (``now`` is an argument): per pair, source, user.
* ``shared_throttle`` — that policy shared by the servers on one database (``login_events``, replayed).
* ``login``   — HTTP Basic logins: throttle (429), one argon2 run off the loop whether the user exists or not.
* ``limits``  — the bounds on what a client may send (head size and time, body size, linger), in one place.
* ``protocol``— uvicorn's httptools protocol with those bounds (431, 408, 413 before the app; lingering close).
* ``inputs``  — what a request may carry: JSON by Content-Type (415), body counted while read (413), UTF-8
  text in every string, path segment and query value (400 naming the field).
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
fastapi/starlette/uvicorn/argon2/orjson/platformdirs. Never the balancer (``core.proxy``, ``core.balance``) or
the GUI.
"""
