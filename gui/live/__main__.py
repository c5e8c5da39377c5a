"""``python -m balancedesk.gui.live --config FILE | --attach URL --token-file F`` — the live view alone.

``--config`` takes a balancer config (group JSON + ``endpoints``), as ``balancedesk balance --config``.
``--run`` starts it locally at once (``--port``, ``--mode``, ``--affinity-header``); ``--demo`` starts the
demo members first and ``--traffic R`` a generator at R per second once the balancer is up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import qasync
from balancedesk.core.model import Connector, parse_balancer_config
from balancedesk.gui.live.window import LiveWindow
from PySide6.QtWidgets import QApplication


def build_window(args: argparse.Namespace) -> LiveWindow:
    if args.config:
        cfg = parse_balancer_config(json.loads(Path(args.config).read_text()))
        group = Connector.model_validate(
            {"connectorID": cfg.connector_id, "owner": cfg.owner or "local", "label": cfg.label,
             "connectorGroup": cfg.connector_group.to_json(), "authUser": list(cfg.auth_user)}
        )
        win = LiveWindow(group=group, endpoints=cfg.endpoints)
    else:
        win = LiveWindow()
    win.run_panel.port.setValue(args.port)
    win.run_panel.mode.setCurrentIndex(1 if args.mode == "http" else 0)
    if args.affinity_header:
        win.run_panel.affinity.setChecked(True)
        win.run_panel.header.setText(args.affinity_header)
    if args.attach:
        token = Path(args.token_file).read_text().strip() if args.token_file else ""
        win.attach(args.attach, token)
    elif args.config and args.demo:
        for mid in win.demos.slots:
            win.demos.start(mid)
    if args.config and args.run:
        win.run_local(port=args.port, mode=args.mode, affinity_header=args.affinity_header)
    if args.traffic:
        first = [True]

        def go(_snap: object) -> None:
            if first[0]:
                first[0] = False
                win.start_traffic(args.traffic)

        win.snapshotted.connect(go)
    return win


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m balancedesk.gui.live", description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="balancer config JSON (group + endpoints)")
    src.add_argument("--attach", metavar="URL", help="admin URL of a running balancer")
    p.add_argument("--token-file", help="admin token file (with --attach)")
    p.add_argument("--run", action="store_true", help="run the balancer locally at once (with --config)")
    p.add_argument("--demo", action="store_true", help="start demo members for local endpoints")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--mode", choices=("tcp", "http"), default="tcp")
    p.add_argument("--affinity-header", default=None)
    p.add_argument("--traffic", type=float, default=0.0, help="start traffic at this rate once running")
    args = p.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.lastWindowClosed.connect(closed.set)
    with loop:
        win = build_window(args)
        win.show()
        loop.run_until_complete(closed.wait())
        win.shutdown()
        win.deleteLater()
        del win
    return 0


if __name__ == "__main__":
    sys.exit(main())
