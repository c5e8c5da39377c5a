"""Balance Desk's core: everything a headless server or balancer needs. No Qt here, ever.

* ``model``   — connectors, groups, members and the management API's rules (used by server, client, GUI).
* ``balance`` — the sans-io routing decisions (smooth WRR, sequence failover, retryDelay health, affinity).
* ``proxy``   — the asyncio shell: L4/L7 listeners, upstream connects, the admin endpoint, config reload.
* ``mgmt``    — the HDP-compatible management API server and its SQLite store.
* ``client``  — the httpx client for the management API (GUI and balancer use it).
* ``cli``     — the ``balancedesk`` subcommands.

Arrows: ``proxy → balance → model``; ``mgmt → model``; nothing here imports ``balancedesk.gui``.
"""
