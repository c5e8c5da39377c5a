"""The fleet's wire vocabulary: what balancers and the management server say to each other, defined once.

Used by the management server (``core.mgmt``: it validates heartbeats with these models), by the balancer
(``core.proxy``: it builds them) and by the GUI (through ``core.client``). The routes, status codes and the
cursor rules are in docs/ARCHITECTURE.md, "The control plane".

* :data:`HEARTBEAT_INTERVAL_S` — how often a balancer heartbeats (the server's answer may ask for another
  interval: a balancer uses the ``heartbeatInterval`` it is told); one that misses :data:`LOST_AFTER_MISSED`
  heartbeats in a row is listed as ``lost``.
* :class:`Heartbeat` — the body of ``POST /api/admin/balancers/heartbeat``, with :class:`AppliedGroup` (a
  group served, with the version applied) and :class:`Override` (a runtime override set on the balancer).
* Feed states :data:`CHANGED` / :data:`GONE` and balancer states :data:`ALIVE` / :data:`LOST`.

Imports: pydantic, the standard library and :mod:`balancedesk.core.model`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from balancedesk.core.model import POOL_RE, Problem, RuleError, problems_from_validation
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

HEARTBEAT_INTERVAL_S = 5.0  # a balancer's heartbeat period unless the server says otherwise
LOST_AFTER_MISSED = 3  # heartbeats missed in a row before an instance is shown as lost
MAX_HEARTBEAT_BYTES = 256 * 1024  # largest heartbeat body the server reads (413 beyond)
MAX_FEED_WAIT_S = 60.0  # longest ``wait`` a change-feed request may ask for
MAX_FEED_CHANGES = 1000  # most changes one feed answer carries (``more`` says there are others)
MAX_GROUPS_PER_HEARTBEAT = 5000
MAX_OVERRIDES_PER_HEARTBEAT = 10_000
INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")

CHANGED = "changed"  # feed: the group is (now) in this pool; fetch it if its version is newer than yours
GONE = "gone"  # feed: the group left this pool (deleted, moved to another pool, or its listener removed)
ALIVE = "alive"
LOST = "lost"
BALANCER_TOKEN_PREFIX = "bdt_"  # every balancer token starts so (a secret scanner can find leaked ones)


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


class AppliedGroup(_Wire):
    """A group a balancer serves: the ``version`` it applied (the feed's version), and where it listens."""

    connector_id: str = Field(alias="connectorID", min_length=1, max_length=255)
    version: int = Field(ge=0)
    listen: str | None = Field(default=None, max_length=300)  # "host:port" actually bound
    error: str | None = Field(default=None, max_length=1000)  # why it is not served (e.g. port taken)


class Override(_Wire):
    """A runtime override a balancer keeps across config updates: a member's admin state or live weight."""

    connector_id: str = Field(alias="connectorID", min_length=1, max_length=255)
    member_id: str = Field(alias="memberID", min_length=1, max_length=255)
    state: Literal["enabled", "drain", "disabled"] | None = None
    weight: int | None = Field(default=None, ge=1, le=1_000_000)


class Heartbeat(_Wire):
    """``POST /api/admin/balancers/heartbeat``: who the balancer is and what it serves, sent every interval.

    ``adminURL``/``adminToken``: where its admin endpoint is and the bearer token for it. The server keeps the
    token in memory only and gives it back to Administrators alone (``GET /api/admin/balancers/{id}/admin``),
    so the GUI reaches each balancer without anyone pasting tokens. ``startedAt`` is wall-clock Unix time.
    """

    instance_id: str = Field(alias="instanceID")
    host: str = Field(min_length=1, max_length=255)
    admin_url: str | None = Field(default=None, alias="adminURL", max_length=2048)
    admin_token: str | None = Field(default=None, alias="adminToken", min_length=1, max_length=512)
    data_plane: str = Field(alias="dataPlane", min_length=1, max_length=32)
    workers: int = Field(default=1, ge=1, le=1024)
    started_at: float = Field(alias="startedAt", ge=0)
    groups: tuple[AppliedGroup, ...] = Field(default=(), max_length=MAX_GROUPS_PER_HEARTBEAT)
    overrides: tuple[Override, ...] = Field(default=(), max_length=MAX_OVERRIDES_PER_HEARTBEAT)

    @field_validator("instance_id")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not INSTANCE_ID_RE.match(value):
            raise ValueError("instanceID must be 1-128 letters, digits or _ . : @ -")
        return value

    @field_validator("admin_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(f"adminURL must be an http:// or https:// URL, got {value!r}")
        return value

    def to_json(self, *, with_token: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = self.model_dump(by_alias=True, mode="json")
        if not with_token:
            out.pop("adminToken")
        return out


def parse_heartbeat(body: Any) -> Heartbeat:
    """A heartbeat body → :class:`Heartbeat`, or :class:`RuleError` naming every bad field."""
    if not isinstance(body, dict):
        raise RuleError([Problem("body", "must be a JSON object")])
    try:
        return Heartbeat.model_validate(body)
    except ValidationError as exc:
        raise RuleError(problems_from_validation(exc, body)) from exc


def check_pool(pool: str) -> str:
    """A pool name from a URL → itself, or :class:`RuleError` naming ``pool``."""
    if not POOL_RE.match(pool):
        raise RuleError([Problem("pool", f"must be 1-64 letters, digits or _ . -, got {pool!r}")])
    return pool
