"""``balancedesk balance``: run a balancer for one connector group (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from balancedesk.core.model import DEFAULT_AFFINITY_HEADER, parse_endpoint
from balancedesk.core.proxy import limits


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "balance",
        help="run a balancer (L4 TCP or L7 HTTP) for one connector group",
        description="Balance connections (tcp) or requests (http) over a connector group's members. "
        "Prints 'balancedesk: balancing HOST:PORT [admin http://HOST:PORT]' once listening.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, metavar="FILE",
                     help='one group: its JSON as the management API returns it plus "endpoints": '
                          '{memberID: "host:port"} (with --listen and --mode); several groups: '
                          '{"groups": [<that, with listener.port>, …]}. Reloaded on SIGHUP and when the file changes')
    src.add_argument("--api", metavar="URL",
                     help="management server to follow: serves every group of --pool (with --token-file)")
    p.add_argument("--token-file", type=Path, metavar="F",
                   help="file holding the balancer token (bdt_…, from 'balancedesk tokens add --pool P')")
    p.add_argument("--pool", metavar="NAME", default=None,
                   help="the balancer pool to serve (default: the token's pool is asked for as 'default')")
    p.add_argument("--group", metavar="ID", help=argparse.SUPPRESS)  # replaced by --pool: a clear error
    p.add_argument("--user", metavar="U", help=argparse.SUPPRESS)
    p.add_argument("--password-env", metavar="VAR", help=argparse.SUPPRESS)
    p.add_argument("--password-file", type=Path, metavar="F", help=argparse.SUPPRESS)
    p.add_argument("--insecure", action="store_true", help="do not verify the API's TLS certificate")
    p.add_argument("--bind", metavar="ADDR", default="0.0.0.0",
                   help="several groups: the address of a group whose listener names no bind (default 0.0.0.0)")
    p.add_argument("--listen", metavar="HOST:PORT", help="one group from --config: where clients connect (port 0: any)")
    p.add_argument("--mode", choices=("tcp", "http"), help="one group from --config: L4 or L7")
    p.add_argument("--affinity-header", metavar="NAME", default=DEFAULT_AFFINITY_HEADER,
                   help=f"http: route requests carrying this header by its value (default {DEFAULT_AFFINITY_HEADER})")
    p.add_argument("--no-affinity", action="store_true", help="http: ignore the affinity header")
    p.add_argument("--admin", metavar="HOST:PORT", help="admin endpoint (e.g. 127.0.0.1:0); needs --admin-token-file")
    p.add_argument("--admin-token-file", type=Path, metavar="F",
                   help="bearer token for the admin endpoint; created (0600, random token) if missing")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes sharing the port with SO_REUSEPORT and one state (health marks, sticky "
                        "entries, overrides; the admin endpoint runs in worker 0 and speaks for all)")
    p.add_argument("--max-connections", type=int, default=limits.MAX_CONNECTIONS, metavar="N",
                   help="concurrent client connections per worker (kept below RLIMIT_NOFILE/2); "
                        "excess: tcp closed at once, http 503")
    p.add_argument("--idle-timeout", type=float, default=limits.IDLE_TIMEOUT_S, metavar="S",
                   help=f"close a connection with no traffic for S seconds (default {limits.IDLE_TIMEOUT_S:g})")
    p.add_argument("--header-timeout", type=float, default=limits.HEAD_TIMEOUT_S, metavar="S",
                   help="http: a request head must be complete within S seconds, from the accept for a "
                        "connection's first request (408; closed unanswered if nothing came) "
                        f"(default {limits.HEAD_TIMEOUT_S:g})")
    p.add_argument("--max-header-bytes", type=int, default=limits.REQUEST_HEAD_MAX_BYTES, metavar="N",
                   help=f"http: 431 for a request head larger than N bytes "
                        f"(default {limits.REQUEST_HEAD_MAX_BYTES})")
    p.add_argument("--data-plane", choices=("auto", "native", "asyncio"), default="auto",
                   help="proxy in the native engine (C, Linux; the default when it was built) or in "
                        "asyncio (the portable shell). In http mode the engine forwards the usual request "
                        "itself and hands anything unusual to the asyncio shell")
    p.set_defaults(func=main)


def _fail(msg: str) -> int:
    print(f"balancedesk balance: {msg}", file=sys.stderr, flush=True)
    return 2


API_HINTS = {
    401: "the token was not accepted (revoked, or not a token of this server)",
    403: "this token may not read that pool (a token serves its own pool only)",
}


def read_token(path: Path) -> str:
    """The admin token from ``path``; a new random one (file created 0600) if it does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"admin token file {path} is empty") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def main(args: argparse.Namespace) -> int:
    from balancedesk.core.model import RuleError
    from balancedesk.core.proxy.config import load_file
    from balancedesk.core.proxy.fleetserve import is_groups_file
    from balancedesk.core.proxy.server import Options, run

    if args.group or args.user or args.password_env or args.password_file:
        return _fail("--group, --user and --password-* are gone: a balancer follows a pool of the management "
                     "server with its own token (--api URL --token-file F [--pool NAME]); make the token with "
                     "'balancedesk tokens add --pool NAME' and give the group a listener in that pool")
    several = args.api is not None
    if args.config is not None:
        try:
            several = is_groups_file(args.config.read_bytes())
        except OSError:
            several = False  # reported below, after the checks of the arguments
    if not several and (args.listen is None or args.mode is None):
        return _fail("--config with one group needs --listen HOST:PORT and --mode tcp|http")
    try:
        listen = ("", 0)
        if args.listen is not None:
            listen = parse_endpoint(args.listen) if not args.listen.endswith(":0") else \
                (args.listen[:-2].strip("[]"), 0)
        admin = None
        if args.admin:
            admin = parse_endpoint(args.admin) if not args.admin.endswith(":0") else (args.admin[:-2].strip("[]"), 0)
    except ValueError as exc:
        return _fail(str(exc))
    if args.workers < 1 or args.max_connections < 1:
        return _fail("--workers and --max-connections must be at least 1")
    if args.max_header_bytes < limits.REQUEST_HEAD_MIN_BYTES:
        return _fail(f"--max-header-bytes must be at least {limits.REQUEST_HEAD_MIN_BYTES}")
    if not (args.header_timeout > 0 and args.idle_timeout > 0):
        return _fail("--header-timeout and --idle-timeout must be more than 0 seconds")
    token = None
    if admin is not None:
        if args.admin_token_file is None:
            return _fail("--admin needs --admin-token-file (created with a random token if missing)")
        try:
            token = read_token(args.admin_token_file)
        except (OSError, ValueError) as exc:
            return _fail(f"admin token: {exc}")
    mode = args.mode or "tcp"
    affinity = None if args.no_affinity or mode == "tcp" else (args.affinity_header or None)
    opts = Options(listen=listen, mode=mode, affinity_header=affinity, admin=admin, admin_token=token,
                   workers=args.workers, max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                   head_timeout=args.header_timeout, head_limit=args.max_header_bytes,
                   data_plane=args.data_plane)
    if args.data_plane == "native":
        from balancedesk.core.proxy import native

        if not native.available():
            return _fail(f"--data-plane native: {native.MISSING}")
    if several:
        return _main_several(args, opts)
    try:
        cfg = load_file(args.config)
    except OSError as exc:
        return _fail(f"cannot read {args.config}: {exc}")
    except RuleError as exc:
        return _fail(f"{args.config}: {exc}")
    opts.config_file = args.config
    try:
        return int(run(opts, cfg))
    except OSError as exc:
        return _fail(f"cannot listen on {args.listen}: {exc}")


def _main_several(args: argparse.Namespace, opts: Any) -> int:
    """Several groups: a ``{"groups": […]}`` file, or every group of a pool of the management server."""
    from balancedesk.core.client import ApiError, ApiUnavailable
    from balancedesk.core.fleet import BALANCER_TOKEN_PREFIX
    from balancedesk.core.proxy.fleetserve import FleetOptions, run_fleet

    fo = FleetOptions(base=opts, default_bind=args.bind, verify=not args.insecure)
    if args.api is not None:
        if args.token_file is None:
            return _fail("--api needs --token-file F (a balancer token: 'balancedesk tokens add --pool NAME')")
        try:
            secret = args.token_file.read_text().strip()
        except OSError as exc:
            return _fail(f"cannot read {args.token_file}: {exc}")
        if not secret.startswith(BALANCER_TOKEN_PREFIX):
            return _fail(f"{args.token_file} holds no balancer token (it starts with {BALANCER_TOKEN_PREFIX})")
        fo.api, fo.token, fo.pool = args.api, secret, args.pool or "default"
    else:
        if args.pool is not None or args.token_file is not None:
            return _fail("--pool and --token-file go with --api")
        fo.groups_file = args.config
    try:
        return int(run_fleet(fo))
    except ApiError as exc:
        hint = API_HINTS.get(exc.status, "")
        return _fail(f"pool {fo.pool} from {args.api}: {exc.status} {exc}" + (f" ({hint})" if hint else ""))
    except ApiUnavailable as exc:
        return _fail(f"cannot reach {args.api}: {exc}")
