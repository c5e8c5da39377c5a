"""The sans-io heart of the balancer: every routing decision, none of the I/O.

* ``wrr``       — nginx's smooth weighted round robin (pure function over a small state list).
* ``affinity``  — weighted rendezvous hashing of an affinity key (``sender-transfer-id``) over members.
* ``group``     — :class:`GroupBalancer`: one connector group's members, their runtime admin state
  (enabled / drain / disabled), their health (disabled for ``retryDelay`` after a failed connect, tried
  anyway when all are disabled), and :class:`Selection`, the per-connection walk through candidates.
* ``sticky``    — :class:`StickyTable`: keys displaced from their rendezvous choice stay where they went
  (a bounded table with an idle expiry); :class:`StickyStore` is what any storage of it offers.
* ``health``    — :class:`ActiveChecks`: opt-in active health checks (rise/fall counts) holding members
  down or lifting their marks through the group's health, so routing honours them; :class:`Downtime`, the
  total time each member was out.

No sockets, no asyncio, no clock: time is the ``now`` argument (monotonic seconds). Imports only the
standard library and :mod:`balancedesk.core.model`.
"""

from balancedesk.core.balance.affinity import rendezvous_rank
from balancedesk.core.balance.group import (
    AdminState,
    GroupBalancer,
    MemberView,
    Selection,
)
from balancedesk.core.balance.health import ActiveChecks, CheckState, CheckView, Downtime, Flip
from balancedesk.core.balance.sticky import StickyCounts, StickyStore, StickyTable
from balancedesk.core.balance.wrr import SmoothWRR

__all__ = ["ActiveChecks", "AdminState", "CheckState", "CheckView", "Downtime", "Flip", "GroupBalancer", "MemberView",
           "Selection", "SmoothWRR", "StickyCounts", "StickyStore", "StickyTable", "rendezvous_rank"]
