"""``balancedesk serve``, ``balancedesk users …``, ``balancedesk connectors …`` and ``balancedesk tokens …``.

``users``, ``connectors`` and ``tokens`` work on the data store directly (``--data DIR``, default: the user's data
directory, or ``--database URL`` / ``BALANCEDESK_DATABASE`` for a PostgreSQL installation), not
through the API: they are how an operator bootstraps or repairs a server that is not running
or whose admin password is lost, and SQLite's WAL lets them run beside a live server safely. They go through
the same :class:`~balancedesk.core.mgmt.service.Service` rules as the API. Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATABASE_HELP = "a postgresql:// URL: work on that database (default: $BALANCEDESK_DATABASE, else --data's SQLite)"


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the management API server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8090, help="port (0 picks a free one; default 8090)")
    serve.add_argument("--data", type=Path, help="data directory (default: the user's data directory)")
    serve.add_argument("--database", metavar="URL",
                       help="postgresql://user@host/db to keep the data in PostgreSQL, shared by every server "
                            "given the same URL (default: $BALANCEDESK_DATABASE, else SQLite in --data)")
    serve.add_argument("--migrate-from", metavar="sqlite:PATH",
                       help="copy this embedded store into the empty --database, check the copy, and exit")
    serve.add_argument("--demo", action="store_true", help="also register demo connectors and a demo group")
    serve.add_argument("--cert", type=Path, help="TLS certificate (PEM)")
    serve.add_argument("--key", type=Path, help="TLS private key (PEM)")
    serve.add_argument("--insecure", action="store_true", help="allow plain HTTP on a non-loopback address")
    serve.add_argument("--heartbeat-interval", type=_interval, default=None, metavar="S",
                       help="seconds between balancer heartbeats, told to every balancer; one that misses three "
                            "is shown as lost (default 5)")
    serve.set_defaults(func=_guarded(_serve))

    users = subparsers.add_parser("users", help="manage users (works on the data store directly)")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = users_sub.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=("User", "Administrator"), default="User")
    add.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    add.add_argument("--data", type=Path)
    add.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    add.set_defaults(func=_guarded(_users_add))
    lst = users_sub.add_parser("list", help="list users")
    lst.add_argument("--data", type=Path)
    lst.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    lst.set_defaults(func=_guarded(_users_list))
    disable = users_sub.add_parser("disable", help="disable a user (they can no longer log in)")
    disable.add_argument("name")
    disable.add_argument("--data", type=Path)
    disable.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    disable.set_defaults(func=_guarded(_users_disable))

    conns = subparsers.add_parser("connectors", help="register connectors (works on the data store directly)")
    conns_sub = conns.add_subparsers(dest="connectors_command", metavar="ACTION", required=True)
    clist = conns_sub.add_parser("list", help="list registered connectors and groups")
    clist.add_argument("--json", action="store_true", help="print JSON")
    clist.add_argument("--data", type=Path)
    clist.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    clist.set_defaults(func=_guarded(_connectors_list))
    creg = conns_sub.add_parser("register", help="register a connector")
    creg.add_argument("--label", required=True)
    creg.add_argument("--owner", required=True)
    creg.add_argument("--endpoint", help="host:port where a balancer reaches this connector")
    creg.add_argument("--id", dest="connector_id", help="connector ID (default: a new UUID)")
    creg.add_argument("--data", type=Path)
    creg.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    creg.set_defaults(func=_guarded(_connectors_register))
    cun = conns_sub.add_parser("unregister", help="unregister a connector (or delete a group)")
    cun.add_argument("connector_id")
    cun.add_argument("--data", type=Path)
    cun.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    cun.set_defaults(func=_guarded(_connectors_unregister))

    toks = subparsers.add_parser("tokens", help="balancer tokens (works on the data store directly)")
    toks_sub = toks.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    tadd = toks_sub.add_parser("add", help="make a token for the balancers of a pool; printed once")
    tadd.add_argument("--pool", required=True, help="the pool whose groups the token may read")
    tadd.add_argument("--label", default="", help="a note: which host or balancer holds it")
    tadd.add_argument("--data", type=Path)
    tadd.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    tadd.set_defaults(func=_guarded(_tokens_add))
    tlist = toks_sub.add_parser("list", help="list tokens (never their secrets)")
    tlist.add_argument("--json", action="store_true", help="print JSON")
    tlist.add_argument("--data", type=Path)
    tlist.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    tlist.set_defaults(func=_guarded(_tokens_list))
    trev = toks_sub.add_parser("revoke", help="revoke a token (it stops working at once)")
    trev.add_argument("token_id")
    trev.add_argument("--data", type=Path)
    trev.add_argument("--database", metavar="URL", help=DATABASE_HELP)
    trev.set_defaults(func=_guarded(_tokens_revoke))


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError("must be 0.05-3600 seconds")
    return value


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from balancedesk.core.mgmt.errors import ApiFailure
        from balancedesk.core.mgmt.server import ServeError
        from balancedesk.core.mgmt.store import StoreError

        try:
            return func(args)
        except (ApiFailure, ServeError, StoreError) as exc:
            print(f"balancedesk: {exc}", file=sys.stderr)
            return 1

    return run


def _serve(args: argparse.Namespace) -> int:
    from balancedesk.core.mgmt.server import serve

    if args.migrate_from is not None:
        from balancedesk.core.mgmt.migrate import migrate_command

        return migrate_command(args.migrate_from, args.database)
    return int(
        serve(
            host=args.host,
            port=args.port,
            data=args.data,
            demo=args.demo,
            cert=args.cert,
            key=args.key,
            insecure=args.insecure,
            database=args.database,
            **({} if args.heartbeat_interval is None else {"heartbeat_interval": args.heartbeat_interval}),
        )
    )


def _service(args: argparse.Namespace) -> Any:
    from balancedesk.core.mgmt.server import open_store
    from balancedesk.core.mgmt.service import Service

    return Service(open_store(args.data, args.database))


def _admin() -> Any:
    from balancedesk.core.mgmt.service import Caller

    return Caller("(command line)", True)


def _users_add(args: argparse.Namespace) -> int:
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            print(f"balancedesk: environment variable {args.password_env} is not set", file=sys.stderr)
            return 1
    elif not sys.stdin.isatty():
        print("balancedesk: no terminal to ask the password on; pass --password-env VAR", file=sys.stderr)
        return 2
    else:
        try:
            password = getpass.getpass(f"Password for {args.name}: ")
        except (EOFError, KeyboardInterrupt):
            print("\nbalancedesk: no password given; nothing was added", file=sys.stderr)
            return 1
    user = _service(args).add_user(None, {"name": args.name, "password": password, "role": args.role})
    print(f"added {user['name']} ({user['role']})")
    return 0


def _users_list(args: argparse.Namespace) -> int:
    for user in _service(args).list_users(_admin())["users"]:
        state = "active" if user["active"] else "disabled"
        print(f"{user['name']}\t{user['role']}\t{state}")
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    user = _service(args).update_user(None, args.name, {"active": False})
    print(f"disabled {user['name']}")
    return 0


def _connectors_list(args: argparse.Namespace) -> int:
    rows = _service(args).list_registered(_admin(), {})["connectors"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        kind = "group" if r["isGroup"] else (r["endpoint"] or "-")
        print(f"{r['connectorID']}\t{r['owner']}\t{r['label']}\t{kind}")
    return 0


def _connectors_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"label": args.label, "owner": args.owner, "endpoint": args.endpoint}
    if args.connector_id:
        body["connectorID"] = args.connector_id
    row = _service(args).register_connector(_admin(), body)
    print(row["connectorID"])
    return 0


def _connectors_unregister(args: argparse.Namespace) -> int:
    _service(args).unregister(_admin(), args.connector_id)
    print(f"unregistered {args.connector_id}")
    return 0


def _tokens_add(args: argparse.Namespace) -> int:
    made = _service(args).create_token(None, {"pool": args.pool, "label": args.label})
    print(f"token {made['tokenID']} for pool {made['pool']} (shown this once; keep it in a 0600 file on the "
          "balancer host):", file=sys.stderr)
    print(made["token"])
    return 0


def _tokens_list(args: argparse.Namespace) -> int:
    rows = _service(args).list_tokens(None)["tokens"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "active" if r["revoked"] is None else "revoked"
        print(f"{r['tokenID']}\t{r['pool']}\t{state}\t{r['label']}")
    return 0


def _tokens_revoke(args: argparse.Namespace) -> int:
    _service(args).revoke_token(None, args.token_id)
    print(f"revoked {args.token_id}")
    return 0
