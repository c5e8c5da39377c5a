"""HAProxy as an engine Balance Desk deploys to and drives live.

* :mod:`.runtime` — the Runtime API (the stats socket, unix path or ``host:port``; also the master CLI):
  one command per connection, the answer read to the end. ``show stat``, ``show servers state``,
  ``show info``, ``set server B/S weight|state``.
* :mod:`.stats` — pure: HAProxy's CSV and server-state rows → ``contract.MemberSnap`` / ``Snapshot``; the
  health and admin events between two snapshots; runtime changes as ``core.fleet.Override`` entries.
* :mod:`.engine` — :class:`~.engine.HaproxyEngine`, the :class:`balancedesk.core.engines.Engine` of one
  HAProxy backend (what the live view watches).
* :mod:`.deploy` — a group's frontend and backend in a managed section of an instance's config, checked with
  ``haproxy -c`` on a copy, then a master-worker reload confirmed through ``show proc``.
* :mod:`.cli` — ``balancedesk haproxy deploy|status``.

Imports: the standard library, ``core.model``, ``core.export``, ``core.fleet``, ``core.proxy.contract``,
``core.engines``. No Qt.
"""
