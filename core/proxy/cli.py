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
                     help='group JSON as the management API returns it plus "endpoints": {memberID: "host:port"}; '
                          "reloaded on SIGHUP and when the file changes")
    src.add_argument("--api", metavar="URL", help="management API to pull the group from (with --group)")
    p.add_argument("--group", metavar="ID", help="connector group ID (with --api)")
    p.add_argument("--user", metavar="U", help="management API user (with --api)")
    p.add_argument("--password-env", metavar="VAR", help="environment variable holding the API password")
    p.add_argument("--password-file", type=Path, metavar="F", help="file holding the API password")
    p.add_argument("--insecure", action="store_true", help="do not verify the API's TLS certificate")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="where clients connect (port 0: any)")
    p.add_argument("--mode", required=True, choices=("tcp", "http"))
    p.add_argument("--affinity-header", metavar="NAME", default=DEFAULT_AFFINITY_HEADER,
                   help=f"http: route requests carrying this header by its value (default {DEFAULT_AFFINITY_HEADER})")
    p.add_argument("--no-affinity", action="store_true", help="http: ignore the affinity header")
    p.add_argument("--admin", metavar="HOST:PORT", help="admin endpoint (e.g. 127.0.0.1:0); needs --admin-token-file")
    p.add_argument("--admin-token-file", type=Path, metavar="F",
                   help="bearer token for the admin endpoint; created (0600, random token) if missing")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes sharing the port with SO_REUSEPORT; the admin endpoint runs in worker 0 only")
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
    401: "the user or password was not accepted (give --user and --password-env VAR or --password-file F)",
    403: "this user may not read that group",
    404: "there is no such group",
}


def api_failure(exc: Exception) -> str:
    """A failed management API call as one sentence for the admin (no HTTP library wording, no links)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        reason = getattr(response, "reason_phrase", "") or ""
        hint = API_HINTS.get(status)
        return f"the server answered {status} {reason}".rstrip() + (f": {hint}" if hint else "")
    return str(exc) or type(exc).__name__


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
    from balancedesk.core.proxy.config import ApiSource, load_file
    from balancedesk.core.proxy.server import Options, run

    try:
        listen = parse_endpoint(args.listen) if not args.listen.endswith(":0") else (args.listen[:-2].strip("[]"), 0)
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
    affinity = None if args.no_affinity or args.mode == "tcp" else (args.affinity_header or None)
    opts = Options(listen=listen, mode=args.mode, affinity_header=affinity, admin=admin, admin_token=token,
                   workers=args.workers, max_connections=args.max_connections, idle_timeout=args.idle_timeout,
                   head_timeout=args.header_timeout, head_limit=args.max_header_bytes,
                   data_plane=args.data_plane)
    if args.data_plane == "native":
        from balancedesk.core.proxy import native

        if not native.available():
            return _fail(f"--data-plane native: {native.MISSING}")
    if args.config is not None:
        try:
            cfg = load_file(args.config)
        except OSError as exc:
            return _fail(f"cannot read {args.config}: {exc}")
        except RuleError as exc:
            return _fail(f"{args.config}: {exc}")
        opts.config_file = args.config
    else:
        if not args.group:
            return _fail("--api needs --group ID")
        password = ""
        if args.password_env:
            password = os.environ.get(args.password_env, "")
        elif args.password_file:
            try:
                password = args.password_file.read_text().strip()
            except OSError as exc:
                return _fail(f"cannot read {args.password_file}: {exc}")
        source = ApiSource(args.api, args.group, user=args.user or "", password=password,
                           verify=not args.insecure)
        import asyncio

        try:
            got = asyncio.run(source.fetch())
        except RuleError as exc:
            return _fail(f"group {args.group} from {args.api}: {exc}")
        except Exception as exc:
            return _fail(f"cannot load group {args.group} from {args.api}: {api_failure(exc)}")
        assert got is not None
        cfg = got
        opts.api = source
    try:
        return int(run(opts, cfg))
    except OSError as exc:
        return _fail(f"cannot listen on {args.listen}: {exc}")
