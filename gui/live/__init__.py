"""The live view: watch a running balancer route every connection, see members fail and come back, poke it.

Map (imports ``balancedesk.core`` and Qt; nothing in core imports this):

* ``admin``     — async keep-alive client of the balancer's admin endpoint; frozen ``Snapshot``/``MemberSnap``.
* ``watcher``   — :class:`LiveWatcher`: snapshot ~5×/s and events by cursor, on the qasync loop.
* ``rates``     — per-member rates from successive snapshots; the chart's rolling history.
* ``drift``     — differences between the running balancer and the saved group; the ``PUT`` body.
* ``models``    — Qt item models: the member table and the event timeline.
* ``topology``  — QGraphicsView of clients → balancer → members with moving, sampled connections.
* ``chart``     — pyqtgraph rolling rate per member.
* ``children``  — QProcess children with a readiness line (balancer, demo members, traffic).
* ``demos``     — demo members (``balancedesk demo-member``) and the traffic generator (``demo-traffic``).
* ``panels``    — run / demo / traffic controls and the attach dialog.
* ``window``    — :class:`LiveWindow`, the composition.
* ``aggregate`` — pure: one group's snapshots from several instances → one merged view + per-instance rows.
* ``fleetwatch``— :class:`GroupFleetWatcher`: a watcher per instance of a pool serving the group.
* ``breakdown`` — the per-instance breakdown table model.
* ``fleetlive`` — :class:`FleetLiveWindow`, the live view aggregated over every instance (``open_fleet_live_view``).

Entry point for the main window: :func:`open_live_view`. Standalone: ``python -m balancedesk.gui.live
--config FILE`` or ``--attach URL --token-file F``.
"""

from __future__ import annotations

from collections.abc import Mapping

from balancedesk.core.model import Connector
from balancedesk.gui.live.admin import AdminClient
from balancedesk.gui.live.window import LiveWindow
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

__all__ = ["AdminClient", "LiveWindow", "open_live_view"]


def open_live_view(
    *, parent: QWidget | None, group: Connector, endpoints: Mapping[str, str] | dict[str, str],
    client: object | None = None, mgmt: object | None = None, pool: str | None = None,
    instance: str | None = None,
) -> QWidget:
    """Open (show) and return a live view of ``group``.

    ``endpoints`` maps each memberID to ``host:port``. ``client``: an :class:`AdminClient` to attach to
    at once (a balancer already running); anything else (e.g. the management client) is ignored — the
    window then offers "Run locally" and "Attach…". ``mgmt``: the management client the saved group is
    re-read from (drift and Apply use the server's group, never a frozen copy); ``pool``: the pool the
    balancer follows (the group and its endpoints are then read as that pool serves them; without ``client``,
    the window offers "Watch all N balancers of pool P" when the pool's balancers serve the group); ``instance``:
    the balancer's instance ID, for the title. The window is a top-level window (``Qt.Window``)
    even with a parent, and stops every child process it started when it closes.
    """
    from balancedesk.core.client import MgmtClient

    win = LiveWindow(group=group, endpoints=dict(endpoints), parent=parent,
                     mgmt=mgmt if isinstance(mgmt, MgmtClient) else None, pool=pool, instance=instance)
    if parent is not None:
        win.setWindowFlag(Qt.WindowType.Window, True)
    win.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, parent is not None)
    if isinstance(client, AdminClient):
        win.attach_client(client)
    elif win.mgmt is not None and pool:  # a group of a pool: offer the view of all its balancers
        from balancedesk.gui.live.fleetlive import offer_fleet_view

        offer_fleet_view(win, win.mgmt, pool)
    win.show()
    return win
