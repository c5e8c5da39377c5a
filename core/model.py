"""The domain model: connectors, connector groups and their members, and the management API's rules.

One vocabulary from API to pixels. JSON names follow HDP's management API (``connectorID``, ``memberID``,
``connectionTimeout``…); Python names are their snake_case. Values are frozen pydantic models.

The rules of the API live here, in one place, and are used by the server (to answer 400), by the client
and by the GUI (to show an inline message before a save is even tried):

* :func:`parse_connector` turns a JSON body into a :class:`Connector`, or raises :class:`RuleError`
  listing every :class:`Problem` with the field (and member) it names.
* :func:`check_group_rules` checks a group against what the store knows (which connectors exist, who
  owns them, which group uses them) and returns the problems found.
* :func:`id_problem` is the rule for connector IDs (and member IDs, which name connectors): 1-255 of the
  characters RFC 3986 lets a URL path segment carry as they are — letters, digits and ``-._~!$&'()*+,;=:@``
  — and not ``.`` or ``..`` (which clients fold away). So every ID can be put in a URL, read and deleted.
  User names (:func:`user_name_problem`) follow a stricter rule of the same kind.
* :func:`text_problems` is the rule for every string a client sends: Unicode text that UTF-8 can carry (no
  lone surrogates such as a JSON ``"\\ud800"``, no bytes that are not UTF-8), each problem naming the field.
* A field the schema types as a string or an object takes no ``null`` (leave it out instead); only
  ``loadBalancing`` has ``null`` as one of its values.

Imports: pydantic and the standard library only.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROUND_ROBIN = "Round Robin"
DEFAULT_CONNECTION_TIMEOUT = 15
DEFAULT_RETRY_DELAY = 120
LABEL_MAX = 255
# A member's weight: 1..WEIGHT_MAX everywhere (model, API, GUI, balancer admin endpoint, exports). 256 is
# HAProxy's largest server weight, so every group exports exactly; nginx takes any positive weight.
WEIGHT_MAX = 256
SEQUENCE_MAX = 1_000_000
DEFAULT_AFFINITY_HEADER = "sender-transfer-id"
DEFAULT_READ_TIMEOUT = 60.0  # seconds without an answer byte before a member is called stalled (nginx: 60 s)
HEALTH_PATH_MAX = 1024
DEFAULT_POOL = "default"  # the balancer pool a group's listener belongs to when it names none
DEFAULT_MODE: Literal["tcp", "http"] = "tcp"
MODES: tuple[Literal["tcp", "http"], ...] = ("tcp", "http")  # a listener's modes: L4, L7
PORT_MAX = 65535  # a listener's or an endpoint's port: 1..PORT_MAX
POOL_MAX = 64
HEADER_NAME_MAX = 128  # an HTTP field name (RFC 9110 token), as an affinity header
POOL_RE = re.compile(rf"^[A-Za-z0-9_.-]{{1,{POOL_MAX}}}$")
HEADER_NAME_RE = re.compile(rf"^[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,{HEADER_NAME_MAX}}}$")
WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})

ID_MAX = 255
USER_NAME_MAX = 64
ID_PATTERN = r"^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,255}$"  # and not "." or ".." (see id_problem)
USER_NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"  # and not "." or ".."
_ID_RE = re.compile(ID_PATTERN)
_USER_NAME_RE = re.compile(USER_NAME_PATTERN)

_ENDPOINT_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.\-]+)):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``field`` is a JSON path such as ``connectorGroup.members[2].weight``."""

    field: str
    message: str
    member_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.member_id is not None:
            out["memberID"] = self.member_id
        return out


def _segment_problem(value: object, rx: re.Pattern[str], limit: int, allowed: str) -> str | None:
    if not isinstance(value, str):
        return "must be a string, not null" if value is None else "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"must be at most {limit} characters"
    if value in (".", ".."):
        return "cannot be . or .. (a URL drops such a path segment)"
    if not rx.fullmatch(value):
        return f"may hold only {allowed}, not {shown(value)}"
    return None


def id_problem(value: object) -> str | None:
    """Why ``value`` cannot be a connector ID (None if it can): see the module docstring."""
    allowed = "letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @ (what a URL path segment carries)"
    return _segment_problem(value, _ID_RE, ID_MAX, allowed)


def user_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a user name (None if it can): 1-64 letters, digits or ``_ . @ -``."""
    return _segment_problem(value, _USER_NAME_RE, USER_NAME_MAX, "letters, digits and _ . @ -")


def text_problem(value: str) -> str | None:
    """Why ``value`` is not text a store can keep (None if it is): a lone surrogate (UTF-8 cannot carry it), or
    a NUL (U+0000: valid UTF-8, but no PostgreSQL text column takes it, and no name or label needs it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return NOT_TEXT
    return NUL_TEXT if "\x00" in value else None


def is_text(value: str) -> bool:
    """True if ``value`` is text (:func:`text_problem`)."""
    return text_problem(value) is None


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for a message: shortened, and with what is not text escaped (so the answer is UTF-8)."""
    short = value if len(value) <= limit else value[:limit] + "…"
    return repr(short.encode("utf-8", "backslashreplace").decode("utf-8"))


NOT_TEXT = "is not valid UTF-8 text (a lone surrogate, or bytes that are not UTF-8)"
NUL_TEXT = "must not contain NUL (U+0000)"


def text_problems(body: Any, field: str = "body") -> list[Problem]:
    """Every string in a parsed JSON value (object keys too) that is not text, each with the field it is in:
    ``label``, ``connectorGroup.members[2].memberID``, or the key's own path for a bad key."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(field, body)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                problems.append(Problem(where, problem))
        elif isinstance(value, dict):
            for key, item in value.items():
                path = key if where == field and field == "body" else f"{where}.{key}"
                if not is_text(key):
                    bad = key.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
                    bad_path = bad if where == field and field == "body" else f"{where}.{bad}"
                    problems.append(Problem(bad_path, "this field name is not valid UTF-8 text without NUL"))
                    continue
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return sorted(problems, key=lambda p: p.field)


class RuleError(ValueError):
    """Raised when input breaks one or more rules; ``problems`` names each one."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")


def _seconds(value: Any, name: str) -> int:
    """HDP types timeouts as String but samples send numbers: accept both, keep an int."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number of seconds, not a boolean")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and value.is_integer():
        out = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        out = int(value.strip())
    else:
        raise ValueError(f"{name} must be a whole number of seconds (0 means never), got {value!r}")
    if out < 0:
        raise ValueError(f"{name} must be 0 (never) or a positive number of seconds, got {out}")
    if out > 86_400 * 365:
        raise ValueError(f"{name} must be at most one year in seconds, got {out}")
    return out


class Member(_Frozen):
    """One connector in a group: tried in ``sequence`` order, or sharing load by ``weight``."""

    member_id: str = Field(alias="memberID", min_length=1, max_length=255)
    sequence: int = Field(ge=0, le=SEQUENCE_MAX)
    weight: int = Field(default=1, ge=1, le=WEIGHT_MAX)

    @field_validator("member_id", mode="before")
    @classmethod
    def _member_id(cls, value: Any) -> Any:
        problem = id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("sequence", mode="before")
    @classmethod
    def _sequence(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"sequence must be a whole number, 0 or more, got {value!r}")
        return value

    @field_validator("weight", mode="before")
    @classmethod
    def _weight(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"weight must be a whole number from 1 to {WEIGHT_MAX}, got {value!r}")
        if value > WEIGHT_MAX:
            raise ValueError(f"weight must be a whole number from 1 to {WEIGHT_MAX}, got {value}")
        return value


class ConnectorGroup(_Frozen):
    """The ``connectorGroup`` object: timeouts, load-balancing mode and members."""

    connection_timeout: int = Field(default=DEFAULT_CONNECTION_TIMEOUT, alias="connectionTimeout")
    retry_delay: int = Field(default=DEFAULT_RETRY_DELAY, alias="retryDelay")
    load_balancing: str | None = Field(default=None, alias="loadBalancing")
    members: tuple[Member, ...]

    @field_validator("connection_timeout", mode="before")
    @classmethod
    def _ct(cls, value: Any) -> int:
        return _seconds(value, "connectionTimeout")

    @field_validator("retry_delay", mode="before")
    @classmethod
    def _rd(cls, value: Any) -> int:
        return _seconds(value, "retryDelay")

    @field_validator("load_balancing", mode="before")
    @classmethod
    def _lb(cls, value: Any) -> str | None:
        if value is None or value == ROUND_ROBIN:
            return value  # type: ignore[no-any-return]
        raise ValueError(f'loadBalancing must be "{ROUND_ROBIN}" or absent (sequence failover), got {value!r}')

    @property
    def round_robin(self) -> bool:
        return self.load_balancing == ROUND_ROBIN

    def ordered(self) -> list[Member]:
        """Members in ``sequence`` order (failover order)."""
        return sorted(self.members, key=lambda m: (m.sequence, m.member_id))

    def shares(self) -> dict[str, float]:
        """Each member's configured share of new connections (0..1); sequence groups: first gets all."""
        ordered = self.ordered()
        if not ordered:
            return {}
        if not self.round_robin:
            return {m.member_id: (1.0 if i == 0 else 0.0) for i, m in enumerate(ordered)}
        total = sum(m.weight for m in ordered)
        return {m.member_id: m.weight / total for m in ordered}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "connectionTimeout": self.connection_timeout,
            "retryDelay": self.retry_delay,
        }
        if self.load_balancing is not None:
            out["loadBalancing"] = self.load_balancing
        out["members"] = [
            {"memberID": m.member_id, "sequence": m.sequence, "weight": m.weight} for m in self.members
        ]
        return out


class Connector(_Frozen):
    """A plain connector (``connector_group`` is None) or a connector group.

    ``endpoint`` is Balance Desk's extension: ``host:port`` where a balancer reaches a plain connector.
    ``listener`` is the other one: how a pool's balancers serve a group (:class:`ListenerSettings`). Both are
    optional, so HDP's own payloads parse and answer unchanged.
    """

    connector_id: str | None = Field(default=None, alias="connectorID")
    owner: str = Field(min_length=1, max_length=255)
    label: str = Field(min_length=1, max_length=LABEL_MAX)
    connector_group: ConnectorGroup | None = Field(default=None, alias="connectorGroup")
    auth_user: tuple[str, ...] = Field(default=(), alias="authUser")
    endpoint: str | None = None
    listener: ListenerSettings | None = None

    @field_validator("connector_id", mode="before")
    @classmethod
    def _connector_id(cls, value: Any) -> Any:
        problem = id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("connector_group", "endpoint", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("takes no null: leave the field out instead")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint(value)
        return value

    @property
    def is_group(self) -> bool:
        return self.connector_group is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.connector_id is not None:
            out["connectorID"] = self.connector_id
        out["owner"] = self.owner
        out["label"] = self.label
        if self.connector_group is not None:
            out["connectorGroup"] = self.connector_group.to_json()
        out["authUser"] = list(self.auth_user)
        if self.endpoint is not None:
            out["endpoint"] = self.endpoint
        if self.listener is not None:
            out["listener"] = self.listener.to_json()
        return out


def share_texts(shares: list[float]) -> list[str]:
    """Shares (summing to 1) as percentages that sum to exactly 100: whole percents, or one decimal when a
    share that is not 0 would show as "0%" (1000:1:1 → 99.8%, 0.1%, 0.1%). Largest remainders round up."""
    if not shares:
        return []
    total = sum(shares)
    if total <= 0:
        return ["0%" for _ in shares]
    for decimals in (0, 1, 2):
        unit = 100 * 10**decimals
        exact = [s / total * unit for s in shares]
        units = [int(x) for x in exact]
        by_remainder = sorted(range(len(shares)), key=lambda i: exact[i] - units[i], reverse=True)
        for i in by_remainder[: unit - sum(units)]:
            units[i] += 1
        if decimals == 2 or all(u > 0 for u, s in zip(units, shares, strict=True) if s > 0):
            break
    return [f"{u / 10**decimals:.{decimals}f}%" for u in units]


def parse_endpoint(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); raises ValueError with a readable message."""
    match = _ENDPOINT_RE.match(value.strip())
    if not match:
        raise ValueError(f"endpoint must be host:port (IPv6 as [addr]:port), got {value!r}")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise ValueError(f"endpoint port must be 1-65535, got {port}")
    return (match["v6"] or match["host"], port)


def plain_connector_problems(*, label: object, endpoint: object = None, has_endpoint: bool = True) -> list[Problem]:
    """A plain connector's label (1-LABEL_MAX characters) and endpoint (host:port, see :func:`parse_endpoint`),
    worded as ``POST /api/admin/connectors`` answers; ``has_endpoint`` False: the endpoint is left out (allowed).
    The server registers with these, and the GUI checks its form with them before sending anything."""
    problems: list[Problem] = []
    if not isinstance(label, str) or not 1 <= len(label) <= LABEL_MAX:
        problems.append(Problem("label", f"is required: a name of 1-{LABEL_MAX} characters"))
    if has_endpoint:
        if not isinstance(endpoint, str):
            problems.append(Problem("endpoint", "must be host:port (leave it out rather than null)"))
        else:
            try:
                parse_endpoint(endpoint)
            except ValueError as exc:
                problems.append(Problem("endpoint", str(exc)))
    return problems


def _loc_to_field(loc: tuple[int | str, ...], body: Any) -> tuple[str, str | None]:
    parts: list[str] = []
    member_id: str | None = None
    for i, item in enumerate(loc):
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            if i >= 1 and loc[i - 1] == "members":
                try:
                    member_id = str(body["connectorGroup"]["members"][item].get("memberID"))
                except (KeyError, TypeError, IndexError, AttributeError):
                    try:
                        member_id = str(body["members"][item].get("memberID"))
                    except (KeyError, TypeError, IndexError, AttributeError):
                        member_id = None
        else:
            parts.append(item)
    return ".".join(parts) or "body", member_id


def problems_from_validation(exc: ValidationError, body: Any) -> list[Problem]:
    """Translate a pydantic error into Problems that name the JSON field (and member) at fault."""
    problems = []
    for err in exc.errors():
        field, member_id = _loc_to_field(tuple(err["loc"]), body)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        kind, ctx = err["type"], err.get("ctx") or {}
        if kind == "missing":
            msg = "is required"
        elif kind == "extra_forbidden":
            msg = "is not a known field"
        elif kind == "string_too_short":
            least = ctx.get("min_length", 1)
            msg = "must not be empty" if least == 1 else f"must be at least {least} characters"
        elif kind == "string_too_long":
            msg = f"must be at most {ctx.get('max_length')} characters"
        elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
            bound = next(iter(ctx.values()), "")
            word = {"greater_than_equal": "at least", "less_than_equal": "at most",
                    "greater_than": "more than", "less_than": "less than"}[kind]
            msg = f"must be {word} {bound}"
        elif msg.startswith("Input should be "):
            msg = "must be " + msg[len("Input should be "):]
        problems.append(Problem(field=field, message=msg, member_id=member_id))
    return problems


def parse_connector(body: Any) -> Connector:
    """Parse a Connector JSON body; raise RuleError naming every malformed field."""
    if not isinstance(body, dict):
        raise RuleError([Problem("body", "must be a JSON object")])
    try:
        return Connector.model_validate(body)
    except ValidationError as exc:
        raise RuleError(problems_from_validation(exc, body)) from exc


def parse_members(body: Any) -> tuple[Member, ...]:
    """Parse ``{"members": [...]}`` (the members sub-resource)."""
    if not isinstance(body, dict) or "members" not in body or not isinstance(body["members"], list):
        raise RuleError([Problem("members", 'is required: {"members": [{"memberID", "sequence", "weight"}]}')])
    out = []
    problems = []
    for i, raw in enumerate(body["members"]):
        try:
            out.append(Member.model_validate(raw))
        except ValidationError as exc:
            for p in problems_from_validation(exc, raw):
                mid = raw.get("memberID") if isinstance(raw, dict) else None
                problems.append(Problem(f"members[{i}].{p.field}", p.message, str(mid) if mid else None))
    if problems:
        raise RuleError(problems)
    return tuple(out)


@dataclass(frozen=True)
class KnownConnector:
    """What the store knows about a registered connector, for the group rules."""

    connector_id: str
    owner: str
    is_group: bool
    group_id: str | None = None  # the group that uses it, if any


def check_group_rules(
    *,
    group_id: str | None,
    owner: str,
    members: Iterable[Member],
    known: Mapping[str, KnownConnector],
    field_prefix: str = "connectorGroup.members",
) -> list[Problem]:
    """The documented group rules: members exist, are plain connectors registered to the group owner,
    are in no other group, appear once; ``sequence`` values are unique; at least one member."""
    members = list(members)
    problems: list[Problem] = []
    if not members:
        problems.append(Problem(field_prefix, "a group needs at least one member (delete the group instead)"))
    id_counts = Counter(m.member_id for m in members)
    seq_counts = Counter(m.sequence for m in members)
    for i, m in enumerate(members):
        field = f"{field_prefix}[{i}]"
        mid = m.member_id
        if id_counts[mid] > 1:
            problems.append(Problem(f"{field}.memberID", f"connector {mid} appears more than once in the group", mid))
        if seq_counts[m.sequence] > 1:
            problems.append(
                Problem(f"{field}.sequence", f"sequence {m.sequence} is used by more than one member", mid)
            )
        info = known.get(mid)
        if info is None:
            problems.append(Problem(f"{field}.memberID", f"connector {mid} is not registered", mid))
            continue
        if info.is_group or (group_id is not None and mid == group_id):
            problems.append(
                Problem(f"{field}.memberID", f"{mid} is a connector group; nested groups are not supported", mid)
            )
            continue
        if info.owner != owner:
            problems.append(
                Problem(
                    f"{field}.memberID",
                    f"connector {mid} is registered to {info.owner}, not to the group owner {owner}",
                    mid,
                )
            )
        if info.group_id is not None and info.group_id != group_id:
            problems.append(
                Problem(f"{field}.memberID", f"connector {mid} already belongs to group {info.group_id}", mid)
            )
    return problems


def _positive_seconds(value: Any, name: str, *, high: float) -> float:
    """A duration in seconds as a JSON number: more than 0, at most ``high``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    out = float(value)
    if not 0 < out <= high:
        raise ValueError(f"{name} must be more than 0 and at most {high:g} seconds, got {value!r}")
    return out


class HealthCheck(_Frozen):
    """Active health checks, opt-in per group (``listener.healthCheck``).

    Every ``interval`` seconds each member is probed: ``type`` "tcp" is a connect within ``timeout``;
    "http" also sends ``GET path`` and wants ``expectStatus``. ``fall`` failures in a row disable the member
    (as a failed connect would, until a check passes again); ``rise`` passes in a row re-enable it before its
    retryDelay ends. Without this object the seed's passive rules stay exactly as they are.
    """

    type: Literal["tcp", "http"] = "tcp"
    path: str = Field(default="/", min_length=1, max_length=HEALTH_PATH_MAX)
    expect_status: int = Field(default=200, alias="expectStatus", ge=100, le=599)
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = Field(default=2, ge=1, le=100)
    fall: int = Field(default=3, ge=1, le=100)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return _positive_seconds(value, "interval", high=3600)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> float:
        return _positive_seconds(value, "timeout", high=600)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(not 0x21 <= ord(ch) <= 0x7E for ch in value):
            raise ValueError("path must start with / and be printable ASCII without spaces")
        return value


class AccessLog(_Frozen):
    """An access log, opt-in per group (``listener.accessLog``): one line per request (L7) or per
    connection (L4) appended to ``path``, as ``text`` (a combined-log-like line) or ``json`` (JSON lines)."""

    path: str = Field(min_length=1, max_length=4096)
    format: Literal["text", "json"] = "text"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("path must not contain NUL")
        return value


class ListenerSettings(_Frozen):
    """Balance Desk's extension object beside HDP's fields (``listener``): how a balancer serves the group.

    * ``port``: where the group listens (1-65535). Absent in a ``--config`` file, the balancer's ``--listen``
      decides; the management server requires it (a pool's balancers open one listener per group).
    * ``bind``: an IP address literal to listen on; absent: the balancer's default address. ``0.0.0.0`` and
      ``::`` are wildcards (they overlap every address of their port).
    * ``mode``: ``"tcp"`` (L4) or ``"http"`` (L7).
    * ``affinityHeader``: L7 only, the request header whose value keeps a transfer on one member;
      default :data:`DEFAULT_AFFINITY_HEADER`, ``null`` for none. Ignored in tcp mode.
    * ``pool``: the balancer pool that serves the group (default :data:`DEFAULT_POOL`).
    * ``readTimeout``: seconds a member may take to send its first answer byte (L7) before the request is
      answered 504 and the member counted as failed and handled like a failed connect.
    """

    port: int | None = None
    bind: str | None = None
    mode: Literal["tcp", "http"] = DEFAULT_MODE
    affinity_header: str | None = Field(default=DEFAULT_AFFINITY_HEADER, alias="affinityHeader")
    pool: str = DEFAULT_POOL
    read_timeout: float = Field(default=DEFAULT_READ_TIMEOUT, alias="readTimeout")
    health_check: HealthCheck | None = Field(default=None, alias="healthCheck")
    access_log: AccessLog | None = Field(default=None, alias="accessLog")

    @field_validator("port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PORT_MAX:
            raise ValueError(f"port must be a whole number 1-{PORT_MAX}, got {value!r}")
        return value

    @field_validator("bind", mode="before")
    @classmethod
    def _bind(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"bind must be an IP address, got {value!r}")
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            raise ValueError(f"bind must be an IPv4 or IPv6 address (no host names), got {value!r}") from None

    @field_validator("affinity_header", mode="before")
    @classmethod
    def _affinity(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not HEADER_NAME_RE.match(value):
            raise ValueError(f"affinityHeader must be an HTTP header name or null (no affinity), got {value!r}")
        return value.lower()

    @field_validator("pool", mode="before")
    @classmethod
    def _pool(cls, value: Any) -> Any:
        if not isinstance(value, str) or not POOL_RE.match(value):
            raise ValueError(f"pool must be 1-64 letters, digits or _ . -, got {value!r}")
        return value

    @field_validator("read_timeout", mode="before")
    @classmethod
    def _rt(cls, value: Any) -> float:
        return _positive_seconds(value, "readTimeout", high=86_400)

    def claims(self, other: ListenerSettings) -> bool:
        """Whether two listeners of one pool would need the same socket (same port, overlapping address)."""
        if self.port is None or self.port != other.port:
            return False
        a, b = self.bind, other.bind
        return a is None or b is None or a in WILDCARD_BINDS or b in WILDCARD_BINDS or a == b

    def to_json(self) -> dict[str, Any]:
        """Every field, defaults filled in; ``port``/``bind``/``healthCheck``/``accessLog`` only when set,
        ``affinityHeader`` always (``null`` means none)."""
        out: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        out["affinityHeader"] = self.affinity_header
        return out


Connector.model_rebuild()  # its ``listener`` field names ListenerSettings, defined after it


class BalancerConfig(_Frozen):
    """What ``balancedesk balance --config FILE`` reads: the group JSON exactly as the management API
    returns it, plus ``endpoints`` mapping each memberID to ``host:port`` (and optionally ``memberLabels``
    mapping each memberID to its connector's label)."""

    connector_id: str | None = Field(default=None, alias="connectorID")
    owner: str | None = None
    label: str = "group"
    connector_group: ConnectorGroup = Field(alias="connectorGroup")
    auth_user: tuple[str, ...] = Field(default=(), alias="authUser")
    endpoints: dict[str, str]
    # memberID → the member connector's label, for what a person reads (snapshot, metrics); optional
    member_labels: dict[str, str] = Field(default_factory=dict, alias="memberLabels")
    listener: ListenerSettings = Field(default_factory=ListenerSettings)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for mid, ep in value.items():
            try:
                parse_endpoint(ep)
            except ValueError as exc:
                raise ValueError(f"endpoints[{mid}]: {exc}") from None
        return value

    def missing_endpoints(self) -> list[str]:
        return [m.member_id for m in self.connector_group.members if m.member_id not in self.endpoints]


def parse_balancer_config(body: Any) -> BalancerConfig:
    """Parse a balancer config; raise RuleError if malformed or a member has no endpoint."""
    if not isinstance(body, dict):
        raise RuleError([Problem("body", "must be a JSON object")])
    try:
        cfg = BalancerConfig.model_validate(body)
    except ValidationError as exc:
        raise RuleError(problems_from_validation(exc, body)) from exc
    problems = [Problem(f"endpoints.{mid}", "no endpoint for this member", mid) for mid in cfg.missing_endpoints()]
    members = cfg.connector_group.members
    if not members:
        problems.append(Problem("connectorGroup.members", "a group needs at least one member"))
    seqs = Counter(m.sequence for m in members)
    ids = Counter(m.member_id for m in members)
    problems += [Problem("connectorGroup.members", f"sequence {s} is used twice") for s, n in seqs.items() if n > 1]
    problems += [Problem("connectorGroup.members", f"member {i} appears twice", i) for i, n in ids.items() if n > 1]
    if problems:
        raise RuleError(problems)
    return cfg
