"""PyInstaller entry point: the same ``balancedesk`` command (GUI with no subcommand, CLI otherwise)."""

from balancedesk.gui.launcher import main

if __name__ == "__main__":
    raise SystemExit(main())
