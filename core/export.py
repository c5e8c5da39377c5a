"""Export a connector group to engines that scale past one machine: nginx and HAProxy.

The input is the balancer config (the group JSON as the management API returns it, plus ``endpoints``).
Each semantic is mapped to the closest native feature, and what cannot be matched exactly is written
into the generated file as a comment, so nobody learns it in production:

=====================  ===========================================  ============================================
group semantic         nginx                                        HAProxy
=====================  ===========================================  ============================================
Round Robin + weight   ``server … weight=w`` (smooth WRR, the same)  ``balance roundrobin`` + ``weight w``
sequence failover      first member primary, the rest ``backup``    first member, the rest ``backup`` in order
                       (backups share load: one level only)         (HAProxy uses the first live backup: exact)
connectionTimeout      ``proxy_connect_timeout`` (0 → 75 s cap)     ``timeout connect`` (0 → 1 h)
retryDelay             ``max_fails=1 fail_timeout=retryDelay``      ``observe layer4 … on-error mark-down``,
                       (0 → ``max_fails=0``: never disabled)        re-checked every retryDelay
all disabled → try all nginx answers 502 instead                    HAProxy answers 503 instead
affinity header        ``hash $http_<name> consistent``             ``balance hdr(<name>)``, ``hash-type consistent``
=====================  ===========================================  ============================================

``balancedesk export --config FILE --to nginx|haproxy --mode tcp|http --listen HOST:PORT [-o OUT]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from balancedesk.core.model import BalancerConfig, RuleError, parse_balancer_config, parse_endpoint

NGINX_CONNECT_TIMEOUT_CAP = 75  # nginx: "usually cannot exceed 75 seconds"
HAPROXY_FOREVER_S = 3600


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "group"


def _hostport(endpoint: str) -> str:
    host, port = parse_endpoint(endpoint)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _header_var(header: str) -> str:
    return "$http_" + header.lower().replace("-", "_")


def to_nginx(
    cfg: BalancerConfig, *, mode: str, listen: str, affinity_header: str | None = None, workers: str = "auto"
) -> str:
    """A complete ``nginx.conf`` serving the group on ``listen`` (``stream`` for tcp, ``http`` for http)."""
    group = cfg.connector_group
    name = _safe_name(cfg.label)
    ordered = group.ordered()
    ct = group.connection_timeout
    connect_timeout = min(ct, NGINX_CONNECT_TIMEOUT_CAP) if ct else NGINX_CONNECT_TIMEOUT_CAP
    notes = [
        f"Balance Desk export of group {cfg.label!r} ({cfg.connector_id or 'unsaved'}), mode {mode}.",
        "Differences from Balance Desk's own balancer:",
        "- when every member is disabled nginx answers 502; Balance Desk tries every member anyway.",
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
    for i, m in enumerate(ordered):
        parts = [f"server {_hostport(cfg.endpoints[m.member_id])}"]
        if group.round_robin or affinity_header:
            parts.append(f"weight={m.weight}")
        if group.retry_delay:
            parts.append(f"max_fails=1 fail_timeout={group.retry_delay}s")
        else:
            parts.append("max_fails=0")
        if not group.round_robin and not affinity_header and i > 0:
            parts.append("backup")
        servers.append(f"        {' '.join(parts)};  # {m.member_id} (sequence {m.sequence})")
    upstream = [f"    upstream {name} {{"]
    if affinity_header and mode == "http":
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


def to_haproxy(
    cfg: BalancerConfig, *, mode: str, listen: str, affinity_header: str | None = None, workers: str = "auto"
) -> str:
    """A complete ``haproxy.cfg`` serving the group on ``listen``."""
    group = cfg.connector_group
    name = _safe_name(cfg.label)
    ordered = group.ordered()
    ct = group.connection_timeout or HAPROXY_FOREVER_S
    notes = [
        f"Balance Desk export of group {cfg.label!r} ({cfg.connector_id or 'unsaved'}), mode {mode}.",
        "Differences from Balance Desk's own balancer:",
        "- when every member is down HAProxy answers 503 (http) or closes (tcp); Balance Desk tries every member.",
        "- a disabled member is re-enabled by a health check every retryDelay, not by the clock alone.",
    ]
    out = [f"# {n}" for n in notes]
    out += [
        "global",
        *([] if workers == "auto" else [f"    nbthread {workers}"]),
        "",
        "defaults",
        f"    mode {mode}",
        f"    timeout connect {ct}s",
        "    timeout client 1h",
        "    timeout server 1h",
        f"    retries {max(len(ordered) - 1, 0)}",
        "    option redispatch 1",
        "",
        f"frontend {name}_in",
        f"    bind {listen}",
        f"    default_backend {name}",
        "",
        f"backend {name}",
    ]
    if mode == "http":
        out.append("    option forwardfor")
        out.append("    retry-on conn-failure empty-response response-timeout")
    if affinity_header and mode == "http":
        out.append(f"    balance hdr({affinity_header})")
        out.append("    hash-type consistent")
    else:
        out.append("    balance roundrobin")
    for i, m in enumerate(ordered):
        parts = [f"server m{i + 1} {_hostport(cfg.endpoints[m.member_id])}"]
        if group.round_robin or affinity_header:
            parts.append(f"weight {m.weight}")
        if group.retry_delay:
            parts.append(
                f"check inter {group.retry_delay}s fall 1 rise 1 observe layer4 error-limit 1 on-error mark-down"
            )
        if not group.round_robin and not affinity_header and i > 0:
            parts.append("backup")
        out.append(f"    {' '.join(parts)}  # {m.member_id} (sequence {m.sequence})")
    return "\n".join(out) + "\n"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="write a group as an nginx or HAProxy config")
    p.add_argument("--config", required=True, type=Path, help="balancer config: group JSON + endpoints")
    p.add_argument("--to", required=True, choices=("nginx", "haproxy"))
    p.add_argument("--mode", default="tcp", choices=("tcp", "http"))
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT the engine listens on")
    p.add_argument("--affinity-header", default=None, help="route by this HTTP header (http mode)")
    p.add_argument("--workers", default="auto", help="nginx worker processes / HAProxy threads")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here (atomically) instead of stdout")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        raw: Any = json.loads(args.config.read_text())
        cfg = parse_balancer_config(raw)
        parse_endpoint(args.listen)
    except OSError as exc:
        print(f"balancedesk export: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as exc:
        print(f"balancedesk export: {args.config} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    except (RuleError, ValueError) as exc:
        print(f"balancedesk export: {exc}", file=sys.stderr)
        return 2
    if args.affinity_header and args.mode != "http":
        print("balancedesk export: --affinity-header needs --mode http", file=sys.stderr)
        return 2
    render = to_nginx if args.to == "nginx" else to_haproxy
    text = render(
        cfg, mode=args.mode, listen=args.listen, affinity_header=args.affinity_header, workers=args.workers
    )
    if args.output is None:
        sys.stdout.write(text)
        return 0
    fd, tmp = tempfile.mkstemp(dir=args.output.parent, prefix=f".{args.output.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, args.output)
    return 0
