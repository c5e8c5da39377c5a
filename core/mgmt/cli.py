"""``balancedesk serve``, ``balancedesk users …``, ``balancedesk connectors …`` and ``balancedesk tokens …``.

``serve``'s settings are defined in :mod:`~balancedesk.core.mgmt.serve_config` (flags made from its table); any of
them may come from a TOML file (``--config FILE`` / ``BALANCEDESK_CONFIG``): a flag wins over the environment
(``BALANCEDESK_DATABASE``), which wins over the file. A file that cannot be used: every problem on stderr, exit 2,
nothing started.

``users``, ``connectors`` and ``tokens`` work on the data store directly (``--data DIR``, default: the user's data
directory, or ``--database URL`` / ``BALANCEDESK_DATABASE`` for a PostgreSQL installation, or the data and
database of ``--config FILE`` / ``BALANCEDESK_CONFIG``, with the same precedence), not through the API: they are
how an operator bootstraps or repairs a server that is not running or whose admin password is lost, and
SQLite's WAL lets them run beside a live server safely. They go through the same
:class:`~balancedesk.core.mgmt.service.Service` rules as the API. Errors: one line on stderr, exit 1.
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

from balancedesk.core.mgmt.serve_config import (
    BY_KEY,
    CONFIG_ENV,
    DATABASE_ENV,
    SETTINGS,
    ConfigError,
    ServeSettings,
    Setting,
    load,
)

DATABASE_HELP = (f"a postgresql:// URL: work on that database (default: ${DATABASE_ENV}, else --config's, else "
                 "--data's SQLite)")
CONFIG_HELP = ("a TOML file of serve's settings (keys as the flags, without --); a flag wins over the environment, "
               f"which wins over the file (default: ${CONFIG_ENV})")
CONFIG_EXIT = 2  # a config file that cannot be used is refused like a bad flag


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the management API server")
    serve.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    for s in SETTINGS:  # every flag's default is None (not given), so a config file can fill it in
        if s.spec.kind == "switch":
            serve.add_argument(s.flag, action=argparse.BooleanOptionalAction, default=None, help=s.spec.help)
        else:
            shown = "" if s.default is None else f" (default {s.default})"
            serve.add_argument(s.flag, type=_typed(s), metavar=s.spec.metavar, help=s.spec.help + shown)
    serve.add_argument("--migrate-from", metavar="sqlite:PATH",
                       help="copy this embedded store into the empty --database, check the copy, and exit")
    serve.set_defaults(func=_guarded(_serve))

    users = subparsers.add_parser("users", help="manage users (works on the data store directly)")
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = users_sub.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--role", choices=("User", "Administrator"), default="User")
    add.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    _store_options(add)
    add.set_defaults(func=_guarded(_users_add))
    lst = users_sub.add_parser("list", help="list users")
    _store_options(lst)
    lst.set_defaults(func=_guarded(_users_list))
    disable = users_sub.add_parser("disable", help="disable a user (they can no longer log in)")
    disable.add_argument("name")
    _store_options(disable)
    disable.set_defaults(func=_guarded(_users_disable))

    conns = subparsers.add_parser("connectors", help="register connectors (works on the data store directly)")
    conns_sub = conns.add_subparsers(dest="connectors_command", metavar="ACTION", required=True)
    clist = conns_sub.add_parser("list", help="list registered connectors and groups")
    clist.add_argument("--json", action="store_true", help="print JSON")
    _store_options(clist)
    clist.set_defaults(func=_guarded(_connectors_list))
    creg = conns_sub.add_parser("register", help="register a connector")
    creg.add_argument("--label", required=True)
    creg.add_argument("--owner", required=True)
    creg.add_argument("--endpoint", help="host:port where a balancer reaches this connector")
    creg.add_argument("--id", dest="connector_id", help="connector ID (default: a new UUID)")
    _store_options(creg)
    creg.set_defaults(func=_guarded(_connectors_register))
    cun = conns_sub.add_parser("unregister", help="unregister a connector (or delete a group)")
    cun.add_argument("connector_id")
    _store_options(cun)
    cun.set_defaults(func=_guarded(_connectors_unregister))

    toks = subparsers.add_parser("tokens", help="balancer tokens (works on the data store directly)")
    toks_sub = toks.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    tadd = toks_sub.add_parser("add", help="make a token for the balancers of a pool; printed once")
    tadd.add_argument("--pool", required=True, help="the pool whose groups the token may read")
    tadd.add_argument("--label", default="", help="a note: which host or balancer holds it")
    _store_options(tadd)
    tadd.set_defaults(func=_guarded(_tokens_add))
    tlist = toks_sub.add_parser("list", help="list tokens (never their secrets)")
    tlist.add_argument("--json", action="store_true", help="print JSON")
    _store_options(tlist)
    tlist.set_defaults(func=_guarded(_tokens_list))
    trev = toks_sub.add_parser("revoke", help="revoke a token (it stops working at once)")
    trev.add_argument("token_id")
    _store_options(trev)
    trev.set_defaults(func=_guarded(_tokens_revoke))


def _typed(s: Setting) -> Callable[[str], Any]:
    """argparse's ``type`` for a setting: its own parse and check, the message naming what is wrong."""

    def parse(text: str) -> Any:
        try:
            return s.from_text(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _store_options(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--database`` (serve's settings, with their rules) and ``--config`` (whose data and database
    are used) of a store command."""
    parser.add_argument("--data", type=_typed(BY_KEY["data"]), metavar="DIR",
                        help="data directory (default: --config's, else the user's data directory)")
    parser.add_argument("--database", type=_typed(BY_KEY["database"]), metavar="URL", help=DATABASE_HELP)
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)


def _settings(args: argparse.Namespace) -> ServeSettings:
    """The command's settings: its flags over the environment over its config file (the file's warnings printed
    on stderr); :class:`ConfigError` if the file cannot be used."""
    flags = {s.dest: getattr(args, s.dest, None) for s in SETTINGS}
    settings, warnings = load(args.config, flags)
    for warning in warnings:
        print(f"balancedesk: warning: {warning}", file=sys.stderr)
    return settings


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from balancedesk.core.mgmt.errors import ApiFailure
        from balancedesk.core.mgmt.server import ServeError
        from balancedesk.core.mgmt.store import StoreError

        try:
            args.settings = _settings(args)  # a bad config file stops the command here, before anything starts
            return func(args)
        except ConfigError as exc:
            for problem in exc.problems:
                print(f"balancedesk: {problem}", file=sys.stderr)
            return CONFIG_EXIT
        except (ApiFailure, ServeError, StoreError) as exc:
            print(f"balancedesk: {exc}", file=sys.stderr)
            return 1

    return run


def _serve(args: argparse.Namespace) -> int:
    settings: ServeSettings = args.settings
    if args.migrate_from is not None:
        from balancedesk.core.mgmt.migrate import migrate_command

        return migrate_command(args.migrate_from, settings.database)
    from balancedesk.core.mgmt.server import serve

    heartbeat = settings.heartbeat_interval
    return int(
        serve(
            host=settings.host,
            port=settings.port,
            data=settings.data,
            demo=settings.demo,
            cert=settings.cert,
            key=settings.key,
            insecure=settings.insecure,
            database=settings.database,
            **({} if heartbeat is None else {"heartbeat_interval": heartbeat}),
        )
    )


def _service(args: argparse.Namespace) -> Any:
    from balancedesk.core.mgmt.server import open_store
    from balancedesk.core.mgmt.service import Service

    settings: ServeSettings = args.settings
    return Service(open_store(settings.data, settings.database))


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
