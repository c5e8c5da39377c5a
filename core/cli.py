"""The ``balancedesk`` command line: one parser, subcommands registered by the modules that own them.

Each owner module exposes ``register(subparsers) -> None``, which adds its subcommand(s) and sets
``func`` (called with the parsed namespace, returning an exit code). Heavy imports stay inside ``func``
so ``balancedesk --help`` is instant. Errors a user made print one line to stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from balancedesk.core.command import EXIT_WITH_PARENT_ENV, watch_parent

# module → owns these subcommands (see each module's ``register``)
OWNERS = (
    "balancedesk.core.mgmt.cli",  # serve, users, connectors, tokens
    "balancedesk.core.mgmt.installation",  # front-config
    "balancedesk.core.proxy.cli",  # balance
    "balancedesk.core.demo",  # demo-member
    "balancedesk.core.export",  # export (nginx / haproxy)
    "balancedesk.core.haproxy.cli",  # haproxy deploy / status
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="balancedesk",
        description="Balance Desk: connector groups, a management API server and a balancer. "
        "With no subcommand, opens the desktop app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in OWNERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # not built yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get(EXIT_WITH_PARENT_ENV) == "1":
        watch_parent()
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
