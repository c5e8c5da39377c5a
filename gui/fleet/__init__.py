"""The fleet in the GUI: the Balancers window (instances, alive/lost, applied vs saved versions, overrides)
and the balancer tokens of the management server.

Map (imports ``balancedesk.core`` and Qt; nothing in core imports this):

* ``rows``    — pure: one :class:`~balancedesk.gui.fleet.rows.InstanceRow` per balancer, drift per group
  (applied version against the group's saved version in its pool), the texts a person reads. No Qt.
* ``models``  — Qt item models over plain lists: instances, one instance's groups, tokens.
* ``poller``  — :class:`~balancedesk.gui.fleet.poller.FleetPoller`: the management API read on the qasync
  loop every ``REFRESH_S``, only while the window is shown.
* ``tokens``  — the token panel: create (shown once, with a copy button and the command to run), revoke.
* ``window``  — :class:`~balancedesk.gui.fleet.window.BalancersWindow`, the composition; "Open live view"
  opens the group's live view aggregated over every balancer of the pool that serves it
  (:mod:`balancedesk.gui.live.fleetlive`), each admin endpoint reached through
  ``GET /api/admin/balancers/{id}/admin`` (no token pasted).

The contract it reads is docs/ARCHITECTURE.md, "The control plane"; the wire types are
:mod:`balancedesk.core.fleet` and :mod:`balancedesk.core.fleetclient`.
"""
