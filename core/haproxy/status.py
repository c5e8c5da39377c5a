"""What an HAProxy instance runs, as one JSON object: the fleet view's row and ``balancedesk haproxy status``.

``{"name", "config", "groups": [{"connectorID", "version", "digest", "pool", "saved"}], "version", "workers",
"uptime_s", "error"}`` — ``groups`` from the config file's managed sections (:func:`.deploy.sections`); ``version``
(HAProxy's), ``workers`` and ``uptime_s`` from the master CLI (``show proc``) or else the stats socket
(``show info``); ``error`` says why those are missing (a socket that does not answer). The GUI polls the
instances it is configured with (no agent runs beside HAProxy): the file is read and the sockets asked on
each poll.
"""

from __future__ import annotations

import asyncio
from typing import Any

from balancedesk.core.haproxy.deploy import Instance, fingerprint, sections, show_proc
from balancedesk.core.haproxy.runtime import RuntimeClient, RuntimeRefused, RuntimeUnavailable


async def instance_status(instance: Instance) -> dict[str, Any]:
    out: dict[str, Any] = {"name": instance.title, "config": str(instance.config), "groups": [], "version": None,
                           "workers": [], "uptime_s": None, "error": None}
    try:
        text = await asyncio.to_thread(instance.config.read_text)  # a GUI poll: never the loop's thread
        out["groups"] = [{"connectorID": s.group_id, "version": s.version, "digest": fingerprint(s.text),
                          "pool": s.pool, "saved": s.saved} for s in sections(text)]
    except OSError as exc:
        out["error"] = f"cannot read {instance.config}: {exc.strerror}"
    try:
        if instance.master is not None:
            procs = await show_proc(instance.master)
            master = next((p for p in procs if p.kind == "master"), None)
            out["version"] = master.version if master else None
            out["workers"] = [p.pid for p in procs if p.kind == "worker" and not p.old]
            out["reloads"] = master.reloads if master else None
        if instance.stats is not None:
            info = await RuntimeClient(instance.stats).show_info()
            out["version"] = out["version"] or info.get("Version")
            out["uptime_s"] = int(info.get("Uptime_sec") or 0)
            out["workers"] = out["workers"] or [int(info.get("Pid") or 0)]
    except (RuntimeUnavailable, RuntimeRefused) as exc:
        out["error"] = str(exc)
    return out
