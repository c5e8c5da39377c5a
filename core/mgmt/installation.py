"""A load-balancer installation's front: the balancer group of the management servers themselves.

Several ``balancedesk serve`` on one PostgreSQL database stand behind one Balance Desk L7 balancer
(``balancedesk balance --config mgmt.json --mode http --data-plane asyncio``); :func:`front_config` is that
``mgmt.json``, and ``balancedesk front-config HOST:PORT HOST:PORT …`` prints it. The choices, in one place:

* members in the order given, **round robin** by default (both servers carry load), or ``failover``: the first
  while it answers, the next after;
* ``connectionTimeout`` :data:`CONNECT_TIMEOUT_S`, ``retryDelay`` :data:`RETRY_DELAY_S` — a server that
  refused or dropped a connection is left out that long;
* an **active health check** of every server: ``GET`` :data:`HEALTH_PATH` (no login; 200 while that server
  reaches its database) every :data:`CHECK_INTERVAL_S`, so a server that hangs rather than dies — stopped,
  frozen, its database cut off — gets no new requests after :data:`CHECK_FALL` failed checks, and comes back
  after :data:`CHECK_RISE` good ones. A dead one is also left out at the first refused connect, by the rules
  above.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HEALTH_PATH = "/healthz"
CONNECT_TIMEOUT_S = 2
RETRY_DELAY_S = 10
CHECK_INTERVAL_S = 1.0
CHECK_TIMEOUT_S = 1.0
CHECK_FALL = 2
CHECK_RISE = 2


def front_config(endpoints: list[str], *, failover: bool = False) -> dict[str, Any]:
    """The balancer config (group JSON plus ``endpoints``) for management servers at ``endpoints``
    (``host:port``; a ``http://`` prefix is dropped)."""
    if not endpoints:
        raise ValueError("an installation needs at least one management server")
    members = [{"memberID": f"mgmt-{i + 1}", "sequence": i + 1, "weight": 1} for i in range(len(endpoints))]
    group: dict[str, Any] = {"connectionTimeout": CONNECT_TIMEOUT_S, "retryDelay": RETRY_DELAY_S, "members": members}
    if not failover:
        group["loadBalancing"] = "Round Robin"
    return {
        "connectorID": "management", "owner": "admin", "label": "management servers", "authUser": [],
        "connectorGroup": group,
        "listener": {"healthCheck": {"type": "http", "path": HEALTH_PATH, "expectStatus": 200,
                                     "interval": CHECK_INTERVAL_S, "timeout": CHECK_TIMEOUT_S,
                                     "rise": CHECK_RISE, "fall": CHECK_FALL}},
        "endpoints": {m["memberID"]: _endpoint(e) for m, e in zip(members, endpoints, strict=True)},
    }


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "front-config", help="print the balancer config (mgmt.json) for management servers behind a balancer")
    parser.add_argument("servers", nargs="+", metavar="HOST:PORT", help="the management servers, in order")
    parser.add_argument("--failover", action="store_true",
                        help="the first server while it answers, the next after (default: round robin)")
    parser.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    from balancedesk.core.model import parse_endpoint  # the endpoint rule every member's endpoint follows

    problems = []
    for server in args.servers:
        try:
            parse_endpoint(_endpoint(server))
        except ValueError:
            problems.append(server)
    if problems:
        print(f"balancedesk: not HOST:PORT: {', '.join(problems)}", file=sys.stderr)
        return 2
    print(json.dumps(front_config(args.servers, failover=args.failover), indent=2))
    return 0


def _endpoint(server: str) -> str:
    """``host:port`` of a server given with or without its scheme."""
    return server.removeprefix("http://").removeprefix("https://")
