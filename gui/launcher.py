"""The ``balancedesk`` console script: subcommands go to :mod:`balancedesk.core.cli`; no subcommand opens
the desktop app. Qt is imported only when the app is opened, so headless servers start fast."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if (args and not args[0].startswith("-")) or any(a in ("-h", "--help") for a in args[:1]):
        from balancedesk.core.cli import main as cli_main

        return int(cli_main(args))
    from balancedesk.gui.app import run

    return int(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
