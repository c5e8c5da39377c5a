"""HAProxy's own numbers in Balance Desk's vocabulary (pure: no sockets, no clock — ``now`` is an argument).

One backend's ``show stat`` rows and ``show servers state`` rows become a :class:`~balancedesk.core.proxy.contract
.Snapshot`; two snapshots in a row give the health and admin events between them (HAProxy keeps no event
stream a client can read, so events are derived at each poll). The mapping, per server:

=======================  ================================================================================
MemberSnap               HAProxy
=======================  ================================================================================
member_id                the server name (``names`` maps it back when the export had to change an ID)
endpoint                 ``srv_addr:srv_port`` (servers state), else ``addr``
weight                   ``srv_uweight`` — the running (user) weight; ``srv_iweight`` is the config's
admin                    ``drain`` when forced drain (admin bit 0x08) or status DRAIN; ``disabled`` when
                         forced maintenance (bit 0x01) or status MAINT; else ``enabled``
health                   ``disabled`` when status is DOWN (checks failed), else ``up``
check_state/ok/detail    checks on (``check_status`` not empty): ``up``/``down``, ``L4OK``/``L7OK``/``L6OK``
                         → ok, the status and ``last_chk`` as the detail
check_ago_s              None while checks pass (HAProxy does not say when its last check ran); when failing,
                         seconds since the server went down (``lastchg``) — the view then shows the detail
active / total           ``scur`` / ``stot``;  queued: ``qcur``
failures                 ``econ + eresp`` (connect errors and answer errors)
bytes_in / bytes_out     ``bin`` / ``bout``
status_classes           ``hrsp_1xx`` … ``hrsp_5xx`` (http mode)
down_total_s             ``downtime``
configured_share         weight over the weights of the servers that can take new sessions
actual_share             ``stot`` over the backend's servers' ``stot``
=======================  ================================================================================

Runtime changes are overrides (``core.fleet.Override`` JSON): a weight other than ``srv_iweight`` or a
forced drain/maintenance. HAProxy forgets them on a reload unless the group is saved and deployed again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from balancedesk.core.export import BACKEND_PREFIX
from balancedesk.core.proxy.contract import STATUS_CLASSES, AdminEvent, Event, HealthEvent, MemberSnap, Snapshot

ADMIN_FMAINT = 0x01  # srv_admin_state bits (HAProxy's SRV_ADMF_*): forced maintenance
ADMIN_FDRAIN = 0x08  # forced drain
CHECK_OK = ("L4OK", "L6OK", "L7OK", "L7OKC")
# Balance Desk's member states → HAProxy's ``set server … state``
STATE_TO_HAPROXY = {"enabled": "ready", "drain": "drain", "disabled": "maint"}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def group_id_of(backend: str) -> str:
    """The connectorID an exported backend serves (``bd_<ID>``); another backend's name as it is."""
    return backend[len(BACKEND_PREFIX):] if backend.startswith(BACKEND_PREFIX) else backend


def _admin(status: str, admin_bits: int) -> str:
    if admin_bits & ADMIN_FMAINT or status.startswith("MAINT"):
        return "disabled"
    if admin_bits & ADMIN_FDRAIN or status.startswith("DRAIN"):
        return "drain"
    return "enabled"


def member_snap(row: Mapping[str, str], state: Mapping[str, str], *, member_id: str, label: str = "",
                sequence: int = 0, configured_share: float = 0.0, actual_share: float = 0.0) -> MemberSnap:
    """One server's ``show stat`` row and ``show servers state`` row as a member."""
    status = row.get("status", "")
    check_status = row.get("check_status", "").lstrip("* ")
    checks = bool(check_status)
    down = status.startswith("DOWN")
    endpoint = (f"{state['srv_addr']}:{state['srv_port']}" if state.get("srv_addr") and state.get("srv_port")
                else row.get("addr", ""))
    detail = " ".join(x for x in (check_status, row.get("last_chk", "")) if x)
    return MemberSnap(
        member_id=member_id,
        label=label,
        endpoint=endpoint,
        sequence=sequence,
        weight=_int(state.get("srv_uweight") or row.get("weight")) or 0,
        admin=_admin(status, _int(state.get("srv_admin_state"))),
        health="disabled" if down else "up",
        active=_int(row.get("scur")),
        total=_int(row.get("stot")),
        queued=_int(row.get("qcur")),
        failures=_int(row.get("econ")) + _int(row.get("eresp")),
        bytes_in=_int(row.get("bin")),
        bytes_out=_int(row.get("bout")),
        configured_share=configured_share,
        actual_share=actual_share,
        check_state=("down" if down else "up") if checks else None,
        check_ok=(check_status in CHECK_OK) if checks else None,
        check_detail=detail if checks else None,
        check_ago_s=float(_int(row.get("lastchg"))) if checks and check_status not in CHECK_OK else None,
        status_classes={k: _int(row.get(f"hrsp_{k}")) for k in STATUS_CLASSES if row.get(f"hrsp_{k}", "") != ""},
        down_total_s=float(_int(row.get("downtime"))),
    )


def overrides(backend: str, states: Sequence[Mapping[str, str]], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The runtime changes of ``backend``'s servers (``core.fleet.Override`` JSON), config values aside."""
    out: list[dict[str, Any]] = []
    for s in states:
        mid = names.get(s.get("srv_name", ""), s.get("srv_name", ""))
        bits = _int(s.get("srv_admin_state"))
        o: dict[str, Any] = {"connectorID": group_id_of(backend), "memberID": mid}
        if bits & ADMIN_FMAINT:
            o["state"] = "disabled"
        elif bits & ADMIN_FDRAIN:
            o["state"] = "drain"
        if _int(s.get("srv_uweight")) != _int(s.get("srv_iweight")):
            o["weight"] = _int(s.get("srv_uweight"))
        if len(o) > 2:
            out.append(o)
    return out


def snapshot(backend: str, stat: Sequence[Mapping[str, str]], states: Sequence[Mapping[str, str]],
             info: Mapping[str, str], *, now: float, names: Mapping[str, str] | None = None,
             labels: Mapping[str, str] | None = None, version: int = 0, listen: str = "",
             affinity_header: str | None = None) -> Snapshot:
    """``backend`` as a snapshot taken at ``now`` (the caller's monotonic clock). KeyError: no such backend."""
    names = names or {}
    rows = [r for r in stat if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")]
    be = next((r for r in stat if r.get("pxname") == backend and r.get("svname") == "BACKEND"), None)
    if be is None:
        raise KeyError(backend)
    by_name = {s.get("srv_name", ""): s for s in states}
    weights = {r["svname"]: _int(by_name.get(r["svname"], {}).get("srv_uweight") or r.get("weight")) for r in rows}
    eligible = {r["svname"] for r in rows if r.get("status", "").startswith(("UP", "no check", "OPEN"))}
    wsum = sum(w for n, w in weights.items() if n in eligible) or 0
    stot = sum(_int(r.get("stot")) for r in rows) or 0
    members = tuple(
        member_snap(r, by_name.get(r["svname"], {}), member_id=names.get(r["svname"], r["svname"]),
                    label=(labels or {}).get(names.get(r["svname"], r["svname"]), ""), sequence=i + 1,
                    configured_share=(weights[r["svname"]] / wsum) if wsum and r["svname"] in eligible else 0.0,
                    actual_share=(_int(r.get("stot")) / stot) if stot else 0.0)
        for i, r in enumerate(rows)
    )
    mode = be.get("mode") or "tcp"
    return Snapshot(
        version=version,
        group={"connectorID": group_id_of(backend),
               "members": [{"memberID": m.member_id, "sequence": m.sequence,
                            "weight": _int(by_name.get(r["svname"], {}).get("srv_iweight")) or m.weight}
                           for m, r in zip(members, rows, strict=True)]},
        mode=mode,
        listen=listen,  # the Runtime API does not say where a frontend binds: the caller may know
        affinity_header=affinity_header,
        now=now,
        uptime_s=float(_int(info.get("Uptime_sec"))),
        members=members,
        totals={"active": _int(be.get("scur")), "total": _int(be.get("stot")), "queued": _int(be.get("qcur")),
                "failures": _int(be.get("econ")) + _int(be.get("eresp"))},
        data_plane=f"haproxy {info.get('Version', '')}".strip(),
        overrides=tuple(overrides(backend, states, names)),
    )


def events_between(prev: Snapshot | None, cur: Snapshot, *, first_seq: int) -> list[Event]:
    """Health and admin changes from ``prev`` to ``cur`` (none from the first snapshot), numbered from
    ``first_seq`` and stamped ``cur.now``."""
    if prev is None:
        return []
    out: list[Event] = []
    seq = first_seq
    for m in cur.members:
        was = prev.member(m.member_id)
        if was is None:
            continue
        if was.health != m.health:
            state = "disabled" if m.health == "disabled" else "enabled"
            out.append(HealthEvent(seq, cur.now, m.member_id, state, None, m.check_detail or ""))
            seq += 1
        if was.admin != m.admin:
            out.append(AdminEvent(seq, cur.now, m.member_id, m.admin))
            seq += 1
    return out
