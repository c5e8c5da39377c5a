"""The ``balancedesk`` console script: subcommands go to :mod:`balancedesk.core.cli`; no subcommand opens
the desktop app. Qt is imported only when the app is opened, so headless servers start fast."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):  # the subcommands and the desktop app's own options
        from balancedesk.core.cli import build_parser
        from balancedesk.gui.app import add_app_options

        parser = build_parser()
        add_app_options(parser.add_argument_group("desktop app options (with no COMMAND)"))
        parser.print_help()
        return 0
    if args and not args[0].startswith("-"):
        from balancedesk.core.cli import main as cli_main

        return int(cli_main(args))
    from balancedesk.gui.app import run

    return int(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
