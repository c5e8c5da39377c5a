"""``balancedesk haproxy deploy|status``: a group to HAProxy instances, and what each instance runs.

Instances come from ``--instances FILE`` (a JSON list of ``{"name", "config", "master", "stats", "listen",
"reloadCommand"}``; only ``config`` is required) or, for one instance, ``--haproxy-config PATH [--master SOCK]
[--stats SOCK] [--listen HOST:PORT]``. The group comes from ``--config FILE`` or ``--api URL --group ID`` with
the credentials of ``balancedesk export``.

``deploy`` prints one line per instance (``deployed <group> version N to <instance> (workers …)``) and exits 0;
a refused config prints HAProxy's message, changes nothing and exits 1; bad arguments exit 2.
``status`` prints, per instance, the managed sections (group, version, digest) and, when its sockets answer,
HAProxy's version and workers; ``--json`` prints the same as JSON (what the fleet view reads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from balancedesk.core.haproxy.deploy import DeployError, Instance


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from balancedesk.core.export import add_api_arguments

    p = sub.add_parser("haproxy", help="deploy a group to HAProxy instances; show what they run")
    acts = p.add_subparsers(dest="haproxy_command", metavar="ACTION", required=True)
    dep = acts.add_parser("deploy", help="write the group's managed section, check with haproxy -c, reload")
    dep.add_argument("--config", type=Path, help="the group: balancer config JSON (or use --api)")
    add_api_arguments(dep)
    _instance_arguments(dep)
    dep.set_defaults(func=_deploy)
    st = acts.add_parser("status", help="the managed sections of each instance and what runs")
    _instance_arguments(st)
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(func=_status)


def _instance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instances", type=Path, metavar="FILE", help="JSON list of instances (see --help of haproxy)")
    p.add_argument("--haproxy-config", type=Path, metavar="PATH", help="one instance: its haproxy.cfg")
    p.add_argument("--master", metavar="SOCK", help="one instance: its master CLI socket (haproxy -W -S SOCK)")
    p.add_argument("--stats", metavar="SOCK", help="one instance: its stats socket (path or host:port)")
    p.add_argument("--listen", metavar="HOST:PORT", help="one instance: where the group's frontend binds")


def parse_instances(raw: Any) -> list[Instance]:
    """The ``--instances`` file's JSON → instances (ValueError naming the entry and field)."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("the instances file must hold a JSON list of at least one instance")
    out = []
    for i, d in enumerate(raw):
        if not isinstance(d, dict) or not isinstance(d.get("config"), str):
            raise ValueError(f"instances[{i}].config: a path to the instance's haproxy.cfg is required")
        for key in ("name", "master", "stats", "listen"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise ValueError(f"instances[{i}].{key}: must be a string")
        cmd = d.get("reloadCommand") or []
        if not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd):
            raise ValueError(f"instances[{i}].reloadCommand: must be a list of strings")
        out.append(Instance(config=Path(d["config"]), master=d.get("master"), stats=d.get("stats"),
                            listen=d.get("listen"), name=d.get("name") or "", reload_command=tuple(cmd)))
    return out


def load_instances(args: argparse.Namespace) -> list[Instance]:
    if (args.instances is None) == (args.haproxy_config is None):
        raise ValueError("give --instances FILE or --haproxy-config PATH (one of them)")
    if args.instances is not None:
        try:
            return parse_instances(json.loads(args.instances.read_text()))
        except OSError as exc:
            raise ValueError(f"cannot read {args.instances}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.instances} is not valid JSON: {exc}") from None
    return [Instance(config=args.haproxy_config, master=args.master, stats=args.stats, listen=args.listen)]


def _fail(message: str, code: int = 2) -> int:
    print(f"balancedesk haproxy: {message}", file=sys.stderr)
    return code


def _deploy(args: argparse.Namespace) -> int:
    from balancedesk.core.export import SourceError, load_group
    from balancedesk.core.haproxy.deploy import Origin, deploy

    try:
        instances = load_instances(args)
        loaded = load_group(args)
    except (SourceError, ValueError) as exc:
        return _fail(str(exc))
    cfg = loaded.config
    origin = Origin(loaded.pool, loaded.version) if loaded.pool is not None and loaded.version is not None else None
    try:
        results = asyncio.run(deploy(cfg, instances, origin=origin))
    except DeployError as exc:
        return _fail(str(exc), 1)
    except ValueError as exc:
        return _fail(str(exc))
    for r in results:
        how = f"(workers {', '.join(map(str, r.workers))})" if r.workers else "; ".join(r.notes) or "(reloaded)"
        print(f"deployed {cfg.connector_id} version {r.version} to {r.instance.title} {how}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from balancedesk.core.haproxy.status import instance_status

    try:
        instances = load_instances(args)
    except ValueError as exc:
        return _fail(str(exc))
    rows = [asyncio.run(instance_status(i)) for i in instances]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        running = f"HAProxy {row['version']}, workers {row['workers']}" if row.get("version") else row.get("error", "")
        print(f"{row['name']}: {running}")
        for s in row["groups"]:
            print(f"  group {s['connectorID']} version {s['version']} ({s['digest']})")
    return 0
