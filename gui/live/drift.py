"""Drift: how the running balancer's config differs from the saved group (pure, no Qt).

The saved group is whatever the caller last read from the management server (the live window re-reads
it); the first check is always the group's ID: a balancer that runs another group is not "drifting" from
this one, and nothing may push this group's config to it (:func:`apply_refusal`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from balancedesk.core.model import Connector
from balancedesk.gui.live.admin import Snapshot


def balancer_config(group: Connector, endpoints: Mapping[str, str],
                    labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``PUT /admin/config`` body (and ``--config`` file) for a saved group: its JSON + endpoints (and the
    members' labels, ``memberLabels``, when known)."""
    body = group.to_json()
    body["endpoints"] = {k: v for k, v in endpoints.items()}
    if labels:
        body["memberLabels"] = {k: v for k, v in labels.items() if v}
    return body


def running_group_id(snap: Snapshot) -> str | None:
    """The connectorID the balancer says it runs (None if its snapshot does not say)."""
    cid = snap.group.get("connectorID")
    return str(cid) if cid else None


def apply_refusal(group: Connector, snap: Snapshot) -> str | None:
    """Why the saved ``group`` must not be pushed to the balancer of ``snap``, or None if it may."""
    running = running_group_id(snap)
    if running is None:
        return (f"apply refused: the balancer does not say which group it runs, so {group.connector_id!r} "
                "is not pushed to it")
    if running != group.connector_id:
        return (f"apply refused: this balancer runs group {running!r}, not {group.connector_id!r}; "
                "open the live view of that group to change it")
    return None


def differences(group: Connector, endpoints: Mapping[str, str], snap: Snapshot,
                name: Callable[[str], str] = str) -> list[str]:
    """Human sentences, one per difference between the saved ``group`` and the running ``snap``; members are
    called by ``name`` (the window's :class:`~balancedesk.gui.live.names.MemberNames`: the editor's labels)."""
    cg = group.connector_group
    if cg is None:
        return ["the saved connector is not a group"]
    running_id = running_group_id(snap)
    if running_id is not None and group.connector_id and running_id != group.connector_id:
        return [f"the balancer runs another group ({running_id!r}, not {group.connector_id!r})"]
    out: list[str] = []
    running = snap.group
    if "retryDelay" in running and int(running["retryDelay"]) != cg.retry_delay:
        out.append(f"retryDelay: running {running['retryDelay']} s, saved {cg.retry_delay} s")
    if "connectionTimeout" in running and int(running["connectionTimeout"]) != cg.connection_timeout:
        out.append(f"connectionTimeout: running {running['connectionTimeout']} s, saved {cg.connection_timeout} s")
    if "loadBalancing" in running and (running.get("loadBalancing") or None) != cg.load_balancing:
        out.append(
            f"loadBalancing: running {running.get('loadBalancing') or 'sequence'}, "
            f"saved {cg.load_balancing or 'sequence'}"
        )
    saved = {m.member_id: m for m in cg.members}
    live = {m.member_id: m for m in snap.members}
    for mid in sorted(saved.keys() - live.keys()):
        out.append(f"{name(mid)}: saved but not in the running balancer")
    for mid in sorted(live.keys() - saved.keys()):
        out.append(f"{name(mid)}: running but not in the saved group")
    for mid in sorted(saved.keys() & live.keys()):
        s, r = saved[mid], live[mid]
        if s.weight != r.weight:
            out.append(f"{name(mid)}: weight running {r.weight}, saved {s.weight}")
        if s.sequence != r.sequence:
            out.append(f"{name(mid)}: sequence running {r.sequence}, saved {s.sequence}")
        ep = endpoints.get(mid)
        if ep and r.endpoint and ep != r.endpoint:
            out.append(f"{name(mid)}: endpoint running {r.endpoint}, saved {ep}")
    return out
