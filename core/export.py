"""Export a connector group to engines that scale past one machine: nginx and HAProxy.

The input is a balancer config (the group JSON as the management API returns it, plus ``endpoints`` and the
``listener``), read from a file (``--config``) or from the management API (``--api URL --group ID``, the pool's
view of the group: ``GET /api/admin/pools/{pool}/groups/{id}``). Each semantic is mapped to the closest native
feature, and what cannot be matched exactly is written into the generated file as a comment, so nobody learns
it in production:

=====================  ===========================================  ============================================
group semantic         nginx                                        HAProxy
=====================  ===========================================  ============================================
Round Robin + weight   ``server … weight=w`` (smooth WRR, the same)  ``balance roundrobin`` + ``weight w``
sequence failover      first member primary, the rest ``backup``    first member, the rest ``backup`` in order
                       (backups share load: one level only)         (HAProxy uses the first live backup: exact)
connectionTimeout      ``proxy_connect_timeout`` (0 → 75 s cap)     ``timeout connect`` (0 → 1 h)
retryDelay             ``max_fails=1 fail_timeout=retryDelay``      ``observe layer4 … on-error mark-down``,
                       (0 → ``max_fails=0``: never disabled)        re-checked every retryDelay
listener.healthCheck   (nginx OSS has no active checks: passive)    ``check inter fall rise``, ``timeout check``;
                                                                    http: ``option httpchk`` + ``expect status``
all disabled → try all nginx answers 502 instead                    HAProxy answers 503 instead
affinity header        ``hash $http_<name> consistent``             ``balance hdr(<name>)``, ``hash-type consistent``
=====================  ===========================================  ============================================

Rules of the mapping, defined here once:

* **Mode and affinity follow the group's listener** (``listener.mode``; in http mode its ``affinityHeader``,
  ``null`` meaning none; tcp mode has none). ``--mode`` / ``--affinity-header`` / ``--no-affinity`` override.
* **Weights keep their shares**: a group whose largest weight is within the engine's bound
  (:data:`ENGINE_WEIGHT_MAX`) is written as it is; otherwise every weight is scaled to the bound, rounded, at
  least 1 (:func:`map_weights`), and the output says which shares moved. Balance Desk's own bound
  (``model.WEIGHT_MAX``) is HAProxy's 256, so a group the API accepts needs no rounding on either engine today.
* **Names**: the HAProxy backend of a group is ``bd_<group ID>`` and its frontend ``bd_<group ID>_in``
  (:func:`haproxy_names`); a server is named after its memberID (characters HAProxy refuses become ``_``;
  :func:`server_names`), so the Runtime API's answers name members as the management API does.

``balancedesk export (--config FILE | --api URL --group ID) --to nginx|haproxy [--listen HOST:PORT] [-o OUT]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig, Member, RuleError, parse_balancer_config, parse_endpoint

NGINX_CONNECT_TIMEOUT_CAP = 75  # nginx: "usually cannot exceed 75 seconds"
HAPROXY_FOREVER_S = 3600
HAPROXY_WEIGHT_MAX = 256  # haproxy.org configuration manual, "weight": "between 0 and 256"
NGINX_WEIGHT_MAX = 2**31 - 1  # nginx parses weight= as a positive int with no smaller bound of its own
ENGINE_WEIGHT_MAX = {"haproxy": HAPROXY_WEIGHT_MAX, "nginx": NGINX_WEIGHT_MAX}
ENGINES = tuple(ENGINE_WEIGHT_MAX)
HAPROXY_NAME_RE = re.compile(r"[^A-Za-z0-9_.:-]")  # HAProxy's proxy/server names: letters, digits, - _ . :
BACKEND_PREFIX = "bd_"  # a group's HAProxy backend: bd_<group ID> (core.haproxy reads names back by it)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "group"


def _hostport(endpoint: str) -> str:
    host, port = parse_endpoint(endpoint)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _header_var(header: str) -> str:
    return "$http_" + header.lower().replace("-", "_")


def _ms(seconds: float) -> str:
    """A duration as HAProxy writes it, in whole milliseconds (``500ms``)."""
    return f"{max(1, round(seconds * 1000))}ms"


def map_weights(weights: list[int], high: int) -> tuple[list[int], bool]:
    """``weights`` within ``1..high`` keeping their shares: unchanged when the largest fits; else each scaled by
    ``high / max`` and rounded (at least 1). The flag says whether any share moved in the rounding."""
    top = max(weights, default=1)
    if top <= high:
        return list(weights), False
    scaled = [max(1, round(w * high / top)) for w in weights]
    return scaled, any(s * top != w * high for s, w in zip(scaled, weights, strict=True))


def _weight_notes(ordered: list[Member], mapped: list[int], rounded: bool, engine: str) -> list[str]:
    if mapped == [m.weight for m in ordered]:
        return []
    total_in, total_out = sum(m.weight for m in ordered), sum(mapped)
    notes = [f"- weights scaled into {engine}'s 1..{ENGINE_WEIGHT_MAX[engine]}"
             + (", rounding these shares:" if rounded else " (shares exact):")]
    notes += [f"  {m.member_id}: weight {m.weight} -> {w}, share {m.weight / total_in:.2%} -> {w / total_out:.2%}"
              for m, w in zip(ordered, mapped, strict=True) if rounded and m.weight * total_out != w * total_in]
    return notes


def server_names(members: list[Member]) -> list[str]:
    """Each member's HAProxy server name: its memberID with refused characters as ``_`` (two IDs that then
    clash: the later one gets ``_2``, ``_3`` …)."""
    out: list[str] = []
    for m in members:
        base = HAPROXY_NAME_RE.sub("_", m.member_id) or "m"
        name, n = base, 2
        while name in out:
            name, n = f"{base}_{n}", n + 1
        out.append(name)
    return out


@dataclass(frozen=True)
class HaproxyNames:
    frontend: str
    backend: str


def backend_for(group_id: str) -> str:
    """The HAProxy backend a group of this ID is exported as (``bd_<ID>``, refused characters as ``_``)."""
    return BACKEND_PREFIX + HAPROXY_NAME_RE.sub("_", group_id)


def haproxy_names(cfg: BalancerConfig) -> HaproxyNames:
    """The frontend and backend a group is exported as (its ID; a config without one: its label)."""
    base = backend_for(cfg.connector_id or _safe_name(cfg.label))
    return HaproxyNames(frontend=base + "_in", backend=base)


@dataclass(frozen=True)
class Settings:
    """How the engine serves the group: the listener's, unless the command line said otherwise."""

    mode: str
    listen: str
    affinity_header: str | None


def settings_for(cfg: BalancerConfig, *, mode: str | None = None, listen: str | None = None,
                 affinity_header: str | None = None, no_affinity: bool = False) -> Settings:
    """Mode and affinity from ``cfg.listener`` (tcp: none), ``listen`` from its bind and port (else
    127.0.0.1:8080); the arguments override. ValueError for affinity in tcp mode or a bad ``listen``."""
    lst = cfg.listener
    mode = mode or lst.mode
    if affinity_header and mode != "http":
        raise ValueError("an affinity header needs mode http")
    affinity = None if no_affinity or mode != "http" else (affinity_header or lst.affinity_header)
    if listen is None:
        bind = lst.bind or "127.0.0.1"
        host = f"[{bind}]" if ":" in bind else bind
        listen = f"{host}:{lst.port or 8080}"
    parse_endpoint(listen)
    return Settings(mode=mode, listen=listen, affinity_header=affinity)


def to_nginx(
    cfg: BalancerConfig, *, mode: str, listen: str, affinity_header: str | None = None, workers: str = "auto"
) -> str:
    """A complete ``nginx.conf`` serving the group on ``listen`` (``stream`` for tcp, ``http`` for http)."""
    group = cfg.connector_group
    name = _safe_name(cfg.label)
    ordered = group.ordered()
    mapped, rounded = map_weights([m.weight for m in ordered], NGINX_WEIGHT_MAX)
    ct = group.connection_timeout
    connect_timeout = min(ct, NGINX_CONNECT_TIMEOUT_CAP) if ct else NGINX_CONNECT_TIMEOUT_CAP
    affinity_header = affinity_header if mode == "http" else None
    notes = [
        f"Balance Desk export of group {cfg.label!r} ({cfg.connector_id or 'unsaved'}), mode {mode}"
        + (f", affinity by header {affinity_header}." if affinity_header else ", no affinity."),
        "Differences from Balance Desk's own balancer:",
        "- when every member is disabled nginx answers 502; Balance Desk tries every member anyway.",
        *_weight_notes(ordered, mapped, rounded, "nginx"),
    ]
    if ct == 0 or ct > NGINX_CONNECT_TIMEOUT_CAP:
        notes.append(f"- connectionTimeout {ct or 'never'} is capped at nginx's {NGINX_CONNECT_TIMEOUT_CAP} s.")
    if not group.round_robin and len(ordered) > 2:
        notes.append("- sequence failover: nginx has one backup level, so members after the first share it.")
    lines = [f"# {n}" for n in notes]
    lines += [
        f"worker_processes {workers};",
        "error_log stderr warn;",
        "events { worker_connections 4096; }",
        "",
    ]
    if mode == "tcp":
        lines.insert(len(notes), "include /etc/nginx/modules-enabled/*.conf;  # Debian: loads the stream module")
    servers = []
    for i, (m, weight) in enumerate(zip(ordered, mapped, strict=True)):
        parts = [f"server {_hostport(cfg.endpoints[m.member_id])}"]
        if group.round_robin or affinity_header:
            parts.append(f"weight={weight}")
        if group.retry_delay:
            parts.append(f"max_fails=1 fail_timeout={group.retry_delay}s")
        else:
            parts.append("max_fails=0")
        if not group.round_robin and not affinity_header and i > 0:
            parts.append("backup")
        servers.append(f"        {' '.join(parts)};  # {m.member_id} (sequence {m.sequence})")
    upstream = [f"    upstream {name} {{"]
    if affinity_header:
        upstream.append(f"        hash {_header_var(affinity_header)} consistent;")
    upstream += servers
    if mode == "http":
        upstream.append("        keepalive 64;")
    upstream.append("    }")
    if mode == "tcp":
        body = [
            "stream {",
            *upstream,
            "    server {",
            f"        listen {listen};",
            f"        proxy_pass {name};",
            f"        proxy_connect_timeout {connect_timeout}s;",
            "        proxy_next_upstream on;",
            f"        proxy_next_upstream_tries {len(ordered)};",
            "    }",
            "}",
        ]
    else:
        body = [
            "http {",
            "    access_log off;",
            "    client_max_body_size 0;",
            *upstream,
            "    server {",
            f"        listen {listen};",
            "        location / {",
            f"            proxy_pass http://{name};",
            "            proxy_http_version 1.1;",
            '            proxy_set_header Connection "";',
            "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "            proxy_request_buffering off;",
            "            proxy_buffering off;",
            f"            proxy_connect_timeout {connect_timeout}s;",
            "            proxy_next_upstream error timeout;",
            f"            proxy_next_upstream_tries {len(ordered)};",
            "        }",
            "    }",
            "}",
        ]
    return "\n".join([*lines, *body]) + "\n"


def haproxy_sections(cfg: BalancerConfig, *, mode: str, listen: str, affinity_header: str | None = None) -> str:
    """The group's ``frontend`` and ``backend`` sections, self-contained (their own mode and timeouts), so they
    can live in a config that is not ours (``core.haproxy.deploy``'s managed section) or in :func:`to_haproxy`."""
    group = cfg.connector_group
    names = haproxy_names(cfg)
    ordered = group.ordered()
    mapped, rounded = map_weights([m.weight for m in ordered], HAPROXY_WEIGHT_MAX)
    ct = group.connection_timeout or HAPROXY_FOREVER_S
    affinity_header = affinity_header if mode == "http" else None
    notes = [
        f"Balance Desk export of group {cfg.label!r} ({cfg.connector_id or 'unsaved'}), mode {mode}"
        + (f", affinity by header {affinity_header}." if affinity_header else ", no affinity."),
        "Differences from Balance Desk's own balancer:",
        "- when every member is down HAProxy answers 503 (http) or closes (tcp); Balance Desk tries every member.",
        "- a disabled member is re-enabled by a health check every retryDelay, not by the clock alone.",
        *_weight_notes(ordered, mapped, rounded, "haproxy"),
    ]
    out = [f"# {n}" for n in notes]
    out += [
        f"frontend {names.frontend}",
        f"    mode {mode}",
        f"    bind {listen}",
        "    timeout client 1h",
        *(["    timeout http-request 60s"] if mode == "http" else []),
        f"    default_backend {names.backend}",
        "",
        f"backend {names.backend}",
        f"    mode {mode}",
        f"    timeout connect {ct}s",
        "    timeout server 1h",
        f"    retries {max(len(ordered) - 1, 0)}",
        "    option redispatch 1",
    ]
    if mode == "http":
        out.append("    option forwardfor")
        out.append("    retry-on conn-failure empty-response response-timeout")
    if affinity_header:
        out.append(f"    balance hdr({affinity_header})")
        out.append("    hash-type consistent")
    else:
        out.append("    balance roundrobin")
    hc = cfg.listener.health_check
    if hc is not None:
        out.append(f"    timeout check {_ms(hc.timeout)}")
        if hc.type == "http" and mode == "http":
            out.append(f"    option httpchk GET {hc.path}")
            out.append(f"    http-check expect status {hc.expect_status}")
    for i, (m, server, weight) in enumerate(zip(ordered, server_names(ordered), mapped, strict=True)):
        parts = [f"server {server} {_hostport(cfg.endpoints[m.member_id])}"]
        if group.round_robin or affinity_header:
            parts.append(f"weight {weight}")
        if hc is not None:
            parts.append(f"check inter {_ms(hc.interval)} fall {hc.fall} rise {hc.rise}")
        elif group.retry_delay:
            parts.append(
                f"check inter {group.retry_delay}s fall 1 rise 1 observe layer4 error-limit 1 on-error mark-down"
            )
        if not group.round_robin and not affinity_header and i > 0:
            parts.append("backup")
        out.append(f"    {' '.join(parts)}  # {m.member_id} (sequence {m.sequence})")
    return "\n".join(out) + "\n"


def to_haproxy(
    cfg: BalancerConfig, *, mode: str, listen: str, affinity_header: str | None = None, workers: str = "auto"
) -> str:
    """A complete ``haproxy.cfg`` serving the group on ``listen``."""
    out = [
        "global",
        *([] if workers == "auto" else [f"    nbthread {workers}"]),
        "",
        "defaults",
        f"    mode {mode}",
        "    timeout connect 5s",
        "    timeout client 1h",
        "    timeout server 1h",
        "",
    ]
    return "\n".join(out) + "\n" + haproxy_sections(cfg, mode=mode, listen=listen, affinity_header=affinity_header)


def render(engine: str, cfg: BalancerConfig, settings: Settings, *, workers: str = "auto") -> str:
    """The engine's config text for ``cfg`` served as ``settings`` (``engine``: one of :data:`ENGINES`)."""
    fn = to_nginx if engine == "nginx" else to_haproxy
    return fn(cfg, mode=settings.mode, listen=settings.listen, affinity_header=settings.affinity_header,
              workers=workers)


# the command line ----------------------------------------------------------------------------------------
def add_api_arguments(p: argparse.ArgumentParser) -> None:
    """``--api URL --group ID`` and the credentials (a balancer token, or an Administrator's user and
    password) — shared with ``balancedesk haproxy deploy``."""
    p.add_argument("--api", metavar="URL", help="read the group from this management server (with --group)")
    p.add_argument("--group", metavar="ID", help="the group's connectorID (with --api)")
    p.add_argument("--token-file", type=Path, metavar="F", help="a balancer token of the group's pool (bdt_…)")
    p.add_argument("--pool", metavar="NAME", default=None,
                   help="the group's pool (default: its listener's pool, or 'default' with a token)")
    p.add_argument("--user", metavar="U", help="an Administrator of the management server")
    p.add_argument("--password-env", metavar="VAR", help="read --user's password from this environment variable")
    p.add_argument("--password-file", type=Path, metavar="F", help="read --user's password from this file")
    p.add_argument("--insecure", action="store_true", help="do not verify the API's TLS certificate")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="write a group as an nginx or HAProxy config")
    p.add_argument("--config", type=Path, help="balancer config: group JSON + endpoints (or use --api)")
    add_api_arguments(p)
    p.add_argument("--to", required=True, choices=ENGINES)
    p.add_argument("--mode", default=None, choices=("tcp", "http"), help="default: the group's listener mode")
    p.add_argument("--listen", default=None,
                   help="HOST:PORT the engine listens on (default: the listener's bind:port, else 127.0.0.1:8080)")
    p.add_argument("--affinity-header", default=None, help="route by this HTTP header (default: the listener's)")
    p.add_argument("--no-affinity", action="store_true", help="http: no header affinity")
    p.add_argument("--workers", default="auto", help="nginx worker processes / HAProxy threads")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here (atomically) instead of stdout")
    p.set_defaults(func=_run)


class SourceError(Exception):
    """The group could not be read: the message says why (printed after ``balancedesk <command>:``)."""


@dataclass(frozen=True)
class Loaded:
    config: BalancerConfig
    pool: str | None = None  # from the management API: the pool it was read from …
    version: int | None = None  # … and the group's saved version there


def load_source(args: argparse.Namespace) -> BalancerConfig:
    """The group from ``--config FILE`` or from ``--api URL --group ID`` with its credentials."""
    return load_group(args).config


def load_group(args: argparse.Namespace) -> Loaded:
    """:func:`load_source`, with the pool and saved version when the group came from the API."""
    if (args.config is None) == (args.api is None):
        raise SourceError("give --config FILE or --api URL --group ID (one of them)")
    if args.config is not None:
        try:
            raw: Any = json.loads(args.config.read_text())
            return Loaded(parse_balancer_config(raw))
        except OSError as exc:
            raise SourceError(f"cannot read {args.config}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise SourceError(f"{args.config} is not valid JSON: {exc}") from None
        except RuleError as exc:
            raise SourceError(str(exc)) from None
    if not args.group:
        raise SourceError("--api needs --group ID")
    return asyncio.run(_from_api(args))


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise SourceError(f"environment variable {args.password_env} is not set")
        return value
    if args.password_file is not None:
        try:
            return str(args.password_file.read_text().strip())
        except OSError as exc:
            raise SourceError(f"cannot read {args.password_file}: {exc.strerror}") from None
    raise SourceError("--user needs --password-env VAR or --password-file F")


async def _from_api(args: argparse.Namespace) -> Loaded:
    from balancedesk.core.client import ApiError, ApiUnavailable, MgmtClient
    from balancedesk.core.fleet import BALANCER_TOKEN_PREFIX

    if (args.token_file is None) == (args.user is None):
        raise SourceError("--api needs --token-file F (a balancer token) or --user U with a password")
    verify = not args.insecure
    if args.token_file is not None:
        try:
            secret = args.token_file.read_text().strip()
        except OSError as exc:
            raise SourceError(f"cannot read {args.token_file}: {exc.strerror}") from None
        if not secret.startswith(BALANCER_TOKEN_PREFIX):
            raise SourceError(f"{args.token_file} holds no balancer token (it starts with {BALANCER_TOKEN_PREFIX})")
        client = MgmtClient(args.api, token=secret, verify=verify)
    else:
        client = MgmtClient(args.api, args.user, _password(args), verify=verify)
    try:
        async with client:
            pool = args.pool
            if pool is None and args.token_file is None:
                connector, _ = await client.get_connector(args.group)
                if connector.listener is None:
                    raise SourceError(f"group {args.group} has no listener: it is served by no pool")
                pool = connector.listener.pool
            found = await client.pool_group(pool or "default", args.group)
    except ApiError as exc:
        raise SourceError(f"group {args.group} from {args.api}: {exc.status} {exc}") from None
    except ApiUnavailable as exc:
        raise SourceError(f"cannot reach {args.api}: {exc}") from None
    assert found is not None  # no If-None-Match was sent
    return Loaded(found[0].config, pool or "default", found[0].version)


def write_atomically(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file in the same folder and a rename (never half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _run(args: argparse.Namespace) -> int:
    try:
        cfg = load_source(args)
        settings = settings_for(cfg, mode=args.mode, listen=args.listen, affinity_header=args.affinity_header,
                                no_affinity=args.no_affinity)
    except SourceError as exc:
        print(f"balancedesk export: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"balancedesk export: {exc}", file=sys.stderr)
        return 2
    text = render(args.to, cfg, settings, workers=args.workers)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_atomically(args.output, text)
    return 0
